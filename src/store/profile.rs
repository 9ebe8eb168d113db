//! Profile names: the key under which a credential is stored in either backend.

use crate::error::{Error, Result};
use crate::store::fsutil;
use crate::store::paths::VaultPaths;

/// The profile used when none is named.
pub const DEFAULT_PROFILE: &str = "default";

/// Checks a profile name: 1 to 64 of `A-Z a-z 0-9 - _ .`, not starting with `.` (so that a
/// name can never be a hidden file or a path).
pub fn check_profile_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidProfile {
            name: name.escape_default().to_string(),
        })
    }
}

/// The persisted default profile (`profiles use NAME`): the file `default-profile` in the vault
/// directory, holding the name and a newline. `Ok(None)` when there is none (one failed open:
/// cheap enough for every `token`). Opened like every vault file (no symlink, yours, 0600); a
/// name that breaks the naming rule is an error.
pub fn read_default_profile(paths: &VaultPaths) -> Result<Option<String>> {
    let path = paths.default_profile();
    let data = match fsutil::read_private(&path, 256) {
        Ok(Some(data)) => data,
        Ok(None) => return Ok(None),
        // The vault directory is not one: the check of the directory says so, for every
        // command alike.
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotADirectory => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(data.expose());
    let name = text.strip_suffix('\n').unwrap_or(&text);
    check_profile_name(name)?;
    Ok(Some(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["default", "work", "a.b", "A-1_x"] {
            assert!(check_profile_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".hidden", "a/b", "../x", "ä", &"x".repeat(65)] {
            assert!(check_profile_name(bad).is_err(), "{bad}");
        }
    }
}
