//! Forwarding one `/v1/<rest>` request to `{API base}/<rest>`: the client's credentials out,
//! a fresh Kimi token in (`Authorization: Bearer` and `x-api-key`), bodies streamed both ways,
//! one forced refresh and one retry after an upstream 401.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, HeaderMap, USER_AGENT};
use hyper::http::uri::PathAndQuery;
use hyper::{Request, Response};

use crate::http::HttpError;
use crate::proxy::body::{self, ProxyBody, RequestLog, UpBody};
use crate::proxy::headers;
use crate::proxy::reflect::TokenForms;
use crate::proxy::respond::{self, Dialect};
use crate::proxy::upstream::Upstream;
use crate::proxy::{Base, Shared};

/// A request is served with a token valid for at least this long (the background refresher
/// renews well before).
pub(crate) const MIN_VALID: i64 = 60;

/// Longest silence between two chunks of an upstream response before it is given up (an event
/// stream may wait minutes between events).
const UPSTREAM_READ_TIMEOUT: Duration = Duration::from_secs(600);

/// True when the path after `/v1/` could leave the API base or mean something else upstream
/// than here: a `.` or `..` segment (also percent-encoded), or any character outside the plain
/// path alphabet: `\` (URL parsers treat it as `/`), `;`, an encoded `/` or `\`, a raw
/// control or non-ASCII byte.
pub(crate) fn has_dot_segment(rest: &str) -> bool {
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~:@!$'()*+,=&%/".contains(&b);
    if !rest.bytes().all(plain) {
        return true;
    }
    // An encoded `/`, `\` or NUL (hex digits in either case). No allocation: this runs for
    // every request.
    let encoded_bad = rest.as_bytes().windows(3).any(|w| {
        w[0] == b'%'
            && matches!(
                (w[1], w[2].to_ascii_lowercase()),
                (b'2', b'f') | (b'5', b'c') | (b'0', b'0')
            )
    });
    encoded_bad || rest.split('/').any(is_dot_segment)
}

/// True for `.` or `..`, each dot possibly written `%2e` (either case).
fn is_dot_segment(segment: &str) -> bool {
    let mut s = segment.as_bytes();
    let mut dots = 0;
    while !s.is_empty() {
        if s[0] == b'.' {
            s = &s[1..];
        } else if s.len() >= 3 && s[0] == b'%' && s[1] == b'2' && s[2].eq_ignore_ascii_case(&b'e') {
            s = &s[3..];
        } else {
            return false;
        }
        dots += 1;
        if dots > 2 {
            return false;
        }
    }
    dots > 0
}

/// Why a request got no response from Kimi.
enum SendError {
    /// The access token holds bytes a header cannot carry; nothing was sent.
    TokenNotAHeader,
    /// The response's headers did not come within [`Limits::upstream_headers`].
    ///
    /// [`Limits::upstream_headers`]: crate::proxy::Limits::upstream_headers
    HeadersTimeout,
    /// The request failed (typed, redacted).
    Http(HttpError),
}

impl SendError {
    /// A gateway timeout (504) rather than a bad gateway (502).
    fn is_timeout(&self) -> bool {
        match self {
            SendError::HeadersTimeout => true,
            SendError::Http(e) => e.is_timeout(),
            SendError::TokenNotAHeader => false,
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::TokenNotAHeader => HttpError::TokenNotAHeader.fmt(f),
            SendError::HeadersTimeout => f.write_str("Kimi sent no response headers in time"),
            SendError::Http(e) => e.fmt(f),
        }
    }
}

/// What one upstream request is made of, apart from its body and token.
struct Outgoing<'a> {
    method: &'a hyper::Method,
    uri: &'a hyper::Uri,
    /// The client's request headers (filtered on the way into each upstream request).
    client_headers: &'a HeaderMap,
}

async fn send(
    shared: &Shared,
    upstream: &Upstream,
    out: &Outgoing<'_>,
    body: UpBody,
    forms: &TokenForms,
) -> Result<Response<Incoming>, SendError> {
    let (bearer, key) = forms.headers().ok_or(SendError::TokenNotAHeader)?;
    let fixed = upstream.fixed_headers();
    // One map, sized once: the client's headers (filtered, values shared), then the device
    // headers, then the token in both forms.
    let mut headers = HeaderMap::with_capacity(out.client_headers.len() + fixed.len() + 2);
    headers::upstream_request_into(out.client_headers, &mut headers);
    for (name, value) in fixed {
        // The client's own User-Agent goes to Kimi (its coding endpoint tells coding agents
        // apart by it); ours is only a default.
        if name == USER_AGENT {
            headers.entry(USER_AGENT).or_insert_with(|| value.clone());
        } else {
            headers.insert(name.clone(), value.clone());
        }
    }
    headers.insert(AUTHORIZATION, bearer.clone());
    headers.insert(headers::name("x-api-key"), key.clone());
    let mut request = Request::new(body);
    *request.method_mut() = out.method.clone();
    *request.uri_mut() = out.uri.clone();
    *request.headers_mut() = headers;
    let sent = upstream.send(request);
    // Kimi's response headers must come within the limit (the body then streams at its pace,
    // under the read timeout between chunks).
    match tokio::time::timeout(shared.limits.upstream_headers, sent).await {
        Err(_) => Err(SendError::HeadersTimeout),
        Ok(result) => result.map_err(|e| SendError::Http(HttpError::from_client(&e))),
    }
}

/// `{base path}/{rest}?{query}` on the base's scheme and host; `None` when it is not a URI.
fn upstream_uri(base: &Base, rest: &str, query: Option<&str>) -> Option<hyper::Uri> {
    let mut pq =
        String::with_capacity(base.path.len() + 1 + rest.len() + query.map_or(0, |q| q.len() + 1));
    pq.push_str(&base.path);
    pq.push('/');
    pq.push_str(rest);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    let mut parts = hyper::http::uri::Parts::default();
    parts.scheme = Some(base.scheme.clone());
    parts.authority = Some(base.authority.clone());
    parts.path_and_query = Some(PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq)).ok()?);
    hyper::Uri::from_parts(parts).ok()
}

/// The token's forms (and its header values) for a request: from the session's cache without
/// a copy on the warm path; otherwise through the session (a refresh, or why there is none).
async fn token_forms(shared: &Shared) -> Result<Arc<TokenForms>, crate::error::Error> {
    if let Some(forms) = shared
        .session
        .with_cached_token(MIN_VALID, |c| shared.forms_for(&c.access_token))
    {
        return Ok(forms);
    }
    let cred = shared
        .on_main(|session| async move { session.token_async(MIN_VALID).await })
        .await?;
    Ok(shared.forms_for(&cred.access_token))
}

/// Forwards the request (`parts` and `client_body`); `rest` is the path after `/v1/`.
pub(crate) async fn forward(
    shared: &Shared,
    upstream: &Upstream,
    parts: &hyper::http::request::Parts,
    client_body: Incoming,
    rest: &str,
    mut log: RequestLog,
) -> Response<ProxyBody> {
    let dialect = Dialect::of(rest);
    if has_dot_segment(rest) {
        log.status = 404;
        log.finished = true;
        return respond::error_in(
            dialect,
            404,
            "not_found_error",
            "kimi-vault proxy: no such path",
        );
    }
    // The base's scheme and host stay as they were checked; only the path and query change,
    // and the path stays below the base's (no dot segment, nothing a parser would normalise).
    let base = shared.base();
    let Some(uri) = upstream_uri(&base, rest, parts.uri.query()) else {
        log.status = 404;
        log.finished = true;
        return respond::error_in(
            dialect,
            404,
            "not_found_error",
            "kimi-vault proxy: no such path",
        );
    };
    let forms = match token_forms(shared).await {
        Ok(forms) => forms,
        Err(e) => {
            let response = respond::no_token(&e, dialect, shared.login_hint.as_deref());
            log.status = response.status().as_u16();
            log.finished = true;
            return response;
        }
    };
    let out = Outgoing {
        method: &parts.method,
        uri: &uri,
        client_headers: &parts.headers,
    };
    let (up_body, replay) = body::tee(client_body, shared.limits.body_stall);
    let started = Instant::now();
    let mut result = send(shared, upstream, &out, up_body, &forms).await;
    let mut retried: Option<Arc<TokenForms>> = None;
    if let Ok(first) = &result
        && first.status() == hyper::StatusCode::UNAUTHORIZED
    {
        // One forced refresh (only if the stored token is still the rejected one), one retry.
        let rejected = forms.token().clone();
        let refreshed = shared
            .on_main(|session| async move { session.force_refresh(&rejected).await })
            .await;
        match (refreshed, replay.body()) {
            (Ok(fresh), Some(bytes)) => {
                tracing::info!("Kimi answered 401: refreshed the token, retrying once");
                let fresh = shared.forms_for(&fresh.access_token);
                result = send(shared, upstream, &out, UpBody::Full(Some(bytes)), &fresh).await;
                retried = Some(fresh);
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
    if log.wanted() {
        log.upstream_ms = Some(started.elapsed().as_millis());
    }
    let answer = match result {
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
            } else if why.is_timeout() {
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
                        base.url.as_str()
                    ),
                )
            };
            log.status = status;
            log.failure = Some(why.to_string());
            return respond::error_in(dialect, status, kind, &message);
        }
    };
    let (mut head, up_body) = answer.into_parts();
    let status = head.status;
    if status == hyper::StatusCode::PAYMENT_REQUIRED {
        tracing::warn!(
            "Kimi answered 402 Payment Required: the Kimi membership of profile '{}' is not active (passed to the client; no refresh)",
            shared.session.profile()
        );
    } else if status == hyper::StatusCode::FORBIDDEN {
        // The body is streamed to the client unread; Kimi's coding endpoint sends this for
        // `access_terminated_error` (SPEC §2: it accepts only the coding agents it knows).
        tracing::warn!(
            "Kimi answered 403 Forbidden (passed to the client; no refresh). With error type access_terminated_error it means that Kimi's coding endpoint did not take the client for a coding agent it knows (such as Claude Code, kimi-cli or kimi-code): the token and the login are fine, the client is not accepted"
        );
    }
    log.status = status.as_u16();
    // Every token this request carried upstream: a header reflecting one of them is dropped.
    let only: [&TokenForms; 1] = [&forms];
    let both: [&TokenForms; 2];
    let tokens: &[&TokenForms] = match retried.as_deref() {
        Some(r) => {
            both = [&forms, r];
            &both
        }
        None => &only,
    };
    headers::client_response_in_place(&mut head.headers, tokens);
    let event_stream = headers::is_event_stream(&head.headers);
    let expected = head
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let mut response = Response::new(body::downstream(
        up_body,
        expected,
        event_stream,
        log,
        &shared.cutoff_rx,
        UPSTREAM_READ_TIMEOUT,
    ));
    *response.status_mut() = status;
    *response.headers_mut() = head.headers;
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_upstream_uri_is_the_base_with_the_path_and_query_appended() {
        for (base, rest, query, want) in [
            (
                "https://api.kimi.com/coding/v1",
                "messages",
                Some("beta=true"),
                "https://api.kimi.com/coding/v1/messages?beta=true",
            ),
            (
                "https://api.kimi.com/coding/v1/",
                "chat/completions",
                None,
                "https://api.kimi.com/coding/v1/chat/completions",
            ),
            (
                "http://127.0.0.1:8080",
                "models",
                Some(""),
                "http://127.0.0.1:8080/models?",
            ),
        ] {
            let url = reqwest::Url::parse(base).unwrap();
            let base = crate::proxy::Base::new("cn", &url).unwrap();
            let uri = super::upstream_uri(&base, rest, query).unwrap();
            assert_eq!(uri.to_string(), want);
        }
    }

    /// The allocating version this replaced, as the reference.
    fn has_dot_segment_reference(rest: &str) -> bool {
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

    proptest::proptest! {
        #[test]
        fn dot_segments_as_before(rest in r"([./%2eEfFcC05a;\\é]|%2[eEfF]|%5[cC]|%00){0,12}") {
            proptest::prop_assert_eq!(super::has_dot_segment(&rest), has_dot_segment_reference(&rest));
        }
    }

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
        for bad in [
            "%2e%2e", "%2E%2e/x", "a/.", "a/%2E", "...%2f", "x%2Fy", "x%5Cy",
        ] {
            assert!(super::has_dot_segment(bad), "{bad}");
        }
        for ok in [
            "messages",
            "chat/completions",
            "models",
            "a..b",
            "x/.y",
            "...",
            "x/%2e%2e%2e",
            "a%2ex",
            "%2",
            "a%",
            "",
        ] {
            assert!(!super::has_dot_segment(ok), "{ok}");
        }
    }
}
