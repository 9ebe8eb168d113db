//! Storage: where credentials live and how they are written.
//!
//! - [`keyring`] and [`file`] are the two backends, behind the small [`Backend`] trait;
//! - [`vault`] chooses between them (`KIMI_VAULT_BACKEND`) and keeps a profile in exactly one;
//! - [`crypto`], [`key`], [`fsutil`] and [`lock`] are the encrypted file's parts: the envelope,
//!   the key file, atomic writes and the lock.

pub mod crypto;
pub mod device_id;
pub mod file;
pub mod fsutil;
pub mod key;
pub mod keyring;
pub mod lock;
pub mod paths;
pub mod record;
pub mod vault;

pub use lock::VaultLock;
pub use paths::VaultPaths;
pub use record::Credential;
pub use vault::{BackendMode, Loaded, Vault};

use crate::error::Result;

/// Which backend holds (or will hold) a credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// The OS keyring.
    Keyring,
    /// The encrypted file.
    File,
}

impl BackendKind {
    /// `"keyring"` or `"file"`, as in `status --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            BackendKind::Keyring => "keyring",
            BackendKind::File => "file",
        }
    }
}

/// One place a profile's credential can be kept. Writes take the vault lock as proof.
pub trait Backend {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;
    /// The profile's credential, if stored here.
    fn load(&self, profile: &str) -> Result<Option<Credential>>;
    /// Stores the profile's credential here.
    fn save(&self, profile: &str, cred: &Credential, lock: &VaultLock) -> Result<()>;
    /// Removes the profile; false when it was not here.
    fn delete(&self, profile: &str, lock: &VaultLock) -> Result<bool>;
}
