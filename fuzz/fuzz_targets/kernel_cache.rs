//! The kernel keyring cache's payload parser (any process of the user can plant a key of that
//! name) never panics, and what it reads is exactly one well-formed payload.
#![no_main]

use kimi_vault::internals::parse_kernel_cache;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((generation, _expires_at, token)) = parse_kernel_cache(data) {
        assert!(!generation.is_empty());
        assert!(!token.is_empty() && !token.contains(['\n', '\r', '\0']));
    }
});
