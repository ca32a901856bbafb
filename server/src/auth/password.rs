//! Passwords: argon2id with OWASP's recommended parameters, and the password policy.
//!
//! Hashing is deliberately expensive (19 MiB and tens of milliseconds of CPU each), so it runs
//! under a concurrency bound, [`Passwords`]: a request that cannot get a slot within the
//! configured wait is `UNAVAILABLE` with `retryAfter`, instead of queueing without end.

use std::{
    sync::{Arc, LazyLock},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version,
    password_hash::SaltString,
};

use crate::error::{AppError, AppResult};

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_LENGTH: usize = 256;

/// argon2id, m = 19 MiB, t = 2, p = 1 (OWASP Password Storage Cheat Sheet).
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// A hash of a password nobody has, so that an unknown e-mail costs the same verification
/// time as a wrong password.
static DUMMY_HASH: LazyLock<String> =
    LazyLock::new(|| hash_blocking("dummy password never used").unwrap_or_default());

/// Checks the policy: length, and not the e-mail address. `path` names the offending field.
pub fn check_policy(path: &str, password: &str, email: &str) -> AppResult<()> {
    let length = password.chars().count();
    if length < MIN_LENGTH {
        return Err(AppError::bad_input(
            path,
            format!("the password must be at least {MIN_LENGTH} characters long"),
        ));
    }
    if length > MAX_LENGTH {
        return Err(AppError::bad_input(
            path,
            format!("the password must be at most {MAX_LENGTH} characters long"),
        ));
    }
    let email = email.trim();
    if !email.is_empty() && password.trim().eq_ignore_ascii_case(email) {
        return Err(AppError::bad_input(
            path,
            "the password must not be the e-mail address",
        ));
    }
    Ok(())
}

fn hash_blocking(password: &str) -> AppResult<String> {
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::internal(anyhow::anyhow!("hash password: {e}")))
}

fn verify_blocking(password: &str, stored: Option<String>) -> AppResult<bool> {
    let (hash, real) = match stored {
        Some(hash) => (hash, true),
        None => (DUMMY_HASH.clone(), false),
    };
    let parsed = PasswordHash::new(&hash)
        .map_err(|e| AppError::internal(anyhow::anyhow!("stored password hash: {e}")))?;
    Ok(real
        && hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
}

/// Hashing and verifying passwords off the async runtime, at most `concurrency` at once.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    max_wait: Duration,
}

/// A hashing slot; hashing stops being counted when it is dropped.
#[derive(Debug)]
pub struct HashSlot {
    _permit: OwnedSemaphorePermit,
}

impl Passwords {
    /// At most `concurrency` (at least 1) hashes at once; a caller waits at most `max_wait`.
    pub fn new(concurrency: usize, max_wait: Duration) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            max_wait,
        }
    }

    /// As configured: PASSWORD_HASH_CONCURRENCY, PASSWORD_HASH_MAX_WAIT_MS.
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self::new(
            config.password_hash_concurrency(),
            Duration::from_millis(config.password_hash_max_wait_ms),
        )
    }

    /// A slot to hash in, waiting at most the configured time: `UNAVAILABLE` with
    /// `retryAfter` when every slot stayed busy.
    pub async fn slot(&self) -> AppResult<HashSlot> {
        let acquire = Arc::clone(&self.slots).acquire_owned();
        match tokio::time::timeout(self.max_wait, acquire).await {
            Ok(Ok(permit)) => Ok(HashSlot { _permit: permit }),
            // The semaphore is never closed; a timeout is the only way here.
            Ok(Err(_)) | Err(_) => {
                tracing::warn!("password hashing is saturated; a request was turned away");
                Err(AppError::Overloaded {
                    message: "the server is busy checking passwords; retry in a moment".into(),
                    retry_after_secs: self.max_wait.as_secs().max(1),
                })
            }
        }
    }

    /// Hashes a password. The slot is held until the hash is done, even if the caller stops
    /// waiting.
    pub async fn hash(&self, password: String) -> AppResult<String> {
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            hash_blocking(&password)
        })
        .await
        .map_err(AppError::internal)?
    }

    /// Verifies a password against a stored hash. With no stored hash (an unknown user, or
    /// one who never set a password), a dummy hash is verified instead so the answer takes as
    /// long, and is `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> AppResult<bool> {
        let slot = self.slot().await?;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            verify_blocking(&password, stored)
        })
        .await
        .map_err(AppError::internal)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() -> AppResult<()> {
        let passwords = Passwords::new(2, Duration::from_secs(30));
        let hash = passwords.hash("correct horse battery".into()).await?;
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            passwords
                .verify("correct horse battery".into(), Some(hash.clone()))
                .await?
        );
        assert!(
            !passwords
                .verify("wrong horse battery".into(), Some(hash))
                .await?
        );
        assert!(!passwords.verify("anything at all".into(), None).await?);
        Ok(())
    }

    #[tokio::test]
    async fn a_saturated_hasher_turns_callers_away() -> AppResult<()> {
        let passwords = Passwords::new(1, Duration::from_millis(10));
        let slot = passwords.slot().await?;
        match passwords.hash("correct horse battery".into()).await {
            Err(AppError::Overloaded {
                retry_after_secs, ..
            }) => assert!(retry_after_secs >= 1),
            other => panic!("{other:?}"),
        }
        drop(slot);
        assert!(passwords.hash("correct horse battery".into()).await.is_ok());
        Ok(())
    }

    #[test]
    fn policy() {
        assert!(check_policy("password", "short", "a@b.c").is_err());
        assert!(check_policy("password", "Ann@Example.com", "ann@example.com").is_err());
        assert!(check_policy("password", "long enough password", "ann@example.com").is_ok());
        match check_policy("input.password", "short", "") {
            Err(AppError::BadUserInput { path, .. }) => assert_eq!(path, "input.password"),
            other => panic!("{other:?}"),
        }
    }
}
