//! Where the vault's files live.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Name of the key material file.
pub(crate) const KEY_FILE: &str = "vault.key";
/// Name of the replacement key written while an exposed key is being replaced.
pub(crate) const KEY_NEXT_FILE: &str = "vault.key.next";
/// Name of the marker that says `vault.key` was found readable by others and is to be
/// replaced at the next write.
pub(crate) const KEY_EXPOSED_FILE: &str = "vault.key.exposed";
/// Name of the encrypted vault.
pub(crate) const VAULT_FILE: &str = "vault.enc";
/// Largest `vault.enc` read (a vault of many profiles is a few KiB).
pub(crate) const MAX_VAULT_BYTES: u64 = 4 * 1024 * 1024;
/// Name of the lock file.
pub(crate) const LOCK_FILE: &str = "vault.lock";
/// Name of the persistent device id file.
pub(crate) const DEVICE_ID_FILE: &str = "device-id";
/// Name of the non-secret index of which backend holds each profile.
pub(crate) const INDEX_FILE: &str = "vault.index";
/// Name of the record of a keyring that did not answer in time (not asked again for a while).
pub(crate) const KEYRING_TIMEOUT_FILE: &str = "keyring.timeout";
/// Name of the file that holds the default profile (`profiles use NAME`): the name and a
/// newline.
pub(crate) const DEFAULT_PROFILE_FILE: &str = "default-profile";
/// Name of the file that records a recent transient refresh failure (a short back-off shared by
/// every process using the vault).
pub(crate) const BACKOFF_FILE: &str = "refresh.backoff";

/// The vault directory and its files.
#[derive(Debug, Clone)]
pub struct VaultPaths {
    home: PathBuf,
}

impl VaultPaths {
    /// Paths under an explicit directory.
    pub fn at(home: PathBuf) -> Self {
        VaultPaths { home }
    }

    /// The platform default: `<data dir>/kimi-vault` (`~/.local/share/kimi-vault` on Linux).
    pub fn platform_default() -> Result<Self> {
        let data = dirs::data_dir().ok_or_else(|| {
            Error::Config(
                "cannot find a data directory for the vault (is HOME set?): set KIMI_VAULT_HOME"
                    .into(),
            )
        })?;
        Ok(Self::at(data.join("kimi-vault")))
    }

    /// The vault directory.
    pub fn home(&self) -> &Path {
        &self.home
    }
    /// `vault.key`.
    pub fn key(&self) -> PathBuf {
        self.home.join(KEY_FILE)
    }
    /// `vault.key.next` (a replacement key, during its installation).
    pub(crate) fn key_next(&self) -> PathBuf {
        self.home.join(KEY_NEXT_FILE)
    }
    /// `vault.key.exposed` (the key was found readable by others).
    pub fn key_exposed(&self) -> PathBuf {
        self.home.join(KEY_EXPOSED_FILE)
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
    pub(crate) fn device_id(&self) -> PathBuf {
        self.home.join(DEVICE_ID_FILE)
    }
    /// `vault.index`.
    pub fn index(&self) -> PathBuf {
        self.home.join(INDEX_FILE)
    }
    /// `keyring.timeout`.
    pub(crate) fn keyring_timeout(&self) -> PathBuf {
        self.home.join(KEYRING_TIMEOUT_FILE)
    }
    /// `default-profile`.
    pub fn default_profile(&self) -> PathBuf {
        self.home.join(DEFAULT_PROFILE_FILE)
    }
    /// `refresh.backoff`.
    pub fn backoff(&self) -> PathBuf {
        self.home.join(BACKOFF_FILE)
    }
}
