//! Opaque one-time secrets: refresh tokens, password-reset, invitation and e-mail verification
//! tokens.
//!
//! A secret is 256 random bits, base64url, with a prefix saying what it is for (so an access
//! token can never pass for one, nor one for another). Only its SHA-256 is stored. A refresh
//! token's successor is derived from it with an HMAC under a server key: presenting the same
//! token twice yields the same successor, which is what makes the refresh grace window safe.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

/// What a secret is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Refresh,
    PasswordReset,
    Invitation,
    EmailVerification,
    InviteLink,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Refresh => "rt_",
            Self::PasswordReset => "pr_",
            Self::Invitation => "iv_",
            Self::EmailVerification => "ev_",
            Self::InviteLink => "il_",
        }
    }
}

/// A fresh random secret of `kind`.
pub fn generate(kind: Kind) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes))
}

/// Whether `token` looks like a secret of `kind` (checked before any lookup).
pub fn is_kind(token: &str, kind: Kind) -> bool {
    token
        .strip_prefix(kind.prefix())
        .is_some_and(|rest| rest.len() == 43)
}

/// The stored form of a secret: hex SHA-256.
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The successor of a refresh token under `key`.
pub fn successor(key: &[u8], token: &str) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return generate(Kind::Refresh),
    };
    mac.update(b"refresh-rotation\0");
    mac.update(token.as_bytes());
    format!(
        "{}{}",
        Kind::Refresh.prefix(),
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    )
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_prefixed_and_recognised() {
        let a = generate(Kind::Refresh);
        let b = generate(Kind::Refresh);
        assert_ne!(a, b);
        assert!(is_kind(&a, Kind::Refresh));
        assert!(!is_kind(&a, Kind::PasswordReset));
        assert!(!is_kind("eyJhbGciOiJIUzI1NiJ9.e30.x", Kind::Refresh));
        assert_eq!(hash(&a).len(), 64);
    }

    #[test]
    fn successors_are_deterministic_per_key_and_token() {
        let token = generate(Kind::Refresh);
        assert_eq!(successor(b"k1", &token), successor(b"k1", &token));
        assert_ne!(successor(b"k1", &token), successor(b"k2", &token));
        assert_ne!(successor(b"k1", &token), token);
        assert!(is_kind(&successor(b"k1", &token), Kind::Refresh));
    }
}
