//! The vault: picks the backend (`auto`, `keyring`, `file`), reads the newest copy of a
//! profile, and keeps each profile in exactly one backend after a write.

use std::fmt;
use std::sync::Mutex;

use crate::clock::now_unix_ms;
use crate::error::{Error, KeyringError, Result, VaultProblem};
use crate::store::file::FileBackend;
use crate::store::fsutil;
use crate::store::keyring::{KeyringBackend, SERVICE};
use crate::store::lock::VaultLock;
use crate::store::paths::VaultPaths;
use crate::store::record::Credential;

/// Which backends the vault may use (`KIMI_VAULT_BACKEND` on the command line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendMode {
    /// Keyring first, encrypted file only when the keyring is unavailable.
    #[default]
    Auto,
    /// The keyring, or fail.
    Keyring,
    /// The encrypted file; the keyring is not touched.
    File,
}

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

    /// For people: "OS keyring" or "encrypted file".
    pub fn describe(self) -> &'static str {
        match self {
            BackendKind::Keyring => "OS keyring",
            BackendKind::File => "encrypted file",
        }
    }
}

/// A credential and where it was found.
#[derive(Debug)]
pub struct Loaded {
    /// The credential.
    pub cred: Credential,
    /// The backend that holds it.
    pub backend: BackendKind,
}

/// Whether the keyring can be used, as found by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyringStatus {
    /// A call succeeded (or failed for a reason that does not make the keyring unusable).
    Available,
    /// The keyring cannot be used here; why.
    Unavailable(KeyringError),
}

/// Why a write goes to the backend it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendReason {
    /// `file` mode.
    FileMode,
    /// `keyring` mode.
    KeyringMode,
    /// `auto` mode, and the keyring answers.
    KeyringAvailable,
    /// `auto` mode, and the keyring cannot be used: the encrypted file is used instead.
    KeyringUnavailable(KeyringError),
}

impl fmt::Display for BackendReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendReason::FileMode => f.write_str("KIMI_VAULT_BACKEND=file"),
            BackendReason::KeyringMode => f.write_str("KIMI_VAULT_BACKEND=keyring"),
            BackendReason::KeyringAvailable => f.write_str("the OS keyring is available"),
            BackendReason::KeyringUnavailable(k) => {
                write!(f, "OS keyring unavailable: {k}; using the encrypted file")
            }
        }
    }
}

/// The vault of one directory, in one mode. Cheap to create: it touches nothing until used.
/// It can be shared between threads.
#[derive(Debug)]
pub struct Vault {
    paths: VaultPaths,
    mode: BackendMode,
    file: FileBackend,
    keyring: KeyringBackend,
    /// What the first keyring call of this process found; in `auto` mode an unavailable
    /// keyring is not asked again.
    keyring_status: Mutex<Option<KeyringStatus>>,
}

/// A keyring entry that cannot be read is reported like an unreadable vault file.
fn keyring_error(profile: &str, e: KeyringError) -> Error {
    match e {
        KeyringError::EntryUnreadable { why } => Error::vault(
            format!("keyring entry {SERVICE}/{profile}"),
            VaultProblem::Corrupt(format!("the stored entry {why}")),
        ),
        other => Error::Keyring(other),
    }
}

impl Vault {
    /// A vault at `paths` in `mode`.
    pub fn new(paths: VaultPaths, mode: BackendMode) -> Self {
        Vault {
            file: FileBackend::new(paths.clone()),
            paths,
            mode,
            keyring: KeyringBackend::default(),
            keyring_status: Mutex::new(None),
        }
    }

    /// The vault's file paths.
    pub fn paths(&self) -> &VaultPaths {
        &self.paths
    }

    /// The backend mode.
    pub fn mode(&self) -> BackendMode {
        self.mode
    }

    /// Checks the vault directory without creating anything; `Ok(false)` when it does not
    /// exist. A directory that is not one, is owned by someone else, is writable by group or
    /// others, or is sticky (shared) is refused ([`VaultProblem::Directory`]); one that is
    /// merely readable by others (and yours) is repaired to 0700 with a warning. Every read of
    /// the encrypted file checks it too; the command line checks it for every command.
    pub fn check_home(&self) -> Result<bool> {
        self.file.check_home()
    }

    /// Checks, creating nothing, that a credential for `profile` could be written now, so that
    /// a login fails before it asks Kimi for a code rather than after: the vault directory (or,
    /// when it is missing, the directory it would be created in) must be usable and writable,
    /// `vault.lock` usable; for the encrypted file, `vault.enc` and `vault.key` must not be
    /// unsafe (an unreadable vault is no obstacle: a login keeps it aside); in `keyring` mode
    /// the keyring must answer. Returns the backend the write would go to.
    pub fn check_writable(&self, profile: &str) -> Result<BackendKind> {
        if self.mode == BackendMode::Keyring
            && let Err(e) = self.keyring.load(profile)
            && e.is_unavailable()
        {
            return Err(Error::Keyring(e));
        }
        let (target, _) = self.write_target(profile);
        let home = self.paths.home();
        if self.file.check_home()? {
            fsutil::check_writable_dir(home)?;
            let lock = self.paths.lock();
            if std::fs::symlink_metadata(&lock).is_ok() {
                fsutil::open_lock_file(&lock)?;
            }
            if target == BackendKind::File {
                self.file.check_files()?;
            }
            return Ok(target);
        }
        // It would be created: in the nearest directory that exists.
        let mut ancestor = home.parent();
        while let Some(dir) = ancestor {
            let dir = if dir.as_os_str().is_empty() {
                std::path::Path::new(".")
            } else {
                dir
            };
            match std::fs::metadata(dir) {
                Ok(meta) if meta.is_dir() => {
                    fsutil::check_writable_dir(dir)?;
                    break;
                }
                Ok(_) => {
                    return Err(Error::vault(
                        home,
                        VaultProblem::Directory(format!("{} is not a directory", dir.display())),
                    ));
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => ancestor = dir.parent(),
                Err(e) => {
                    return Err(Error::io(format!("cannot inspect {}", dir.display()), e));
                }
            }
        }
        Ok(target)
    }

    /// True when `vault.key` was found readable by others and has not been replaced yet (it is
    /// replaced at the next write under the lock).
    pub fn key_exposed(&self) -> bool {
        self.file.key_exposed()
    }

    fn status(&self) -> Option<KeyringStatus> {
        self.keyring_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn note_keyring(&self, status: KeyringStatus) {
        if let KeyringStatus::Unavailable(why) = &status {
            tracing::info!("OS keyring unavailable: {why}");
        }
        *self
            .keyring_status
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    /// True when this process already found the keyring unusable (`auto` mode).
    fn keyring_known_unavailable(&self) -> bool {
        matches!(self.status(), Some(KeyringStatus::Unavailable(_)))
    }

    /// Whether the keyring can be used, probing it once (a read of the profile's entry) unless
    /// a call of this process already told.
    pub fn keyring_status(&self, profile: &str) -> KeyringStatus {
        if let Some(s) = self.status() {
            return s;
        }
        let status = match self.keyring.load(profile) {
            Err(e) if e.is_unavailable() => KeyringStatus::Unavailable(e),
            _ => KeyringStatus::Available,
        };
        self.note_keyring(status.clone());
        status
    }

    /// The backend a write would go to, and why (for `status` and `doctor`).
    pub fn write_target(&self, profile: &str) -> (BackendKind, BackendReason) {
        match self.mode {
            BackendMode::File => (BackendKind::File, BackendReason::FileMode),
            BackendMode::Keyring => (BackendKind::Keyring, BackendReason::KeyringMode),
            BackendMode::Auto => match self.keyring_status(profile) {
                KeyringStatus::Available => (BackendKind::Keyring, BackendReason::KeyringAvailable),
                KeyringStatus::Unavailable(k) => {
                    (BackendKind::File, BackendReason::KeyringUnavailable(k))
                }
            },
        }
    }

    /// In `auto` mode, why the keyring could not be asked this time although a D-Bus session
    /// exists (a timeout, a locked keyring): a credential kept there was not seen.
    pub fn keyring_trouble(&self) -> Option<KeyringError> {
        match (self.status(), self.mode) {
            (Some(KeyringStatus::Unavailable(k)), BackendMode::Auto)
                if !matches!(k, KeyringError::NoSessionBus { .. }) =>
            {
                Some(k)
            }
            _ => None,
        }
    }

    /// Reads the profile without taking the lock. When both backends hold it (a crash between a
    /// write and the removal from the other), the newer copy wins.
    pub fn load(&self, profile: &str) -> Result<Option<Loaded>> {
        let in_file = |cred: Option<Credential>| {
            cred.map(|cred| Loaded {
                cred,
                backend: BackendKind::File,
            })
        };
        let in_keyring = |cred: Option<Credential>| {
            cred.map(|cred| Loaded {
                cred,
                backend: BackendKind::Keyring,
            })
        };
        match self.mode {
            BackendMode::File => Ok(in_file(self.file.load(profile)?)),
            BackendMode::Keyring => Ok(in_keyring(
                self.keyring
                    .load(profile)
                    .map_err(|e| keyring_error(profile, e))?,
            )),
            BackendMode::Auto => {
                if self.keyring_known_unavailable() {
                    return Ok(in_file(self.file.load(profile)?));
                }
                let from_keyring = match self.keyring.load(profile) {
                    Ok(c) => {
                        self.note_keyring(KeyringStatus::Available);
                        c
                    }
                    Err(e) if e.is_unavailable() => {
                        self.note_keyring(KeyringStatus::Unavailable(e));
                        return Ok(in_file(self.file.load(profile)?));
                    }
                    Err(e) => return Err(keyring_error(profile, e)),
                };
                if !self.file.exists() {
                    return Ok(in_keyring(from_keyring));
                }
                let from_file = match self.file.load(profile) {
                    Ok(c) => c,
                    Err(e) if from_keyring.is_some() => {
                        tracing::warn!("ignoring the encrypted file: {e}");
                        None
                    }
                    Err(e) => return Err(e),
                };
                Ok(match (from_keyring, from_file) {
                    (Some(k), Some(f)) if f.updated_at_ms > k.updated_at_ms => in_file(Some(f)),
                    (Some(k), _) => in_keyring(Some(k)),
                    (None, f) => in_file(f),
                })
            }
        }
    }

    /// Takes the vault lock (creating the directory and `vault.lock` if needed).
    pub fn lock(&self) -> Result<VaultLock> {
        VaultLock::acquire(&self.paths)
    }

    /// Writes the profile (stamping `updated_at_ms`) and removes it from the other backend.
    /// `set_aside` (login) keeps an unreadable file vault aside instead of refusing it.
    pub fn save(
        &self,
        profile: &str,
        cred: &Credential,
        lock: &VaultLock,
        set_aside: bool,
    ) -> Result<BackendKind> {
        let mut cred = cred.clone();
        cred.updated_at_ms = now_unix_ms();
        let target = match self.mode {
            BackendMode::File => BackendKind::File,
            BackendMode::Keyring => {
                self.keyring
                    .save(profile, &cred)
                    .map_err(|e| keyring_error(profile, e))?;
                BackendKind::Keyring
            }
            BackendMode::Auto if self.keyring_known_unavailable() => BackendKind::File,
            BackendMode::Auto => match self.keyring.save(profile, &cred) {
                Ok(()) => {
                    self.note_keyring(KeyringStatus::Available);
                    BackendKind::Keyring
                }
                Err(e) if e.is_unavailable() => {
                    self.note_keyring(KeyringStatus::Unavailable(e));
                    BackendKind::File
                }
                Err(e @ KeyringError::TooLong { .. }) => {
                    // Reachable but too small: an older entry must not outlive this write.
                    let _ = self.keyring.delete(profile);
                    self.note_keyring(KeyringStatus::Unavailable(e));
                    BackendKind::File
                }
                Err(e) => return Err(keyring_error(profile, e)),
            },
        };
        match target {
            BackendKind::File => self.file.save(profile, &cred, lock, set_aside)?,
            BackendKind::Keyring => {
                if self.file.exists()
                    && let Err(e) = self.file.delete(profile, lock)
                {
                    tracing::warn!(
                        "saved in the keyring, but could not remove the old copy from the encrypted file: {e}"
                    );
                }
                self.replace_exposed_key(lock);
            }
        }
        Ok(target)
    }

    /// A write that did not go through the encrypted file still replaces a key found exposed.
    fn replace_exposed_key(&self, lock: &VaultLock) {
        if let Err(e) = self.file.replace_exposed_key(lock) {
            tracing::warn!("could not replace the exposed vault key: {e}");
        }
    }

    /// Removes the profile from every backend this mode may use; true when something was
    /// removed.
    pub fn delete(&self, profile: &str, lock: &VaultLock) -> Result<bool> {
        let mut removed = false;
        if self.mode != BackendMode::File && !self.keyring_known_unavailable() {
            match self.keyring.delete(profile) {
                Ok(r) => removed |= r,
                Err(e) if self.mode == BackendMode::Auto && e.is_unavailable() => {
                    self.note_keyring(KeyringStatus::Unavailable(e));
                }
                Err(e) => return Err(keyring_error(profile, e)),
            }
        }
        if self.file.exists() {
            removed |= self.file.delete(profile, lock)?;
        }
        self.replace_exposed_key(lock);
        Ok(removed)
    }

    /// The keyring backend, for reading and removing other tools' entries (`migrate`).
    pub(crate) fn keyring(&self) -> &KeyringBackend {
        &self.keyring
    }
}
