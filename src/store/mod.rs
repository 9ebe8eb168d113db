//! Storage: where credentials live and how they are written.
//!
//! - [`Vault`] chooses between the two backends (`auto`, `keyring`, `file`) and keeps each
//!   profile in exactly one of them;
//! - `keyring` is the OS keyring (each call on a helper thread, with a timeout), with
//!   `kernel_cache` (Linux) keeping the access token in the kernel keyring in front of it;
//! - `file` is the encrypted file, built from `crypto` (the envelope), `key` (the key file and
//!   the machine binding), `fsutil` (careful opens, atomic durable writes) and `lock` (the
//!   vault lock);
//! - `inspect` is what `doctor` looks at (paths, the file backend's write test, the key, the
//!   lock), read-only.

pub(crate) mod backend;
pub(crate) mod crypto;
pub(crate) mod default_profile;
pub(crate) mod device_id;
pub(crate) mod file;
pub(crate) mod fsutil;
pub(crate) mod index;
pub mod inspect;
pub(crate) mod kernel_cache;
pub(crate) mod key;
pub(crate) mod keyring;
pub(crate) mod lock;
pub(crate) mod paths;
pub(crate) mod profile;
pub(crate) mod record;
pub(crate) mod vault;

pub use backend::BackendKind;
pub use default_profile::{read_default_profile, write_default_profile};
pub use file::KeptAside;
pub use lock::{LockState, VaultLock};
pub use paths::VaultPaths;
pub use profile::{DEFAULT_PROFILE, check_profile_name};
pub use record::{Account, Credential};
pub use vault::{
    BackendMode, BackendReason, KeyringListing, KeyringProbe, Loaded, ProfileListing,
    StoredProfile, Vault,
};
