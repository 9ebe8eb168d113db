//! The vault: composes the backends (see [`Backend`]) for its mode (`auto`, `keyring`,
//! `file`), reads the newest copy of a profile, and keeps each profile in exactly one backend
//! after a write, with the index (SPEC §4) naming which.

use std::fmt;
use std::sync::Mutex;

use crate::clock::now_unix_ms;
use crate::error::{Error, KeyringError, Result};
use crate::store::backend::{BResult, Backend, BackendError, BackendKind, PROBE_USER_PREFIX};
use crate::store::file::{FileBackend, KeptAside, can_set_aside};
use crate::store::fsutil;
use crate::store::index;
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

/// A credential and where it was found.
#[derive(Debug)]
pub struct Loaded {
    /// The credential.
    pub cred: Credential,
    /// The backend that holds it.
    pub backend: BackendKind,
}

/// `cred`, found in `backend`.
fn loaded(backend: BackendKind, cred: Option<Credential>) -> Option<Loaded> {
    cred.map(|cred| Loaded { cred, backend })
}

/// Whether the keyring can be used, as found by this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyringStatus {
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

/// One stored copy of a profile's credential (callers show its state, never its tokens).
#[derive(Debug)]
pub struct StoredProfile {
    /// The profile name.
    pub profile: String,
    /// Where this copy is.
    pub backend: BackendKind,
    /// The credential, or why it cannot be read (a corrupt keyring entry).
    pub cred: Result<Credential>,
}

/// How the keyring's entries were listed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringListing {
    /// Every entry of service `kimi-vault` was listed.
    Listed,
    /// Not consulted: `file` mode never touches the keyring.
    NotConsulted,
    /// The keyring cannot be used or searched here; why.
    Unavailable(KeyringError),
}

/// Every profile stored in the backends this mode may use.
#[derive(Debug)]
pub struct ProfileListing {
    /// The copies found, by profile name, then backend (keyring first).
    pub profiles: Vec<StoredProfile>,
    /// Why the encrypted file could not be read (its profiles are then not listed).
    pub file_error: Option<Error>,
    /// How the keyring was listed.
    pub keyring: KeyringListing,
}

/// A keyring round trip that worked: how long each step took.
#[derive(Debug, Clone, Copy)]
pub struct KeyringProbe {
    /// Writing the throwaway entry.
    pub write: std::time::Duration,
    /// Reading it back (and comparing).
    pub read: std::time::Duration,
    /// Deleting it.
    pub delete: std::time::Duration,
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

impl Vault {
    /// A vault at `paths` in `mode`.
    pub fn new(paths: VaultPaths, mode: BackendMode) -> Self {
        Vault {
            file: FileBackend::new(paths.clone()),
            keyring: KeyringBackend::with_memo(paths.keyring_timeout()),
            paths,
            mode,
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
    /// others, or is sticky (shared) is refused ([`VaultProblem::Directory`](crate::error::VaultProblem::Directory)); one that is
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
    pub(crate) fn check_writable(&self, profile: &str) -> Result<BackendKind> {
        if self.mode == BackendMode::Keyring
            && let Err(BackendError::Unavailable(e)) = self.keyring.read(profile)
        {
            return Err(Error::Keyring(e));
        }
        let (target, _) = self.write_target(profile);
        let home = self.paths.home();
        if self.file.check_home()? {
            fsutil::check_writable_dir(home, home)?;
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
        fsutil::creation_parent(home)?;
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
        match &status {
            KeyringStatus::Unavailable(
                why @ (KeyringError::TimedOut { .. } | KeyringError::RecentlyTimedOut { .. }),
            ) if self.mode == BackendMode::Auto => {
                tracing::warn!("OS keyring unavailable: {why}; using the encrypted file");
            }
            KeyringStatus::Unavailable(why) => tracing::info!("OS keyring unavailable: {why}"),
            KeyringStatus::Available => {}
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
    pub(crate) fn keyring_status(&self, profile: &str) -> KeyringStatus {
        if let Some(s) = self.status() {
            return s;
        }
        let status = match self.keyring.read(profile) {
            Err(BackendError::Unavailable(e)) => KeyringStatus::Unavailable(e),
            _ => KeyringStatus::Available,
        };
        self.note_keyring(status.clone());
        status
    }

    /// For [`Session::token`](crate::session::Session::token): the profile's access token from
    /// the kernel keyring cache, when the keyring is the backend this vault would read it from
    /// and the token is valid for more than `min_valid` seconds. The credential has no refresh
    /// token: it is only for handing the access token out.
    pub(crate) fn cached_token(&self, profile: &str, min_valid: i64) -> Option<Credential> {
        let from_keyring = match self.mode() {
            BackendMode::File => false,
            BackendMode::Keyring => true,
            BackendMode::Auto => index::lookup(self.paths(), profile) == Some(BackendKind::Keyring),
        };
        if !from_keyring {
            return None;
        }
        let cred = crate::store::kernel_cache::serve(
            crate::store::keyring::cache_identity(profile),
            min_valid,
        )?;
        tracing::info!(
            "OS keyring: entry {SERVICE}/{profile} served from the kernel keyring cache"
        );
        Some(cred)
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

    /// A backend's copy, with a note of what was asked and how long it took (`-v`).
    fn logged_read(&self, backend: &dyn Backend, profile: &str) -> BResult<Option<Credential>> {
        let started = std::time::Instant::now();
        let result = backend.read(profile);
        let ms = started.elapsed().as_millis();
        let path = self.paths.vault();
        match (backend.kind(), &result) {
            (BackendKind::Keyring, Ok(Some(_))) => {
                tracing::info!("OS keyring: entry {SERVICE}/{profile} found ({ms} ms)")
            }
            (BackendKind::Keyring, Ok(None)) => {
                tracing::info!("OS keyring: no entry {SERVICE}/{profile} ({ms} ms)")
            }
            (BackendKind::Keyring, Err(e)) => {
                tracing::info!("OS keyring: {SERVICE}/{profile} not read: {e} ({ms} ms)")
            }
            (BackendKind::File, Ok(Some(_))) => tracing::info!(
                "encrypted file: {} holds profile '{profile}' ({ms} ms)",
                path.display()
            ),
            (BackendKind::File, Ok(None)) if !backend.holds_nothing() => tracing::info!(
                "encrypted file: {} has no profile '{profile}' ({ms} ms)",
                path.display()
            ),
            (BackendKind::File, Ok(None)) => {
                tracing::info!("encrypted file: {} does not exist", path.display())
            }
            (BackendKind::File, Err(e)) => {
                tracing::info!("encrypted file: not read: {e} ({ms} ms)")
            }
        }
        result
    }

    /// The encrypted file's copy (logged).
    fn file_load(&self, profile: &str) -> Result<Option<Credential>> {
        self.logged_read(&self.file, profile)
            .map_err(BackendError::into_error)
    }

    /// Reads the profile without taking the lock. When both backends hold it (a crash between a
    /// write and the removal from the other), the newer copy wins.
    pub fn load(&self, profile: &str) -> Result<Option<Loaded>> {
        let in_file = |cred| loaded(BackendKind::File, cred);
        let in_keyring = |cred| loaded(BackendKind::Keyring, cred);
        match self.mode {
            BackendMode::File => Ok(in_file(self.file_load(profile)?)),
            BackendMode::Keyring => Ok(in_keyring(
                self.logged_read(&self.keyring, profile)
                    .map_err(BackendError::into_error)?,
            )),
            BackendMode::Auto => {
                // The index names the backend that holds the profile: ask only that one (when
                // it has nothing, or cannot be read, ask both as below).
                match index::lookup(&self.paths, profile) {
                    Some(BackendKind::File) => {
                        if let Ok(Some(cred)) = self.file_load(profile) {
                            return Ok(in_file(Some(cred)));
                        }
                    }
                    Some(BackendKind::Keyring) if !self.keyring_known_unavailable() => {
                        match self.logged_read(&self.keyring, profile) {
                            Ok(Some(cred)) => {
                                self.note_keyring(KeyringStatus::Available);
                                return Ok(in_keyring(Some(cred)));
                            }
                            Err(BackendError::Unavailable(e)) => {
                                self.note_keyring(KeyringStatus::Unavailable(e));
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
                if self.keyring_known_unavailable() {
                    tracing::info!("OS keyring: not asked again (found unavailable earlier)");
                    return Ok(in_file(self.file_load(profile)?));
                }
                let from_keyring = match self.logged_read(&self.keyring, profile) {
                    Ok(c) => {
                        self.note_keyring(KeyringStatus::Available);
                        c
                    }
                    Err(BackendError::Unavailable(e)) => {
                        // Try the next backend.
                        self.note_keyring(KeyringStatus::Unavailable(e));
                        return Ok(in_file(self.file_load(profile)?));
                    }
                    Err(e) => return Err(e.into_error()),
                };
                if self.file.holds_nothing() {
                    tracing::info!(
                        "encrypted file: {} does not exist",
                        self.paths.vault().display()
                    );
                    return Ok(in_keyring(from_keyring));
                }
                let from_file = match self.file_load(profile) {
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
        let indexed = index::lookup(&self.paths, profile);
        let chain = self.write_chain();
        if indexed.is_some() && indexed != chain.first().map(|b| b.kind()) {
            // Moving to another backend: until both are written, the index names none, and
            // reads ask both.
            index::set(&self.paths, profile, None, lock)?;
        }
        let target = self.write_through(&chain, profile, &cred, lock, set_aside, indexed)?;
        if target == BackendKind::Keyring {
            if !self.file.holds_nothing()
                && let Err(e) = self.file.remove(profile, lock)
            {
                tracing::warn!(
                    "saved in the keyring, but could not remove the old copy from the encrypted file: {e}"
                );
            }
            self.replace_exposed_key(lock);
        }
        if let Err(e) = index::set(&self.paths, profile, Some(target), lock) {
            tracing::warn!("could not update the backend index: {e}");
        }
        Ok(target)
    }

    /// Writes to the first backend of `chain` that takes the credential: one that is
    /// unavailable, or cannot hold it, hands over to the next (its index line dropped, and a
    /// copy it held removed); the last one takes the write or fails. Returns where it went.
    fn write_through(
        &self,
        chain: &[&dyn Backend],
        profile: &str,
        cred: &Credential,
        lock: &VaultLock,
        set_aside: bool,
        indexed: Option<BackendKind>,
    ) -> Result<BackendKind> {
        let Some((last, before)) = chain.split_last() else {
            unreachable!("every mode has a backend")
        };
        for backend in before {
            match backend.write(profile, cred, lock, set_aside) {
                Ok(()) => {
                    if self.mode == BackendMode::Auto && backend.kind() == BackendKind::Keyring {
                        self.note_keyring(KeyringStatus::Available);
                    }
                    return Ok(backend.kind());
                }
                Err(BackendError::Unavailable(why)) => {
                    self.note_keyring(KeyringStatus::Unavailable(why));
                    if indexed == Some(backend.kind()) {
                        index::set(&self.paths, profile, None, lock)?;
                    }
                }
                Err(BackendError::CannotHold(why)) => {
                    if indexed == Some(backend.kind()) {
                        index::set(&self.paths, profile, None, lock)?;
                    }
                    // Reachable but too small: an older entry must not outlive this write.
                    let _ = backend.remove(profile, lock);
                    self.note_keyring(KeyringStatus::Unavailable(why));
                }
                Err(e) => return Err(e.into_error()),
            }
        }
        last.write(profile, cred, lock, set_aside)
            .map_err(BackendError::into_error)?;
        Ok(last.kind())
    }

    /// The backends a write tries, in order: a backend that is unavailable (or cannot hold the
    /// credential) hands over to the next one; the last one takes the write or fails. `auto`
    /// tries the keyring, then the encrypted file (the file alone once the keyring was found
    /// unavailable); `keyring` and `file` name one backend.
    fn write_chain(&self) -> Vec<&dyn Backend> {
        match self.mode {
            BackendMode::File => vec![&self.file],
            BackendMode::Keyring => vec![&self.keyring],
            BackendMode::Auto if self.keyring_known_unavailable() => vec![&self.file],
            BackendMode::Auto => vec![&self.keyring, &self.file],
        }
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
        let mut removed = self.delete_from_keyring(profile, lock)?;
        if !self.file.holds_nothing() {
            removed |= self
                .file
                .remove(profile, lock)
                .map_err(BackendError::into_error)?;
        }
        self.forget_in_index(profile, lock);
        self.replace_exposed_key(lock);
        Ok(removed)
    }

    /// [`delete`](Self::delete), except that an unreadable file vault (wrong key, tampered,
    /// corrupt, key missing; never an unsafe file) is kept aside as
    /// `vault.enc.unreadable-<timestamp>` (as `login` does) instead of refused. Returns whether
    /// something was removed from a readable backend, and what was kept aside.
    pub(crate) fn delete_or_reset(
        &self,
        profile: &str,
        lock: &VaultLock,
    ) -> Result<(bool, Vec<KeptAside>)> {
        let removed = self.delete_from_keyring(profile, lock)?;
        self.forget_in_index(profile, lock);
        if self.file.holds_nothing() {
            return Ok((removed, Vec::new()));
        }
        match self
            .file
            .remove(profile, lock)
            .map_err(BackendError::into_error)
        {
            Ok(r) => Ok((removed || r, Vec::new())),
            Err(e) if can_set_aside(&e) => Ok((removed, self.file.set_aside_unreadable(&e, lock)?)),
            Err(e) => Err(e),
        }
    }

    /// After a delete: the index names no backend for the profile (a stale line would only
    /// cost a read of the named backend, but the index should say what is there).
    fn forget_in_index(&self, profile: &str, lock: &VaultLock) {
        if let Err(e) = index::set(&self.paths, profile, None, lock) {
            tracing::warn!("could not update the backend index: {e}");
        }
    }

    fn delete_from_keyring(&self, profile: &str, lock: &VaultLock) -> Result<bool> {
        if self.mode == BackendMode::File || self.keyring_known_unavailable() {
            return Ok(false);
        }
        match self.keyring.remove(profile, lock) {
            Ok(r) => Ok(r),
            Err(BackendError::Unavailable(e)) if self.mode == BackendMode::Auto => {
                self.note_keyring(KeyringStatus::Unavailable(e));
                Ok(false)
            }
            Err(e) => Err(e.into_error()),
        }
    }

    /// Every stored profile: the encrypted file's (when it exists and can be read) and, unless
    /// in `file` mode, the keyring's entries of service `kimi-vault` (found with the keyring's
    /// search). A profile found in both backends (a crash between a write and the removal from
    /// the other) is listed twice.
    pub fn profiles(&self) -> ProfileListing {
        let mut profiles = Vec::new();
        let mut take = |backend: &dyn Backend, found: Vec<(String, Result<Credential>)>| {
            profiles.extend(found.into_iter().map(|(profile, cred)| StoredProfile {
                profile,
                backend: backend.kind(),
                cred,
            }));
        };
        let keyring = if self.mode == BackendMode::File {
            KeyringListing::NotConsulted
        } else if let Some(KeyringStatus::Unavailable(why)) = self.status() {
            KeyringListing::Unavailable(why)
        } else {
            match self.keyring.list() {
                Ok(found) => {
                    self.note_keyring(KeyringStatus::Available);
                    take(&self.keyring, found);
                    KeyringListing::Listed
                }
                Err(BackendError::Unavailable(e)) => {
                    self.note_keyring(KeyringStatus::Unavailable(e.clone()));
                    KeyringListing::Unavailable(e)
                }
                Err(BackendError::CannotHold(e) | BackendError::Failed(Error::Keyring(e))) => {
                    KeyringListing::Unavailable(e)
                }
                Err(BackendError::Failed(other)) => {
                    KeyringListing::Unavailable(KeyringError::Platform {
                        detail: other.to_string(),
                    })
                }
            }
        };
        let mut file_error = None;
        if !self.file.holds_nothing() {
            match self.file.list() {
                Ok(found) => take(&self.file, found),
                Err(e) => file_error = Some(e.into_error()),
            }
        }
        profiles.sort_by(|a, b| {
            (a.profile.as_str(), a.backend == BackendKind::File)
                .cmp(&(b.profile.as_str(), b.backend == BackendKind::File))
        });
        ProfileListing {
            profiles,
            file_error,
            keyring,
        }
    }

    /// Proves that the OS keyring works here (for `doctor`), whatever the mode: writes a
    /// throwaway entry of a credential's size (service `kimi-vault`, a user name that is never
    /// a profile name), reads it back, compares, and deletes it. On failure: the step (`write`,
    /// `read`, `delete`) and why.
    pub fn probe_keyring(&self) -> std::result::Result<KeyringProbe, (&'static str, KeyringError)> {
        let mut raw = [0u8; 1200];
        let mut tag = [0u8; 4];
        if crate::error::random_fill(&mut raw).is_err()
            || crate::error::random_fill(&mut tag).is_err()
        {
            return Err((
                "write",
                KeyringError::Platform {
                    detail: "the OS random number generator failed".into(),
                },
            ));
        }
        let user = format!(
            "{PROBE_USER_PREFIX}{}-{}",
            std::process::id(),
            crate::store::crypto::hex(&tag)
        );
        let payload = crate::store::crypto::hex(&raw);
        let probe = self
            .keyring
            .ignoring_memo()
            .round_trip(SERVICE, &user, &payload)
            .map(|[write, read, delete]| KeyringProbe {
                write,
                read,
                delete,
            });
        if probe.is_ok() {
            // It answers: other processes may ask it again.
            self.keyring.forget_timeout();
        }
        probe
    }

    /// The keyring backend, for reading and removing other tools' entries (`migrate`).
    pub(crate) fn keyring(&self) -> &KeyringBackend {
        &self.keyring
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;

    /// A backend that is never available here.
    #[derive(Debug)]
    struct Absent;

    fn absent() -> BackendError {
        BackendError::Unavailable(KeyringError::NoService {
            detail: "absent".into(),
        })
    }

    impl Backend for Absent {
        fn kind(&self) -> BackendKind {
            BackendKind::Keyring
        }
        fn read(&self, _: &str) -> BResult<Option<Credential>> {
            Err(absent())
        }
        fn write(&self, _: &str, _: &Credential, _: &VaultLock, _: bool) -> BResult<()> {
            Err(absent())
        }
        fn remove(&self, _: &str, _: &VaultLock) -> BResult<bool> {
            Err(absent())
        }
        fn list(&self) -> BResult<Vec<(String, Result<Credential>)>> {
            Err(absent())
        }
    }

    #[test]
    fn a_write_falls_through_an_unavailable_backend_to_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let vault = Vault::new(VaultPaths::at(dir.path().join("vault")), BackendMode::Auto);
        let lock = vault.lock().unwrap();
        let cred = Credential::new(SecretString::from("a"), SecretString::from("r"), 0);
        let chain: [&dyn Backend; 2] = [&Absent, &vault.file];
        let went = vault
            .write_through(&chain, "work", &cred, &lock, false, None)
            .unwrap();
        assert_eq!(went, BackendKind::File);
        assert!(vault.file.read("work").unwrap().is_some());
        assert!(
            vault.keyring_known_unavailable(),
            "remembered for auto mode"
        );
        // The last backend does not hand over: its failure is the error.
        let err = vault
            .write_through(&[&Absent], "work", &cred, &lock, false, None)
            .unwrap_err();
        assert!(
            matches!(err, Error::Keyring(KeyringError::NoService { .. })),
            "{err}"
        );
    }
}
