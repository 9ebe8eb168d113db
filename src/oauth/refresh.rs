//! The refresh exchange (protocol only): one `grant_type=refresh_token` request and what its
//! answer means. Retries, budgets and storage are the session layer's.

use std::time::Duration;

use crate::http::Http;
use crate::oauth::endpoints::Endpoints;
use crate::oauth::response::{TokenOutcome, classify_token};
use crate::secret::SecretString;

/// Sends one refresh request and classifies the answer; a network failure is transient.
pub(crate) async fn request(
    http: &Http,
    endpoints: &Endpoints,
    refresh_token: &SecretString,
    timeout: Duration,
) -> TokenOutcome {
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.expose()),
        ("client_id", endpoints.client_id.as_str()),
    ];
    match http.post_form(&endpoints.token_url(), &form, timeout).await {
        Ok(reply) => classify_token(reply.status, &reply.body, reply.retry_after),
        Err(network) => TokenOutcome::Transient(format!("network error: {network}"), None),
    }
}
