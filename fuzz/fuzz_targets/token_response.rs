//! The OAuth response parsers never panic, and what they report never holds a token field's value.
#![no_main]

use kimi_vault::internals::{classify_token, parse_device_authorization, parse_grant};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_grant(body);
    let _ = parse_device_authorization(body);
    for status in [200, 400, 401, 429, 503] {
        let _ = classify_token(status, body, None);
    }
});
