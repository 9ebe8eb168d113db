//! RFC 8628 device authorization grant against Kimi's auth server (protocol only).

use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, LoginFailure, Result};
use crate::http::Http;
use crate::oauth::endpoints::Endpoints;
use crate::oauth::response::{
    DeviceAuthorization, TokenGrant, TokenOutcome, classify_token, parse_device_authorization,
};
use crate::redact::redact_body;

/// Extra seconds added to the interval on `slow_down` (RFC 8628 §3.5).
pub(crate) const SLOW_DOWN_STEP: u64 = 5;
/// Consecutive transient failures tolerated while polling.
const MAX_POLL_FAILURES: u32 = 5;
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What happens while waiting for the user, for the caller to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginEvent {
    /// One more poll found the authorization still pending.
    Waiting,
    /// The server asked to poll more slowly; the new interval in seconds.
    SlowDown(u64),
}

fn service(endpoints: &Endpoints, detail: &str) -> Error {
    Error::Service(format!(
        "Kimi's auth server at {} is unreachable or failing: {detail}",
        endpoints.oauth_host
    ))
}

/// Asks for a device code.
pub(crate) async fn start(http: &Http, endpoints: &Endpoints) -> Result<DeviceAuthorization> {
    let reply = http
        .post_form(
            &endpoints.device_authorization_url(),
            &[("client_id", endpoints.client_id.as_str())],
            REQUEST_TIMEOUT,
        )
        .await
        .map_err(|e| service(endpoints, &e.to_string()))?;
    match reply.status {
        200..=299 => parse_device_authorization(&reply.body).map_err(|e| Error::UnusableAnswer {
            server: "Kimi's auth server",
            what: "device authorization",
            why: e,
        }),
        429 | 500..=599 => Err(service(
            endpoints,
            &format!("HTTP {}: {}", reply.status, redact_body(&reply.body)),
        )),
        status => Err(Error::DeviceAuthorizationRefused {
            status,
            detail: redact_body(&reply.body),
        }),
    }
}

/// Polls the token endpoint until the user approves, denies, or the code expires.
pub(crate) async fn poll(
    http: &Http,
    endpoints: &Endpoints,
    auth: &DeviceAuthorization,
    on_event: &mut (dyn FnMut(LoginEvent) + Send),
) -> Result<TokenGrant> {
    let deadline = Instant::now() + Duration::from_secs(auth.expires_in);
    let mut interval = auth.interval;
    let mut failures = 0;
    let url = endpoints.token_url();
    loop {
        let wait = Duration::from_secs(interval);
        if Instant::now() + wait > deadline {
            return Err(Error::LoginFailed(LoginFailure::Expired));
        }
        tokio::time::sleep(wait).await;
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", auth.device_code.expose()),
            ("client_id", endpoints.client_id.as_str()),
        ];
        let outcome = match http.post_form(&url, &form, REQUEST_TIMEOUT).await {
            Ok(reply) => classify_token(reply.status, &reply.body, reply.retry_after),
            Err(e) => TokenOutcome::Transient(format!("network error: {e}"), None),
        };
        match outcome {
            TokenOutcome::Granted(g) => return Ok(g),
            TokenOutcome::Pending => {
                failures = 0;
                on_event(LoginEvent::Waiting);
            }
            TokenOutcome::SlowDown => {
                interval += SLOW_DOWN_STEP;
                tracing::info!("the server asked to slow down: polling every {interval} s");
                on_event(LoginEvent::SlowDown(interval));
            }
            TokenOutcome::Expired => return Err(Error::LoginFailed(LoginFailure::Expired)),
            TokenOutcome::Denied => return Err(Error::LoginFailed(LoginFailure::Denied)),
            TokenOutcome::Transient(why, retry_after) => {
                failures += 1;
                if failures >= MAX_POLL_FAILURES {
                    return Err(service(endpoints, &why));
                }
                if let Some(ra) = retry_after {
                    tokio::time::sleep(ra.min(Duration::from_secs(30))).await;
                }
            }
            TokenOutcome::Rejected(why) | TokenOutcome::Malformed(why) => {
                return Err(Error::LoginRefused { detail: why });
            }
        }
    }
}
