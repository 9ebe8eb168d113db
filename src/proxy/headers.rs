//! Which headers cross the proxy: hop-by-hop headers (and those named in `Connection`) never
//! do; the client's credentials, `Cookie` and `Proxy-Authorization` are dropped on the way up
//! (the Kimi token replaces them); `Set-Cookie` is dropped on the way down. Everything else
//! (`anthropic-version`, `anthropic-beta`, `content-type`, …) is forwarded.

use hyper::header::{CONNECTION, HeaderMap, HeaderName, HeaderValue};

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

/// True when `name` (lower case) is listed in one of the `Connection` values (no allocation:
/// most requests carry no `Connection` header, or a short one).
fn named_in_connection(connection: &[&HeaderValue], name: &str) -> bool {
    connection.iter().any(|v| {
        v.to_str().is_ok_and(|v| {
            v.split(',')
                .any(|listed| listed.trim().eq_ignore_ascii_case(name))
        })
    })
}

/// True when header `name` does not cross the proxy.
fn dropped_name(
    name: &str,
    dropped: &[&str],
    device_headers_too: bool,
    connection: &[&HeaderValue],
) -> bool {
    HOP_BY_HOP.contains(&name)
        || dropped.contains(&name)
        || (device_headers_too && name.starts_with("x-msh-"))
        || (!connection.is_empty() && named_in_connection(connection, name))
}

/// The `Connection` values of `headers` (an empty list, not allocated, when there are none).
fn connection_values(headers: &HeaderMap) -> Vec<&HeaderValue> {
    if headers.contains_key(CONNECTION) {
        headers.get_all(CONNECTION).iter().collect()
    } else {
        Vec::new()
    }
}

/// Appends to `out` the client's headers as they go to Kimi, before the token and the device
/// headers are added (a client's own `x-msh-*` headers are dropped: the proxy's are the ones
/// Kimi sees). One pass; the values are shared, not copied.
pub(crate) fn upstream_request_into(headers: &HeaderMap, out: &mut HeaderMap) {
    let connection = connection_values(headers);
    for (name, value) in headers {
        if !dropped_name(name.as_str(), REQUEST_DROPPED, true, &connection) {
            out.append(name.clone(), value.clone());
        }
    }
}

/// The client's headers as they go to Kimi (see [`upstream_request_into`]); for the fuzz
/// target and tests.
#[cfg(any(test, fuzzing, feature = "testing"))]
pub(crate) fn upstream_request(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    upstream_request_into(headers, &mut out);
    out
}

/// True when `value` carries one of `tokens` (logged: the header is dropped).
fn reflects(name: &str, value: &HeaderValue, tokens: &[&TokenForms]) -> bool {
    if tokens.iter().any(|t| t.carried_by(value.as_bytes())) {
        tracing::warn!(
            "Kimi's response header {name} carried the access token (raw or encoded): dropped, not passed to the client"
        );
        return true;
    }
    false
}

/// Kimi's headers as they go back to the client, without any that carries one of `tokens`
/// (the tokens injected into the request) in any of its forms: a filtered copy, for the fuzz
/// target and tests, made by the very filter the proxy runs ([`client_response_in_place`]).
#[cfg(any(test, fuzzing, feature = "testing"))]
pub(crate) fn client_response(headers: &HeaderMap, tokens: &[&TokenForms]) -> HeaderMap {
    let mut out = headers.clone();
    client_response_in_place(&mut out, tokens);
    out
}

/// Kimi's headers filtered for the client in place, on Kimi's own map (see
/// [`client_response`]): the usual response loses a hop-by-hop header or none and nothing is
/// copied; a map with a reflected token is rebuilt.
pub(crate) fn client_response_in_place(headers: &mut HeaderMap, tokens: &[&TokenForms]) {
    let mut gone: Vec<HeaderName> = Vec::new();
    let mut reflected = false;
    {
        let connection = connection_values(headers);
        for (name, value) in headers.iter() {
            let n = name.as_str();
            if dropped_name(n, RESPONSE_DROPPED, false, &connection) {
                if gone.last() != Some(name) {
                    gone.push(name.clone());
                }
            } else if reflects(n, value, tokens) {
                reflected = true;
            }
        }
    }
    for name in &gone {
        headers.remove(name);
    }
    if reflected {
        let old = std::mem::take(headers);
        for (name, value) in &old {
            if !tokens.iter().any(|t| t.carried_by(value.as_bytes())) {
                headers.append(name.clone(), value.clone());
            }
        }
    }
}

/// True for a `text/event-stream` response.
pub(crate) fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
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
    fn filtering_in_place_keeps_what_the_copy_keeps() {
        let token = crate::secret::SecretString::from("tok-0123456789abcdef-canary");
        let forms = TokenForms::new(&token);
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("content-type", "application/json"),
            ("connection", "keep-alive, X-Hop"),
            ("x-hop", "1"),
            ("set-cookie", "a=1"),
            ("set-cookie", "b=2"),
            ("x-request-id", "r1"),
            ("link", "<https://a.example/?t=tok-0123456789abcdef-canary>"),
            ("link", "<https://b.example/>"),
            ("transfer-encoding", "chunked"),
            ("x-request-id", "r2"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        let copy = client_response(&h, &[&forms]);
        let mut in_place = h.clone();
        client_response_in_place(&mut in_place, &[&forms]);
        assert_eq!(copy, in_place);
        let kept: Vec<(&str, &str)> = in_place
            .iter()
            .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            kept,
            [
                ("content-type", "application/json"),
                ("x-request-id", "r1"),
                ("x-request-id", "r2"),
                ("link", "<https://b.example/>"),
            ]
        );
        // Nothing to drop: the map is left as it was.
        let mut plain = HeaderMap::new();
        plain.append("content-type", HeaderValue::from_static("text/plain"));
        let before = plain.clone();
        client_response_in_place(&mut plain, &[&forms]);
        assert_eq!(plain, before);
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
