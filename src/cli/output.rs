//! Output helpers: JSON lines on stdout, durations for people.

use std::io::Write;

/// Prints one JSON value and a newline on stdout, flushed.
pub(crate) fn json_line(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// "14m 3s", "2h 5m", "3d 4h".
pub(crate) fn span(secs: u64) -> String {
    let s = secs;
    if s >= 86_400 {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    } else if s >= 3600 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// "in 14m 3s" or "3m 0s ago".
pub(crate) fn relative(secs: i64) -> String {
    let text = span(secs.unsigned_abs());
    if secs < 0 {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}
