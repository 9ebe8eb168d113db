//! The session layer: the one place that turns (vault, profile) into a usable access token.
//!
//! - Lock-free read: a stored access token valid for longer than the caller's threshold is
//!   used as it is (the command line's warm `token` starts no runtime, no TLS, no thread).
//! - Single-flight refresh: otherwise take the vault lock, read again (another process may
//!   have refreshed meanwhile), and refresh only if still needed; N processes that need a
//!   refresh at the same moment make exactly one request.
//! - [`Session::force_refresh`] after an upstream 401 refreshes only if the stored access token
//!   is still the rejected one, with the same single flight.
//! - A transient failure is recorded beside the lock for a short back-off; when the stored
//!   access token is still valid it is handed out with a warning (through `tracing`).
//! - Long-lived processes (the proxy) get an in-memory cache and async methods; the refresh
//!   itself runs on a blocking thread, holding the lock, never on the async workers.
//! - A refresh, from its request until its answer is stored, is a critical section
//!   ([`set_critical_section_hook`], [`wait_for_critical_sections`]): the command line defers
//!   SIGINT, SIGTERM and SIGHUP during it; a long-running program waits for it before exiting.

mod api;
mod backoff;
mod client_key;
mod critical;
mod driver;
mod login;
mod refresh;
mod retry;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::runtime::Runtime;

use crate::clock::now_unix;
use crate::error::{Error, Result};
use crate::http::{Http, Purpose};
use crate::oauth::endpoints::{EndpointOverrides, Endpoints, Region};
use crate::secret::SecretString;
use crate::store::{Credential, Loaded, Vault, VaultLock, check_profile_name, device_id};
use driver::Driver;
use refresh::Failure;

pub use client_key::new_client_key;
pub use critical::{
    critical_sections_in_flight, set_critical_section_hook, wait_for_critical_sections,
};
pub use login::{LoginStored, PendingLogin};

/// Locks a std mutex, ignoring poisoning (the data are plain values).
fn guard<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the caller needs of the token.
enum Need {
    /// Valid for more than this many seconds.
    MinValid(i64),
    /// Anything but this token (rejected by the API), still valid.
    Replace(SecretString),
    /// Anything but this token (which nobody rejected: `token --refresh` asked for a new one),
    /// still valid. Not subject to the guard against refreshing a just-refreshed token that the
    /// API rejects too (that guard is about a 401).
    Renew(SecretString),
}

impl Need {
    fn satisfied_by(&self, cred: &Credential) -> bool {
        let left = cred.expires_in(now_unix());
        match self {
            Need::MinValid(min) => left > *min,
            Need::Replace(old) | Need::Renew(old) => left > 0 && !cred.access_token.ct_eq(old),
        }
    }
}

/// A profile's credential, kept usable. Cheap to clone; clones share the cache, the HTTP
/// connection pool and the in-process refresh gate.
///
/// Use either the blocking methods ([`token`](Self::token)) or the async ones
/// ([`token_async`](Self::token_async), [`force_refresh`](Self::force_refresh)) on one session.
#[derive(Clone, Debug)]
pub struct Session {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    vault: Vault,
    profile: String,
    overrides: EndpointOverrides,
    http: OnceLock<Http>,
    /// The blocking methods' own runtime, built at the first request.
    runtime: OnceLock<Runtime>,
    /// The last credential handed out (long-lived processes serve from it while valid).
    cache: Mutex<Option<Credential>>,
    /// One refresh at a time within this process (across processes: the vault lock).
    gate: tokio::sync::Mutex<()>,
    /// When a refresh of the async methods last failed: while the token held in memory is
    /// still valid, a long-lived process does not try again at once.
    last_failure: Mutex<Option<Instant>>,
    /// The token the last forced refresh produced, and when: if that very token is rejected
    /// too, it is not force-refreshed again at once (a 401 for another reason must not rotate
    /// the refresh token on every request).
    last_forced: Mutex<Option<(Instant, SecretString)>>,
    /// Set by [`Session::stop_refreshing`]: no new refresh request is sent.
    stopping: std::sync::atomic::AtomicBool,
    /// What [`Session::resync`] last found in the vault: [`USABLE`], [`LOGGED_OUT`] or
    /// [`NEEDS_LOGIN`]. The async methods answer at once while it is not usable (a logout made
    /// by another process stops a running proxy from handing out the token it held).
    found: std::sync::atomic::AtomicU8,
}

const USABLE: u8 = 0;
const LOGGED_OUT: u8 = 1;
const NEEDS_LOGIN: u8 = 2;

/// What [`Session::resync`] found.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // returned once per resync and matched at once; never stored
pub(crate) enum Found {
    /// A usable credential (now the one served from memory).
    Usable(Credential),
    /// Nothing stored: logged out.
    LoggedOut,
    /// Stored, but its refresh token was rejected.
    NeedsLogin,
}

/// After a failed refresh, the async methods do not try again for this long while the token
/// held in memory is still valid.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// A token obtained by a forced refresh is not force-refreshed again within this long.
const FORCED_AGAIN_AFTER: Duration = Duration::from_secs(30);

impl Session {
    /// A session for `profile` in `vault`, reaching Kimi at the region's endpoints with
    /// `overrides` applied.
    pub fn new(vault: Vault, profile: &str, overrides: EndpointOverrides) -> Result<Self> {
        check_profile_name(profile)?;
        Ok(Session {
            inner: Arc::new(Inner {
                vault,
                profile: profile.to_owned(),
                overrides,
                http: OnceLock::new(),
                runtime: OnceLock::new(),
                cache: Mutex::new(None),
                gate: tokio::sync::Mutex::new(()),
                last_failure: Mutex::new(None),
                last_forced: Mutex::new(None),
                stopping: std::sync::atomic::AtomicBool::new(false),
                found: std::sync::atomic::AtomicU8::new(USABLE),
            }),
        })
    }

    /// The vault.
    pub fn vault(&self) -> &Vault {
        &self.inner.vault
    }

    /// The profile.
    pub fn profile(&self) -> &str {
        &self.inner.profile
    }

    /// The endpoints of `region`, with this session's overrides (checked against the endpoint
    /// rule).
    pub fn endpoints(&self, region: Region) -> Result<Endpoints> {
        Endpoints::resolve(region, &self.inner.overrides)
    }

    /// The endpoints for a stored credential (the region it was logged in to).
    pub fn endpoints_for(&self, cred: &Credential) -> Result<Endpoints> {
        self.endpoints(Region::from_stored(&cred.region))
    }

    /// What is stored for the profile, read without the lock (for `status`).
    pub fn stored(&self) -> Result<Option<Loaded>> {
        self.inner.vault.load(&self.inner.profile)
    }

    /// The HTTP client, made at its first use (it needs the device id, created under the vault
    /// lock the first time: pass the lock when the caller holds it).
    pub(crate) fn http(&self, held: Option<&VaultLock>) -> Result<&Http> {
        if let Some(h) = self.inner.http.get() {
            return Ok(h);
        }
        let id = device_id::load_or_create(self.inner.vault.paths(), held)?;
        tracing::debug!("building the HTTP client");
        Ok(self
            .inner
            .http
            .get_or_init(|| Http::new(&id, Purpose::Calls)))
    }

    fn runtime(&self) -> Result<&Runtime> {
        if let Some(rt) = self.inner.runtime.get() {
            return Ok(rt);
        }
        let rt = driver::current_thread()?;
        Ok(self.inner.runtime.get_or_init(|| rt))
    }

    /// A credential whose access token is valid for more than `min_valid` seconds, refreshing
    /// it (once across all processes) when needed. Blocking: a runtime is built only when a
    /// request must be made. Do not call from async code; use [`token_async`](Self::token_async).
    ///
    /// On Linux, with the keyring backend, the token may come from the kernel keyring cache
    /// (store/kernel_cache.rs): that credential's refresh token is then empty.
    pub fn token(&self, min_valid: i64) -> Result<Credential> {
        if let Some(cred) = self
            .inner
            .vault
            .cached_token(&self.inner.profile, min_valid)
        {
            return Ok(cred);
        }
        self.ensure(&Need::MinValid(min_valid), None)
    }

    /// Refreshes now, whatever the access token's age (`token --refresh`), single-flight: the
    /// stored access token is read first, and when another process has replaced it by the time
    /// this one holds the lock, that new token is used and no second request is made. Blocking.
    pub fn refresh_now(&self) -> Result<Credential> {
        let current = self.read_usable()?;
        self.ensure(&Need::Renew(current.access_token.clone()), None)
    }

    /// After the API rejected `rejected` (HTTP 401): a credential with another valid access
    /// token, refreshing only if the stored one is still the rejected one. Blocking.
    pub fn force_refresh_blocking(&self, rejected: &SecretString) -> Result<Credential> {
        self.ensure(&Need::Replace(rejected.clone()), None)
    }

    /// The async [`token`](Self::token): served from memory while the last token handed out
    /// is valid for more than `min_valid` seconds; otherwise the same single-flight refresh, on
    /// a blocking thread. For a long-lived process, a refresh that fails for any reason but a
    /// rejected login still leaves it the token it holds while that is valid (with a warning),
    /// and the next attempt waits a few seconds.
    pub async fn token_async(&self, min_valid: i64) -> Result<Credential> {
        self.check_found()?;
        let need = Need::MinValid(min_valid);
        if let Some(c) = self.cached(&need) {
            return Ok(c);
        }
        let _gate = self.inner.gate.lock().await;
        if let Some(c) = self.cached(&need) {
            return Ok(c);
        }
        let held = self.cached(&Need::MinValid(0));
        if let Some(c) = &held
            && guard(&self.inner.last_failure).is_some_and(|t| t.elapsed() < RETRY_AFTER_FAILURE)
        {
            return Ok(c.clone());
        }
        match self.ensure_on_blocking_thread(need).await {
            Ok(c) => Ok(c),
            Err(e) => {
                let login_problem =
                    matches!(e, Error::NotLoggedIn { .. } | Error::LoginRequired { .. });
                if login_problem {
                    // Logged out or rejected: the token held in memory is never handed out
                    // again (it was the shortcut that kept a logged-out proxy serving).
                    *guard(&self.inner.cache) = None;
                    return Err(e);
                }
                *guard(&self.inner.last_failure) = Some(Instant::now());
                match self.cached(&Need::MinValid(0)) {
                    Some(c) => {
                        tracing::warn!(
                            "{e}; using the access token held in memory, still valid for {} s",
                            c.expires_in(now_unix())
                        );
                        Ok(c)
                    }
                    _ => Err(e),
                }
            }
        }
    }

    /// The async [`force_refresh_blocking`](Self::force_refresh_blocking). A token that a
    /// forced refresh of this process produced less than 30 s ago is not refreshed again when
    /// it is rejected too (the 401 has another cause): that is an error.
    pub async fn force_refresh(&self, rejected: &SecretString) -> Result<Credential> {
        self.check_found()?;
        let need = Need::Replace(rejected.clone());
        let _gate = self.inner.gate.lock().await;
        if let Some(c) = self.cached(&need) {
            return Ok(c);
        }
        if let Some((at, token)) = &*guard(&self.inner.last_forced)
            && at.elapsed() < FORCED_AGAIN_AFTER
            && token.ct_eq(rejected)
        {
            return Err(Error::RejectedAgain {
                seconds_ago: at.elapsed().as_secs(),
            });
        }
        let fresh = self.ensure_on_blocking_thread(need).await?;
        *guard(&self.inner.last_forced) = Some((Instant::now(), fresh.access_token.clone()));
        Ok(fresh)
    }

    /// The error for a profile [`resync`](Self::resync) found logged out or rejected.
    fn check_found(&self) -> Result<()> {
        match self.inner.found.load(std::sync::atomic::Ordering::Acquire) {
            LOGGED_OUT => Err(self.not_logged_in()),
            NEEDS_LOGIN => {
                Err(self.login_required("the refresh token was rejected earlier".into()))
            }
            _ => Ok(()),
        }
    }

    /// For a long-lived process: reads the stored credential again and makes it the one
    /// served when another process changed it (a new login, another region or account, a
    /// refresh, a rotated proxy client key); a logout or a rejected refresh token makes the
    /// async methods fail at once until a usable credential is stored again. Waits for a
    /// refresh of this process under way (so that its answer is not overwritten by the older
    /// credential read meanwhile).
    pub(crate) async fn resync(&self) -> Result<Found> {
        use std::sync::atomic::Ordering;
        let _gate = self.inner.gate.lock().await;
        let this = self.clone();
        // Silent: this runs every few seconds, and the caller reports what changed (the
        // store's own notes would fill a -v log with one line per look).
        let stored = tokio::task::spawn_blocking(move || {
            tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), || {
                this.stored()
            })
        })
        .await
        .map_err(|e| Error::io("the vault read failed", std::io::Error::other(e)))??;
        let found = match stored.map(|l| l.cred) {
            None => Found::LoggedOut,
            Some(c) if c.needs_login => Found::NeedsLogin,
            Some(c) => Found::Usable(c),
        };
        match &found {
            Found::Usable(c) => {
                let changed = guard(&self.inner.cache).as_ref().is_none_or(|held| {
                    !held.access_token.ct_eq(&c.access_token) || held.region != c.region
                });
                if changed {
                    self.remember(c);
                    *guard(&self.inner.last_failure) = None;
                }
                self.inner.found.store(USABLE, Ordering::Release);
            }
            Found::LoggedOut | Found::NeedsLogin => {
                *guard(&self.inner.cache) = None;
                let state = if matches!(found, Found::LoggedOut) {
                    LOGGED_OUT
                } else {
                    NEEDS_LOGIN
                };
                self.inner.found.store(state, Ordering::Release);
            }
        }
        Ok(found)
    }

    /// Asks this session (and its clones) to send no new refresh request: for a long-running
    /// program about to exit, before it calls [`wait_for_critical_sections`]. A refresh already
    /// sent completes and stores its answer; one not yet sent fails with [`Error::Stopping`].
    pub fn stop_refreshing(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// True while a refresh of the async methods is under way in this process.
    pub fn refresh_in_progress(&self) -> bool {
        self.inner.gate.try_lock().is_err()
    }

    /// The last credential handed out, when it meets `need`.
    pub fn cached_token(&self, min_valid: i64) -> Option<Credential> {
        self.cached(&Need::MinValid(min_valid))
    }

    /// The warm path of a long-lived process (the proxy, on every request): `f` applied to the
    /// cached credential when it is valid for at least `min_valid` s and the profile was not
    /// logged out or rejected meanwhile, without copying it; `None` when
    /// [`Session::token_async`] must be asked (it refreshes, or says why there is no token).
    pub(crate) fn with_cached_token<R>(
        &self,
        min_valid: i64,
        f: impl FnOnce(&Credential) -> R,
    ) -> Option<R> {
        self.check_found().ok()?;
        let need = Need::MinValid(min_valid);
        let cache = guard(&self.inner.cache);
        cache
            .as_ref()
            .filter(|c| !c.needs_login && need.satisfied_by(c))
            .map(f)
    }

    fn cached(&self, need: &Need) -> Option<Credential> {
        let cache = guard(&self.inner.cache);
        cache
            .as_ref()
            .filter(|c| !c.needs_login && need.satisfied_by(c))
            .cloned()
    }

    fn remember(&self, cred: &Credential) {
        *guard(&self.inner.cache) = Some(cred.clone());
    }

    async fn ensure_on_blocking_thread(&self, need: Need) -> Result<Credential> {
        let this = self.clone();
        let handle = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || this.ensure(&need, Some(Driver::Shared(handle))))
            .await
            .map_err(|e| Error::io("the refresh task failed", std::io::Error::other(e)))?
    }

    pub(crate) fn not_logged_in(&self) -> Error {
        Error::NotLoggedIn {
            profile: self.inner.profile.clone(),
            keyring_unreadable: self.inner.vault.keyring_trouble(),
        }
    }

    fn login_required(&self, reason: String) -> Error {
        Error::LoginRequired {
            profile: self.inner.profile.clone(),
            reason,
        }
    }

    /// The stored credential, or why there is none to use.
    fn read_usable(&self) -> Result<Credential> {
        let cred = self.stored()?.ok_or_else(|| self.not_logged_in())?.cred;
        if cred.needs_login {
            return Err(self.login_required("the refresh token was rejected earlier".into()));
        }
        Ok(cred)
    }

    /// The single-flight core. `driver` runs the HTTP exchange; `None` means this session's own
    /// runtime, built only when a request is actually made.
    fn ensure(&self, need: &Need, driver: Option<Driver<'_>>) -> Result<Credential> {
        // Every usable credential read is remembered, even one that does not meet `need`: a
        // long-lived process may still use it while it is valid if the refresh fails.
        let cred = self.read_usable()?;
        self.remember(&cred);
        if need.satisfied_by(&cred) {
            return Ok(cred);
        }
        let vault = &self.inner.vault;
        let lock = vault.lock()?;
        let cred = self.read_usable()?;
        self.remember(&cred);
        if need.satisfied_by(&cred) {
            tracing::info!("another process refreshed the token meanwhile");
            return Ok(cred);
        }
        // SPEC §5: a token a refresh (of any process) produced less than 30 s ago, rejected by
        // the API too: the 401 has another cause; refreshing again would only rotate the
        // refresh token on every run.
        if let Need::Replace(_) = need
            && let Some(age) =
                backoff::refreshed_within_guard(vault.paths(), &self.inner.profile, &lock)
        {
            return Err(Error::ApiUnauthorized {
                profile: self.inner.profile.clone(),
                detail: format!(
                    "the access token a refresh produced {} s ago was rejected too; no refresh is made again within {} s",
                    age.as_secs(),
                    backoff::REJECTED_AGAIN_GUARD.as_secs()
                ),
            });
        }
        if let Some(rec) = backoff::active(vault.paths(), &self.inner.profile, &lock) {
            let age = (crate::clock::now_unix_ms() - rec.at_ms) / 1000;
            let left = (rec.until_ms - crate::clock::now_unix_ms()).max(0) / 1000 + 1;
            let err = Error::Service(format!(
                "{} (reported by a kimi-vault process {age} s ago; no new attempt for {left} s)",
                rec.message
            ));
            return self.after_transient(need, cred, err);
        }
        let endpoints = self.endpoints_for(&cred)?;
        let http = self.http(Some(&lock))?.clone();
        // From before the request until its answer is stored: Kimi rotates the refresh token as
        // it answers, so the process must not end in between (see `critical`).
        let _critical = critical::CriticalSection::enter();
        // Checked inside the section: a program that asked to stop and then waits for the
        // sections in flight either sees this one or keeps it from sending anything.
        if self
            .inner
            .stopping
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Err(Error::Stopping);
        }
        let exchange = refresh::exchange(&http, &endpoints, &cred.refresh_token);
        let outcome = match driver {
            Some(d) => d.block_on(exchange),
            None => Driver::Own(self.runtime()?).block_on(exchange),
        };
        self.settle(need, cred, outcome, &lock)
    }

    /// Stores what the exchange produced, under the lock.
    fn settle(
        &self,
        need: &Need,
        cred: Credential,
        outcome: std::result::Result<crate::oauth::TokenGrant, Failure>,
        lock: &VaultLock,
    ) -> Result<Credential> {
        let (vault, profile) = (&self.inner.vault, self.inner.profile.as_str());
        match outcome {
            Ok(grant) => {
                let fresh = refresh::apply_grant(&cred, grant);
                let backend = vault.save(profile, &fresh, lock, false)?;
                backoff::refreshed(vault.paths(), profile, lock);
                tracing::info!("refreshed the access token ({} backend)", backend.as_str());
                self.remember(&fresh);
                Ok(fresh)
            }
            Err(Failure::Rejected(why)) => {
                let mut marked = cred;
                marked.needs_login = true;
                vault.save(profile, &marked, lock, false)?;
                self.remember(&marked);
                Err(self.login_required(format!("Kimi rejected the refresh token: {why}")))
            }
            Err(Failure::Transient {
                message,
                retry_after,
            }) => {
                backoff::record(vault.paths(), profile, &message, retry_after, lock);
                self.after_transient(need, cred, Error::Service(message))
            }
            Err(Failure::Failed(e)) => Err(e),
        }
    }

    /// After a transient failure: the stored access token while it is still valid (with a
    /// warning), unless the caller needs a different one.
    fn after_transient(&self, need: &Need, cred: Credential, err: Error) -> Result<Credential> {
        let left = cred.expires_in(now_unix());
        // `token --refresh` (`Renew`) too: SPEC §5 hands out a still-valid token after a
        // transient failure, whatever asked for the refresh.
        if matches!(need, Need::MinValid(_) | Need::Renew(_)) && left > 0 {
            tracing::warn!("{err}; handing out the stored access token, still valid for {left} s");
            self.remember(&cred);
            return Ok(cred);
        }
        Err(err)
    }

    /// Removes the profile's credential from every backend. Nothing stored means nothing is
    /// touched (no directory, no lock file is created). An unreadable file vault is kept aside
    /// (`vault.enc.unreadable-<timestamp>`, as `login` does) rather than refused, and the report
    /// says so; unsafe files are still refused.
    pub fn logout(&self) -> Result<Logout> {
        let vault = &self.inner.vault;
        let unreadable = match self.stored() {
            Ok(None) => {
                *guard(&self.inner.cache) = None;
                return Ok(Logout {
                    removed: false,
                    kept_aside: Vec::new(),
                    unreadable: None,
                    keyring_unreadable: vault.keyring_trouble(),
                });
            }
            Ok(Some(_)) => None,
            // An unreadable file vault is reset below; a corrupt keyring entry is simply
            // deleted (deleting does not read it).
            Err(e @ Error::VaultUnreadable { .. })
                if !matches!(
                    &e,
                    Error::VaultUnreadable {
                        problem: crate::error::VaultProblem::Unsafe(_)
                            | crate::error::VaultProblem::Directory(_),
                        ..
                    }
                ) =>
            {
                Some(e.to_string())
            }
            Err(e) => return Err(e),
        };
        let lock = vault.lock()?;
        let (removed, kept_aside) = vault.delete_or_reset(&self.inner.profile, &lock)?;
        drop(lock);
        *guard(&self.inner.cache) = None;
        Ok(Logout {
            removed,
            unreadable: unreadable.filter(|_| !kept_aside.is_empty()),
            kept_aside,
            keyring_unreadable: vault.keyring_trouble(),
        })
    }
}

/// What `logout` did.
#[derive(Debug, Clone)]
pub struct Logout {
    /// True when a credential was removed from a readable backend.
    pub removed: bool,
    /// Unreadable vault files that were kept aside (renamed, never deleted).
    pub kept_aside: Vec<crate::store::KeptAside>,
    /// Why the vault was unreadable, when files were kept aside.
    pub unreadable: Option<String>,
    /// In `auto` mode, why the keyring could not be asked (a credential kept there was not
    /// seen, nor removed).
    pub keyring_unreadable: Option<crate::error::KeyringError>,
}
