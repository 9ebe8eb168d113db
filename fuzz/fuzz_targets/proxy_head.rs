//! A client's request head as the proxy sees it (arbitrary `name: value` lines and a path):
//! never a panic; the client key lets a request in only if the request carries it; nothing
//! hop-by-hop, no client credential, no cookie and nothing named in `Connection` goes upstream.
#![no_main]

use kimi_vault::SecretString;
use kimi_vault::internals::{
    HeaderMap, HeaderName, HeaderValue, proxy_cross_site, proxy_inspect_head,
    proxy_response_headers,
};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "kvp-fuzz-client-key-0123456789";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let rest = lines.next().unwrap_or("");
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim().as_bytes()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let key = SecretString::from(KEY);
    let (allowed, upstream, _dot) = proxy_inspect_head(&headers, rest, &key);
    if allowed {
        assert!(text.contains(KEY), "let in without the key");
    }
    let named: Vec<String> = headers
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .collect();
    for name in upstream.keys() {
        let n = name.as_str();
        assert!(
            ![
                "connection",
                "keep-alive",
                "proxy-connection",
                "transfer-encoding",
                "te",
                "trailer",
                "upgrade",
                "proxy-authenticate",
                "proxy-authorization",
                "authorization",
                "x-api-key",
                "cookie",
                "host",
            ]
            .contains(&n),
            "{n} would go upstream"
        );
        assert!(!named.iter().any(|x| x == n), "{n} is named in Connection");
    }
    // Cross-site checks (issue 14): a request let through names at most one Host, Origin and
    // Sec-Fetch-Site; its Host is a loopback authority; no `null` origin of any case passes.
    let (refused, health) = proxy_cross_site(&headers);
    let count = |n: &str| headers.get_all(n).iter().count();
    if refused.is_none() {
        assert!(count("host") <= 1 && count("origin") <= 1 && count("sec-fetch-site") <= 1);
        if let Some(origin) = headers.get("origin").and_then(|v| v.to_str().ok()) {
            assert!(!origin.trim().eq_ignore_ascii_case("null"), "null origin passed");
        }
        if let Some(host) = headers.get("host").and_then(|v| v.to_str().ok()) {
            let h = host.trim().to_ascii_lowercase();
            assert!(
                h.starts_with("localhost") || h.starts_with("127.") || h.starts_with("[::1]"),
                "{h} passed as loopback"
            );
        }
    }
    if health {
        assert_eq!(count("host"), 1);
    }
    // A reflecting upstream (the same lines as response headers): no header passed to the
    // client carries the token raw.
    const TOKEN: &str = "at-fuzz-token-0123456789abcdef";
    let down = proxy_response_headers(&headers, &SecretString::from(TOKEN));
    for value in down.values() {
        assert!(
            !String::from_utf8_lossy(value.as_bytes()).contains(TOKEN),
            "a header carrying the token passed"
        );
    }
});
