//! Forwarding one `/v1/<rest>` request to `{API base}/<rest>`: the client's credentials out,
//! a fresh Kimi token in (`Authorization: Bearer` and `x-api-key`), bodies streamed both ways,
//! one forced refresh and one retry after an upstream 401.

use std::time::Instant;

use hyper::body::Incoming;
use hyper::{Request, Response};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::proxy::Shared;
use crate::proxy::body::{self, ProxyBody, RequestLog};
use crate::proxy::headers;
use crate::proxy::reflect::TokenForms;
use crate::proxy::respond;
use crate::secret::SecretString;

/// A request is served with a token valid for at least this long (the background refresher
/// renews well before).
pub(crate) const MIN_VALID: i64 = 60;

/// True when the path after `/v1/` could leave the API base or mean something else upstream
/// than here: a `.` or `..` segment (also percent-encoded), or any character outside the plain
/// path alphabet: `\` (URL parsers treat it as `/`), `;`, an encoded `/` or `\`, a raw
/// control or non-ASCII byte.
pub(crate) fn has_dot_segment(rest: &str) -> bool {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-._~:@!$'()*+,=&%/".contains(c);
    if !rest.chars().all(plain) {
        return true;
    }
    let lower = rest.to_ascii_lowercase();
    if lower.contains("%2f") || lower.contains("%5c") || lower.contains("%00") {
        return true;
    }
    lower.split('/').any(|segment| {
        let decoded = segment.replace("%2e", ".");
        decoded == "." || decoded == ".."
    })
}

/// The upstream request's headers: the client's, filtered, plus the token in both forms.
fn with_token(headers: &HeaderMap, token: &SecretString) -> Option<HeaderMap> {
    let mut text = zeroize::Zeroizing::new(String::with_capacity(token.expose().len() + 7));
    text.push_str("Bearer ");
    text.push_str(token.expose());
    let mut bearer = HeaderValue::from_str(&text).ok()?;
    bearer.set_sensitive(true);
    let mut key = HeaderValue::from_str(token.expose()).ok()?;
    key.set_sensitive(true);
    let mut out = headers.clone();
    out.insert(AUTHORIZATION, bearer);
    out.insert(headers::name("x-api-key"), key);
    Some(out)
}

async fn send(
    shared: &Shared,
    method: &hyper::Method,
    url: &reqwest::Url,
    headers: &HeaderMap,
    body: reqwest::Body,
    token: &SecretString,
) -> Result<reqwest::Response, String> {
    let headers = with_token(headers, token)
        .ok_or_else(|| "the access token is not a valid header value".to_owned())?;
    let sent = shared
        .upstream
        .client()
        .request(method.clone(), url.clone())
        .headers(headers)
        .body(body)
        .send();
    // Kimi's response headers must come within the limit (the body then streams at its pace,
    // under the client's read timeout).
    match tokio::time::timeout(shared.limits.upstream_headers, sent).await {
        Err(_) => Err("headers-timeout".to_owned()),
        Ok(result) => result.map_err(|e| {
            if e.is_timeout() && !e.is_connect() {
                "timeout".to_owned()
            } else {
                crate::http::describe_error(&e)
            }
        }),
    }
}

/// Forwards the request; `rest` is the path after `/v1/`.
pub(crate) async fn forward(
    shared: &Shared,
    request: Request<Incoming>,
    rest: &str,
    mut log: RequestLog,
) -> Response<ProxyBody> {
    if has_dot_segment(rest) {
        log.status = 404;
        log.finished = true;
        return respond::error(404, "not_found_error", "kimi-vault proxy: no such path");
    }
    let (parts, client_body) = request.into_parts();
    // The base's scheme and host stay as they were checked; only the path and query change,
    // and the path stays below the base's.
    let base = shared.base();
    let base_path = base.path().trim_end_matches('/');
    let mut url = base.clone();
    url.set_path(&format!("{base_path}/{rest}"));
    url.set_query(parts.uri.query());
    if !url.path().starts_with(&format!("{base_path}/")) {
        log.status = 404;
        log.finished = true;
        return respond::error(404, "not_found_error", "kimi-vault proxy: no such path");
    }
    let up_headers = headers::upstream_request(&parts.headers);
    let token = match shared.session.token_async(MIN_VALID).await {
        Ok(cred) => cred.access_token,
        Err(e) => {
            let response = respond::no_token(&e, rest);
            log.status = response.status().as_u16();
            log.finished = true;
            return response;
        }
    };
    let (up_body, replay) = body::tee(client_body, shared.limits.body_stall);
    let started = Instant::now();
    let mut result = send(shared, &parts.method, &url, &up_headers, up_body, &token).await;
    let mut retried_with = None;
    if let Ok(first) = &result
        && first.status() == reqwest::StatusCode::UNAUTHORIZED
    {
        // One forced refresh (only if the stored token is still the rejected one), one retry.
        match (shared.session.force_refresh(&token).await, replay.body()) {
            (Ok(fresh), Some(bytes)) => {
                tracing::info!("Kimi answered 401: refreshed the token, retrying once");
                result = send(
                    shared,
                    &parts.method,
                    &url,
                    &up_headers,
                    reqwest::Body::from(bytes),
                    &fresh.access_token,
                )
                .await;
                retried_with = Some(fresh.access_token);
            }
            (Ok(_), None) => tracing::warn!(
                "Kimi answered 401 to a request whose body cannot be sent again ({}): the 401 goes to the client; the token was refreshed for the next request",
                if replay.overflowed() {
                    "larger than 1 MiB"
                } else {
                    "not read to its end"
                }
            ),
            (Err(e), _) => tracing::warn!(
                "Kimi answered 401 and the token was not refreshed ({e}): the 401 goes to the client"
            ),
        }
    }
    log.upstream_ms = Some(started.elapsed().as_millis());
    let upstream = match result {
        Ok(r) => r,
        Err(why) => {
            log.finished = true;
            let (status, kind, message) = if replay.stalled() {
                (
                    408,
                    "invalid_request_error",
                    format!(
                        "kimi-vault proxy: the request body sent nothing for {} s and was dropped",
                        shared.limits.body_stall.as_secs()
                    ),
                )
            } else if replay.client_failed() {
                (
                    400,
                    "invalid_request_error",
                    "kimi-vault proxy: the request body could not be read (it was not what its headers claimed)".to_owned(),
                )
            } else if why == "timeout" || why == "headers-timeout" {
                (
                    504,
                    "api_error",
                    "kimi-vault proxy: Kimi did not answer in time".to_owned(),
                )
            } else {
                (
                    502,
                    "api_error",
                    format!(
                        "kimi-vault proxy: cannot reach Kimi at {}: {why}",
                        base.as_str()
                    ),
                )
            };
            log.status = status;
            log.failure = Some(why);
            return respond::error(status, kind, &message);
        }
    };
    let status = upstream.status();
    if status == reqwest::StatusCode::PAYMENT_REQUIRED {
        tracing::warn!(
            "Kimi answered 402 Payment Required: the Kimi membership of profile '{}' is not active (passed to the client; no refresh)",
            shared.session.profile()
        );
    }
    log.status = status.as_u16();
    // Every token this request carried upstream: a header reflecting one of them is dropped.
    let first = shared.forms_for(&token);
    let retried = retried_with.as_ref().map(|t| shared.forms_for(t));
    let only: [&TokenForms; 1] = [&first];
    let both: [&TokenForms; 2];
    let tokens: &[&TokenForms] = match retried.as_deref() {
        Some(r) => {
            both = [&first, r];
            &both
        }
        None => &only,
    };
    let down_headers = headers::client_response(upstream.headers(), tokens);
    let event_stream = headers::is_event_stream(&down_headers);
    let mut response = Response::new(body::downstream(
        upstream,
        event_stream,
        log,
        &shared.cutoff_rx,
    ));
    *response.status_mut() = status;
    *response.headers_mut() = down_headers;
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_segments() {
        for bad in [
            "..",
            "a/../b",
            "%2e%2e/x",
            "%2E.",
            "./x",
            "a/%2e",
            "a\\..\\..\\x",
            "x\\.%2e",
            "a%2f..%2fb",
            "a%5c..",
            "a;b",
            "a%00",
            "caf\u{e9}",
        ] {
            assert!(super::has_dot_segment(bad), "{bad}");
        }
        for ok in ["messages", "chat/completions", "models", "a..b", "x/.y"] {
            assert!(!super::has_dot_segment(ok), "{ok}");
        }
    }
}
