//! The persistent device id sent as `X-Msh-Device-Id` (random, ASCII, 0600 in the vault home).

use crate::error::Result;
use crate::store::fsutil;
use crate::store::paths::{DEVICE_ID_FILE, VaultPaths};

/// Reads `device-id`, creating it (exclusively) the first time.
pub(crate) fn load_or_create(paths: &VaultPaths) -> Result<String> {
    if let Some(id) = read(paths)? {
        return Ok(id);
    }
    fsutil::ensure_private_dir(paths.home())?;
    let mut raw = [0u8; 16];
    crate::error::random_fill(&mut raw)?;
    let fresh = crate::store::crypto::hex(&raw);
    // Lost a race with another process: use the id it wrote.
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
