//! Client authentication: the proxy's own client key, in `x-api-key` or
//! `Authorization: Bearer`, compared in constant time.

use std::net::{Ipv4Addr, Ipv6Addr};

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

/// True for a `Host` value (an authority: host and optional port) that names loopback:
/// `localhost`, `127.x.y.z` or `[::1]`, with or without `:PORT`, nothing else around them
/// (`[::1]evil`, `127.0.0.1.evil.example` and `localhost:x` are not).
fn loopback_authority(value: &str) -> bool {
    let port_ok = |p: &str| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    let value = value.trim();
    if let Some(rest) = value.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return false;
        };
        let after_ok = after.is_empty() || after.strip_prefix(':').is_some_and(port_ok);
        return after_ok && inside.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback());
    }
    let host = match value.rsplit_once(':') {
        Some((host, port)) if port_ok(port) => host,
        Some(_) => return false,
        None => value,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
}

/// True for an origin's host that is loopback.
fn loopback_origin(origin: &str) -> bool {
    match url::Url::parse(origin).ok().as_ref().and_then(|u| u.host()) {
        Some(url::Host::Domain(d)) => d.trim_end_matches('.').eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// How often a header occurs.
enum Occurs<'a> {
    /// Not at all.
    Never,
    /// Once: its value as trimmed text (`None` when it is not text).
    Once(Option<&'a str>),
    /// More than once.
    Many,
}

/// Every occurrence of header `name` (no allocation).
fn occurs<'a>(headers: &'a HeaderMap, name: &str) -> Occurs<'a> {
    let mut values = headers.get_all(name).iter();
    match (values.next(), values.next()) {
        (None, _) => Occurs::Never,
        (Some(v), None) => Occurs::Once(v.to_str().ok().map(str::trim)),
        (Some(_), Some(_)) => Occurs::Many,
    }
}

/// True when the request carries exactly one `Host` and it names loopback (for `/health`,
/// which asks no client key).
pub(crate) fn names_loopback_host(headers: &HeaderMap) -> bool {
    matches!(occurs(headers, HOST.as_str()), Occurs::Once(Some(host)) if loopback_authority(host))
}

/// Why a request looks like it comes from a web page of another site (a DNS-rebinding page,
/// a cross-site form or fetch), or `None`. Such a request is refused whatever key it carries:
/// local clients (Claude Code, SDKs, curl) send no `Origin` and name a loopback `Host`.
/// `host_must_be_loopback` is true when the proxy listens on loopback only.
///
/// Every occurrence of each header is read, and compared without regard to case: a doubled
/// `Origin`, `Host` or `Sec-Fetch-Site` is refused (which one would another server believe?).
pub(crate) fn from_another_site(
    headers: &HeaderMap,
    host_must_be_loopback: bool,
) -> Option<&'static str> {
    match occurs(headers, ORIGIN.as_str()) {
        Occurs::Never => {}
        Occurs::Once(Some(origin)) => {
            let lower = origin.to_ascii_lowercase();
            let web =
                lower == "null" || lower.starts_with("http://") || lower.starts_with("https://");
            if web && !loopback_origin(origin) {
                return Some("the request comes from a web page of another site (Origin)");
            }
        }
        _ => return Some("the request carries an unreadable or more than one Origin header"),
    }
    match occurs(headers, "sec-fetch-site") {
        Occurs::Never => {}
        Occurs::Once(Some(site)) if !site.eq_ignore_ascii_case("cross-site") => {}
        Occurs::Once(Some(_)) => {
            return Some("the request comes from a web page of another site (Sec-Fetch-Site)");
        }
        _ => {
            return Some(
                "the request carries an unreadable or more than one Sec-Fetch-Site header",
            );
        }
    }
    match occurs(headers, HOST.as_str()) {
        Occurs::Never => None,
        Occurs::Once(Some(host)) if !host_must_be_loopback || loopback_authority(host) => None,
        Occurs::Once(Some(_)) => {
            Some("the Host header names another machine (a DNS-rebinding web page?)")
        }
        _ => Some("the request carries an unreadable or more than one Host header"),
    }
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
            vec![("host", "[::1]")],
            vec![("host", "localhost.:18462")],
            vec![("host", "127.0.0.2:80")],
            vec![("origin", "http://[::1]:3000"), ("host", "[::1]:1")],
            vec![("origin", "HTTP://LOCALHOST:3000")],
        ] {
            assert_eq!(from_another_site(&headers(&ok), true), None, "{ok:?}");
        }
        for bad in [
            vec![("origin", "https://evil.example")],
            vec![("origin", "null")],
            vec![("sec-fetch-site", "cross-site")],
            vec![("host", "evil.example:18462")],
            vec![("host", "127.0.0.1.evil.example")],
            // Issue 14 item 7: case, doubled headers, junk after a bracketed address.
            vec![("origin", "NULL")],
            vec![("origin", "Null")],
            vec![("origin", "HTTPS://EVIL.EXAMPLE")],
            vec![
                ("origin", "http://localhost:1"),
                ("origin", "https://evil.example"),
            ],
            vec![
                ("origin", "http://localhost:1"),
                ("origin", "http://localhost:1"),
            ],
            vec![("host", "127.0.0.1:1"), ("host", "evil.example")],
            vec![("host", "127.0.0.1:1"), ("host", "127.0.0.1:1")],
            vec![
                ("sec-fetch-site", "same-origin"),
                ("sec-fetch-site", "cross-site"),
            ],
            vec![("sec-fetch-site", "Cross-Site")],
            vec![("host", "[::1]evil")],
            vec![("host", "[::1]:1evil")],
            vec![("host", "[::1]:")],
            vec![("host", "localhost:x")],
            vec![("host", "localhost:")],
            vec![("host", "127.1")],
            vec![("host", "[::ffff:8.8.8.8]")],
            vec![("origin", "http://[::1]evil")],
        ] {
            assert!(from_another_site(&headers(&bad), true).is_some(), "{bad:?}");
        }
        // Listening beyond loopback (--allow-remote): any Host.
        assert_eq!(
            from_another_site(&headers(&[("host", "box.lan:18462")]), false),
            None
        );
        // /health: exactly one loopback Host.
        for ok in [
            "127.0.0.1",
            "127.0.0.1:18462",
            "localhost",
            "LocalHost:1",
            "[::1]",
            "[::1]:9",
        ] {
            assert!(names_loopback_host(&headers(&[("host", ok)])), "{ok}");
        }
        for bad in [
            vec![],
            vec![("host", "evil.example")],
            vec![("host", "[::1]evil")],
            vec![("host", "127.0.0.1"), ("host", "127.0.0.1")],
        ] {
            assert!(!names_loopback_host(&headers(&bad)), "{bad:?}");
        }
    }
}
