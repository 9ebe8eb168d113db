//! Where the vault's files live: `KIMI_VAULT_HOME`, or the platform data directory.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the key material file.
pub const KEY_FILE: &str = "vault.key";
/// Name of the encrypted vault.
pub const VAULT_FILE: &str = "vault.enc";
/// Name of the lock file.
pub const LOCK_FILE: &str = "vault.lock";
/// Name of the persistent device id file.
pub const DEVICE_ID_FILE: &str = "device-id";

/// The vault directory and its files.
#[derive(Debug, Clone)]
pub struct VaultPaths {
    home: PathBuf,
}

impl VaultPaths {
    /// `KIMI_VAULT_HOME`, else `<data dir>/kimi-vault` (`~/.local/share/kimi-vault` on Linux).
    pub fn from_env() -> Result<Self> {
        if let Some(home) = std::env::var_os("KIMI_VAULT_HOME").filter(|v| !v.is_empty()) {
            return Ok(Self::at(PathBuf::from(home)));
        }
        let data = dirs::data_dir().ok_or_else(|| {
            Error::Usage(
                "cannot find a data directory for the vault (no HOME?): set KIMI_VAULT_HOME".into(),
            )
        })?;
        Ok(Self::at(data.join("kimi-vault")))
    }

    /// Paths under an explicit directory.
    pub fn at(home: PathBuf) -> Self {
        VaultPaths { home }
    }

    /// The vault directory.
    pub fn home(&self) -> &Path {
        &self.home
    }
    /// `vault.key`.
    pub fn key(&self) -> PathBuf {
        self.home.join(KEY_FILE)
    }
    /// `vault.enc`.
    pub fn vault(&self) -> PathBuf {
        self.home.join(VAULT_FILE)
    }
    /// `vault.lock`.
    pub fn lock(&self) -> PathBuf {
        self.home.join(LOCK_FILE)
    }
    /// `device-id`.
    pub fn device_id(&self) -> PathBuf {
        self.home.join(DEVICE_ID_FILE)
    }
}
