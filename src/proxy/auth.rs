//! Client authentication: the proxy's own client key, in `x-api-key` or
//! `Authorization: Bearer`, compared in constant time.

use reqwest::header::{AUTHORIZATION, HeaderMap};

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
}
