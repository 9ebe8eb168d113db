//! Arbitrary text with a planted secret: the redacted text never contains the secret, is
//! idempotent, and never panics.
#![no_main]

use kimi_vault::internals::{redact_body, scrub};
use kimi_vault::secret::SecretString;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let planted = SecretString::from("fuzz-planted-secret-0123456789");
    let with_secret = format!("{text}{}{text}", planted.expose());
    let once = redact_body(&with_secret);
    assert!(!once.contains(planted.expose()));
    assert_eq!(redact_body(&once), once);
    assert!(!scrub(&with_secret).contains(planted.expose()));
});
