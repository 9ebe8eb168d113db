//! Keeping secrets out of text: a JSON-aware redactor for HTTP bodies and an exact scrubber for
//! every secret this process holds.
//!
//! Two layers, both applied by [`redact_body`]:
//! 1. structure: values under token-like JSON keys become `[REDACTED]`, and long token-looking
//!    runs of characters in any other text become `[REDACTED]`;
//! 2. exact: every secret wrapped in a [`crate::secret::SecretString`] so far is replaced.
//!
//! The output never contains a remembered secret, is valid UTF-8, and redacting twice gives the
//! same text as redacting once.

use std::collections::VecDeque;
use std::sync::Mutex;

use zeroize::Zeroizing;

/// What a removed secret is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Secrets shorter than this are not remembered (too likely to match ordinary words).
const MIN_REMEMBERED: usize = 8;
/// A run of token characters at least this long is treated as a secret in free text.
const TOKEN_RUN: usize = 24;
/// Longest text [`redact_body`] returns, in characters.
const MAX_SNIPPET: usize = 300;

/// How many secrets are remembered; the oldest are forgotten first. A process holds a handful
/// (two tokens, a device code, a proxy key); the bound keeps a long-lived process (or a fuzzer)
/// from growing without end.
const MAX_REMEMBERED: usize = 256;

static KNOWN: Mutex<VecDeque<Zeroizing<String>>> = Mutex::new(VecDeque::new());

/// Remembers `secret` so that [`scrub`] removes it from any text. Called by `SecretString::new`.
pub fn remember(secret: &str) {
    if secret.len() < MIN_REMEMBERED {
        return;
    }
    let mut known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(i) = known.iter().position(|k| k.as_str() == secret) {
        // Most recently seen last, so that it is forgotten last.
        let again = known.remove(i).expect("index from position");
        known.push_back(again);
        return;
    }
    if known.len() == MAX_REMEMBERED {
        known.pop_front();
    }
    known.push_back(Zeroizing::new(secret.to_owned()));
}

/// Replaces every remembered secret in `text` with `[REDACTED]`.
pub fn scrub(text: &str) -> String {
    let known = KNOWN.lock().unwrap_or_else(|p| p.into_inner());
    let mut out = text.to_owned();
    // Longest first, so that a secret containing another is removed whole.
    let mut secrets: Vec<&str> = known.iter().map(|s| s.as_str()).collect();
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for secret in secrets {
        if out.contains(secret) {
            out = out.replace(secret, REDACTED);
        }
    }
    out
}

/// True for JSON keys whose values are credentials.
pub fn is_sensitive_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    const EXACT: &[&str] = &[
        "access",
        "refresh",
        "token",
        "code",
        "device_code",
        "authorization",
        "api_key",
        "apikey",
        "key",
        "encrypted",
        "password",
        "secret",
        "cookie",
        "set_cookie",
    ];
    EXACT.contains(&k.as_str())
        || k.ends_with("_token")
        || k.ends_with("token")
        || k.contains("secret")
        || k.contains("password")
        || k.ends_with("_key")
}

/// Redacts an HTTP body (or any foreign text) for use in a message: JSON-aware, then
/// token-shaped runs, then every remembered secret; cut to a few hundred characters.
pub fn redact_body(body: &str) -> String {
    let structured = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(mut value) => {
            redact_value(&mut value);
            value.to_string()
        }
        Err(_) => redact_free_text(body),
    };
    let scrubbed = scrub(&structured);
    truncate_chars(&scrubbed, MAX_SNIPPET)
}

/// Redacts free text: every run of token characters of at least 24 characters that mixes
/// letters and digits becomes `[REDACTED]`, then every remembered secret is removed.
pub fn redact_text(text: &str) -> String {
    scrub(&redact_free_text(text))
}

fn redact_value(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if is_sensitive_key(key) && !v.is_null() && !v.is_boolean() {
                    *v = Value::String(REDACTED.to_owned());
                } else {
                    redact_value(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_value),
        Value::String(s) => *s = redact_free_text(s),
        _ => {}
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

fn redact_free_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run_start: Option<usize> = None;
    let flush = |out: &mut String, run: &str| {
        let has_digit = run.chars().any(|c| c.is_ascii_digit());
        let has_alpha = run.chars().any(|c| c.is_ascii_alphabetic());
        if run.len() >= TOKEN_RUN && has_digit && has_alpha {
            out.push_str(REDACTED);
        } else {
            out.push_str(run);
        }
    };
    for (i, c) in text.char_indices() {
        if is_token_char(c) {
            run_start.get_or_insert(i);
        } else {
            if let Some(start) = run_start.take() {
                flush(&mut out, &text[start..i]);
            }
            out.push(c);
        }
    }
    if let Some(start) = run_start {
        flush(&mut out, &text[start..]);
    }
    out
}

fn truncate_chars(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_token_fields_are_redacted() {
        let body = r#"{"error":"invalid_grant","access_token":"abc","refresh_token":"def","nested":{"device_code":"xyz"}}"#;
        let out = redact_body(body);
        assert!(out.contains("invalid_grant"));
        assert!(!out.contains("\"abc\""));
        assert!(!out.contains("def"));
        assert!(!out.contains("xyz"));
    }

    #[test]
    fn free_text_tokens_are_redacted() {
        let out = redact_body("upstream said eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig12345 oops");
        assert!(!out.contains("eyJ"), "{out}");
        assert!(out.contains("oops"));
    }

    #[test]
    fn remembered_secrets_are_scrubbed() {
        let s = crate::secret::SecretString::from("short-but-remembered");
        let out = redact_body(&format!("x {} y", s.expose()));
        assert!(!out.contains("short-but-remembered"));
    }

    #[test]
    fn idempotent() {
        let inputs = [
            // Found by the fuzzer: a float that did not survive print + re-parse.
            "[205555555555555555000000000000000000000000000000000000000000000555555555555555550000000000000000000000000000000000000000000000000000000005555,\"]",
            r#"{"a":"b","token":"zzz"}"#,
            "plain words only",
            "abc123def456ghi789jkl012mno345 and more",
        ];
        for input in inputs {
            let once = redact_body(input);
            assert_eq!(redact_body(&once), once);
        }
    }
}
