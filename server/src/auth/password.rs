//! Passwords: argon2id with OWASP's recommended parameters, and the password policy.

use std::sync::LazyLock;

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

/// Hashes a password off the async runtime.
pub async fn hash(password: String) -> AppResult<String> {
    tokio::task::spawn_blocking(move || hash_blocking(&password))
        .await
        .map_err(AppError::internal)?
}

/// Verifies a password against a stored hash off the async runtime. With no stored hash (an
/// unknown user, or one who never set a password), a dummy hash is verified instead so the
/// answer takes as long, and is `false`.
pub async fn verify(password: String, stored: Option<String>) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
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
    })
    .await
    .map_err(AppError::internal)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_then_verify() -> AppResult<()> {
        let hash = hash("correct horse battery".into()).await?;
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery".into(), Some(hash.clone())).await?);
        assert!(!verify("wrong horse battery".into(), Some(hash)).await?);
        assert!(!verify("anything at all".into(), None).await?);
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
