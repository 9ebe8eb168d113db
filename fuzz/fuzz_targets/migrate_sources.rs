//! Every migration format parser on arbitrary bytes: never a panic, and a reason never quotes a
//! token-like value of the input (16+ characters, no white space, letters and digits).
#![no_main]

use kimi_vault::internals::{Tool, parse, sniff};
use libfuzzer_sys::fuzz_target;

fn token_like_strings(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::String(s) => {
            if s.len() >= 16
                && !s.chars().any(char::is_whitespace)
                && s.chars().any(|c| c.is_ascii_digit())
                && s.chars().any(|c| c.is_alphabetic())
            {
                out.push(s.clone());
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| token_like_strings(x, out)),
        serde_json::Value::Object(m) => m.values().for_each(|x| token_like_strings(x, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let key = [7u8; 32];
    let mut secrets = Vec::new();
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
        token_like_strings(&v, &mut secrets);
    }
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
            for s in &secrets {
                assert!(!reason.contains(s.as_str()), "reason quotes a value");
            }
        }
    }
    let _ = sniff(data);
});
