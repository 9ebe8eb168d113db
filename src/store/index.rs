//! The non-secret index of where each profile's credential is kept (SPEC §4): `vault.index`
//! beside the lock, one `profile<TAB>keyring|file` line per profile, written under the vault
//! lock. In `auto` mode a read asks only the backend the index names, so that a credential in
//! the encrypted file costs no keyring round trip (and a keyring that hangs is not waited for).
//!
//! The index is a hint that is never trusted to be complete: a missing, unreadable or stale
//! index only means that a read asks both backends, as it did before the index existed. It is
//! kept safe by the write order ([`Vault::save`](crate::store::Vault::save)): before a write
//! moves a profile to another backend, its line is removed (durably); the new line is written
//! after the other backend no longer holds it. So whenever the named backend holds the profile,
//! its copy is the newest one.

use std::collections::BTreeMap;

use crate::error::Result;
use crate::store::backend::BackendKind;
use crate::store::fsutil;
use crate::store::lock::VaultLock;
use crate::store::paths::{INDEX_FILE, VaultPaths};

/// Largest index read (a line per profile).
const MAX_INDEX_BYTES: u64 = 64 * 1024;

const HEADER: &str = "# kimi-vault: the backend that holds each profile (no secret)\n";

fn parse(text: &str) -> BTreeMap<String, BackendKind> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|line| {
            let (profile, backend) = line.split_once('\t')?;
            let kind = match backend {
                "keyring" => BackendKind::Keyring,
                "file" => BackendKind::File,
                _ => return None,
            };
            crate::store::check_profile_name(profile).ok()?;
            Some((profile.to_owned(), kind))
        })
        .collect()
}

fn read(paths: &VaultPaths) -> Result<BTreeMap<String, BackendKind>> {
    Ok(
        match fsutil::read_private(&paths.index(), MAX_INDEX_BYTES)? {
            Some(data) => parse(&String::from_utf8_lossy(data.expose())),
            None => BTreeMap::new(),
        },
    )
}

/// The backend the index names for `profile`; `None` when it names none or cannot be read.
pub(crate) fn lookup(paths: &VaultPaths, profile: &str) -> Option<BackendKind> {
    match read(paths) {
        Ok(map) => map.get(profile).copied(),
        Err(e) => {
            tracing::debug!("not using the backend index: {e}");
            None
        }
    }
}

/// Records that `backend` holds `profile` (`None`: no backend is named for it). Writes only
/// when that changes the index. Under the vault lock.
pub(crate) fn set(
    paths: &VaultPaths,
    profile: &str,
    backend: Option<BackendKind>,
    _lock: &VaultLock,
) -> Result<()> {
    let mut map = read(paths).unwrap_or_default();
    let changed = match backend {
        Some(kind) => map.insert(profile.to_owned(), kind) != Some(kind),
        None => map.remove(profile).is_some(),
    };
    if !changed {
        return Ok(());
    }
    let mut text = String::from(HEADER);
    for (name, kind) in &map {
        text.push_str(name);
        text.push('\t');
        text.push_str(kind.as_str());
        text.push('\n');
    }
    let written = fsutil::write_atomic(paths.home(), INDEX_FILE, text.as_bytes());
    if written.is_err() {
        // An index that cannot be updated must not stay wrong: without one, reads ask both
        // backends.
        fsutil::remove_if_exists(&paths.index())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_it_writes_and_skips_the_rest() {
        let map =
            parse("# header\nwork\tkeyring\ndefault\tfile\nbad\tsomewhere\n../x\tfile\nno-tab\n\n");
        assert_eq!(map.len(), 2);
        assert_eq!(map["work"], BackendKind::Keyring);
        assert_eq!(map["default"], BackendKind::File);
    }
}
