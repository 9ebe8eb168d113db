//! A client's request head as the proxy sees it (arbitrary `name: value` lines and a path):
//! never a panic; the client key lets a request in only if the request carries it; nothing
//! hop-by-hop, no client credential, no cookie and nothing named in `Connection` goes upstream.
#![no_main]

use kimi_vault::SecretString;
use kimi_vault::internals::{HeaderMap, HeaderName, HeaderValue, proxy_inspect_head};
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
});
