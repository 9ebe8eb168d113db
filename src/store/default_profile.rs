//! The persisted default profile (`profiles use NAME` on the command line): the file `default-profile`
//! in the vault directory, holding the name and a newline, 0600, written atomically under the
//! vault lock. Not a secret. `--profile` and `KIMI_VAULT_PROFILE` win over it.

use crate::error::{Error, Result};
use crate::store::fsutil;
use crate::store::lock::VaultLock;
use crate::store::paths::{DEFAULT_PROFILE_FILE, VaultPaths};
use crate::store::profile::check_profile_name;

/// The default profile `profiles use` recorded, if any. A file that holds no valid profile
/// name is an error (it names the file), not a silent fallback to another profile.
pub fn read_default_profile(paths: &VaultPaths) -> Result<Option<String>> {
    // A vault directory that is not one is reported by the directory check, with its fix.
    if !paths.home().is_dir() {
        return Ok(None);
    }
    let path = paths.default_profile();
    // Repaired like every vault file, but it holds a name, not a secret: the warning says so.
    let Some((bytes, repaired)) = fsutil::read_private_noting(&path, 256, &|_| {})? else {
        return Ok(None);
    };
    if let Some(mode) = repaired {
        tracing::warn!(
            "{} had mode {mode:o} (readable or writable by others); repaired to 600 (it holds a profile name, no secret)",
            path.display()
        );
    }
    let text = String::from_utf8_lossy(bytes.expose());
    let name = text.trim();
    if name.is_empty() {
        return Ok(None);
    }
    check_profile_name(name).map_err(|_| Error::DefaultProfileUnusable { path: path.clone() })?;
    Ok(Some(name.to_owned()))
}

/// Makes `name` the default profile: writes `default-profile` (created 0600, atomically, under
/// the vault lock; the vault directory is created 0700 when missing).
pub fn write_default_profile(paths: &VaultPaths, name: &str) -> Result<()> {
    check_profile_name(name)?;
    let _lock = VaultLock::acquire(paths)?;
    fsutil::sweep_stale_temps(paths.home(), DEFAULT_PROFILE_FILE);
    fsutil::write_atomic(
        paths.home(),
        DEFAULT_PROFILE_FILE,
        format!("{name}\n").as_bytes(),
    )
}
