//! Opaque one-time secrets: refresh tokens, password-reset, invitation and e-mail verification
//! tokens.
//!
//! A secret is a prefix saying what it is for (so an access token can never pass for one, nor
//! one for another), the id of the company it belongs to (16 bytes, base64url) and 256 random
//! bits (base64url). Only its SHA-256 is stored, in the company's rows: the server reads the
//! company from the token and looks the hash up by `(company_id, token_hash)`, which on a
//! database distributed by company is one shard, never a search of every company. The company
//! part needs no protection of its own: it is part of what is hashed, so a token whose company
//! was changed matches no row of any company. A refresh token's successor is derived from it
//! with an HMAC under a server key (and keeps its company): presenting the same token twice
//! yields the same successor, which is what makes the refresh grace window safe.

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Length of the company part (16 bytes, base64url without padding).
const COMPANY_LEN: usize = 22;
/// Length of the secret part (32 bytes, base64url without padding).
const SECRET_LEN: usize = 43;

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

/// A fresh random secret of `kind` for a row of `company`.
pub fn generate(kind: Kind, company: Uuid) -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{}{}{}",
        kind.prefix(),
        URL_SAFE_NO_PAD.encode(company.as_bytes()),
        URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The company of `token` when it looks like a secret of `kind` (checked before any lookup);
/// `None` for anything else, tokens of the format before companies were part of them included.
pub fn company(token: &str, kind: Kind) -> Option<Uuid> {
    let rest = token.strip_prefix(kind.prefix())?;
    if rest.len() != COMPANY_LEN + SECRET_LEN || !rest.is_ascii() {
        return None;
    }
    let (company, secret) = rest.split_at(COMPANY_LEN);
    let bytes = URL_SAFE_NO_PAD.decode(company).ok()?;
    // Canonical base64url only: one token, one spelling.
    if URL_SAFE_NO_PAD.decode(secret).ok()?.len() != 32 {
        return None;
    }
    let company = Uuid::from_slice(&bytes).ok()?;
    (URL_SAFE_NO_PAD.encode(company.as_bytes()) == rest[..COMPANY_LEN]).then_some(company)
}

/// Whether `token` looks like a secret of `kind`.
pub fn is_kind(token: &str, kind: Kind) -> bool {
    company(token, kind).is_some()
}

/// The stored form of a secret: hex SHA-256.
pub fn hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// The successor of refresh token `token` of `company` under `key` (of the same company).
pub fn successor(key: &[u8], company: Uuid, token: &str) -> String {
    // HMAC takes keys of any length; this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return generate(Kind::Refresh, company),
    };
    mac.update(b"refresh-rotation\0");
    mac.update(token.as_bytes());
    format!(
        "{}{}{}",
        Kind::Refresh.prefix(),
        URL_SAFE_NO_PAD.encode(company.as_bytes()),
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
        let company_id = Uuid::new_v4();
        let a = generate(Kind::Refresh, company_id);
        let b = generate(Kind::Refresh, company_id);
        assert_ne!(a, b);
        assert!(is_kind(&a, Kind::Refresh));
        assert!(!is_kind(&a, Kind::PasswordReset));
        assert!(!is_kind("eyJhbGciOiJIUzI1NiJ9.e30.x", Kind::Refresh));
        assert_eq!(hash(&a).len(), 64);
    }

    #[test]
    fn a_secret_tells_its_company() {
        let company_id = Uuid::new_v4();
        for kind in [
            Kind::Refresh,
            Kind::PasswordReset,
            Kind::Invitation,
            Kind::EmailVerification,
            Kind::InviteLink,
        ] {
            let token = generate(kind, company_id);
            assert_eq!(company(&token, kind), Some(company_id), "{token}");
        }
    }

    #[test]
    fn malformed_and_former_secrets_tell_no_company() {
        let company_id = Uuid::new_v4();
        let token = generate(Kind::Invitation, company_id);
        // The format before the company was part of secrets: 43 characters after the prefix.
        let former = format!("iv_{}", URL_SAFE_NO_PAD.encode([7u8; 32]));
        assert_eq!(company(&former, Kind::Invitation), None);
        assert_eq!(company(&token[..token.len() - 1], Kind::Invitation), None);
        assert_eq!(company(&format!("{token}A"), Kind::Invitation), None);
        // Not base64url, or not canonical (the last character of 16 bytes carries 2 spare bits).
        let bad = format!(
            "iv_{}{}",
            "!".repeat(COMPANY_LEN),
            &token[3 + COMPANY_LEN..]
        );
        assert_eq!(company(&bad, Kind::Invitation), None);
        let mut spare = token.clone().into_bytes();
        let last = 3 + COMPANY_LEN - 1;
        spare[last] = if spare[last] == b'B' { b'C' } else { b'B' };
        let spare = String::from_utf8(spare).unwrap_or_default();
        assert_ne!(company(&spare, Kind::Invitation), Some(company_id));
        // Non-ASCII never panics on a split.
        assert_eq!(
            company(&format!("iv_é{}", "A".repeat(63)), Kind::Invitation),
            None
        );
    }

    #[test]
    fn a_changed_company_changes_the_hash() {
        let token = generate(Kind::PasswordReset, Uuid::new_v4());
        let other = Uuid::new_v4();
        let forged = format!(
            "pr_{}{}",
            URL_SAFE_NO_PAD.encode(other.as_bytes()),
            &token[3 + COMPANY_LEN..]
        );
        assert_eq!(company(&forged, Kind::PasswordReset), Some(other));
        assert_ne!(hash(&forged), hash(&token));
    }

    #[test]
    fn successors_are_deterministic_per_key_and_token_and_keep_the_company() {
        let company_id = Uuid::new_v4();
        let token = generate(Kind::Refresh, company_id);
        assert_eq!(
            successor(b"k1", company_id, &token),
            successor(b"k1", company_id, &token)
        );
        assert_ne!(
            successor(b"k1", company_id, &token),
            successor(b"k2", company_id, &token)
        );
        assert_ne!(successor(b"k1", company_id, &token), token);
        assert_eq!(
            company(&successor(b"k1", company_id, &token), Kind::Refresh),
            Some(company_id)
        );
    }
}
