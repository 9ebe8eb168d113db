//! Test-only fault injection: `KIMI_VAULT_FAULT=name[,name…]` makes the named fault happen.
//! Compiled in only with the `testing` feature; a release build has no such hook.

/// True when the fault `name` is injected.
#[cfg(feature = "testing")]
#[allow(
    clippy::disallowed_methods,
    reason = "a test-only hook, compiled only with the `testing` feature"
)]
pub(crate) fn active(name: &str) -> bool {
    std::env::var("KIMI_VAULT_FAULT").is_ok_and(|v| v.split(',').any(|f| f == name))
}

/// True when the fault `name` is injected (never, without the `testing` feature).
#[cfg(not(feature = "testing"))]
pub(crate) fn active(_name: &str) -> bool {
    false
}

/// A crash point: the process aborts here (as if killed) when `name` is injected.
pub(crate) fn crash_point(name: &str) {
    if active(name) {
        std::process::abort();
    }
}
