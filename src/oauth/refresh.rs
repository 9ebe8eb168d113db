//! Refresh that is single-flight across processes (SPEC §5).
//!
//! Read without the lock; if the access token is good for longer than the threshold, done.
//! Otherwise take the vault lock, read again (another process may have refreshed meanwhile), and
//! refresh only if still needed. Transient failures retry with exponential backoff and jitter,
//! honouring `Retry-After`; a rejected refresh token marks the profile `needs_login`.

use std::time::Duration;

use crate::diag::{note, now_unix};
use crate::error::{Error, Result, profile_flag};
use crate::oauth::endpoints::{Endpoints, Region};
use crate::oauth::http::Http;
use crate::oauth::response::{TokenGrant, TokenOutcome, classify_token};
use crate::secret::SecretString;
use crate::store::{Credential, Vault, device_id};

/// Attempts for one refresh (the first try and the retries).
pub const ATTEMPTS: u32 = 4;
/// First backoff delay; doubles each retry, with ±50 % jitter.
pub const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest `Retry-After` honoured; a longer one ends the retries.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Why a refresh did not produce tokens.
#[derive(Debug)]
pub enum RefreshFailure {
    /// The refresh token was refused for good (redacted detail).
    Rejected(String),
    /// Anything else: transient failures exhausted (exit 5), malformed answers (exit 1).
    Failed(Error),
}

fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    let _ = getrandom::fill(&mut b);
    let frac = u16::from_le_bytes(b) as f64 / u16::MAX as f64; // 0..1
    d.mul_f64(0.5 + frac)
}

/// Sends `grant_type=refresh_token`, retrying transient failures.
pub fn request_refresh(
    http: &Http,
    endpoints: &Endpoints,
    refresh_token: &SecretString,
) -> std::result::Result<TokenGrant, RefreshFailure> {
    let url = endpoints.token_url();
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", endpoints.client_id.as_str()),
    ];
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        let (detail, retry_after) = match http.post_form(&url, &form) {
            Err(network) => (format!("network error: {network}"), None),
            Ok(reply) => match classify_token(reply.status, &reply.body, reply.retry_after) {
                TokenOutcome::Granted(g) => return Ok(g),
                TokenOutcome::Rejected(why) => return Err(RefreshFailure::Rejected(why)),
                TokenOutcome::Transient(why, ra) => (why, ra),
                TokenOutcome::Malformed(why) => {
                    return Err(RefreshFailure::Failed(Error::Protocol(format!(
                        "Kimi's auth server sent an unusable refresh response ({why}); your credential is unchanged, try again later"
                    ))));
                }
                other => {
                    return Err(RefreshFailure::Failed(Error::Protocol(format!(
                        "Kimi's auth server answered the refresh with {other:?}; your credential is unchanged"
                    ))));
                }
            },
        };
        last = detail;
        if attempt + 1 == ATTEMPTS {
            break;
        }
        let wait = match retry_after {
            Some(ra) if ra > MAX_RETRY_AFTER => {
                last = format!("{last} (asked to retry after {} s)", ra.as_secs());
                break;
            }
            Some(ra) => ra,
            None => jitter(BACKOFF_BASE * 2u32.pow(attempt)),
        };
        std::thread::sleep(wait);
    }
    Err(RefreshFailure::Failed(Error::Service(format!(
        "cannot refresh the token: Kimi's auth server at {} is unreachable or failing ({last}); your credential is unchanged, try again later",
        endpoints.oauth_host
    ))))
}

/// Returns a credential whose access token is valid for more than `min_valid` seconds,
/// refreshing it (once across all processes) when needed.
pub fn fresh_credential(vault: &Vault, profile: &str, min_valid: i64) -> Result<Credential> {
    refresh_when(vault, profile, |c| c.expires_in(now_unix()) <= min_valid)
}

fn not_logged_in(vault: &Vault, profile: &str) -> Error {
    Error::NotLoggedIn {
        profile: profile.to_owned(),
        flag: profile_flag(profile),
        note: vault
            .keyring_trouble()
            .map(|r| format!(" here (the OS keyring could not be read: {r}; if you logged in with it, fix that and retry)"))
            .unwrap_or_default(),
    }
}

fn login_required(profile: &str, why: &str) -> Error {
    Error::LoginRequired {
        profile: profile.to_owned(),
        flag: profile_flag(profile),
        why: why.to_owned(),
    }
}

fn usable(vault: &Vault, profile: &str, cred: Option<Credential>) -> Result<Credential> {
    let cred = cred.ok_or_else(|| not_logged_in(vault, profile))?;
    if cred.needs_login {
        return Err(login_required(
            profile,
            "the refresh token was rejected earlier",
        ));
    }
    Ok(cred)
}

fn refresh_when(
    vault: &Vault,
    profile: &str,
    needs_refresh: impl Fn(&Credential) -> bool,
) -> Result<Credential> {
    let cred = usable(vault, profile, vault.load(profile)?.map(|l| l.cred))?;
    if !needs_refresh(&cred) {
        return Ok(cred);
    }
    let lock = vault.lock()?;
    note(&format!(
        "waited {} ms for the vault lock",
        lock.waited().as_millis()
    ));
    let cred = usable(vault, profile, vault.load(profile)?.map(|l| l.cred))?;
    if !needs_refresh(&cred) {
        note("another process refreshed the token meanwhile");
        return Ok(cred);
    }
    let endpoints = Endpoints::resolve(Region::from_stored(&cred.region))?;
    let http = Http::new(&device_id::load_or_create(vault.paths())?);
    match request_refresh(&http, &endpoints, &cred.refresh_token) {
        Ok(grant) => {
            let fresh = apply_grant(&cred, grant);
            let backend = vault.save(profile, &fresh, &lock, false)?;
            note(&format!(
                "refreshed the access token ({} backend)",
                backend.as_str()
            ));
            Ok(fresh)
        }
        Err(RefreshFailure::Rejected(why)) => {
            let mut marked = cred.clone();
            marked.needs_login = true;
            vault.save(profile, &marked, &lock, false)?;
            Err(login_required(
                profile,
                &format!("Kimi rejected the refresh token: {why}"),
            ))
        }
        Err(RefreshFailure::Failed(e)) => Err(e),
    }
}

/// The credential after a refresh: new tokens, the old refresh token when none came back.
pub fn apply_grant(old: &Credential, grant: TokenGrant) -> Credential {
    Credential {
        access_token: grant.access_token,
        refresh_token: grant
            .refresh_token
            .unwrap_or_else(|| old.refresh_token.clone()),
        expires_at: now_unix() + grant.expires_in,
        scope: grant.scope.unwrap_or_else(|| old.scope.clone()),
        token_type: grant.token_type.unwrap_or_else(|| old.token_type.clone()),
        region: old.region.clone(),
        needs_login: false,
        updated_at_ms: old.updated_at_ms,
        proxy_client_key: old.proxy_client_key.clone(),
    }
}
