//! Which headers cross the proxy: hop-by-hop headers (and those named in `Connection`) never
//! do; the client's credentials, `Cookie` and `Proxy-Authorization` are dropped on the way up
//! (the Kimi token replaces them); `Set-Cookie` is dropped on the way down. Everything else
//! (`anthropic-version`, `anthropic-beta`, `content-type`, …) is forwarded.

use reqwest::header::{CONNECTION, HeaderMap, HeaderName};

use crate::proxy::reflect::TokenForms;

/// Hop-by-hop headers (RFC 9110 §7.6.1, plus the legacy ones still seen).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Dropped from requests on top of the hop-by-hop ones.
const REQUEST_DROPPED: &[&str] = &["host", "authorization", "x-api-key", "cookie", "expect"];

/// Dropped from responses on top of the hop-by-hop ones.
const RESPONSE_DROPPED: &[&str] = &["set-cookie"];

/// Names listed in the `Connection` header(s), lower-cased.
fn named_in_connection(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|name| name.trim().to_ascii_lowercase())
        .filter(|name| !name.is_empty())
        .collect()
}

fn filtered(
    headers: &HeaderMap,
    dropped: &[&str],
    device_headers_too: bool,
    tokens: &[&TokenForms],
) -> HeaderMap {
    let named = named_in_connection(headers);
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let n = name.as_str();
        if HOP_BY_HOP.contains(&n)
            || dropped.contains(&n)
            || named.iter().any(|x| x == n)
            || (device_headers_too && n.starts_with("x-msh-"))
        {
            continue;
        }
        if tokens.iter().any(|t| t.carried_by(value.as_bytes())) {
            tracing::warn!(
                "Kimi's response header {n} carried the access token (raw or encoded): dropped, not passed to the client"
            );
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    out
}

/// The client's headers as they go to Kimi, before the token and the device headers are added
/// (a client's own `x-msh-*` headers are dropped: the proxy's are the ones Kimi sees).
pub(crate) fn upstream_request(headers: &HeaderMap) -> HeaderMap {
    filtered(headers, REQUEST_DROPPED, true, &[])
}

/// Kimi's headers as they go back to the client, without any that carries one of `tokens`
/// (the tokens injected into the request) in any of its forms.
pub(crate) fn client_response(headers: &HeaderMap, tokens: &[&TokenForms]) -> HeaderMap {
    filtered(headers, RESPONSE_DROPPED, false, tokens)
}

/// True for a `text/event-stream` response.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("text/event-stream")
        })
}

/// A header name from a static lower-case string.
pub(crate) fn name(s: &'static str) -> HeaderName {
    HeaderName::from_static(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn request_filtering() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("host", "127.0.0.1:18462"),
            ("authorization", "Bearer kvp-key"),
            ("x-api-key", "kvp-key"),
            ("cookie", "a=b"),
            ("proxy-authorization", "Basic x"),
            ("connection", "keep-alive, X-Private-Hop"),
            ("x-private-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "h2c"),
            ("anthropic-version", "2023-06-01"),
            ("anthropic-beta", "tools-2024"),
            ("content-type", "application/json"),
            ("content-length", "12"),
            ("x-msh-device-id", "spoofed"),
        ] {
            h.append(name_of(k), HeaderValue::from_static(v));
        }
        let up = upstream_request(&h);
        let names: Vec<&str> = up.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "anthropic-version",
                "anthropic-beta",
                "content-type",
                "content-length"
            ]
        );
    }

    fn name_of(s: &'static str) -> HeaderName {
        HeaderName::from_static(s)
    }

    #[test]
    fn response_filtering_and_sse() {
        let mut h = HeaderMap::new();
        h.append(
            "content-type",
            HeaderValue::from_static("Text/Event-Stream; charset=utf-8"),
        );
        h.append("set-cookie", HeaderValue::from_static("s=1"));
        h.append("transfer-encoding", HeaderValue::from_static("chunked"));
        h.append("x-request-id", HeaderValue::from_static("r1"));
        let down = client_response(&h, &[]);
        assert!(down.get("set-cookie").is_none());
        assert!(down.get("transfer-encoding").is_none());
        assert_eq!(down["x-request-id"], "r1");
        assert!(is_event_stream(&down));
    }
}
