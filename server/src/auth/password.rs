//! Passwords: argon2id with OWASP's recommended parameters, and the password policy.
//!
//! Hashing is deliberately expensive (19 MiB and tens of milliseconds of CPU each), so it runs
//! under a concurrency bound, [`Passwords`]: a request that cannot get a slot within the
//! configured wait is `UNAVAILABLE` with `retryAfter`, instead of queueing without end. The
//! hashes run on as many threads of their own as there are slots, each reusing one working
//! area (the `pool` module), so the memory they take is bounded by the slots and stays the same
//! after bursts.

mod pool;

use std::{
    sync::{
        Arc, OnceLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::{
    Algorithm, Argon2, Params, PasswordHash, Version,
    password_hash::{Output, ParamsString, Salt, SaltString, rand_core::OsRng},
};

use crate::error::{AppError, AppResult};
use pool::{Pool, Scratch};

/// Shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// Longest password accepted (argon2 takes any length; this bounds the work per request).
pub const MAX_LENGTH: usize = 256;

/// argon2's working area per hash, in KiB (m_cost): each hashing thread keeps one.
pub const MEMORY_COST_KIB: u32 = 19 * 1024;
/// Passes over the working area (t_cost).
const TIME_COST: u32 = 2;

/// argon2id, m = 19 MiB, t = 2, p = 1 (OWASP Password Storage Cheat Sheet).
fn configured() -> Params {
    Params::new(MEMORY_COST_KIB, TIME_COST, 1, None).unwrap_or_default()
}

/// A hash of a password nobody has, so that an unknown e-mail costs the same verification
/// time as a wrong password. Made by the first hashing thread that needs it.
static DUMMY_HASH: OnceLock<String> = OnceLock::new();

fn hash_error(what: &str, e: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("{what}: {e}"))
}

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

/// Hashes `password` with a fresh salt in `scratch`: a PHC string (`$argon2id$v=19$...`).
fn hash_with(scratch: &mut Scratch, password: &str) -> AppResult<String> {
    let params = configured();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let raw_salt = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| hash_error("salt", e))?;
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let blocks = params.block_count();
    scratch
        .with_blocks(blocks, blocks, |memory| {
            argon2.hash_password_into_with_memory(password.as_bytes(), raw_salt, &mut out, memory)
        })
        .map_err(|e| hash_error("hash password", e))?;
    let hash = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| hash_error("hash parameters", e))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| hash_error("hash output", e))?),
    };
    Ok(hash.to_string())
}

/// Whether `password` is the one `stored` (a PHC argon2 string, with its own algorithm,
/// version, parameters and salt) was made from, computed in `scratch` and compared in
/// constant time; each argon2 run is counted in `runs`. A malformed `stored` is an error.
fn matches_with(
    scratch: &mut Scratch,
    password: &str,
    stored: &str,
    runs: &AtomicU64,
) -> AppResult<bool> {
    let malformed = |e: argon2::password_hash::Error| hash_error("stored password hash", e);
    let parsed = PasswordHash::new(stored).map_err(malformed)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(malformed)?;
    let version = match parsed.version {
        Some(v) => Version::try_from(v).map_err(|e| hash_error("stored password hash", e))?,
        None => Version::default(),
    };
    let params = Params::try_from(&parsed).map_err(malformed)?;
    let expected = parsed
        .hash
        .ok_or_else(|| hash_error("stored password hash", "no hash output"))?;
    let salt = parsed
        .salt
        .ok_or_else(|| hash_error("stored password hash", "no salt"))?;
    let mut salt_bytes = [0u8; Salt::MAX_LENGTH];
    let raw_salt = salt.decode_b64(&mut salt_bytes).map_err(malformed)?;
    let mut out = [0u8; Output::MAX_LENGTH];
    let out = out
        .get_mut(..expected.len())
        .ok_or_else(|| hash_error("stored password hash", "output too long"))?;
    let argon2 = Argon2::new(algorithm, version, params.clone());
    let computed =
        scratch.with_blocks(params.block_count(), configured().block_count(), |memory| {
            argon2.hash_password_into_with_memory(password.as_bytes(), raw_salt, out, memory)
        });
    runs.fetch_add(1, Ordering::Relaxed);
    computed.map_err(|e| hash_error("verify password", e))?;
    // `Output`'s equality is constant-time.
    Ok(Output::new(out).map_err(malformed)? == expected)
}

/// Verifies `password` against `stored` (or the dummy hash), counting each argon2 run in
/// `runs`.
fn verify_with(
    scratch: &mut Scratch,
    password: &str,
    stored: Option<&str>,
    runs: &AtomicU64,
) -> AppResult<bool> {
    let (hash, real) = match stored {
        Some(hash) => (hash, true),
        None => match DUMMY_HASH.get() {
            Some(dummy) => (dummy.as_str(), false),
            None => {
                let dummy = hash_with(scratch, "dummy password never used")?;
                (DUMMY_HASH.get_or_init(|| dummy).as_str(), false)
            }
        },
    };
    // Verify first, whatever the hash: the dummy costs what a real one does.
    let matches = matches_with(scratch, password, hash, runs)?;
    Ok(matches && real)
}

/// Hashing and verifying passwords off the async runtime, at most `concurrency` at once.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Passwords {
    slots: Arc<Semaphore>,
    /// As many threads as slots.
    pool: Arc<Pool>,
    max_wait: Duration,
    /// How many verifications ran: each login attempt does one, found or not.
    verified: Arc<AtomicU64>,
}

/// A hashing slot; hashing stops being counted when it is dropped.
#[derive(Debug)]
pub struct HashSlot {
    _permit: OwnedSemaphorePermit,
}

impl Passwords {
    /// At most `concurrency` (at least 1) hashes at once, on as many threads; a caller waits
    /// at most `max_wait`.
    pub fn new(concurrency: usize, max_wait: Duration) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            slots: Arc::new(Semaphore::new(concurrency)),
            pool: Arc::new(Pool::new(concurrency)),
            max_wait,
            verified: Arc::default(),
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
        self.pool
            .run(move |scratch| {
                let _slot = slot;
                hash_with(scratch, &password)
            })
            .await
    }

    /// Verifies a password against a stored hash. With no stored hash (an unknown user, or
    /// one who never set a password), a dummy hash is verified instead so the answer takes as
    /// long, and is `false`.
    pub async fn verify(&self, password: String, stored: Option<String>) -> AppResult<bool> {
        let slot = self.slot().await?;
        let verified = Arc::clone(&self.verified);
        self.pool
            .run(move |scratch| {
                let _slot = slot;
                verify_with(scratch, &password, stored.as_deref(), &verified)
            })
            .await
    }

    /// How many argon2 verifications this hasher has run (for tests and metrics).
    pub fn verifications(&self) -> u64 {
        self.verified.load(Ordering::Relaxed)
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

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_both_ways() -> AppResult<()> {
        use argon2::{PasswordHasher as _, PasswordVerifier as _};
        let passwords = Passwords::new(1, Duration::from_secs(30));
        // Ours verifies with the plain argon2 API.
        let ours = passwords.hash("correct horse battery".into()).await?;
        let parsed = PasswordHash::new(&ours).map_err(|e| hash_error("parse", e))?;
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong horse battery", &parsed)
                .is_err()
        );
        // The plain API's verifies with ours, at its own parameters too.
        for params in [
            configured(),
            Params::new(8 * 1024, 1, 1, None).unwrap_or_default(),
        ] {
            let salt = SaltString::generate(&mut OsRng);
            let plain = Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
                .hash_password(b"correct horse battery", &salt)
                .map_err(|e| hash_error("plain hash", e))?
                .to_string();
            assert!(
                passwords
                    .verify("correct horse battery".into(), Some(plain.clone()))
                    .await?
            );
            assert!(
                !passwords
                    .verify("wrong horse battery".into(), Some(plain))
                    .await?
            );
        }
        // And a hash costlier than the configured one, on an area of its own.
        let costly = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(MEMORY_COST_KIB * 2, 1, 1, None).unwrap_or_default(),
        )
        .hash_password(b"correct horse battery", &SaltString::generate(&mut OsRng))
        .map_err(|e| hash_error("plain hash", e))?
        .to_string();
        assert!(
            passwords
                .verify("correct horse battery".into(), Some(costly))
                .await?
        );
        assert_eq!(passwords.verifications(), 5);
        Ok(())
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_is_an_error() -> AppResult<()> {
        let passwords = Passwords::new(1, Duration::from_secs(30));
        let good = passwords.hash("correct horse battery".into()).await?;
        let truncated = good[..good.len() - 10].to_owned();
        for stored in [
            "".to_owned(),
            "not a hash".to_owned(),
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ".to_owned(),
            good.replace("$argon2id$", "$scrypt$"),
            good.replace("m=19456", "m=zero"),
            truncated,
        ] {
            match passwords
                .verify("correct horse battery".into(), Some(stored.clone()))
                .await
            {
                Err(AppError::Internal(_)) => {}
                other => panic!("{stored:?}: {other:?}"),
            }
        }
        // The threads are still there.
        assert!(
            passwords
                .verify("correct horse battery".into(), Some(good))
                .await?
        );
        Ok(())
    }

    #[tokio::test]
    async fn as_many_threads_as_slots() -> AppResult<()> {
        let passwords = Passwords::new(2, Duration::from_secs(60));
        let hash = passwords.hash("correct horse battery".into()).await?;
        let checks: Vec<_> = (0..6)
            .map(|i| {
                let (passwords, hash) = (passwords.clone(), hash.clone());
                tokio::spawn(async move {
                    let stored = (i % 2 == 0).then_some(hash);
                    passwords
                        .verify("correct horse battery".into(), stored)
                        .await
                })
            })
            .collect();
        let mut right = 0;
        for check in checks {
            right += usize::from(check.await.map_err(AppError::internal)??);
        }
        assert_eq!(right, 3);
        assert_eq!(passwords.verifications(), 6);
        assert_eq!(passwords.pool.live(), 2);
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
