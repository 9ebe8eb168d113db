//! Warnings for the user, on stderr, always scrubbed of every secret the process holds.

/// Prints `kimi-vault: warning: MSG` on stderr, scrubbed of remembered secrets.
pub fn warn(msg: &str) {
    eprintln!("kimi-vault: warning: {}", crate::redact::scrub(msg));
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch, now.
pub fn now_unix_ms() -> i64 {
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

static VERBOSITY: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Sets the `-v` level (the CLI calls this once).
pub fn set_verbosity(level: u8) {
    VERBOSITY.store(level, std::sync::atomic::Ordering::Relaxed);
}

/// Prints `kimi-vault: MSG` on stderr when `-v` was given, scrubbed of remembered secrets.
pub fn note(msg: &str) {
    if VERBOSITY.load(std::sync::atomic::Ordering::Relaxed) > 0 {
        eprintln!("kimi-vault: {}", crate::redact::scrub(msg));
    }
}
