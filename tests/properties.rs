#![cfg(feature = "testing")]
//! Property tests (proptest) for the vault envelope and the redactor.

use kimi_vault::internals::{EnvelopeError, VaultKey, open, seal_with_nonce};
use kimi_vault::internals::{REDACTED, redact_body, scrub};
use kimi_vault::internals::{Tool, parse};
use kimi_vault::secret::SecretString;
use proptest::prelude::*;

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
    fn migration_parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        for tool in [Tool::KimiCli, Tool::KimiCode, Tool::Roder, Tool::CliProxyApi, Tool::Opencode] {
            let _ = parse(tool, &data, Some(&[7u8; 32]));
        }
    }
}
