//! Secrets at rest: every secret the server stores (a company's LLM API key, the client
//! secrets of a company's OpenID providers; provider tokens would use the same seam) is
//! sealed with AES-256-GCM (RustCrypto's `aes-gcm`) before it reaches PostgreSQL, which only
//! ever holds ciphertext.
//! The server decrypts, in memory, when it needs the plaintext.
//!
//! # Keys
//!
//! `SECRETS_KEYS` lists the keys, `id:base64,id:base64,...`: each key is 32 random bytes
//! (base64, standard alphabet), each id 1 to 32 of `A-Z a-z 0-9 _ -`. The **first** key seals
//! everything new; **every** key opens. Rotation: put a new key first, keep the old ones after
//! it, restart, run `server rotate-secrets` (which re-seals every stored secret under the first
//! key, see [`rotate`]), then the old keys may go. In private mode a key is generated into
//! `DATA_DIR/secrets_keys` (mode 0600) on the first start. Without any key, start-up goes on
//! but sealing is refused ([`SecretsError::NoKey`]): no secret is ever stored in the clear.
//!
//! Keys live in memory only as AES key schedules, zeroized when dropped (`aes`'s `zeroize`
//! feature); the decoded bytes are zeroized as soon as the schedule is built. Nothing here
//! prints a key: `Debug` shows key ids only, and parse errors name the entry's position, never
//! its text.
//!
//! # Stored form
//!
//! `v1:<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>`, one `text` value: the key id says
//! which key opens it (and lets rotation skip what is current), the nonce is 96 random bits
//! drawn for each seal. Random nonces are safe for far more seals than a server makes (the
//! GCM bound is 2^32 per key).
//!
//! # Binding: purpose and associated data
//!
//! Each seal authenticates, besides the plaintext, the format version, the key id, a
//! [`Purpose`] (what the secret is, a constant of the calling module) and caller-given
//! associated data naming the row it belongs to (e.g. the company id, and the row's own id
//! for tables with several rows per company). A ciphertext copied into another row, another
//! company or another column therefore does not open: [`Secrets::open`] fails with
//! [`SecretsError::Undecryptable`], as it does for a wrong key or a tampered value.
//!
//! # Using it from another module
//!
//! ```ignore
//! use crate::secrets::{Purpose, Secrets};
//!
//! // One constant per kind of secret, declared in this module; never reuse one for another
//! // column.
//! pub const OIDC_CLIENT_SECRET: Purpose = Purpose::new("oidc_providers.client_secret");
//!
//! fn store(secrets: &Secrets, company: Uuid, provider: Uuid, secret: &str) -> AppResult<String> {
//!     let aad = secrets::row_aad(company, provider);
//!     Ok(secrets.seal(OIDC_CLIENT_SECRET, &aad, secret.as_bytes())?) // the text to store
//! }
//!
//! fn load(secrets: &Secrets, company: Uuid, provider: Uuid, sealed: &str) -> AppResult<Zeroizing<String>> {
//!     Ok(secrets.open_string(OIDC_CLIENT_SECRET, &secrets::row_aad(company, provider), sealed)?)
//! }
//! ```
//!
//! Then register the column in [`rotate::SEALED`] (two `SECURITY DEFINER` functions that list
//! and compare-and-swap it, executable by `app_worker` only), so `server rotate-secrets` covers
//! it, and never give request roles `SELECT` on the ciphertext column: the API reports only
//! whether a secret is set. [`SecretsError`] converts to an `AppError` with a clear message
//! (`UNAVAILABLE` when no key is configured), never echoing a secret.

pub mod rotate;

use std::{fmt, sync::Arc};

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use rand::RngCore as _;
use uuid::Uuid;
use zeroize::Zeroizing;

pub use crate::config::SecretText;
use crate::error::AppError;

/// The version tag of the stored form.
const VERSION: &str = "v1";
/// AES-GCM's standard nonce length, in bytes.
const NONCE_LEN: usize = 12;
/// AES-256's key length, in bytes.
const KEY_LEN: usize = 32;
/// Longest plaintext sealed (secrets are keys and tokens, not documents).
pub const MAX_PLAINTEXT: usize = 16 * 1024;

/// What a secret is: part of what its ciphertext authenticates, so a secret sealed for one
/// purpose never opens as another. Each kind of secret has one constant, named after its
/// table and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose(&'static str);

impl Purpose {
    pub const fn new(name: &'static str) -> Self {
        Self(name)
    }

    pub fn name(self) -> &'static str {
        self.0
    }
}

/// A company's own LLM API key (`company_llm_providers.api_key_sealed`), with the associated
/// data `row_aad(company, company)`. Every purpose is declared here, beside [`rotate::SEALED`].
pub const COMPANY_LLM_API_KEY: Purpose = Purpose::new("company_llm_providers.api_key");

/// The client secret of a company's OpenID provider (`company_oidc_providers.
/// client_secret_sealed`), with the associated data `row_aad(company, provider id)`.
pub const COMPANY_OIDC_CLIENT_SECRET: Purpose =
    Purpose::new("company_oidc_providers.client_secret");

/// The associated data of a row identified by its company and its own id: 32 bytes.
pub fn row_aad(company: Uuid, row: Uuid) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32);
    aad.extend_from_slice(company.as_bytes());
    aad.extend_from_slice(row.as_bytes());
    aad
}

/// Why a secret could not be sealed or opened. The messages never hold key material nor
/// plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error(
        "no encryption key is configured (SECRETS_KEYS is not set): secrets can be neither \
         stored nor read"
    )]
    NoKey,
    #[error("the secret was sealed with key `{0}`, which SECRETS_KEYS does not hold")]
    UnknownKey(String),
    #[error(
        "the secret cannot be decrypted: a wrong key, or a value altered or copied from \
         elsewhere"
    )]
    Undecryptable,
    #[error("the stored secret is malformed ({0})")]
    Malformed(&'static str),
    #[error("a secret may hold at most {MAX_PLAINTEXT} bytes")]
    TooLong,
    #[error("SECRETS_KEYS: {0}")]
    Config(String),
}

impl From<SecretsError> for AppError {
    fn from(error: SecretsError) -> Self {
        match error {
            SecretsError::NoKey => AppError::Unavailable(error.to_string()),
            SecretsError::TooLong => AppError::bad_input("input", error.to_string()),
            other => AppError::internal(anyhow::Error::new(other)),
        }
    }
}

/// One key: its id and its AES key schedule (zeroized on drop).
struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The keys of `SECRETS_KEYS`, the first sealing. Cheap to clone.
#[derive(Clone, Default)]
pub struct Secrets {
    keys: Arc<Vec<Key>>,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secrets")
            .field(
                "key_ids",
                &self.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Whether `id` may name a key: 1 to 32 of `A-Z a-z 0-9 _ -` (it is written into the stored
/// form, between `:`).
fn valid_key_id(id: &str) -> bool {
    (1..=32).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Secrets {
    /// No key: every seal is refused, every open fails with `NoKey`.
    pub fn none() -> Self {
        Self::default()
    }

    /// The keys of the configuration (`SECRETS_KEYS`), or none when it is unset or empty.
    pub fn from_config(config: &crate::config::Config) -> Result<Self, SecretsError> {
        match &config.secrets_keys {
            Some(text) => Self::parse(text.expose()),
            None => Ok(Self::none()),
        }
    }

    /// Parses `id:base64,id:base64,...` (spaces around entries allowed; an empty text is no
    /// key). Errors name the entry by position, never by content.
    pub fn parse(text: &str) -> Result<Self, SecretsError> {
        let mut keys: Vec<Key> = Vec::new();
        for (index, entry) in text
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let position = index + 1;
            let Some((id, encoded)) = entry.split_once(':') else {
                return Err(SecretsError::Config(format!(
                    "entry {position} is not `id:base64-key`"
                )));
            };
            let id = id.trim();
            if !valid_key_id(id) {
                return Err(SecretsError::Config(format!(
                    "entry {position}: a key id has 1 to 32 characters of A-Z, a-z, 0-9, `_` \
                     and `-`"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(SecretsError::Config(format!(
                    "entry {position}: key id `{id}` appears twice"
                )));
            }
            let bytes = Zeroizing::new(STANDARD.decode(encoded.trim()).map_err(|_| {
                SecretsError::Config(format!("entry {position} (`{id}`): the key is not base64"))
            })?);
            if bytes.len() != KEY_LEN {
                return Err(SecretsError::Config(format!(
                    "entry {position} (`{id}`): a key is 32 bytes, this one is {}",
                    bytes.len()
                )));
            }
            let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| {
                SecretsError::Config(format!("entry {position} (`{id}`): not an AES-256 key"))
            })?;
            keys.push(Key {
                id: id.to_owned(),
                cipher,
            });
        }
        Ok(Self {
            keys: Arc::new(keys),
        })
    }

    /// A fresh key in the `SECRETS_KEYS` form, `id:base64` (for private mode, and for
    /// operators: `server` prints none, generate one with `openssl rand -base64 32`).
    pub fn generate_entry(id: &str) -> Result<Zeroizing<String>, SecretsError> {
        if !valid_key_id(id) {
            return Err(SecretsError::Config(format!(
                "`{id}` is not a valid key id"
            )));
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        rand::rng().fill_bytes(&mut bytes[..]);
        Ok(Zeroizing::new(format!(
            "{id}:{}",
            STANDARD.encode(&bytes[..])
        )))
    }

    /// Whether a key is configured (so secrets can be sealed).
    pub fn can_seal(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The id of the key that seals, if any.
    pub fn current_key_id(&self) -> Option<&str> {
        self.keys.first().map(|k| k.id.as_str())
    }

    /// The ids of every configured key, the sealing one first.
    pub fn key_ids(&self) -> Vec<&str> {
        self.keys.iter().map(|k| k.id.as_str()).collect()
    }

    /// Seals `plaintext` as `purpose` of the row `aad` names, under the first key: the text to
    /// store. `NoKey` without a key.
    pub fn seal(
        &self,
        purpose: Purpose,
        aad: &[u8],
        plaintext: &[u8],
    ) -> Result<String, SecretsError> {
        let key = self.keys.first().ok_or(SecretsError::NoKey)?;
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(SecretsError::TooLong);
        }
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let bound = bound_data(&key.id, purpose, aad);
        let ciphertext = key
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad: &bound,
                },
            )
            .map_err(|_| SecretsError::Malformed("encryption failed"))?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ciphertext);
        Ok(format!(
            "{VERSION}:{}:{}",
            key.id,
            URL_SAFE_NO_PAD.encode(blob)
        ))
    }

    /// Opens what [`Secrets::seal`] made for the same purpose and row. The plaintext is
    /// zeroized when dropped.
    pub fn open(
        &self,
        purpose: Purpose,
        aad: &[u8],
        sealed: &str,
    ) -> Result<Zeroizing<Vec<u8>>, SecretsError> {
        let (key_id, blob) = split(sealed)?;
        if self.keys.is_empty() {
            return Err(SecretsError::NoKey);
        }
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| SecretsError::UnknownKey(key_id.to_owned()))?;
        let blob = URL_SAFE_NO_PAD
            .decode(blob)
            .map_err(|_| SecretsError::Malformed("not base64url"))?;
        if blob.len() < NONCE_LEN + 16 {
            return Err(SecretsError::Malformed("too short"));
        }
        let (nonce, ciphertext) = blob.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| SecretsError::Malformed("too short"))?;
        let bound = bound_data(key_id, purpose, aad);
        key.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &bound,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| SecretsError::Undecryptable)
    }

    /// [`Secrets::open`] for a secret that is text.
    pub fn open_string(
        &self,
        purpose: Purpose,
        aad: &[u8],
        sealed: &str,
    ) -> Result<Zeroizing<String>, SecretsError> {
        let bytes = self.open(purpose, aad, sealed)?;
        match std::str::from_utf8(&bytes) {
            Ok(text) => Ok(Zeroizing::new(text.to_owned())),
            Err(_) => Err(SecretsError::Malformed("not UTF-8")),
        }
    }

    /// Whether `sealed` is sealed under another key than the current one.
    pub fn is_current(&self, sealed: &str) -> bool {
        matches!((split(sealed), self.current_key_id()), (Ok((id, _)), Some(current)) if id == current)
    }

    /// `sealed` sealed again under the current key, or `None` when it already is.
    pub fn reseal(
        &self,
        purpose: Purpose,
        aad: &[u8],
        sealed: &str,
    ) -> Result<Option<String>, SecretsError> {
        if self.is_current(sealed) {
            return Ok(None);
        }
        let plaintext = self.open(purpose, aad, sealed)?;
        self.seal(purpose, aad, &plaintext).map(Some)
    }
}

/// The key id and the base64url part of a stored secret.
fn split(sealed: &str) -> Result<(&str, &str), SecretsError> {
    let mut parts = sealed.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(VERSION), Some(id), Some(blob)) if valid_key_id(id) => Ok((id, blob)),
        (Some(VERSION), ..) => Err(SecretsError::Malformed("no key id")),
        _ => Err(SecretsError::Malformed("unknown format")),
    }
}

/// What a seal authenticates besides the plaintext: version, key id, purpose and the row's
/// data, each length-prefixed so no two different triples give the same bytes.
fn bound_data(key_id: &str, purpose: Purpose, aad: &[u8]) -> Vec<u8> {
    let mut bound = Vec::with_capacity(16 + key_id.len() + purpose.0.len() + aad.len());
    for part in [
        VERSION.as_bytes(),
        key_id.as_bytes(),
        purpose.0.as_bytes(),
        aad,
    ] {
        bound.extend_from_slice(&(part.len() as u32).to_be_bytes());
        bound.extend_from_slice(part);
    }
    bound
}

#[cfg(test)]
mod tests {
    use super::*;

    const PURPOSE: Purpose = Purpose::new("test.secret");
    const OTHER: Purpose = Purpose::new("test.other");

    fn key(id: &str, byte: u8) -> String {
        format!("{id}:{}", STANDARD.encode([byte; 32]))
    }

    fn keys(text: &str) -> Secrets {
        Secrets::parse(text).unwrap_or_default()
    }

    #[test]
    fn a_sealed_secret_opens_for_its_purpose_and_row_only() {
        let secrets = keys(&key("k1", 1));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let sealed = secrets
            .seal(PURPOSE, a.as_bytes(), b"sk-live-123")
            .unwrap_or_default();
        assert!(sealed.starts_with("v1:k1:"), "{sealed}");
        assert!(!sealed.contains("sk-live-123"));
        let opened = secrets.open(PURPOSE, a.as_bytes(), &sealed);
        assert_eq!(
            opened.as_deref().map(Vec::as_slice),
            Ok(&b"sk-live-123"[..])
        );
        // Another row, another purpose, a tampered value: none opens.
        assert_eq!(
            secrets.open(PURPOSE, b.as_bytes(), &sealed),
            Err(SecretsError::Undecryptable)
        );
        assert_eq!(
            secrets.open(OTHER, a.as_bytes(), &sealed),
            Err(SecretsError::Undecryptable)
        );
        let mut tampered = sealed.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap_or_default();
        assert_eq!(
            secrets.open(PURPOSE, a.as_bytes(), &tampered),
            Err(SecretsError::Undecryptable)
        );
        // Two seals of one secret differ (fresh nonces).
        let again = secrets
            .seal(PURPOSE, a.as_bytes(), b"sk-live-123")
            .unwrap_or_default();
        assert_ne!(again, sealed);
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = keys(&key("k1", 1));
        let sealed = old.seal(PURPOSE, b"row", b"secret").unwrap_or_default();
        let rotated = keys(&format!("{}, {}", key("k2", 2), key("k1", 1)));
        assert_eq!(rotated.current_key_id(), Some("k2"));
        assert_eq!(
            rotated
                .open_string(PURPOSE, b"row", &sealed)
                .as_deref()
                .map(String::as_str),
            Ok("secret")
        );
        assert!(!rotated.is_current(&sealed));
        let resealed = rotated.reseal(PURPOSE, b"row", &sealed);
        let resealed = resealed.ok().flatten().unwrap_or_default();
        assert!(resealed.starts_with("v1:k2:"), "{resealed}");
        assert_eq!(rotated.reseal(PURPOSE, b"row", &resealed), Ok(None));
        // The old configuration cannot open what the new key sealed.
        assert_eq!(
            old.open(PURPOSE, b"row", &resealed),
            Err(SecretsError::UnknownKey("k2".into()))
        );
        // A key of the same id but other bytes does not open it either.
        let impostor = keys(&key("k2", 9));
        assert_eq!(
            impostor.open(PURPOSE, b"row", &resealed),
            Err(SecretsError::Undecryptable)
        );
    }

    #[test]
    fn without_a_key_nothing_is_sealed() {
        let none = Secrets::none();
        assert!(!none.can_seal());
        assert_eq!(none.seal(PURPOSE, b"", b"x"), Err(SecretsError::NoKey));
        let sealed = keys(&key("k1", 1))
            .seal(PURPOSE, b"", b"x")
            .unwrap_or_default();
        assert_eq!(none.open(PURPOSE, b"", &sealed), Err(SecretsError::NoKey));
        assert!(Secrets::parse(" , ").is_ok_and(|s| !s.can_seal()));
    }

    #[test]
    fn malformed_stored_values_are_errors_not_panics() {
        let secrets = keys(&key("k1", 1));
        for bad in [
            "",
            "v1",
            "v1:k1",
            "v1:k1:",
            "v1:k1:!!!",
            "v2:k1:AAAA",
            "v1:bad id:AAAA",
        ] {
            assert!(
                matches!(
                    secrets.open(PURPOSE, b"", bad),
                    Err(SecretsError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let short = format!("k1:{}", STANDARD.encode([7u8; 16]));
        for (text, expected) in [
            ("k1", "entry 1 is not"),
            ("bad id:AAAA", "a key id has"),
            (short.as_str(), "a key is 32 bytes, this one is 16"),
            ("k1:not*base64", "the key is not base64"),
        ] {
            let error = Secrets::parse(text)
                .map(|_| ())
                .err()
                .map(|e| e.to_string());
            let error = error.unwrap_or_default();
            assert!(error.contains(expected), "{text}: {error}");
            if let Some((_, secret)) = text.split_once(':') {
                assert!(!error.contains(secret), "{error}");
            }
        }
        let twice = format!("{},{}", key("k1", 1), key("k1", 2));
        assert!(Secrets::parse(&twice).is_err());
    }

    #[test]
    fn debug_shows_key_ids_only() {
        let text = key("k1", 1);
        let secrets = keys(&text);
        let shown = format!("{secrets:?}");
        assert_eq!(shown, "Secrets { key_ids: [\"k1\"] }");
        let (_, material) = text.split_once(':').unwrap_or_default();
        assert!(!format!("{:?}", SecretText::new(text.clone())).contains(material));
    }

    #[test]
    fn generated_entries_parse() {
        let entry = Secrets::generate_entry("local1").map(|e| e.to_string());
        let secrets = Secrets::parse(&entry.unwrap_or_default()).unwrap_or_default();
        assert_eq!(secrets.key_ids(), ["local1"]);
    }
}
