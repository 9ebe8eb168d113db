//! Every migration format parser on arbitrary bytes: never a panic, and a reason never quotes
//! the input.
#![no_main]

use kimi_vault::migrate::parse::{Tool, parse, sniff};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = [7u8; 32];
    for tool in [
        Tool::KimiCli,
        Tool::KimiCliKeyring,
        Tool::KimiCode,
        Tool::Roder,
        Tool::CliProxyApi,
        Tool::Opencode,
    ] {
        if let Err(e) = parse(tool, data, Some(&key)) {
            let reason = e.reason();
            if data.len() >= 12 && let Ok(text) = std::str::from_utf8(data) {
                assert!(!reason.contains(text), "reason quotes the input");
            }
        }
    }
    let _ = sniff(data);
});
