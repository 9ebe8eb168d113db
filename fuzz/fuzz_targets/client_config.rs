//! What `setup claude` and `doctor` read from the local clients' files: Claude Code's
//! settings.json, its apiKeyHelper command line, and an installed `kimi` file. Never a panic;
//! an error never quotes the file; a parsed settings object survives a round trip with its keys
//! in order (setup rewrites the file from it).
#![no_main]

use kimi_vault::internals::{identify_kimi, parse_helper, parse_settings};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = identify_kimi("/usr/local/bin/kimi", data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match parse_settings(text) {
        Ok(map) => {
            let again = serde_json::to_string_pretty(&serde_json::Value::Object(map.clone()))
                .expect("a parsed object serializes");
            let back = parse_settings(&again).expect("what setup writes parses");
            assert!(back.keys().eq(map.keys()), "key order kept");
        }
        Err(e) => assert!(!e.to_string().contains("FUZZ-SECRET-0123456789abcdef")),
    }
    if let Some(h) = parse_helper(text) {
        assert!(h.min_valid > 0 || text.contains('0'));
    }
});
