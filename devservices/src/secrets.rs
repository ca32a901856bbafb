//! Secrets generated once for private mode and kept in `DATA_DIR/secrets.json` (mode 0600).

use std::{fs, io::Write, os::unix::fs::OpenOptionsExt, path::Path};

use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::PrivateError;

/// Passwords of the private servers and the JWT signing secret.
#[derive(Clone, Serialize, Deserialize)]
pub struct Secrets {
    pub postgres_superuser_password: String,
    pub postgres_app_password: String,
    pub redis_password: String,
    pub jwt_secret: String,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

/// 32 random bytes, hex encoded.
pub fn random_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Secrets {
    /// Fresh secrets, not stored anywhere (for throw-away clusters).
    pub fn generate() -> Self {
        Self {
            postgres_superuser_password: random_secret(),
            postgres_app_password: random_secret(),
            redis_password: random_secret(),
            jwt_secret: random_secret(),
        }
    }

    /// Reads `dir/secrets.json`, creating it with fresh secrets on first use.
    pub fn load_or_create(dir: &Path) -> Result<Self, PrivateError> {
        let path = dir.join("secrets.json");
        if path.exists() {
            let text = fs::read_to_string(&path)
                .map_err(PrivateError::io(format!("read {}", path.display())))?;
            return serde_json::from_str(&text)
                .map_err(|e| PrivateError::Setup(format!("{} is not valid: {e}", path.display())));
        }
        let secrets = Self::generate();
        let text = serde_json::to_string_pretty(&secrets)
            .map_err(|e| PrivateError::Setup(format!("serialize secrets: {e}")))?;
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(PrivateError::io(format!("create {}", path.display())))?;
        file.write_all(text.as_bytes())
            .map_err(PrivateError::io(format!("write {}", path.display())))?;
        Ok(secrets)
    }
}

/// The `SECRETS_KEYS` of private mode: read from `dir/secrets_keys`, created (mode 0600) with
/// one fresh key on first use. Kept apart from `secrets.json` so that an operator can put a
/// new key first there and run `server rotate-secrets`.
pub fn load_or_create_secrets_keys(
    dir: &Path,
) -> Result<server::secrets::SecretText, PrivateError> {
    let path = dir.join("secrets_keys");
    if path.exists() {
        let text = fs::read_to_string(&path)
            .map_err(PrivateError::io(format!("read {}", path.display())))?;
        return Ok(server::secrets::SecretText::new(text.trim()));
    }
    let entry = server::secrets::Secrets::generate_entry("local1")
        .map_err(|e| PrivateError::Setup(e.to_string()))?;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(PrivateError::io(format!("create {}", path.display())))?;
    file.write_all(entry.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(PrivateError::io(format!("write {}", path.display())))?;
    Ok(server::secrets::SecretText::new(entry.as_str()))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn the_private_key_is_generated_once_readable_only_by_its_owner() {
        let dir = std::env::temp_dir().join(format!("secrets-keys-{}", uuid::Uuid::new_v4()));
        let made = fs::create_dir_all(&dir).map_err(|e| e.to_string());
        assert_eq!(made, Ok(()));
        let first = load_or_create_secrets_keys(&dir).map(|t| t.expose().to_owned());
        let second = load_or_create_secrets_keys(&dir).map(|t| t.expose().to_owned());
        let mode = fs::metadata(dir.join("secrets_keys")).map(|m| m.permissions().mode() & 0o777);
        let _ = fs::remove_dir_all(&dir);
        let first = first.unwrap_or_default();
        assert_eq!(second.ok(), Some(first.clone()));
        assert_eq!(mode.ok(), Some(0o600));
        let keys = server::secrets::Secrets::parse(&first);
        assert_eq!(
            keys.map(|k| k.current_key_id().map(str::to_owned)),
            Ok(Some("local1".into()))
        );
    }
}
