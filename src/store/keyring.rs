//! The OS keyring backend (Secret Service, Keychain, Credential Manager through keyring-core).
//!
//! Every call runs on a helper thread with a timeout, so a keyring that never answers (a locked
//! collection waiting on a prompt nobody can see) costs seconds, not a hang. Where there is
//! plainly no D-Bus session, the keyring is declared unavailable without trying.

use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{Error, Result, VaultProblem};
use crate::redact::redact_text;
use crate::store::lock::VaultLock;
use crate::store::record::Credential;
use crate::store::{Backend, BackendKind};

/// Keyring service name; one entry per profile, the profile name as user.
pub const SERVICE: &str = "kimi-vault";
/// How long one keyring call may take.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);

/// How a keyring call failed.
#[derive(Debug, Clone)]
pub enum KeyringFailure {
    /// No keyring can be used here; the text says why (for `status` and `doctor`).
    Unavailable(String),
    /// The entry is too long for the platform's keyring.
    TooLong(String),
    /// Something else failed; the text is safe to show.
    Failed(String),
}

impl KeyringFailure {
    /// The human reason.
    pub fn reason(&self) -> &str {
        match self {
            KeyringFailure::Unavailable(r)
            | KeyringFailure::TooLong(r)
            | KeyringFailure::Failed(r) => r,
        }
    }
}

/// The keyring backend.
#[derive(Debug, Clone)]
pub struct KeyringBackend {
    timeout: Duration,
}

impl Default for KeyringBackend {
    fn default() -> Self {
        KeyringBackend {
            timeout: KEYRING_TIMEOUT,
        }
    }
}

/// Describes a keyring-core error without ever printing its payload: `BadEncoding` and
/// `BadDataFormat` carry the raw secret bytes, so they are named, never formatted.
fn describe(e: &keyring_core::Error) -> KeyringFailure {
    use keyring_core::Error as K;
    match e {
        K::NoStorageAccess(p) => KeyringFailure::Unavailable(format!(
            "the keyring is locked or refuses access ({})",
            redact_text(&p.to_string())
        )),
        K::PlatformFailure(p) => KeyringFailure::Unavailable(format!(
            "the keyring service failed ({})",
            redact_text(&p.to_string())
        )),
        K::NoDefaultStore => {
            KeyringFailure::Unavailable("no keyring store for this platform".into())
        }
        K::NotSupportedByStore(what) => KeyringFailure::Unavailable(format!(
            "not supported by this keyring: {}",
            redact_text(what)
        )),
        K::TooLong(attr, limit) => KeyringFailure::TooLong(format!(
            "the entry's {attr} is longer than this keyring allows ({limit})"
        )),
        K::BadEncoding(_) => KeyringFailure::Failed("the stored entry is not valid UTF-8".into()),
        K::BadDataFormat(_, _) => {
            KeyringFailure::Failed("the stored entry has an unexpected format".into())
        }
        K::BadStoreFormat(_) => KeyringFailure::Failed("the keyring store is damaged".into()),
        K::Invalid(attr, _) => KeyringFailure::Failed(format!("invalid keyring attribute {attr}")),
        K::Ambiguous(entries) => KeyringFailure::Failed(format!(
            "{} keyring entries match service {SERVICE}; remove the extra ones",
            entries.len()
        )),
        K::NoEntry => KeyringFailure::Failed("no entry".into()),
        _ => KeyringFailure::Failed("unexpected keyring error".into()),
    }
}

/// Decides in microseconds that there is no session bus to talk to (Linux).
fn quick_unavailable() -> Option<String> {
    #[cfg(target_os = "linux")]
    {
        let addr = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
        if addr.is_empty() {
            let runtime_bus = std::env::var_os("XDG_RUNTIME_DIR")
                .map(|d| std::path::PathBuf::from(d).join("bus"))
                .filter(|p| p.exists());
            if runtime_bus.is_none() {
                return Some("no D-Bus session bus (DBUS_SESSION_BUS_ADDRESS is not set)".into());
            }
        } else if let Some(path) = addr
            .split(';')
            .next()
            .and_then(|a| a.strip_prefix("unix:path="))
            .map(|p| p.split(',').next().unwrap_or(p))
            && !std::path::Path::new(path).exists()
        {
            return Some(format!("no D-Bus session bus at {path}"));
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn init_store() -> std::result::Result<(), KeyringFailure> {
    static STORE: OnceLock<std::result::Result<(), KeyringFailure>> = OnceLock::new();
    STORE
        .get_or_init(|| {
            #[cfg(target_os = "linux")]
            let store = zbus_secret_service_keyring_store::Store::new();
            #[cfg(target_os = "macos")]
            let store = apple_native_keyring_store::keychain::Store::new();
            #[cfg(windows)]
            let store = windows_native_keyring_store::Store::new();
            #[cfg(any(target_os = "linux", target_os = "macos", windows))]
            {
                match store {
                    Ok(s) => {
                        keyring_core::set_default_store(s);
                        Ok(())
                    }
                    Err(e) => Err(match describe(&e) {
                        KeyringFailure::Failed(r) => KeyringFailure::Unavailable(r),
                        other => other,
                    }),
                }
            }
            #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
            {
                Err(KeyringFailure::Unavailable(
                    "no keyring support on this platform".into(),
                ))
            }
        })
        .clone()
}

impl KeyringBackend {
    /// Runs `op` against any `service`/`user` entry on a helper thread, with the timeout.
    fn call_entry<T: Send + 'static>(
        &self,
        service: &str,
        user: &str,
        op: impl FnOnce(&keyring_core::Entry) -> keyring_core::Result<T> + Send + 'static,
    ) -> std::result::Result<keyring_core::Result<T>, KeyringFailure> {
        if let Some(reason) = quick_unavailable() {
            return Err(KeyringFailure::Unavailable(reason));
        }
        let (tx, rx) = mpsc::channel();
        let (service, user) = (service.to_owned(), user.to_owned());
        std::thread::Builder::new()
            .name("keyring".into())
            .spawn(move || {
                let result = init_store().map(|()| {
                    keyring_core::Entry::new(&service, &user).and_then(|entry| op(&entry))
                });
                let _ = tx.send(result);
            })
            .map_err(|e| KeyringFailure::Failed(format!("cannot start a thread: {e}")))?;
        match rx.recv_timeout(self.timeout) {
            Ok(result) => result,
            Err(_) => Err(KeyringFailure::Unavailable(format!(
                "the keyring did not answer within {} s (locked, with no way to prompt?)",
                self.timeout.as_secs()
            ))),
        }
    }

    /// Reads the profile's entry. `Ok(None)` when there is none.
    pub fn try_load(
        &self,
        profile: &str,
    ) -> std::result::Result<Option<Credential>, KeyringFailure> {
        let Some(json) = self.read_foreign(SERVICE, profile)? else {
            return Ok(None);
        };
        serde_json::from_str(&json).map(Some).map_err(|e| {
            KeyringFailure::Failed(format!(
                "the stored entry is not a kimi-vault credential (line {}, column {})",
                e.line(),
                e.column()
            ))
        })
    }

    /// Writes the profile's entry.
    pub fn try_save(
        &self,
        profile: &str,
        cred: &Credential,
    ) -> std::result::Result<(), KeyringFailure> {
        let json = cred.to_secret_json();
        self.call_entry(SERVICE, profile, move |e| e.set_password(&json))?
            .map_err(|e| describe(&e))
    }

    /// Reads any entry (`service`/`user`, ours or another tool's) as a string, wiped on drop.
    pub fn read_foreign(
        &self,
        service: &str,
        user: &str,
    ) -> std::result::Result<Option<zeroize::Zeroizing<String>>, KeyringFailure> {
        match self.call_entry(service, user, |e| e.get_password())? {
            Ok(value) => Ok(Some(zeroize::Zeroizing::new(value))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Deletes any entry (ours or another tool's); false when there was none.
    pub fn delete_foreign(
        &self,
        service: &str,
        user: &str,
    ) -> std::result::Result<bool, KeyringFailure> {
        match self.call_entry(service, user, |e| e.delete_credential())? {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Deletes the profile's entry; false when there was none.
    pub fn try_delete(&self, profile: &str) -> std::result::Result<bool, KeyringFailure> {
        self.delete_foreign(SERVICE, profile)
    }
}

/// Converts a keyring failure for a caller that required the keyring.
pub fn to_error(profile: &str, failure: KeyringFailure) -> Error {
    match failure {
        KeyringFailure::Failed(r) if r.starts_with("the stored entry") => Error::vault(
            format!("keyring entry {SERVICE}/{profile}"),
            VaultProblem::Corrupt(r),
        ),
        other => Error::Keyring(other.reason().to_owned()),
    }
}

impl Backend for KeyringBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Keyring
    }

    fn load(&self, profile: &str) -> Result<Option<Credential>> {
        self.try_load(profile).map_err(|f| to_error(profile, f))
    }

    fn save(&self, profile: &str, cred: &Credential, _lock: &VaultLock) -> Result<()> {
        self.try_save(profile, cred)
            .map_err(|f| to_error(profile, f))
    }

    fn delete(&self, profile: &str, _lock: &VaultLock) -> Result<bool> {
        self.try_delete(profile).map_err(|f| to_error(profile, f))
    }
}
