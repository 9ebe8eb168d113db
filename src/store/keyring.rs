//! The OS keyring backend (Secret Service, Keychain, Credential Manager through keyring-core).
//!
//! Every call runs on a helper thread with a timeout, so a keyring that never answers (a locked
//! collection waiting on a prompt nobody can see) costs seconds, not a hang. Where there is
//! plainly no D-Bus session, the keyring is declared unavailable without trying.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

use crate::error::KeyringError;
use crate::redact::redact_text;
use crate::store::paths::KEYRING_TIMEOUT_FILE;
use crate::store::record::Credential;

/// Keyring service name; one entry per profile, the profile name as user.
pub const SERVICE: &str = "kimi-vault";
/// How long one keyring call may take.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);
/// After a keyring call timed out, no process using the same vault directory and session bus
/// asks the keyring again for this long (SPEC §4; `doctor` still probes it).
pub const KEYRING_QUIET_AFTER_TIMEOUT: Duration = Duration::from_secs(60);
/// A call not answered after this long is recorded as slow, so that processes starting
/// meanwhile do not each wait for the timeout too.
const SLOW_CALL: Duration = Duration::from_secs(1);

type KResult<T> = std::result::Result<T, KeyringError>;

/// The keyring backend.
#[derive(Debug, Clone)]
pub(crate) struct KeyringBackend {
    timeout: Duration,
    /// Where a timeout is recorded for other processes (`keyring.timeout` in the vault
    /// directory); `None`: not recorded, not consulted.
    memo: Option<PathBuf>,
}

impl Default for KeyringBackend {
    fn default() -> Self {
        KeyringBackend {
            timeout: KEYRING_TIMEOUT,
            memo: None,
        }
    }
}

/// What `keyring.timeout` records: a call that is slow right now, or one that timed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Memo {
    Slow,
    TimedOut,
}

/// The session bus a memo is about (another login session has another keyring).
#[allow(clippy::disallowed_methods)] // the bus the keyring crate itself connects to, not configuration
fn bus_address() -> String {
    std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default()
}

/// The kernel keyring cache's name for our entry of `profile` (kernel_cache.rs).
pub(crate) fn cache_identity(profile: &str) -> Option<crate::store::kernel_cache::Identity> {
    crate::store::kernel_cache::Identity::new(SERVICE, profile, &bus_address())
}

impl KeyringBackend {
    /// The backend, recording a keyring that does not answer in `memo` for other processes.
    pub(crate) fn with_memo(memo: PathBuf) -> Self {
        KeyringBackend {
            memo: Some(memo),
            ..Self::default()
        }
    }

    /// The same backend without the shared record (for `doctor`'s probe, which always asks).
    pub(crate) fn ignoring_memo(&self) -> Self {
        KeyringBackend {
            memo: None,
            ..self.clone()
        }
    }

    /// Why the keyring is not to be asked now: another process recorded a timeout less than a
    /// minute ago, or a call that has been waiting for more than a second and less than the
    /// timeout.
    fn recently_unanswered(&self) -> Option<KeyringError> {
        let path = self.memo.as_ref()?;
        let data = crate::store::fsutil::read_private(path, 4096).ok()??;
        let text = String::from_utf8_lossy(data.expose());
        let mut lines = text.lines();
        let kind = match lines.next()? {
            "slow" => Memo::Slow,
            "timeout" => Memo::TimedOut,
            _ => return None,
        };
        let at_ms: u64 = lines.next()?.parse().ok()?;
        if lines.next()? != bus_address() {
            return None;
        }
        let now = u64::try_from(crate::clock::now_unix_ms()).unwrap_or(0);
        let ago = Duration::from_millis(now.saturating_sub(at_ms));
        let quiet = match kind {
            Memo::Slow => self.timeout,
            Memo::TimedOut => KEYRING_QUIET_AFTER_TIMEOUT,
        };
        (ago < quiet).then(|| KeyringError::RecentlyTimedOut {
            seconds_ago: ago.as_secs(),
            again_in: (quiet - ago).as_secs().max(1),
        })
    }

    /// Clears a recorded timeout (the keyring just answered `doctor`'s probe).
    pub(crate) fn forget_timeout(&self) {
        if self.memo.as_ref().is_some_and(|p| p.exists()) {
            self.record(None);
        }
    }

    /// Records (or, with `None`, clears) the state of the keyring for other processes.
    fn record(&self, memo: Option<Memo>) {
        let Some(path) = self.memo.as_ref() else {
            return;
        };
        let Some(dir) = path.parent() else {
            return;
        };
        let result = match memo {
            None => crate::store::fsutil::remove_if_exists(path),
            Some(kind) => {
                let text = format!(
                    "{}\n{}\n{}\n",
                    if kind == Memo::Slow {
                        "slow"
                    } else {
                        "timeout"
                    },
                    crate::clock::now_unix_ms(),
                    bus_address()
                );
                crate::store::fsutil::ensure_private_dir(dir).and_then(|()| {
                    crate::store::fsutil::write_atomic(dir, KEYRING_TIMEOUT_FILE, text.as_bytes())
                })
            }
        };
        if let Err(e) = result {
            tracing::debug!("cannot record the keyring's state: {e}");
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

/// Reads the Secret Service item of `service`/`user` (the attributes
/// zbus-secret-service-keyring-store gives its items) over a *plain* session.
///
/// The store crate always opens an encrypted session: a Diffie-Hellman exchange computed with a
/// naive big-integer power (95 % of a keyring `token`, 30 M instructions). That encryption only
/// hides the secret from someone who can read the session bus's messages, which is a process of
/// the same user, who can as well ask the Secret Service for the secret itself. So reads, the
/// frequent operation, use a plain session; writes and deletes (rare) still go through the store.
/// SECURITY.md weighs it.
#[cfg(target_os = "linux")]
fn plain_read(service: &str, user: &str) -> KResult<Option<zeroize::Zeroizing<String>>> {
    use secret_service::EncryptionType;
    use secret_service::blocking::SecretService;
    let fail = |e: secret_service::Error| classify_platform(&e, false);
    let ss = SecretService::connect(EncryptionType::Plain).map_err(fail)?;
    let attributes = std::collections::HashMap::from([("service", service), ("username", user)]);
    let found = ss.search_items(attributes).map_err(fail)?;
    if !found.locked.is_empty() {
        let locked: Vec<_> = found.locked.iter().collect();
        ss.unlock_all(&locked)
            .map_err(|e| classify_platform(&e, true))?;
    }
    let items: Vec<_> = found.unlocked.iter().chain(found.locked.iter()).collect();
    match items.as_slice() {
        [] => Ok(None),
        [item] => {
            let bytes = item.get_secret().map_err(|e| classify_platform(&e, true))?;
            match String::from_utf8(bytes) {
                Ok(text) => Ok(Some(zeroize::Zeroizing::new(text))),
                Err(e) => {
                    zeroize::Zeroize::zeroize(&mut e.into_bytes());
                    Err(KeyringError::EntryUnreadable {
                        why: "is not valid UTF-8".into(),
                    })
                }
            }
        }
        many => Err(KeyringError::Ambiguous { count: many.len() }),
    }
}

impl KeyringBackend {
    /// Runs `op` against the platform's store on a helper thread, with the timeout.
    fn call<T: Send + 'static>(
        &self,
        op: impl FnOnce() -> keyring_core::Result<T> + Send + 'static,
    ) -> KResult<keyring_core::Result<T>> {
        self.call_with(true, op)
    }

    /// Runs `op` on a helper thread, with the timeout; with `store`, after setting up the
    /// keyring-core store (which `op` then uses).
    fn call_with<T: Send + 'static>(
        &self,
        store: bool,
        op: impl FnOnce() -> keyring_core::Result<T> + Send + 'static,
    ) -> KResult<keyring_core::Result<T>> {
        if let Some(reason) = quick_unavailable() {
            return Err(reason);
        }
        if let Some(reason) = self.recently_unanswered() {
            return Err(reason);
        }
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("keyring".into())
            .spawn(move || {
                let result = if store {
                    init_store().map(|()| op())
                } else {
                    Ok(op())
                };
                let _ = tx.send(result);
            })
            .map_err(|e| KeyringError::Platform {
                detail: format!("cannot start a thread: {e}"),
            })?;
        let started = std::time::Instant::now();
        let first_wait = if self.memo.is_some() {
            SLOW_CALL.min(self.timeout)
        } else {
            self.timeout
        };
        let result = match rx.recv_timeout(first_wait) {
            Ok(r) => Ok(r),
            Err(_) => {
                // Slow: processes starting now do not wait for it too.
                self.record(Some(Memo::Slow));
                let answer = rx.recv_timeout(self.timeout.saturating_sub(first_wait));
                self.record(answer.is_err().then_some(Memo::TimedOut));
                answer.map_err(|_| KeyringError::TimedOut {
                    seconds: self.timeout.as_secs(),
                })
            }
        };
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
        // The kernel keyring cache's generation, taken before the read (kernel_cache.rs).
        let ticket = crate::store::kernel_cache::ticket(cache_identity(profile));
        let Some(json) = self.read_any(SERVICE, profile)? else {
            return Ok(None);
        };
        let cred: Credential = serde_json::from_str(&json).map_err(|e| {
            // serde_json's Display can quote the value: only the position is used.
            KeyringError::EntryUnreadable {
                why: format!(
                    "is not a kimi-vault credential (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            }
        })?;
        crate::store::kernel_cache::fill(ticket, &cred);
        Ok(Some(cred))
    }

    /// Writes the profile's entry.
    pub(crate) fn save(&self, profile: &str, cred: &Credential) -> KResult<()> {
        let json = cred.to_secret_json();
        // The kernel keyring cache forgets the entry before and after (even a failed write
        // may have been made).
        crate::store::kernel_cache::invalidate(cache_identity(profile));
        let result = self
            .call_entry(SERVICE, profile, move |e| e.set_password(&json))
            .and_then(|r| r.map_err(|e| describe(&e)));
        crate::store::kernel_cache::invalidate(cache_identity(profile));
        result
    }

    /// Reads any entry (`service`/`user`, ours or another tool's) as a string, wiped on drop.
    pub(crate) fn read_any(
        &self,
        service: &str,
        user: &str,
    ) -> KResult<Option<zeroize::Zeroizing<String>>> {
        #[cfg(target_os = "linux")]
        {
            let (service, user) = (service.to_owned(), user.to_owned());
            return self
                .call_with(false, move || Ok(plain_read(&service, &user)))?
                .unwrap_or_else(|e| Err(describe(&e)));
        }
        #[allow(unreachable_code)]
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
        crate::store::kernel_cache::invalidate(cache_identity(profile));
        let result = self.delete_any(SERVICE, profile);
        crate::store::kernel_cache::invalidate(cache_identity(profile));
        result
    }
}
