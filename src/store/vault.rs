//! The vault: picks the backend (`KIMI_VAULT_BACKEND`), reads the newest copy of a profile, and
//! keeps each profile in exactly one backend after a write.

use std::cell::RefCell;

use crate::diag::warn;
use crate::error::{Error, Result};
use crate::store::file::FileBackend;
use crate::store::keyring::{self, KeyringBackend, KeyringFailure};
use crate::store::lock::VaultLock;
use crate::store::paths::VaultPaths;
use crate::store::record::Credential;
use crate::store::{Backend, BackendKind};

/// `KIMI_VAULT_BACKEND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendMode {
    /// Keyring first, encrypted file only when the keyring is unavailable.
    Auto,
    /// The keyring, or fail.
    Keyring,
    /// The encrypted file; the keyring is not touched.
    File,
}

impl BackendMode {
    /// Reads `KIMI_VAULT_BACKEND` (`auto` when unset or empty).
    pub fn from_env() -> Result<Self> {
        match std::env::var("KIMI_VAULT_BACKEND")
            .unwrap_or_default()
            .as_str()
        {
            "" | "auto" => Ok(BackendMode::Auto),
            "keyring" => Ok(BackendMode::Keyring),
            "file" => Ok(BackendMode::File),
            other => Err(Error::Usage(format!(
                "KIMI_VAULT_BACKEND must be auto, keyring or file, not '{other}'"
            ))),
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

/// Whether the keyring can be used, as found by the first call of this process.
#[derive(Debug, Clone)]
enum KeyringState {
    Available,
    Unavailable(String),
}

/// The vault of one `KIMI_VAULT_HOME`.
#[derive(Debug)]
pub struct Vault {
    paths: VaultPaths,
    mode: BackendMode,
    file: FileBackend,
    keyring: KeyringBackend,
    keyring_state: RefCell<Option<KeyringState>>,
}

impl Vault {
    /// A vault from the environment (`KIMI_VAULT_HOME`, `KIMI_VAULT_BACKEND`).
    pub fn from_env() -> Result<Self> {
        Ok(Self::new(VaultPaths::from_env()?, BackendMode::from_env()?))
    }

    /// A vault at `paths` in `mode`. Touches nothing until used.
    pub fn new(paths: VaultPaths, mode: BackendMode) -> Self {
        Vault {
            file: FileBackend::new(paths.clone()),
            paths,
            mode,
            keyring: KeyringBackend::default(),
            keyring_state: RefCell::new(None),
        }
    }

    /// The vault's file paths.
    pub fn paths(&self) -> &VaultPaths {
        &self.paths
    }

    /// The mode from `KIMI_VAULT_BACKEND`.
    pub fn mode(&self) -> BackendMode {
        self.mode
    }

    fn note_keyring(&self, state: KeyringState) {
        *self.keyring_state.borrow_mut() = Some(state);
    }

    /// Probes the keyring once (for status/doctor) unless a call already told.
    fn keyring_state(&self, profile: &str) -> KeyringState {
        if let Some(s) = self.keyring_state.borrow().clone() {
            return s;
        }
        let state = match self.keyring.try_load(profile) {
            Ok(_) => KeyringState::Available,
            Err(KeyringFailure::Unavailable(r)) => KeyringState::Unavailable(r),
            Err(_) => KeyringState::Available,
        };
        self.note_keyring(state.clone());
        state
    }

    /// The backend a write would go to, and why (for `status` and `doctor`).
    pub fn write_target(&self, profile: &str) -> (BackendKind, String) {
        match self.mode {
            BackendMode::File => (BackendKind::File, "KIMI_VAULT_BACKEND=file".into()),
            BackendMode::Keyring => (BackendKind::Keyring, "KIMI_VAULT_BACKEND=keyring".into()),
            BackendMode::Auto => match self.keyring_state(profile) {
                KeyringState::Available => {
                    (BackendKind::Keyring, "the OS keyring is available".into())
                }
                KeyringState::Unavailable(r) => (
                    BackendKind::File,
                    format!("OS keyring unavailable: {r}; using the encrypted file"),
                ),
            },
        }
    }

    /// In `auto` mode, why the keyring could not be asked this time when a D-Bus session exists
    /// (a timeout, a locked keyring): a credential kept there was not seen.
    pub fn keyring_trouble(&self) -> Option<String> {
        match (&*self.keyring_state.borrow(), self.mode) {
            (Some(KeyringState::Unavailable(r)), BackendMode::Auto)
                if !r.starts_with("no D-Bus") =>
            {
                Some(r.clone())
            }
            _ => None,
        }
    }

    /// Reads the profile without taking the lock. When both backends hold it (a crash between a
    /// write and the removal from the other), the newer copy wins.
    pub fn load(&self, profile: &str) -> Result<Option<Loaded>> {
        let from_file = |cred: Option<Credential>| {
            cred.map(|cred| Loaded {
                cred,
                backend: BackendKind::File,
            })
        };
        match self.mode {
            BackendMode::File => Ok(from_file(self.file.load(profile)?)),
            BackendMode::Keyring => {
                let cred = self
                    .keyring
                    .try_load(profile)
                    .map_err(|f| keyring::to_error(profile, f))?;
                Ok(cred.map(|cred| Loaded {
                    cred,
                    backend: BackendKind::Keyring,
                }))
            }
            BackendMode::Auto => {
                let in_keyring = match self.keyring.try_load(profile) {
                    Ok(c) => {
                        self.note_keyring(KeyringState::Available);
                        c
                    }
                    Err(KeyringFailure::Unavailable(r)) => {
                        self.note_keyring(KeyringState::Unavailable(r));
                        return Ok(from_file(self.file.load(profile)?));
                    }
                    Err(f) => return Err(keyring::to_error(profile, f)),
                };
                if !self.file.exists() {
                    return Ok(in_keyring.map(|cred| Loaded {
                        cred,
                        backend: BackendKind::Keyring,
                    }));
                }
                let in_file = match self.file.load(profile) {
                    Ok(c) => c,
                    Err(e) if in_keyring.is_some() => {
                        warn(&format!("ignoring the encrypted file: {e}"));
                        None
                    }
                    Err(e) => return Err(e),
                };
                Ok(match (in_keyring, in_file) {
                    (Some(k), Some(f)) if f.updated_at_ms > k.updated_at_ms => from_file(Some(f)),
                    (Some(k), _) => Some(Loaded {
                        cred: k,
                        backend: BackendKind::Keyring,
                    }),
                    (None, f) => from_file(f),
                })
            }
        }
    }

    /// Takes the vault lock.
    pub fn lock(&self) -> Result<VaultLock> {
        VaultLock::acquire(&self.paths)
    }

    /// Writes the profile (stamping `updated_at_ms`) and removes it from the other backend.
    /// `login` passes `set_aside` so that an unreadable file vault is kept aside, not refused.
    pub fn save(
        &self,
        profile: &str,
        cred: &Credential,
        lock: &VaultLock,
        set_aside: bool,
    ) -> Result<BackendKind> {
        let mut cred = cred.clone();
        cred.updated_at_ms = crate::diag::now_unix_ms();
        let target = match self.mode {
            BackendMode::File => BackendKind::File,
            BackendMode::Keyring => {
                self.keyring
                    .try_save(profile, &cred)
                    .map_err(|f| keyring::to_error(profile, f))?;
                BackendKind::Keyring
            }
            BackendMode::Auto => {
                let unavailable = matches!(
                    *self.keyring_state.borrow(),
                    Some(KeyringState::Unavailable(_))
                );
                if unavailable {
                    BackendKind::File
                } else {
                    match self.keyring.try_save(profile, &cred) {
                        Ok(()) => {
                            self.note_keyring(KeyringState::Available);
                            BackendKind::Keyring
                        }
                        Err(KeyringFailure::Unavailable(r)) => {
                            self.note_keyring(KeyringState::Unavailable(r));
                            BackendKind::File
                        }
                        Err(KeyringFailure::TooLong(r)) => {
                            // Reachable but too small: an older entry must not outlive this write.
                            let _ = self.keyring.try_delete(profile);
                            self.note_keyring(KeyringState::Unavailable(r));
                            BackendKind::File
                        }
                        Err(f) => return Err(keyring::to_error(profile, f)),
                    }
                }
            }
        };
        match target {
            BackendKind::File => self.file.save_profile(profile, &cred, lock, set_aside)?,
            BackendKind::Keyring => {
                if self.file.exists()
                    && let Err(e) = self.file.delete(profile, lock)
                {
                    warn(&format!(
                        "saved in the keyring, but could not remove the old copy from the encrypted file: {e}"
                    ));
                }
            }
        }
        Ok(target)
    }

    /// Removes the profile from every backend this mode may use; true when something was removed.
    pub fn delete(&self, profile: &str, lock: &VaultLock) -> Result<bool> {
        let mut removed = false;
        if self.mode != BackendMode::File {
            match self.keyring.try_delete(profile) {
                Ok(r) => removed |= r,
                Err(KeyringFailure::Unavailable(r)) if self.mode == BackendMode::Auto => {
                    self.note_keyring(KeyringState::Unavailable(r));
                }
                Err(f) => return Err(keyring::to_error(profile, f)),
            }
        }
        if self.file.exists() {
            removed |= self.file.delete(profile, lock)?;
        }
        Ok(removed)
    }
}
