//! The storage backends behind [`Vault`](crate::store::Vault), as one small trait: a
//! [`Backend`] reads, writes, removes and lists the credentials of one store, and says in its
//! error's type when it cannot be used here at all ([`BackendError::Unavailable`]: "try the next
//! one"). The shape follows cargo's credential providers (one small trait; `UrlNotSupported`
//! means "not me, ask the next provider") and keyring-core's `CredentialStore` (one store of
//! entries). There is one implementation per backend, each delegating to its module's own
//! functions: the OS keyring ([`KeyringBackend`], src/store/keyring.rs) and the encrypted file
//! ([`FileBackend`], src/store/file.rs).
//!
//! A backend knows nothing of modes, of the other backend or of the index: the vault composes
//! them for `auto`, `keyring` and `file`, keeps the index (SPEC §4) and decides what an
//! unavailable backend means.

use crate::error::{Error, KeyringError, Result, VaultProblem};
use crate::store::file::FileBackend;
use crate::store::keyring::{KeyringBackend, SERVICE};
use crate::store::lock::VaultLock;
use crate::store::record::Credential;

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

/// User-name prefix of `doctor`'s throwaway keyring entries (never a valid profile name, so it
/// can never collide with one, and listings skip it).
pub(crate) const PROBE_USER_PREFIX: &str = ".doctor-probe-";

/// Why a backend did not do what it was asked.
#[derive(Debug)]
pub(crate) enum BackendError {
    /// This backend cannot be used here at all (no session bus, no keyring service, locked, no
    /// answer in time): the next backend may be tried. Only the keyring is ever unavailable.
    Unavailable(KeyringError),
    /// This backend works but cannot hold this credential (longer than the keyring allows):
    /// the next backend may take it; a copy this backend holds from before is then stale.
    CannotHold(KeyringError),
    /// Anything else: the operation fails with this error.
    Failed(Error),
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendError::Unavailable(k) | BackendError::CannotHold(k) => k.fmt(f),
            BackendError::Failed(e) => e.fmt(f),
        }
    }
}

impl BackendError {
    /// The error when no other backend is tried.
    pub(crate) fn into_error(self) -> Error {
        match self {
            BackendError::Unavailable(k) | BackendError::CannotHold(k) => Error::Keyring(k),
            BackendError::Failed(e) => e,
        }
    }
}

impl From<Error> for BackendError {
    fn from(e: Error) -> Self {
        BackendError::Failed(e)
    }
}

/// A result of a backend.
pub(crate) type BResult<T> = std::result::Result<T, BackendError>;

/// One store of credentials, by profile name.
pub(crate) trait Backend: std::fmt::Debug + Send + Sync {
    /// Which backend this is.
    fn kind(&self) -> BackendKind;

    /// The profile's credential; `Ok(None)` when this backend holds none.
    fn read(&self, profile: &str) -> BResult<Option<Credential>>;

    /// Stores the profile's credential, replacing any it held. With `set_aside` (login), a
    /// store that cannot be read as a whole is kept aside rather than refused (a backend whose
    /// entries stand alone has nothing to set aside).
    fn write(
        &self,
        profile: &str,
        cred: &Credential,
        lock: &VaultLock,
        set_aside: bool,
    ) -> BResult<()>;

    /// Removes the profile; false when this backend did not hold it.
    fn remove(&self, profile: &str, lock: &VaultLock) -> BResult<bool>;

    /// Every profile this backend holds, each with its credential or why it cannot be read.
    fn list(&self) -> BResult<Vec<(String, Result<Credential>)>>;

    /// True when this backend surely holds nothing, known without reading it (the encrypted
    /// file does not exist): there is nothing to read, list or remove.
    fn holds_nothing(&self) -> bool {
        false
    }
}

/// How a keyring failure about `profile` falls through: an unavailable keyring or one too small
/// for the entry may hand over to the next backend; an entry that cannot be read is reported
/// like an unreadable vault file (naming the entry).
fn keyring_failure(profile: &str, e: KeyringError) -> BackendError {
    match e {
        e if e.is_unavailable() => BackendError::Unavailable(e),
        e @ KeyringError::TooLong { .. } => BackendError::CannotHold(e),
        KeyringError::EntryUnreadable { why } => BackendError::Failed(Error::vault(
            format!("keyring entry {SERVICE}/{profile}"),
            VaultProblem::KeyringEntry(format!("the stored entry {why}")),
        )),
        other => BackendError::Failed(Error::Keyring(other)),
    }
}

impl Backend for KeyringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Keyring
    }

    fn read(&self, profile: &str) -> BResult<Option<Credential>> {
        self.load(profile).map_err(|e| keyring_failure(profile, e))
    }

    fn write(&self, profile: &str, cred: &Credential, _: &VaultLock, _: bool) -> BResult<()> {
        self.save(profile, cred)
            .map_err(|e| keyring_failure(profile, e))
    }

    fn remove(&self, profile: &str, _: &VaultLock) -> BResult<bool> {
        self.delete(profile)
            .map_err(|e| keyring_failure(profile, e))
    }

    /// The entries of service `kimi-vault` (found with the keyring's search), except `doctor`'s
    /// probes and user names that are not profile names.
    fn list(&self) -> BResult<Vec<(String, Result<Credential>)>> {
        let users = self.list_users(SERVICE).map_err(|e| {
            if e.is_unavailable() {
                BackendError::Unavailable(e)
            } else {
                BackendError::Failed(Error::Keyring(e))
            }
        })?;
        let mut found = Vec::new();
        for user in users {
            if user.starts_with(PROBE_USER_PREFIX) {
                continue;
            }
            if crate::store::check_profile_name(&user).is_err() {
                tracing::info!(
                    "ignoring keyring entry {SERVICE}/{}: not a profile name",
                    user.escape_default()
                );
                continue;
            }
            let cred = match Backend::read(self, &user) {
                Ok(Some(c)) => Ok(c),
                Ok(None) => continue,
                Err(e) => Err(e.into_error()),
            };
            found.push((user, cred));
        }
        Ok(found)
    }
}

impl Backend for FileBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::File
    }

    fn read(&self, profile: &str) -> BResult<Option<Credential>> {
        Ok(self.load(profile)?)
    }

    fn write(
        &self,
        profile: &str,
        cred: &Credential,
        lock: &VaultLock,
        set_aside: bool,
    ) -> BResult<()> {
        Ok(self.save(profile, cred, lock, set_aside)?)
    }

    fn remove(&self, profile: &str, lock: &VaultLock) -> BResult<bool> {
        Ok(self.delete(profile, lock)?)
    }

    fn holds_nothing(&self) -> bool {
        !self.exists()
    }

    fn list(&self) -> BResult<Vec<(String, Result<Credential>)>> {
        Ok(self
            .load_contents()?
            .into_iter()
            .flat_map(|c| c.profiles)
            .map(|(name, cred)| (name, Ok(cred)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyring_failures_fall_through_by_their_kind() {
        let unavailable = KeyringError::NoService {
            detail: "none".into(),
        };
        assert!(matches!(
            keyring_failure("p", unavailable),
            BackendError::Unavailable(_)
        ));
        let too_long = KeyringError::TooLong {
            attribute: "secret".into(),
            limit: 10,
        };
        assert!(matches!(
            keyring_failure("p", too_long),
            BackendError::CannotHold(_)
        ));
        let ambiguous = KeyringError::Ambiguous { count: 2 };
        assert!(matches!(
            keyring_failure("p", ambiguous),
            BackendError::Failed(Error::Keyring(KeyringError::Ambiguous { count: 2 }))
        ));
        let unreadable = KeyringError::EntryUnreadable {
            why: "is not valid UTF-8".into(),
        };
        match keyring_failure("work", unreadable) {
            BackendError::Failed(Error::VaultUnreadable {
                path,
                problem: VaultProblem::KeyringEntry(why),
            }) => {
                assert_eq!(path, std::path::Path::new("keyring entry kimi-vault/work"));
                assert_eq!(why, "the stored entry is not valid UTF-8");
            }
            other => panic!("{other:?}"),
        }
    }
}
