//! Kimi's API with the profile's token (`usage`, `models`): a valid token first; a 401 forces
//! one refresh (single-flight, and only if the stored token is still the rejected one) and one
//! retry, and a second 401 means a new login is needed; a 402 is an inactive membership (no
//! refresh, never `needs_login`); network failures, 429 and 5xx are retried briefly within a
//! budget, then reported as the service failing.

use std::time::Duration;

use tokio::time::Instant;
use url::Url;
use zeroize::Zeroizing;

use crate::api::reply::{self, ApiReply};
use crate::api::{self, Model, Usage};
use crate::error::{Error, Result};
use crate::http::Http;
use crate::secret::SecretString;
use crate::session::Session;
use crate::session::driver::Driver;
use crate::session::refresh::jitter;

/// An API call wants a token valid for at least this long (a request takes seconds).
const API_MIN_VALID: i64 = 60;
/// Everything one API call may take, retries included (the refresh has its own budget).
const API_BUDGET: Duration = Duration::from_secs(30);
/// Attempts of one call on transient failures.
const API_ATTEMPTS: u32 = 3;
/// Longest a single attempt may take.
const API_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// First backoff delay; doubles each retry, with jitter.
const API_BACKOFF: Duration = Duration::from_millis(500);

/// GET with retries on transient failures, within [`API_BUDGET`].
async fn get_with_retries(http: &Http, url: &Url, token: &SecretString) -> ApiReply {
    let deadline = Instant::now() + API_BUDGET;
    let mut attempt = 0;
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let reply = reply::get(http, url, token, remaining.min(API_ATTEMPT_TIMEOUT)).await;
        let ApiReply::Transient(detail, retry_after) = reply else {
            return reply;
        };
        attempt += 1;
        tracing::info!("GET {url}: attempt {attempt} failed: {detail}");
        let wait = retry_after.unwrap_or_else(|| jitter(API_BACKOFF * 2u32.pow(attempt - 1)));
        let remaining = deadline.saturating_duration_since(Instant::now());
        if attempt >= API_ATTEMPTS || wait + Duration::from_secs(1) > remaining {
            return ApiReply::Transient(detail, retry_after);
        }
        tokio::time::sleep(wait).await;
    }
}

impl Session {
    /// The account's quota (`GET {base}/usages`). Blocking.
    pub fn usage(&self) -> Result<Usage> {
        let body = self.api_get(api::USAGES_PATH)?;
        api::parse_usages(&body).map_err(|why| {
            Error::Protocol(format!("Kimi's API sent an unusable usage answer ({why})"))
        })
    }

    /// The models the account can use (`GET {base}/models`). Blocking.
    pub fn models(&self) -> Result<Vec<Model>> {
        let body = self.api_get(api::MODELS_PATH)?;
        api::parse_models(&body).map_err(|why| {
            Error::Protocol(format!("Kimi's API sent an unusable model list ({why})"))
        })
    }

    /// `GET {base}/{path}` with the profile's token, in the profile's region: the 2xx body.
    fn api_get(&self, path: &str) -> Result<Zeroizing<String>> {
        let mut cred = self.token(API_MIN_VALID)?;
        let mut refreshed = false;
        loop {
            let url = self.endpoints_for(&cred)?.api_url(path);
            let http = self.http(None)?.clone();
            let started = std::time::Instant::now();
            let reply = Driver::Own(self.runtime()?).block_on(get_with_retries(
                &http,
                &url,
                &cred.access_token,
            ));
            tracing::info!("GET {url} answered in {} ms", started.elapsed().as_millis());
            match reply {
                ApiReply::Ok(body) => return Ok(body),
                ApiReply::Unauthorized(detail) if !refreshed => {
                    tracing::info!(
                        "Kimi's API refused the access token ({detail}); refreshing it once"
                    );
                    cred = self.force_refresh_blocking(&cred.access_token)?;
                    refreshed = true;
                }
                ApiReply::Unauthorized(detail) => {
                    return Err(Error::ApiUnauthorized {
                        profile: self.profile().to_owned(),
                        detail,
                    });
                }
                ApiReply::PaymentRequired(detail) => {
                    return Err(Error::MembershipInactive { detail });
                }
                ApiReply::Transient(detail, _) => {
                    return Err(Error::Service(format!(
                        "Kimi's API at {url} is unreachable or failing ({detail}); try again later"
                    )));
                }
                ApiReply::Failed(detail) => {
                    return Err(Error::Protocol(format!(
                        "Kimi's API refused GET {url} ({detail})"
                    )));
                }
            }
        }
    }
}
