//! Wall-clock helpers: Unix time now, and RFC 3339 for people and `--json`.

/// Test builds only (the `testing` feature): `KIMI_VAULT_TEST_NOW=<unix seconds>` fixes the
/// clock, so that snapshot tests of human output ("expires in 14m 3s") are reproducible.
#[cfg(feature = "testing")]
#[allow(
    clippy::disallowed_methods,
    reason = "a test-only hook, compiled only with the `testing` feature"
)]
fn fixed_now_ms() -> Option<i64> {
    static FIXED: std::sync::OnceLock<Option<i64>> = std::sync::OnceLock::new();
    *FIXED.get_or_init(|| {
        std::env::var("KIMI_VAULT_TEST_NOW")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(|s| s * 1000)
    })
}

#[cfg(not(feature = "testing"))]
fn fixed_now_ms() -> Option<i64> {
    None
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    now_unix_ms().div_euclid(1000)
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_unix_ms() -> i64 {
    fixed_now_ms().unwrap_or_else(real_now_unix_ms)
}

/// Milliseconds since the Unix epoch on the real clock, whatever a test fixed (for what the
/// kernel times: a kernel key's timeout).
pub(crate) fn real_now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Formats Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// Parses an RFC 3339 timestamp (fractional seconds allowed) into Unix seconds.
pub(crate) fn parse_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text.trim(), &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trip() {
        assert_eq!(
            parse_rfc3339("2026-02-11T17:32:50.757941Z"),
            Some(1_770_831_170)
        );
        assert_eq!(parse_rfc3339(&rfc3339(1_770_831_170)), Some(1_770_831_170));
        assert_eq!(parse_rfc3339("soon"), None);
    }
}
