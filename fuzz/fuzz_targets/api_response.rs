//! The Kimi API body parsers (`/usages` with its extra-usage balance, `/models` with thinking,
//! efforts, tool use and protocol, `/me`), the `access_terminated_error` test and the status
//! classifier never panic, and what they produce keeps its invariants: a used fraction between
//! 0 and 1, finite amounts, no model without an id, no account without a user id, no string
//! with a control character, and no failure reason that quotes a token field's value.
#![no_main]

use kimi_vault::internals::{
    classify_api, is_access_terminated, parse_me, parse_models, parse_usages,
};
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "FUZZ-SECRET-0123456789abcdef";

fn clean(s: &str) -> bool {
    !s.is_empty() && !s.chars().any(char::is_control)
}

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
            if let Some(e) = usage.extra {
                for n in [
                    e.amount_cents,
                    e.amount_left_cents,
                    e.monthly_limit_cents,
                    e.monthly_used_cents,
                ]
                .into_iter()
                .flatten()
                {
                    assert!(n.is_finite());
                }
                for s in [&e.balance_type, &e.currency].into_iter().flatten() {
                    assert!(clean(s));
                }
            }
        }
        Err(reason) => assert!(!reason.contains(SECRET)),
    }
    match parse_models(body) {
        Ok(models) => {
            for m in models {
                assert!(clean(&m.id));
                for s in [&m.thinking, &m.protocol].into_iter().flatten() {
                    assert!(clean(s));
                }
                if let Some(e) = m.efforts {
                    assert!(e.valid.iter().all(|v| clean(v)) && e.valid.len() <= 32);
                }
            }
        }
        Err(reason) => assert!(!reason.contains(SECRET)),
    }
    match parse_me(body) {
        Ok(me) => {
            assert!(clean(&me.user_id));
            for s in [&me.nickname, &me.level_name, &me.region].into_iter().flatten() {
                assert!(clean(s));
            }
        }
        Err(reason) => assert!(!reason.contains(SECRET)),
    }
    let _ = is_access_terminated(body);
    for status in [200, 401, 402, 403, 404, 429, 503] {
        let _ = classify_api(status, body, None);
    }
});
