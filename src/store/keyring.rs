//! The OS keyring backend (Secret Service, Keychain, Credential Manager through keyring-core).
//!
//! Every call runs on a helper thread with a timeout, so a keyring that never answers (a locked
//! collection waiting on a prompt nobody can see) costs seconds, not a hang. Where there is
//! plainly no D-Bus session, the keyring is declared unavailable without trying.

use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use crate::error::KeyringError;
use crate::redact::redact_text;
use crate::store::record::Credential;

/// Keyring service name; one entry per profile, the profile name as user.
pub const SERVICE: &str = "kimi-vault";
/// How long one keyring call may take.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);

type KResult<T> = std::result::Result<T, KeyringError>;

/// The keyring backend.
#[derive(Debug, Clone)]
pub(crate) struct KeyringBackend {
    timeout: Duration,
}

impl Default for KeyringBackend {
    fn default() -> Self {
        KeyringBackend {
            timeout: KEYRING_TIMEOUT,
        }
    }
}

/// What the platform said, redacted, for a person (never used to decide anything).
fn platform_detail(e: &(dyn std::error::Error + Send + Sync)) -> String {
    redact_text(&e.to_string())
}

/// Tells "locked" from "no provider" on Linux by the Secret Service crate's own error type.
#[cfg(target_os = "linux")]
fn classify_platform(
    e: &(dyn std::error::Error + Send + Sync + 'static),
    access: bool,
) -> KeyringError {
    use secret_service::Error as S;
    let detail = platform_detail(e);
    match e.downcast_ref::<S>() {
        Some(S::Locked | S::NoResult | S::Prompt | S::PromptDisconnected) => {
            KeyringError::Locked { detail }
        }
        Some(S::Unavailable) => KeyringError::NoService { detail },
        _ if access => KeyringError::Locked { detail },
        _ => KeyringError::Platform { detail },
    }
}

#[cfg(not(target_os = "linux"))]
fn classify_platform(
    e: &(dyn std::error::Error + Send + Sync + 'static),
    access: bool,
) -> KeyringError {
    let detail = platform_detail(e);
    if access {
        KeyringError::Locked { detail }
    } else {
        KeyringError::Platform { detail }
    }
}

/// Describes a keyring-core error without ever printing its payload: `BadEncoding` and
/// `BadDataFormat` carry the raw secret bytes, so they are named, never formatted.
/// `NoEntry` is handled by the callers before this.
fn describe(e: &keyring_core::Error) -> KeyringError {
    use keyring_core::Error as K;
    match e {
        K::NoStorageAccess(p) => classify_platform(p.as_ref(), true),
        K::PlatformFailure(p) => classify_platform(p.as_ref(), false),
        K::NoDefaultStore => KeyringError::NoService {
            detail: "no keyring store for this platform".into(),
        },
        K::NotSupportedByStore(what) => KeyringError::NoService {
            detail: format!("not supported by this keyring: {}", redact_text(what)),
        },
        K::TooLong(attribute, limit) => KeyringError::TooLong {
            attribute: attribute.clone(),
            limit: *limit,
        },
        K::BadEncoding(_) => KeyringError::EntryUnreadable {
            why: "is not valid UTF-8".into(),
        },
        K::BadDataFormat(_, _) => KeyringError::EntryUnreadable {
            why: "has an unexpected format".into(),
        },
        K::BadStoreFormat(_) => KeyringError::Platform {
            detail: "the keyring store is damaged".into(),
        },
        K::Invalid(attr, _) => KeyringError::Platform {
            detail: format!("invalid keyring attribute {attr}"),
        },
        K::Ambiguous(entries) => KeyringError::Ambiguous {
            count: entries.len(),
        },
        _ => KeyringError::Platform {
            detail: "unexpected keyring error".into(),
        },
    }
}

/// Decides in microseconds that there is no session bus to talk to (Linux).
#[allow(
    clippy::disallowed_methods,
    reason = "the session bus address is the platform's, read where the D-Bus client would read it; \
              passing it down from the CLI belongs to the storage-trait work (issue 16)"
)]
fn quick_unavailable() -> Option<KeyringError> {
    #[cfg(target_os = "linux")]
    {
        let addr = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
        if addr.is_empty() {
            let runtime_bus = std::env::var_os("XDG_RUNTIME_DIR")
                .map(|d| std::path::PathBuf::from(d).join("bus"))
                .filter(|p| p.exists());
            if runtime_bus.is_none() {
                return Some(KeyringError::NoSessionBus {
                    detail: "DBUS_SESSION_BUS_ADDRESS is not set".into(),
                });
            }
        } else if let Some(path) = addr
            .split(';')
            .next()
            .and_then(|a| a.strip_prefix("unix:path="))
            .map(|p| p.split(',').next().unwrap_or(p))
            && !std::path::Path::new(path).exists()
        {
            return Some(KeyringError::NoSessionBus {
                detail: format!("nothing at {path}"),
            });
        }
        None
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

fn init_store() -> KResult<()> {
    static STORE: OnceLock<KResult<()>> = OnceLock::new();
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
                        k if k.is_unavailable() => k,
                        other => KeyringError::NoService {
                            detail: other.to_string(),
                        },
                    }),
                }
            }
            #[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
            {
                Err(KeyringError::NoService {
                    detail: "no keyring support on this platform".into(),
                })
            }
        })
        .clone()
}

impl KeyringBackend {
    /// Runs `op` against the platform's store on a helper thread, with the timeout.
    fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> keyring_core::Result<T> + Send + 'static,
    ) -> KResult<keyring_core::Result<T>> {
        if let Some(reason) = quick_unavailable() {
            return Err(reason);
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("keyring".into())
            .spawn(move || {
                let result = init_store().map(|()| op());
                let _ = tx.send(result);
            })
            .map_err(|e| KeyringError::Platform {
                detail: format!("cannot start a thread: {e}"),
            })?;
        let started = std::time::Instant::now();
        let result = rx
            .recv_timeout(self.timeout)
            .map_err(|_| KeyringError::TimedOut {
                seconds: self.timeout.as_secs(),
            });
        tracing::debug!(
            "keyring call for {SERVICE}/… took {} ms",
            started.elapsed().as_millis()
        );
        result?
    }

    /// Runs `op` against any `service`/`user` entry on a helper thread, with the timeout.
    fn call_entry<T: Send + 'static>(
        &self,
        service: &str,
        user: &str,
        op: impl FnOnce(&keyring_core::Entry) -> keyring_core::Result<T> + Send + 'static,
    ) -> KResult<keyring_core::Result<T>> {
        let (service, user) = (service.to_owned(), user.to_owned());
        self.call(move || keyring_core::Entry::new(&service, &user).and_then(|entry| op(&entry)))
    }

    /// The user names of every entry of `service` (one per profile for ours), sorted. Uses the
    /// store's search (Secret Service: items whose `service` attribute matches; Keychain:
    /// generic passwords of that service). Stores without a search (Windows without its
    /// `search` feature) answer `NoService`.
    pub(crate) fn list_users(&self, service: &str) -> KResult<Vec<String>> {
        let service = service.to_owned();
        let found = self.call(move || {
            let spec = std::collections::HashMap::from([("service", service.as_str())]);
            keyring_core::Entry::search(&spec).map(|entries| {
                entries
                    .iter()
                    .filter_map(|e| e.get_specifiers())
                    .filter(|(s, _)| *s == service)
                    .map(|(_, user)| user)
                    .collect::<Vec<_>>()
            })
        })?;
        let mut users = found.map_err(|e| describe(&e))?;
        users.sort();
        users.dedup();
        Ok(users)
    }

    /// Proves the keyring works here: writes a throwaway entry of a credential's size under
    /// `service`/`user`, reads it back, compares, deletes it. Returns the three timings, or the
    /// step that failed and why. The entry is deleted even when the read fails.
    pub(crate) fn round_trip(
        &self,
        service: &str,
        user: &str,
        payload: &str,
    ) -> Result<[std::time::Duration; 3], (&'static str, KeyringError)> {
        let timed = |f: &dyn Fn() -> KResult<()>| {
            let started = std::time::Instant::now();
            f().map(|()| started.elapsed())
        };
        let value = payload.to_owned();
        let write = timed(&|| {
            let v = value.clone();
            self.call_entry(service, user, move |e| e.set_password(&v))?
                .map_err(|e| describe(&e))
        })
        .map_err(|e| ("write", e))?;
        let read = timed(&|| match self.read_any(service, user)? {
            Some(back) if back.as_str() == payload => Ok(()),
            Some(_) => Err(KeyringError::EntryUnreadable {
                why: "read back different from what was written".into(),
            }),
            None => Err(KeyringError::EntryUnreadable {
                why: "was not found right after it was written".into(),
            }),
        });
        let delete = timed(&|| self.delete_any(service, user).map(|_| ()));
        let read = read.map_err(|e| ("read", e))?;
        let delete = delete.map_err(|e| ("delete", e))?;
        Ok([write, read, delete])
    }

    /// Reads the profile's entry. `Ok(None)` when there is none.
    pub(crate) fn load(&self, profile: &str) -> KResult<Option<Credential>> {
        let Some(json) = self.read_any(SERVICE, profile)? else {
            return Ok(None);
        };
        serde_json::from_str(&json).map(Some).map_err(|e| {
            // serde_json's Display can quote the value: only the position is used.
            KeyringError::EntryUnreadable {
                why: format!(
                    "is not a kimi-vault credential (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            }
        })
    }

    /// Writes the profile's entry.
    pub(crate) fn save(&self, profile: &str, cred: &Credential) -> KResult<()> {
        let json = cred.to_secret_json();
        self.call_entry(SERVICE, profile, move |e| e.set_password(&json))?
            .map_err(|e| describe(&e))
    }

    /// Reads any entry (`service`/`user`, ours or another tool's) as a string, wiped on drop.
    pub(crate) fn read_any(
        &self,
        service: &str,
        user: &str,
    ) -> KResult<Option<zeroize::Zeroizing<String>>> {
        match self.call_entry(service, user, |e| e.get_password())? {
            Ok(value) => Ok(Some(zeroize::Zeroizing::new(value))),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Deletes any entry (ours or another tool's); false when there was none.
    pub(crate) fn delete_any(&self, service: &str, user: &str) -> KResult<bool> {
        match self.call_entry(service, user, |e| e.delete_credential())? {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(describe(&e)),
        }
    }

    /// Deletes the profile's entry; false when there was none.
    pub(crate) fn delete(&self, profile: &str) -> KResult<bool> {
        self.delete_any(SERVICE, profile)
    }
}
