//! The persistent device id sent as `X-Msh-Device-Id` (random, ASCII, 0600 in the vault home).

use crate::error::Result;
use crate::store::fsutil;
use crate::store::lock::VaultLock;
use crate::store::paths::{DEVICE_ID_FILE, VaultPaths};

/// Reads `device-id`, creating it (exclusively, under the vault lock) the first time. `held` is
/// the vault lock when the caller already holds it (a second lock in one process would wait
/// for itself).
pub(crate) fn load_or_create(paths: &VaultPaths, held: Option<&VaultLock>) -> Result<String> {
    if let Some(id) = read(paths)? {
        return Ok(id);
    }
    let own;
    let _lock = match held {
        Some(lock) => lock,
        None => {
            own = VaultLock::acquire(paths)?;
            &own
        }
    };
    // Another process may have made it while we waited.
    if let Some(id) = read(paths)? {
        return Ok(id);
    }
    // Under the lock no live writer has a temp file open: what is there was left by a killed one.
    fsutil::sweep_stale_temps(paths.home(), DEVICE_ID_FILE);
    let mut raw = [0u8; 16];
    crate::error::random_fill(&mut raw)?;
    let fresh = crate::store::crypto::hex(&raw);
    fsutil::create_exclusive(paths.home(), DEVICE_ID_FILE, fresh.as_bytes())?;
    Ok(read(paths)?.unwrap_or(fresh))
}

fn read(paths: &VaultPaths) -> Result<Option<String>> {
    let Some(bytes) = fsutil::read_private(&paths.device_id(), 256)? else {
        return Ok(None);
    };
    let id: String = String::from_utf8_lossy(bytes.expose())
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    Ok((!id.is_empty()).then_some(id))
}
