//! Property tests (proptest) for the vault envelope and the redactor.

use kimi_vault::internals::{EnvelopeError, VaultKey, open, seal_with_nonce};
use kimi_vault::internals::{REDACTED, redact_body, scrub};
use kimi_vault::internals::{Tool, parse};
use kimi_vault::secret::SecretString;
use proptest::prelude::*;

/// The shapes a credential takes in a server body that is not valid JSON, or in an echoed form:
/// whatever the value looks like, the name gives it away (issue 10, item 1).
fn keyed_shapes(value: &str) -> Vec<String> {
    vec![
        format!(r#"{{"error":"x","refresh_token":"{value}""#),
        format!(r#"{{"access_token" : "{value}", "expires_in": 900}} trailing"#),
        format!(r#"{{\"refresh_token\":\"{value}\"}}"#),
        format!("grant_type=refresh_token&refresh_token={value}&client_id=x"),
        format!("Authorization: Bearer {value}"),
        format!("Cookie: session={value}; path=/"),
        format!("X-Api-Key: {value}"),
        format!("device_code={value}"),
        format!("PASSWORD: {value}"),
        format!("oops bearer {value} oops"),
    ]
}

/// The forms a held secret is printed in besides its raw one.
fn encoded_forms(secret: &str) -> Vec<String> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        url::form_urlencoded::byte_serialize(secret.as_bytes()).collect(),
        percent_encode(secret),
        serde_json::to_string(secret)
            .unwrap()
            .trim_matches('"')
            .to_owned(),
        b64.encode(secret),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret),
    ]
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[test]
fn redaction_is_key_aware_whatever_the_value_looks_like() {
    // Letters only, short, `:`-separated: none of them is token-shaped, all of them leaked.
    for value in [
        "lettersonlyvalue",
        "short",
        "abc:def:ghi",
        "a/b+c==",
        "qqqq zzzz",
    ] {
        for text in keyed_shapes(value) {
            let once = redact_body(&text);
            let quoted = value.split(' ').next().unwrap();
            assert!(!once.contains(quoted), "{text} -> {once}");
            assert_eq!(redact_body(&once), once, "{text}");
        }
    }
}

#[test]
fn held_secrets_are_scrubbed_in_every_encoding() {
    let planted = SecretString::from("held:secret/with+chars=0123");
    for form in encoded_forms(planted.expose()) {
        let text = format!("the server echoed grant_type=x&{form}&more and {form}");
        let once = redact_body(&text);
        assert!(!once.contains(&form), "{form}: {once}");
        assert!(!scrub(&text).contains(&form), "{form}");
        assert_eq!(redact_body(&once), once);
    }
}

#[test]
fn a_quoted_body_is_cut_to_a_bounded_length() {
    let body = "z".repeat(10_000);
    let once = redact_body(&body);
    assert!(once.chars().count() <= 301, "{}", once.len());
    assert!(once.ends_with('…'));
    assert_eq!(redact_body(&once), once);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn envelope_round_trips(key in any::<[u8; 32]>(), nonce in any::<[u8; 12]>(), plain in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let key = VaultKey::from_bytes(key);
        let sealed = seal_with_nonce(&key, nonce, &plain);
        let opened = open(&key, &sealed).unwrap();
        prop_assert_eq!(opened.expose(), plain.as_slice());
    }

    #[test]
    fn any_single_bit_flip_is_refused(key in any::<[u8; 32]>(), plain in proptest::collection::vec(any::<u8>(), 0..256), bit in any::<prop::sample::Index>()) {
        let key = VaultKey::from_bytes(key);
        let mut sealed = seal_with_nonce(&key, [1; 12], &plain);
        let i = bit.index(sealed.len() * 8);
        sealed[i / 8] ^= 1 << (i % 8);
        prop_assert!(open(&key, &sealed).is_err());
    }

    #[test]
    fn another_key_is_told_apart_from_tampering(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), plain in proptest::collection::vec(any::<u8>(), 0..64)) {
        prop_assume!(a != b);
        let sealed = seal_with_nonce(&VaultKey::from_bytes(a), [2; 12], &plain);
        prop_assert_eq!(open(&VaultKey::from_bytes(b), &sealed).err(), Some(EnvelopeError::WrongKey));
    }

    #[test]
    fn redaction_never_leaks_and_is_idempotent(prefix in ".{0,200}", suffix in ".{0,200}", secret in "[A-Za-z0-9_-]{12,64}") {
        let planted = SecretString::new(secret.clone());
        for text in [
            format!("{prefix}{}{suffix}", planted.expose()),
            format!(r#"{{"error":"{prefix}","refresh_token":"{}","x":"{suffix}"}}"#, planted.expose()),
        ] {
            let once = redact_body(&text);
            prop_assert!(!once.contains(planted.expose()));
            prop_assert_eq!(redact_body(&once), once.clone());
            let scrubbed = scrub(&text);
            prop_assert!(!scrubbed.contains(planted.expose()));
            prop_assert!(scrubbed.contains(REDACTED));
        }
    }

    #[test]
    fn keyed_values_never_leak_and_redaction_is_idempotent(prefix in ".{0,120}", suffix in ".{0,120}", value in "[A-Za-z]{3}[A-Za-z:/+=.~-]{0,37}", shape in 0usize..10) {
        // The value must be recognisable: not part of the surrounding text or the shape itself.
        prop_assume!(!prefix.contains(&value) && !suffix.contains(&value));
        prop_assume!(!REDACTED.contains(&value) && !keyed_shapes("")[shape].contains(&value));
        let text = format!("{prefix} {} {suffix}", keyed_shapes(&value)[shape]);
        let once = redact_body(&text);
        prop_assert!(!once.contains(&value), "{} -> {}", text, once);
        prop_assert_eq!(redact_body(&once), once);
    }

    #[test]
    fn encoded_held_secrets_never_leak(prefix in ".{0,120}", suffix in ".{0,120}", secret in "[A-Za-z0-9:/+=_-]{12,48}", which in 0usize..5) {
        let planted = SecretString::new(secret);
        let form = encoded_forms(planted.expose())[which].clone();
        let once = redact_body(&format!("{prefix}{form}{suffix}"));
        prop_assert!(!once.contains(&form));
        prop_assert_eq!(redact_body(&once), once);
    }

    #[test]
    fn migration_parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for tool in [Tool::KimiCli, Tool::KimiCode, Tool::Roder, Tool::CliProxyApi, Tool::Opencode] {
            let _ = parse(tool, &data, Some(&[7u8; 32]));
        }
    }
}
