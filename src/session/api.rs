//! Kimi's API with the profile's token (`usage`, `models`): a valid token first; a 401 forces
//! one refresh (single-flight, and only if the stored token is still the rejected one) and one
//! retry, and a second 401 means a new login is needed; a 402 is an inactive membership (no
//! refresh, never `needs_login`); network failures, 429 and 5xx are retried briefly within a
//! budget, then reported as the service failing.

use std::time::Duration;

use url::Url;
use zeroize::Zeroizing;

use crate::api::reply::{self, ApiReply};
use crate::api::{self, Model, Usage};
use crate::error::{Error, Result};
use crate::http::Http;
use crate::secret::SecretString;
use crate::session::Session;
use crate::session::driver::Driver;
use crate::session::retry::{self, Attempt, Policy};

/// An API call wants a token valid for at least this long (a request takes seconds).
const API_MIN_VALID: i64 = 60;
/// How hard an API call is tried on transient failures (the refresh has its own budget).
const API_RETRIES: Policy = Policy {
    budget: Duration::from_secs(30),
    attempts: 3,
    attempt_timeout: Duration::from_secs(15),
    backoff: Duration::from_millis(500),
};

/// GET with retries on transient failures, within the policy's budget.
pub(super) async fn get_with_retries(http: &Http, url: &Url, token: &SecretString) -> ApiReply {
    let label = format!("GET {url}:");
    let outcome = retry::run(&API_RETRIES, &label, async |timeout| {
        match reply::get(http, url, token, timeout).await {
            ApiReply::Transient(detail, retry_after) => Attempt::Transient(detail, retry_after),
            done => Attempt::Done(done),
        }
    })
    .await;
    outcome.unwrap_or_else(|gave_up| ApiReply::Transient(gave_up.detail, gave_up.retry_after))
}

impl Session {
    /// The account's quota (`GET {base}/usages`). Blocking.
    pub fn usage(&self) -> Result<Usage> {
        let body = self.api_get(api::USAGES_PATH)?;
        api::parse_usages(&body).map_err(|why| Error::UnusableAnswer {
            server: "Kimi's API",
            what: "usage answer",
            why,
        })
    }

    /// The models the account can use (`GET {base}/models`). Blocking.
    pub fn models(&self) -> Result<Vec<Model>> {
        let body = self.api_get(api::MODELS_PATH)?;
        api::parse_models(&body).map_err(|why| Error::UnusableAnswer {
            server: "Kimi's API",
            what: "model list",
            why,
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
                    return Err(Error::ApiRefused {
                        url: url.to_string(),
                        detail,
                    });
                }
                ApiReply::AccessTerminated(detail) => {
                    return Err(Error::ClientNotAccepted { detail });
                }
            }
        }
    }
}
