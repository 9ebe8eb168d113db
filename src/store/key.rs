//! `vault.key` and the AES key derived from it.
//!
//! `vault.key` holds 32 random bytes. The AES-256-GCM key is
//! `SHA-256("kimi-vault file key v1" || 0 || key bytes || machine id || 0 || uid)`, so a copy of
//! both files taken to another machine, or read by another user, does not open. The machine id is
//! `/etc/machine-id` (or `/var/lib/dbus/machine-id`); never the hostname.

use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::{Error, Result, VaultProblem, random_fill};
use crate::store::crypto::VaultKey;
use crate::store::fsutil;
use crate::store::lock::VaultLock;
use crate::store::paths::{KEY_FILE, VaultPaths};

/// Size of the key material in `vault.key`.
pub const KEY_LEN: usize = 32;

/// The stable machine metadata mixed into the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MachineBinding {
    /// `/etc/machine-id` or `/var/lib/dbus/machine-id`, trimmed; empty when neither exists.
    pub(crate) machine_id: String,
    /// The effective user id.
    pub(crate) uid: u32,
}

/// Where the machine id is read, in order.
const MACHINE_ID_FILES: [&str; 2] = ["/etc/machine-id", "/var/lib/dbus/machine-id"];

impl MachineBinding {
    /// The file the machine id is read from here, if any.
    pub(crate) fn machine_id_source() -> Option<&'static str> {
        MACHINE_ID_FILES
            .iter()
            .copied()
            .find(|p| std::fs::read_to_string(p).is_ok_and(|s| !s.trim().is_empty()))
    }

    /// Reads this machine's binding.
    pub(crate) fn current() -> Self {
        let machine_id = MACHINE_ID_FILES
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        MachineBinding {
            machine_id,
            uid: fsutil::current_uid(),
        }
    }
}

/// Derives the AES key from the key file's bytes and the machine binding.
pub(crate) fn derive(material: &[u8; KEY_LEN], binding: &MachineBinding) -> VaultKey {
    let digest = Sha256::new()
        .chain_update(b"kimi-vault file key v1\0")
        .chain_update(material)
        .chain_update(binding.machine_id.as_bytes())
        .chain_update(b"\0")
        .chain_update(binding.uid.to_string().as_bytes())
        .finalize();
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest);
    let vault_key = VaultKey::from_bytes(key);
    zeroize::Zeroize::zeroize(&mut key);
    vault_key
}

/// Parses key material; anything but exactly 32 bytes is corrupt.
pub fn parse_material(bytes: &[u8]) -> Option<Zeroizing<[u8; KEY_LEN]>> {
    let arr: [u8; KEY_LEN] = bytes.try_into().ok()?;
    Some(Zeroizing::new(arr))
}

/// Loads and derives the key. `Ok(None)` when `vault.key` does not exist.
pub(crate) fn load(paths: &VaultPaths) -> Result<Option<VaultKey>> {
    let path = paths.key();
    let Some(bytes) = fsutil::read_private(&path, 4096)? else {
        return Ok(None);
    };
    let material = parse_material(bytes.expose()).ok_or_else(|| {
        Error::vault(
            &path,
            VaultProblem::Corrupt(format!(
                "a key file holds exactly {KEY_LEN} bytes, this one {}",
                bytes.len()
            )),
        )
    })?;
    Ok(Some(derive(&material, &MachineBinding::current())))
}

/// Loads the key, creating `vault.key` exclusively (under the lock) when there is none.
pub(crate) fn load_or_create(paths: &VaultPaths, _lock: &VaultLock) -> Result<VaultKey> {
    if let Some(key) = load(paths)? {
        return Ok(key);
    }
    let mut material = Zeroizing::new([0u8; KEY_LEN]);
    random_fill(material.as_mut_slice())?;
    // Exclusive even under the lock: a writer that ignores the lock still cannot make two keys.
    fsutil::create_exclusive(paths.home(), KEY_FILE, material.as_slice())?;
    load(paths)?.ok_or_else(|| {
        Error::io(
            format!("{} vanished after it was created", paths.key().display()),
            std::io::ErrorKind::NotFound.into(),
        )
    })
}
