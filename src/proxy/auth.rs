//! Client authentication: the proxy's own client key, in `x-api-key` or
//! `Authorization: Bearer`, compared in constant time.

use std::net::IpAddr;

use reqwest::header::{AUTHORIZATION, HOST, HeaderMap, ORIGIN};

use crate::secret::{SecretString, ct_eq};

/// Who may use the proxy.
#[derive(Debug, Clone)]
pub(crate) enum ClientAuth {
    /// Clients must present this key.
    Key(SecretString),
    /// Anyone who can connect (`--no-client-key`).
    Open,
}

/// The credentials a request presents: every `x-api-key` value and every
/// `Authorization: Bearer` token.
fn presented(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    let api_keys = headers
        .get_all("x-api-key")
        .iter()
        .map(|v| v.as_bytes().trim_ascii());
    let bearers = headers.get_all(AUTHORIZATION).iter().filter_map(|v| {
        let v = v.as_bytes().trim_ascii();
        let (scheme, rest) = v.split_at_checked(7)?;
        scheme
            .eq_ignore_ascii_case(b"bearer ")
            .then(|| rest.trim_ascii())
    });
    api_keys.chain(bearers)
}

impl ClientAuth {
    /// True when the request may pass. Every presented value is compared in full (no early
    /// exit on a match), each comparison in constant time.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        match self {
            ClientAuth::Open => true,
            ClientAuth::Key(key) => presented(headers).fold(false, |ok, candidate| {
                ok | ct_eq(candidate, key.expose().as_bytes())
            }),
        }
    }
}

fn loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The host part of a `Host` header value (`127.0.0.1:18462`, `[::1]:18462`, `localhost`).
fn host_part(value: &str) -> &str {
    if value.starts_with('[') {
        return value.split(']').next().map_or(value, |h| &h[1..]);
    }
    match value.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => value,
    }
}

/// Why a request looks like it comes from a web page of another site (a DNS-rebinding page,
/// a cross-site form or fetch), or `None`. Such a request is refused whatever key it carries:
/// local clients (Claude Code, SDKs, curl) send no `Origin` and name a loopback `Host`.
/// `host_must_be_loopback` is true when the proxy listens on loopback only.
pub(crate) fn from_another_site(
    headers: &HeaderMap,
    host_must_be_loopback: bool,
) -> Option<&'static str> {
    if let Some(origin) = headers.get(ORIGIN) {
        let origin = origin.to_str().unwrap_or("null").trim();
        let web =
            origin == "null" || origin.starts_with("http://") || origin.starts_with("https://");
        let local = url::Url::parse(origin)
            .ok()
            .and_then(|u| u.host_str().map(loopback_host))
            .unwrap_or(false);
        if web && !local {
            return Some("the request comes from a web page of another site (Origin)");
        }
    }
    let cross_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"));
    if cross_site {
        return Some("the request comes from a web page of another site (Sec-Fetch-Site)");
    }
    if host_must_be_loopback
        && let Some(host) = headers.get(HOST)
        && !loopback_host(host_part(host.to_str().unwrap_or("")))
    {
        return Some("the Host header names another machine (a DNS-rebinding web page?)");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn key_in_either_header() {
        let auth = ClientAuth::Key(SecretString::from("kvp-right-key-0123456789"));
        assert!(auth.allows(&headers(&[("x-api-key", "kvp-right-key-0123456789")])));
        assert!(auth.allows(&headers(&[(
            "authorization",
            "Bearer kvp-right-key-0123456789"
        )])));
        assert!(auth.allows(&headers(&[(
            "authorization",
            "bearer  kvp-right-key-0123456789 "
        )])));
        // A stale token beside the right key does not lock the client out.
        assert!(auth.allows(&headers(&[
            ("authorization", "Bearer stale"),
            ("x-api-key", "kvp-right-key-0123456789")
        ])));
        for bad in [
            vec![],
            vec![("x-api-key", "kvp-wrong-key-0123456789")],
            vec![("x-api-key", "kvp-right-key-012345678")],
            vec![("authorization", "Basic kvp-right-key-0123456789")],
            vec![("authorization", "kvp-right-key-0123456789")],
        ] {
            assert!(!auth.allows(&headers(&bad)), "{bad:?}");
        }
        assert!(ClientAuth::Open.allows(&HeaderMap::new()));
    }

    #[test]
    fn pages_of_other_sites_are_told_apart() {
        for ok in [
            vec![],
            vec![("host", "127.0.0.1:18462")],
            vec![("host", "[::1]:18462")],
            vec![("host", "localhost")],
            vec![("host", "LOCALHOST:1")],
            vec![("origin", "http://localhost:3000"), ("host", "127.0.0.1:1")],
            vec![("origin", "vscode-webview://abc")],
            vec![("sec-fetch-site", "same-origin")],
        ] {
            assert_eq!(from_another_site(&headers(&ok), true), None, "{ok:?}");
        }
        for bad in [
            vec![("origin", "https://evil.example")],
            vec![("origin", "null")],
            vec![("sec-fetch-site", "cross-site")],
            vec![("host", "evil.example:18462")],
            vec![("host", "127.0.0.1.evil.example")],
        ] {
            assert!(from_another_site(&headers(&bad), true).is_some(), "{bad:?}");
        }
        // Listening beyond loopback (--allow-remote): any Host.
        assert_eq!(
            from_another_site(&headers(&[("host", "box.lan:18462")]), false),
            None
        );
    }
}
