//! The refresh exchange with retries inside a total budget (SPEC §5), and what a grant makes of
//! a stored credential. Single flight is the caller's: it holds the vault lock around this.

use std::time::Duration;

use crate::clock::now_unix;
use crate::error::Error;
use crate::http::Http;
use crate::oauth::endpoints::Endpoints;
use crate::oauth::refresh;
use crate::oauth::response::{TokenGrant, TokenOutcome};
use crate::secret::SecretString;
use crate::session::retry::{self, Attempt, Policy};
use crate::store::Credential;

/// Everything one refresh may take, retries and backoff included.
pub(crate) const REFRESH_BUDGET: Duration = Duration::from_secs(30);
/// Attempts for one refresh (the first try and the retries).
pub(crate) const ATTEMPTS: u32 = 4;
/// First backoff delay; doubles each retry, with ±50 % jitter.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(500);
/// Longest a single attempt may take, so that a hung server still leaves room for a retry.
pub(crate) const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a refresh did not produce tokens.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The refresh token was refused for good (redacted detail).
    Rejected(String),
    /// Network, 429, 5xx or timeouts until the budget or the attempts ran out.
    Transient {
        /// What happened last, redacted.
        message: String,
        /// The server's last `Retry-After`.
        retry_after: Option<Duration>,
    },
    /// An answer this tool cannot use (not worth retrying).
    Failed(Error),
}

/// Exchanges `refresh_token` for new tokens, retrying transient failures with backoff and
/// `Retry-After`, all within [`REFRESH_BUDGET`].
pub(crate) async fn exchange(
    http: &Http,
    endpoints: &Endpoints,
    refresh_token: &SecretString,
) -> Result<TokenGrant, Failure> {
    let policy = Policy {
        budget: REFRESH_BUDGET,
        attempts: ATTEMPTS,
        attempt_timeout: ATTEMPT_TIMEOUT,
        backoff: BACKOFF_BASE,
    };
    let outcome = retry::run(&policy, "refresh", async |timeout| {
        let answer = refresh::request(http, endpoints, refresh_token, timeout).await;
        match answer {
            TokenOutcome::Granted(g) => Attempt::Done(Ok(g)),
            TokenOutcome::Rejected(why) => Attempt::Done(Err(Failure::Rejected(why))),
            TokenOutcome::Transient(why, ra) => Attempt::Transient(why, ra),
            TokenOutcome::Malformed(why) => {
                Attempt::Done(Err(Failure::Failed(Error::RefreshUnusable { why })))
            }
            other => Attempt::Done(Err(Failure::Failed(Error::RefreshUnexpected {
                answer: format!("{other:?}"),
            }))),
        }
    })
    .await;
    let gave_up = match outcome {
        Ok(answer) => return answer,
        Err(gave_up) => gave_up,
    };
    let mut last = gave_up.detail;
    if let Some(ra) = gave_up.retry_after.filter(|_| gave_up.retry_after_too_long) {
        last = format!("{last} (asked to retry after {} s)", ra.as_secs());
    }
    Err(Failure::Transient {
        message: format!(
            "cannot refresh the token: Kimi's auth server at {} is unreachable or failing ({last}); your credential is unchanged, try again later",
            endpoints.oauth_host
        ),
        retry_after: gave_up.retry_after,
    })
}

/// The credential after a refresh: new tokens, the old refresh token when none came back.
pub(crate) fn apply_grant(old: &Credential, grant: TokenGrant) -> Credential {
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
        account: old.account.clone(),
    }
}
