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
use crate::store::paths::{KEY_FILE, KEY_NEXT_FILE, VaultPaths};

/// Size of the key material in `vault.key`.
pub(crate) const KEY_LEN: usize = 32;

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

/// Reads and derives a key file. `before_repair` is called with the mode of a key file found
/// readable or writable by others, before it is repaired.
fn load_file(
    path: &std::path::Path,
    before_repair: &dyn Fn(u32),
) -> Result<Option<(VaultKey, Option<u32>)>> {
    let Some((bytes, repaired)) = fsutil::read_private_noting(path, 4096, before_repair)? else {
        return Ok(None);
    };
    let material = parse_material(bytes.expose()).ok_or_else(|| {
        Error::vault(
            path,
            VaultProblem::Corrupt(format!(
                "a key file holds exactly {KEY_LEN} bytes, this one {}",
                bytes.len()
            )),
        )
    })?;
    Ok(Some((
        derive(&material, &MachineBinding::current()),
        repaired,
    )))
}

/// Loads and derives the key. `Ok(None)` when `vault.key` does not exist.
///
/// A key found readable (or writable) by others is marked exposed first (`vault.key.exposed`,
/// so that every process and `status` know it until it is replaced), then repaired to 0600
/// with a warning; the next write under the lock replaces it ([`for_write`]).
pub(crate) fn load(paths: &VaultPaths) -> Result<Option<VaultKey>> {
    let path = paths.key();
    let mark = |_mode: u32| {
        if let Err(e) = fsutil::create_marker(&paths.key_exposed()) {
            tracing::warn!("cannot record that {} was exposed: {e}", path.display());
        }
    };
    let Some((key, repaired)) = load_file(&path, &mark)? else {
        return Ok(None);
    };
    if let Some(mode) = repaired {
        tracing::warn!(
            "{} had mode {mode:o} (readable or writable by others); repaired to 600. Consider the key exposed: a fresh key replaces it at the next write (the next login or token refresh), and if vault.enc could have been copied too, log in again",
            path.display()
        );
    }
    Ok(Some(key))
}

/// The replacement key of an interrupted rotation (`vault.key.next`), if there is one.
pub(crate) fn load_next(paths: &VaultPaths) -> Result<Option<VaultKey>> {
    Ok(load_file(&paths.key_next(), &|_| {})?.map(|(key, _)| key))
}

/// True when `vault.key` was found exposed and has not been replaced yet. A key that is still
/// too open is found (and marked, and repaired) here too.
pub(crate) fn exposed(paths: &VaultPaths) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let too_open = std::fs::symlink_metadata(paths.key())
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o077 != 0);
        if too_open && let Err(e) = load(paths) {
            tracing::debug!("cannot read {}: {e}", paths.key().display());
        }
    }
    std::fs::symlink_metadata(paths.key_exposed()).is_ok()
}

/// The key a write under the lock seals with.
pub(crate) struct WriteKey {
    /// The key.
    pub(crate) key: VaultKey,
    /// True when it is a fresh key in `vault.key.next`, replacing an exposed one: [`commit`]
    /// puts it in place once `vault.enc` is sealed with it.
    rotating: bool,
}

/// The key for a write, under the lock: the current key; a new one when there is none (created
/// exclusively); or, when the current key was found exposed, fresh key material written to
/// `vault.key.next` first.
///
/// Replacing a key is crash-safe: `vault.key.next` is written (durably) before `vault.enc` is
/// sealed with it, and renamed over `vault.key` only after; readers try `vault.key.next` when
/// `vault.key` does not match. At every instant the key `vault.enc` is sealed with is on disk.
pub(crate) fn for_write(paths: &VaultPaths, lock: &VaultLock) -> Result<WriteKey> {
    finish_interrupted_rotation(paths, lock)?;
    let Some(key) = load(paths)? else {
        return create(paths, lock).map(|key| WriteKey {
            key,
            rotating: false,
        });
    };
    if std::fs::symlink_metadata(paths.key_exposed()).is_err() {
        return Ok(WriteKey {
            key,
            rotating: false,
        });
    }
    let mut material = Zeroizing::new([0u8; KEY_LEN]);
    random_fill(material.as_mut_slice())?;
    fsutil::sweep_stale_temps(paths.home(), KEY_NEXT_FILE);
    fsutil::write_atomic(paths.home(), KEY_NEXT_FILE, material.as_slice())?;
    crate::fault::crash_point("rotate-after-next-key");
    Ok(WriteKey {
        key: derive(&material, &MachineBinding::current()),
        rotating: true,
    })
}

/// After `vault.enc` was sealed with `write.key`: puts a fresh key in place of the exposed one.
pub(crate) fn commit(paths: &VaultPaths, write: &WriteKey, _lock: &VaultLock) -> Result<()> {
    if !write.rotating {
        return Ok(());
    }
    crate::fault::crash_point("rotate-after-vault");
    install_next(paths)?;
    tracing::warn!(
        "{} was replaced with a fresh key; every profile was encrypted again with it",
        paths.key().display()
    );
    Ok(())
}

/// `vault.key.next` becomes `vault.key`, durably, and the exposure mark goes.
fn install_next(paths: &VaultPaths) -> Result<()> {
    std::fs::rename(paths.key_next(), paths.key()).map_err(|e| {
        Error::io(
            format!("cannot move {} into place", paths.key_next().display()),
            e,
        )
    })?;
    fsutil::sync_dir(paths.home())?;
    crate::fault::crash_point("rotate-after-rename");
    fsutil::remove_if_exists(&paths.key_exposed())?;
    fsutil::sync_dir(paths.home())
}

/// A rotation a crash interrupted: if `vault.enc` is already sealed with `vault.key.next`,
/// finish it; otherwise the replacement was never used, and goes.
fn finish_interrupted_rotation(paths: &VaultPaths, _lock: &VaultLock) -> Result<()> {
    if std::fs::symlink_metadata(paths.key_next()).is_err() {
        return Ok(());
    }
    let next = match load_next(paths) {
        Ok(next) => next,
        Err(e) => {
            tracing::warn!("removing an unusable {}: {e}", paths.key_next().display());
            None
        }
    };
    let sealed_with_next = match (
        next,
        fsutil::read_private(&paths.vault(), crate::store::paths::MAX_VAULT_BYTES)?,
    ) {
        (Some(next), Some(data)) => crate::store::crypto::open(&next, data.expose()).is_ok(),
        _ => false,
    };
    if sealed_with_next {
        tracing::info!("finishing an interrupted replacement of the vault key");
        install_next(paths)
    } else {
        fsutil::remove_if_exists(&paths.key_next())?;
        fsutil::sync_dir(paths.home())
    }
}

/// Creates `vault.key` exclusively (under the lock) and loads it.
fn create(paths: &VaultPaths, _lock: &VaultLock) -> Result<VaultKey> {
    let mut material = Zeroizing::new([0u8; KEY_LEN]);
    random_fill(material.as_mut_slice())?;
    // Exclusive even under the lock: a writer that ignores the lock still cannot make two keys.
    fsutil::create_exclusive(paths.home(), KEY_FILE, material.as_slice())?;
    // A new key is not exposed, whatever happened to an earlier one.
    fsutil::remove_if_exists(&paths.key_exposed())?;
    load(paths)?.ok_or_else(|| {
        Error::io(
            format!("{} vanished after it was created", paths.key().display()),
            std::io::ErrorKind::NotFound.into(),
        )
    })
}
