//! The encrypted-file backend: every profile in one `vault.enc`, sealed with the key of
//! `vault.key`.

use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::{Error, Result, VaultProblem};
use crate::store::crypto::{self, EnvelopeError};
use crate::store::fsutil;
use crate::store::key;
use crate::store::lock::VaultLock;
use crate::store::paths::{DEVICE_ID_FILE, KEY_FILE, MAX_VAULT_BYTES, VAULT_FILE, VaultPaths};
use crate::store::record::{CONTENTS_VERSION, Credential, VaultContents};

/// How often a read retries after `vault.key` did not match (a key replacement may have been
/// committed between reading `vault.enc` and reading the key).
const KEY_RETRIES: usize = 2;

/// The encrypted-file backend.
#[derive(Debug, Clone)]
pub(crate) struct FileBackend {
    paths: VaultPaths,
    /// Set once the vault directory was found safe (it is checked once per process).
    home_checked: std::sync::OnceLock<()>,
}

impl FileBackend {
    /// The backend for this vault directory.
    pub(crate) fn new(paths: VaultPaths) -> Self {
        FileBackend {
            paths,
            home_checked: std::sync::OnceLock::new(),
        }
    }

    /// Checks the vault directory without creating it (see `fsutil::check_dir`); false when
    /// it does not exist.
    pub(crate) fn check_home(&self) -> Result<bool> {
        if self.home_checked.get().is_some() {
            return Ok(true);
        }
        let exists = fsutil::check_dir(self.paths.home())?;
        if exists {
            let _ = self.home_checked.set(());
        }
        Ok(exists)
    }

    /// Checks that `vault.enc` and `vault.key` are not unsafe (symlinks, not regular files,
    /// someone else's); unreadable contents are no obstacle to a write that sets them aside. A
    /// key found exposed is marked as such (and repaired) on the way.
    pub(crate) fn check_files(&self) -> Result<()> {
        fsutil::open_private(&self.paths.vault())?;
        match key::load(&self.paths) {
            Err(
                e @ Error::VaultUnreadable {
                    problem: VaultProblem::Unsafe(_),
                    ..
                },
            ) => Err(e),
            Err(Error::VaultUnreadable { .. }) | Ok(_) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// True when `vault.key` was found exposed and has not been replaced yet.
    pub(crate) fn key_exposed(&self) -> bool {
        key::exposed(&self.paths)
    }

    /// Replaces a key found exposed, under the lock, when no write of this backend did: every
    /// profile is encrypted again with a fresh key; a key that protects no vault is removed (a
    /// new one is made when one is needed).
    pub(crate) fn replace_exposed_key(&self, lock: &VaultLock) -> Result<()> {
        if std::fs::symlink_metadata(self.paths.key_exposed()).is_err() {
            return Ok(());
        }
        match self.load_contents()? {
            Some(contents) => self.store_contents(&contents, lock),
            None => {
                fsutil::remove_if_exists(&self.paths.key())?;
                fsutil::remove_if_exists(&self.paths.key_exposed())?;
                tracing::warn!(
                    "{} was removed: it protected no vault, and a fresh one is made when one is needed",
                    self.paths.key().display()
                );
                fsutil::sync_dir(self.paths.home())
            }
        }
    }

    /// True when `vault.enc` exists (as anything, even a symlink).
    pub(crate) fn exists(&self) -> bool {
        std::fs::symlink_metadata(self.paths.vault()).is_ok()
    }

    /// Decrypts the whole vault. `Ok(None)` when there is no `vault.enc`.
    pub(crate) fn load_contents(&self) -> Result<Option<VaultContents>> {
        if !self.check_home()? {
            return Ok(None);
        }
        let path = self.paths.vault();
        for attempt in 0..=KEY_RETRIES {
            let Some(data) = fsutil::read_private(&path, MAX_VAULT_BYTES)? else {
                return Ok(None);
            };
            let Some(key) = key::load(&self.paths)? else {
                return Err(Error::vault(self.paths.key(), VaultProblem::KeyMissing));
            };
            match decode(&key, data.expose()) {
                Err(VaultProblem::WrongKey) => {
                    // A key replacement in progress: vault.enc may be sealed with the next key.
                    if let Some(next) = key::load_next(&self.paths)? {
                        match decode(&next, data.expose()) {
                            Err(VaultProblem::WrongKey) => {}
                            other => return other.map(Some).map_err(|p| Error::vault(&path, p)),
                        }
                    }
                    if attempt == KEY_RETRIES {
                        return Err(Error::vault(&path, VaultProblem::WrongKey));
                    }
                }
                other => return other.map(Some).map_err(|p| Error::vault(&path, p)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// Encrypts and atomically replaces the whole vault (creating the key if needed, and
    /// replacing a key found exposed).
    pub(crate) fn store_contents(&self, contents: &VaultContents, lock: &VaultLock) -> Result<()> {
        for name in [VAULT_FILE, KEY_FILE, DEVICE_ID_FILE] {
            fsutil::sweep_stale_temps(self.paths.home(), name);
        }
        let write = key::for_write(&self.paths, lock)?;
        let plain = encode(contents);
        let sealed = crypto::seal(&write.key, &plain)?;
        fsutil::write_atomic(self.paths.home(), VAULT_FILE, &sealed)?;
        key::commit(&self.paths, &write, lock)
    }

    /// Loads for a write. When `set_aside` is true, an unreadable vault (wrong key, tampered,
    /// corrupt, key missing or corrupt) is renamed to `*.unreadable-<timestamp>` and an empty
    /// vault is returned; unsafe files are never touched.
    fn load_for_write(&self, set_aside: bool, lock: &VaultLock) -> Result<VaultContents> {
        match self.load_contents() {
            Ok(contents) => Ok(contents.unwrap_or_else(empty)),
            Err(e) if set_aside && can_set_aside(&e) => {
                self.set_aside_unreadable(&e, lock)?;
                Ok(empty())
            }
            Err(e) => Err(e),
        }
    }

    /// Keeps an unreadable vault aside after `error` (from reading it): `vault.enc` and, when
    /// the key itself is broken, `vault.key`, each renamed to `*.unreadable-<timestamp>`.
    /// Returns what was moved where. The caller checked [`can_set_aside`].
    pub(crate) fn set_aside_unreadable(
        &self,
        error: &Error,
        _lock: &VaultLock,
    ) -> Result<Vec<KeptAside>> {
        let mut moved = Vec::new();
        let Error::VaultUnreadable { path, problem } = error else {
            return Ok(moved);
        };
        if *path == self.paths.key() && *problem != VaultProblem::KeyMissing {
            let aside = fsutil::set_aside(&self.paths.key())?;
            tracing::warn!(
                "{} was unreadable; it was kept aside as {}",
                self.paths.key().display(),
                aside.display()
            );
            moved.push(KeptAside {
                from: self.paths.key(),
                to: aside,
            });
        }
        if self.exists() {
            let aside = fsutil::set_aside(&self.paths.vault())?;
            tracing::warn!(
                "{} was unreadable; it was kept aside as {} and a new vault was started",
                self.paths.vault().display(),
                aside.display()
            );
            moved.push(KeptAside {
                from: self.paths.vault(),
                to: aside,
            });
        }
        Ok(moved)
    }

    /// Stores one profile, setting an unreadable vault aside first when `set_aside` (login).
    pub(crate) fn save(
        &self,
        profile: &str,
        cred: &Credential,
        lock: &VaultLock,
        set_aside: bool,
    ) -> Result<()> {
        let mut contents = self.load_for_write(set_aside, lock)?;
        contents.profiles.insert(profile.to_owned(), cred.clone());
        self.store_contents(&contents, lock)
    }

    /// The profile's credential, if stored here.
    pub(crate) fn load(&self, profile: &str) -> Result<Option<Credential>> {
        Ok(self
            .load_contents()?
            .and_then(|mut c| c.profiles.remove(profile)))
    }

    /// Removes the profile; false when it was not here.
    pub(crate) fn delete(&self, profile: &str, lock: &VaultLock) -> Result<bool> {
        let Some(mut contents) = self.load_contents()? else {
            return Ok(false);
        };
        if contents.profiles.remove(profile).is_none() {
            return Ok(false);
        }
        self.store_contents(&contents, lock)?;
        Ok(true)
    }
}

/// A vault file that could not be read and was renamed so that nothing overwrites it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptAside {
    /// Where it was.
    pub from: PathBuf,
    /// Where it is now (`….unreadable-<timestamp>`).
    pub to: PathBuf,
}

/// True for the read errors that a reset may keep aside: an unreadable file vault (wrong key,
/// tampered, corrupt, key missing or corrupt). Unsafe files (symlinks, other owners) and keyring
/// entries are never moved.
pub(crate) fn can_set_aside(e: &Error) -> bool {
    matches!(e, Error::VaultUnreadable { path, problem }
        if !matches!(problem, VaultProblem::Unsafe(_))
            && path.file_name().is_some_and(|n| n == VAULT_FILE || n == KEY_FILE))
}

fn empty() -> VaultContents {
    VaultContents {
        version: CONTENTS_VERSION,
        profiles: Default::default(),
    }
}

/// Serializes the vault's plaintext into a buffer of exactly the right size, wiped on drop.
fn encode(contents: &VaultContents) -> Zeroizing<Vec<u8>> {
    crate::secret::json_zeroizing(contents)
}

/// Decrypts and parses `vault.enc` bytes (pure; used by the fuzz target too).
pub fn decode(key: &crypto::VaultKey, data: &[u8]) -> Result<VaultContents, VaultProblem> {
    let plain = crypto::open(key, data).map_err(|e| match e {
        EnvelopeError::WrongKey => VaultProblem::WrongKey,
        EnvelopeError::Tampered => VaultProblem::Tampered,
        EnvelopeError::Truncated => VaultProblem::Corrupt("the file is cut short".into()),
        EnvelopeError::NotAVault => VaultProblem::Corrupt("it does not start with KVLT".into()),
        EnvelopeError::UnsupportedVersion(v) => VaultProblem::Corrupt(format!(
            "format version {v} is not known to this kimi-vault; upgrade kimi-vault"
        )),
    })?;
    let contents: VaultContents = serde_json::from_slice(plain.expose()).map_err(|e| {
        // serde_json's Display can quote the offending value: only its position is used.
        VaultProblem::Corrupt(format!(
            "the decrypted content has an unexpected shape at line {}, column {}",
            e.line(),
            e.column()
        ))
    })?;
    if contents.version != CONTENTS_VERSION {
        return Err(VaultProblem::Corrupt(format!(
            "content version {} is not known to this kimi-vault; upgrade kimi-vault",
            contents.version
        )));
    }
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_does_not_reallocate() {
        let mut contents = empty();
        for i in 0..20 {
            contents.profiles.insert(
                format!("p{i}"),
                Credential::new(
                    crate::secret::SecretString::from("a".repeat(3000).as_str()),
                    crate::secret::SecretString::from("r".repeat(3000).as_str()),
                    0,
                ),
            );
        }
        let buf = encode(&contents);
        assert_eq!(buf.capacity(), buf.len(), "sized once, never grown");
        let back: VaultContents = serde_json::from_slice(&buf).unwrap();
        assert_eq!(back.profiles.len(), 20);
    }
}
