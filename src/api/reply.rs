//! What an answer of Kimi's API means, by its status, and the one GET that asks (internal: the
//! session layer decides what to do with each outcome).

use std::time::Duration;

use url::Url;
use zeroize::Zeroizing;

use crate::http::Http;
use crate::redact::redact_body;
use crate::secret::SecretString;

/// What an API answer means.
#[derive(Debug)]
pub enum ApiReply {
    /// 2xx: the body (may hold secrets only by accident; never printed unredacted).
    Ok(Zeroizing<String>),
    /// 401: the access token was refused. Redacted detail.
    Unauthorized(String),
    /// 402: the membership is not active. Redacted detail.
    PaymentRequired(String),
    /// Network, timeout, 408, 429, 5xx: worth another try. Redacted detail and `Retry-After`.
    Transient(String, Option<Duration>),
    /// Anything else. Redacted detail.
    Failed(String),
    /// 403 `access_terminated_error`: the coding API does not accept this client as a coding
    /// agent. Redacted detail.
    AccessTerminated(String),
}

/// Classifies an answer by its status (pure; fuzzed).
pub fn classify(status: u16, body: &str, retry_after: Option<Duration>) -> ApiReply {
    let detail = || format!("HTTP {status}: {}", redact_body(body));
    match status {
        200..=299 => ApiReply::Ok(Zeroizing::new(body.to_owned())),
        401 => ApiReply::Unauthorized(detail()),
        402 => ApiReply::PaymentRequired(redact_body(body)),
        408 | 429 | 500..=599 => ApiReply::Transient(detail(), retry_after),
        403 if super::is_access_terminated(body) => {
            ApiReply::AccessTerminated(super::error_message(body).unwrap_or_default())
        }
        _ => ApiReply::Failed(detail()),
    }
}

/// One `GET url` with the bearer token, classified.
pub(crate) async fn get(
    http: &Http,
    url: &Url,
    token: &SecretString,
    timeout: Duration,
) -> ApiReply {
    match http.get_bearer(url, token, timeout).await {
        Ok(reply) => classify(reply.status, &reply.body, reply.retry_after),
        Err(network) => ApiReply::Transient(format!("network error: {network}"), None),
    }
}
