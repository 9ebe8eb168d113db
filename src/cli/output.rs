//! Output helpers: JSON lines on stdout, human text on stderr, durations for people.

use std::io::Write;

/// Prints one JSON object and a newline on stdout, flushed.
pub fn json_line(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

/// "14m 3s", "2h 5m", "expired 3m ago".
pub fn human_duration(secs: i64) -> String {
    let (past, s) = (secs < 0, secs.unsigned_abs());
    let text = if s >= 86_400 {
        format!("{}d {}h", s / 86_400, (s % 86_400) / 3600)
    } else if s >= 3600 {
        format!("{}h {}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m {}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    };
    if past {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}
