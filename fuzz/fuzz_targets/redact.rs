//! Arbitrary text around a held secret (in one of the forms a server may print it in) and
//! around an unknown credential under a sensitive name (in one of the shapes a body may hold
//! it in): the redacted text never contains either, is at most 300 characters plus an ellipsis,
//! is idempotent, and redaction never panics.
#![no_main]

use base64::Engine;
use kimi_vault::internals::{redact_body, scrub};
use kimi_vault::secret::SecretString;
use libfuzzer_sys::fuzz_target;

/// Held secrets of several shapes (`:`-separated, base64-ish, with characters that encode).
const SECRETS: &[&str] = &[
    "fuzz-planted-secret-0123456789",
    "lettersonlyheldsecret",
    "held:colon:separated:secret",
    "b64/like+secret==",
    "quote\"and\\slash/secret",
];

/// A credential nobody remembered: only its name can give it away.
const UNKNOWN: &str = "QzXvKpWmUnknownValue";

fn forms(secret: &str) -> Vec<String> {
    let percent: String = secret
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    vec![
        secret.to_owned(),
        percent.clone(),
        percent.to_ascii_lowercase(),
        serde_json::to_string(secret).unwrap().trim_matches('"').to_owned(),
        base64::engine::general_purpose::STANDARD.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ]
}

fn shape(which: u8, value: &str) -> String {
    match which % 10 {
        0 => format!(r#"{{"error":"x","refresh_token":"{value}""#),
        1 => format!(r#"{{"access_token" : "{value}", "expires_in": 900}} trailing"#),
        2 => format!(r#"{{\"refresh_token\":\"{value}\"}}"#),
        3 => format!("grant_type=refresh_token&refresh_token={value}&client_id=x"),
        4 => format!("Authorization: Bearer {value}"),
        5 => format!("Cookie: session={value}; path=/"),
        6 => format!("X-Api-Key: {value}"),
        7 => format!("device_code={value}"),
        8 => format!("PASSWORD: '{value}'"),
        _ => format!("oops bearer {value} oops"),
    }
}

/// The forms of every planted secret, computed once (they depend on the secret alone).
fn all_forms() -> &'static [Vec<String>] {
    static FORMS: std::sync::OnceLock<Vec<Vec<String>>> = std::sync::OnceLock::new();
    FORMS.get_or_init(|| SECRETS.iter().map(|s| forms(s)).collect())
}

/// Redacts `text` once: none of `forbidden` survives, the result is bounded and idempotent.
fn check(text: &str, forbidden: &[&str]) {
    let once = redact_body(text);
    for f in forbidden {
        assert!(!once.contains(f), "{f} survived in {once:?}");
    }
    assert!(once.chars().count() <= 301);
    assert_eq!(redact_body(&once), once, "not idempotent");
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    // Arbitrary text alone.
    let once = redact_body(text);
    assert_eq!(redact_body(&once), once, "not idempotent");

    // A held secret in one of its forms.
    let secret = SECRETS[selector as usize % SECRETS.len()];
    let planted = SecretString::from(secret);
    let all = &all_forms()[selector as usize % SECRETS.len()];
    let form = &all[(selector as usize / SECRETS.len()) % all.len()];
    let with_secret = format!("{text}{form}{text}");
    // One redaction, both checks (redaction is deterministic: a second call is the same text).
    check(&with_secret, &[form, planted.expose()]);
    assert!(!scrub(&with_secret).contains(form.as_str()));

    // An unknown credential under a sensitive name.
    if !text.contains(UNKNOWN) {
        check(&format!("{text} {} {text}", shape(selector, UNKNOWN)), &[UNKNOWN]);
    }
});
