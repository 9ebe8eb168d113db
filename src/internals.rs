//! Low-level pieces exposed only to the fuzz targets (`--cfg fuzzing`) and to property tests
//! and benchmarks (the test-only `testing` feature). Not part of the library's API.

pub use crate::api::reply::classify as classify_api;
pub use crate::api::{is_access_terminated, parse_me, parse_models, parse_usages};
pub use crate::clients::{identify_kimi, parse_helper, parse_settings};
pub use crate::migrate::parse::{Tool, parse, sniff};
pub use crate::oauth::response::{classify_token, parse_device_authorization, parse_grant};
pub use crate::redact::{REDACTED, redact_body, redact_text, scrub};
pub use crate::store::crypto::{EnvelopeError, VaultKey, open, seal, seal_with_nonce};
pub use crate::store::file::decode;
pub use crate::store::key::parse_material;
pub use crate::store::record::{CONTENTS_VERSION, VaultContents, credential_json};
pub use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// The proxy's cross-site verdict on a request head (listening on loopback), and whether
/// `/health` would answer it.
pub fn proxy_cross_site(headers: &HeaderMap) -> (Option<&'static str>, bool) {
    (
        crate::proxy::auth::from_another_site(headers, true),
        crate::proxy::auth::names_loopback_host(headers),
    )
}

/// The response headers the proxy passes to the client after injecting `token` upstream.
pub fn proxy_response_headers(headers: &HeaderMap, token: &crate::SecretString) -> HeaderMap {
    let forms = crate::proxy::reflect::TokenForms::new(token);
    crate::proxy::headers::client_response(headers, &[&forms])
}

/// What the proxy makes of a client's request head: whether `key` lets it in, the headers
/// that would go upstream (before the token is added), and whether the path after `/v1/` is
/// refused for climbing out of the API base.
pub fn proxy_inspect_head(
    headers: &HeaderMap,
    rest: &str,
    key: &crate::SecretString,
) -> (bool, HeaderMap, bool) {
    (
        crate::proxy::auth::ClientAuth::Key(key.clone()).allows(headers),
        crate::proxy::headers::upstream_request(headers),
        crate::proxy::forward::has_dot_segment(rest),
    )
}

/// The kernel keyring cache's payload parser (fuzzed: any process of the user can plant a key
/// of that name): `(generation, expires_at, token)` when it reads.
pub fn parse_kernel_cache(bytes: &[u8]) -> Option<(String, i64, String)> {
    crate::store::kernel_cache::parse(bytes)
        .map(|p| (p.generation.to_owned(), p.expires_at, p.token.to_owned()))
}

/// The descriptions of the kernel keyring cache's key and generation key for our keyring
/// entry of `profile` on the session bus `bus` (for the tests that look at the kernel keyring).
pub fn kernel_cache_descriptions(profile: &str, bus: &str) -> Option<(String, String)> {
    crate::store::kernel_cache::Identity::new(crate::store::keyring::SERVICE, profile, bus)
        .map(|id| id.descriptions())
}
