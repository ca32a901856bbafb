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
