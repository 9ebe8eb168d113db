//! The Kimi API body parsers (`/usages`, `/models`) and the status classifier never panic, and
//! what they produce keeps its invariants: a used fraction between 0 and 1, no model without an
//! id, and no failure reason that quotes a token field's value.
#![no_main]

use kimi_vault::internals::{classify_api, parse_models, parse_usages};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    match parse_usages(body) {
        Ok(usage) => {
            let quotas = usage.weekly.iter().chain(usage.limits.iter().map(|w| &w.quota));
            for q in quotas {
                if let Some(f) = q.used_fraction() {
                    assert!((0.0..=1.0).contains(&f), "fraction {f}");
                }
                for n in [q.used, q.limit, q.remaining].into_iter().flatten() {
                    assert!(n.is_finite());
                }
            }
        }
        Err(reason) => assert!(!reason.contains("FUZZ-SECRET-0123456789abcdef")),
    }
    match parse_models(body) {
        Ok(models) => assert!(models.iter().all(|m| !m.id.is_empty())),
        Err(reason) => assert!(!reason.contains("FUZZ-SECRET-0123456789abcdef")),
    }
    for status in [200, 401, 402, 404, 429, 503] {
        let _ = classify_api(status, body, None);
    }
});
