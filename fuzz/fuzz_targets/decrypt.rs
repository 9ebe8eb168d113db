//! Arbitrary bytes as key material and `vault.enc`: a clean error, or contents that re-encrypt
//! to a file that decrypts to the same value. Never a panic.
#![no_main]

use kimi_vault::internals::decode;
use kimi_vault::internals::parse_material;
use kimi_vault::internals::{self as crypto, VaultKey};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first 32 bytes (when present) are the key file, the rest the vault; short inputs are
    // tried as a whole key file and as a vault under a fixed key.
    let (key, vault) = match data.split_at_checked(32) {
        Some((k, v)) => (VaultKey::from_bytes(*parse_material(k).unwrap()), v),
        None => {
            let _ = parse_material(data);
            (VaultKey::from_bytes([7u8; 32]), data)
        }
    };
    let _ = crypto::open(&key, vault);
    if let Ok(contents) = decode(&key, vault) {
        let again = serde_json::to_vec(&contents).unwrap();
        let sealed = crypto::seal(&key, &again).unwrap();
        let back = decode(&key, &sealed).expect("a re-encrypted vault decrypts");
        assert_eq!(serde_json::to_vec(&back).unwrap(), again);
    }
});
