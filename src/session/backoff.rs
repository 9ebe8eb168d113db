//! The shared back-off after a transient refresh failure: recorded beside the lock, so that
//! processes that waited for that refresh report the same outcome at once instead of each
//! repeating it in turn. Written under the vault lock, atomically, 0600.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::now_unix_ms;
use crate::store::VaultPaths;
use crate::store::fsutil;
use crate::store::lock::VaultLock;
use crate::store::paths::BACKOFF_FILE;

/// Back-off after a transient failure when the server named no `Retry-After`.
pub(crate) const DEFAULT_BACKOFF: Duration = Duration::from_secs(10);
/// Longest back-off recorded, whatever `Retry-After` says.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Largest record file read.
const MAX_BYTES: u64 = 64 * 1024;

/// One profile's recorded failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Recorded {
    /// When it was recorded, Unix milliseconds.
    pub at_ms: i64,
    /// Until when no new refresh is attempted, Unix milliseconds.
    pub until_ms: i64,
    /// The failure, as reported (redacted; never a secret).
    pub message: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Records {
    profiles: BTreeMap<String, Recorded>,
    /// When a refresh last produced a token, per profile (Unix milliseconds; kept
    /// [`REJECTED_AGAIN_GUARD`]): a token that fresh being rejected by the API is not refreshed
    /// again by any process (SPEC §5).
    #[serde(default)]
    refreshed: BTreeMap<String, i64>,
}

/// A token a refresh produced less than this long ago is not refreshed again after an API 401.
pub(crate) const REJECTED_AGAIN_GUARD: Duration = Duration::from_secs(30);

impl Records {
    fn is_empty(&self) -> bool {
        self.profiles.is_empty() && self.refreshed.is_empty()
    }

    fn prune(&mut self, now: i64) {
        self.profiles.retain(|_, r| r.until_ms > now);
        let guard = REJECTED_AGAIN_GUARD.as_millis() as i64;
        self.refreshed
            .retain(|_, at| *at <= now && now - *at < guard);
    }
}

fn read(paths: &VaultPaths) -> Records {
    match fsutil::read_private(&paths.backoff(), MAX_BYTES) {
        Ok(Some(bytes)) => serde_json::from_slice(bytes.expose()).unwrap_or_default(),
        Ok(None) => Records::default(),
        Err(e) => {
            tracing::debug!("ignoring the refresh back-off record: {e}");
            Records::default()
        }
    }
}

fn write(paths: &VaultPaths, records: &Records) {
    let result = if records.is_empty() {
        match std::fs::remove_file(paths.backoff()) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
            _ => Ok(()),
        }
    } else {
        let json = serde_json::to_vec(records).expect("records serialize");
        fsutil::sweep_stale_temps(paths.home(), BACKOFF_FILE);
        fsutil::write_atomic(paths.home(), BACKOFF_FILE, &json).map_err(|e| e.to_string())
    };
    if let Err(e) = result {
        tracing::debug!("cannot update the refresh back-off record: {e}");
    }
}

/// The failure recorded for `profile`, if its back-off has not run out.
pub(crate) fn active(paths: &VaultPaths, profile: &str, _lock: &VaultLock) -> Option<Recorded> {
    let now = now_unix_ms();
    read(paths)
        .profiles
        .remove(profile)
        .filter(|r| r.until_ms > now && r.at_ms <= now)
}

/// Records a transient failure for `profile`, backing off for `retry_after` (bounded) or the
/// default.
pub(crate) fn record(
    paths: &VaultPaths,
    profile: &str,
    message: &str,
    retry_after: Option<Duration>,
    _lock: &VaultLock,
) {
    let now = now_unix_ms();
    let wait = retry_after.unwrap_or(DEFAULT_BACKOFF).min(MAX_BACKOFF);
    let mut records = read(paths);
    records.prune(now);
    records.profiles.insert(
        profile.to_owned(),
        Recorded {
            at_ms: now,
            until_ms: now + wait.as_millis() as i64,
            message: message.to_owned(),
        },
    );
    write(paths, &records);
}

/// After a successful refresh: forgets `profile`'s failure and notes when the token was
/// produced (for [`refreshed_within_guard`]).
pub(crate) fn refreshed(paths: &VaultPaths, profile: &str, _lock: &VaultLock) {
    let mut records = read(paths);
    let now = now_unix_ms();
    records.profiles.remove(profile);
    records.prune(now);
    records.refreshed.insert(profile.to_owned(), now);
    write(paths, &records);
}

/// After a login: forgets `profile`'s recorded failure and refresh time (they were about the
/// credential the login replaced; the new token was produced by no refresh).
pub(crate) fn forget(paths: &VaultPaths, profile: &str, _lock: &VaultLock) {
    let mut records = read(paths);
    let failure = records.profiles.remove(profile).is_some();
    let refreshed = records.refreshed.remove(profile).is_some();
    if failure || refreshed {
        records.prune(now_unix_ms());
        write(paths, &records);
    }
}

/// How long ago a refresh produced `profile`'s token, when less than [`REJECTED_AGAIN_GUARD`].
pub(crate) fn refreshed_within_guard(
    paths: &VaultPaths,
    profile: &str,
    _lock: &VaultLock,
) -> Option<Duration> {
    let now = now_unix_ms();
    let mut records = read(paths);
    records.prune(now);
    records
        .refreshed
        .get(profile)
        .map(|at| Duration::from_millis((now - at) as u64))
}
