//! What the local clients' own configuration says, read tolerantly from text and bytes: Claude
//! Code's `settings.json`, its `apiKeyHelper` command line, and which Kimi CLI an installed
//! `kimi` file is. Pure functions (the command line reads the files and reports); the fuzz
//! target `client_config` feeds them anything.

use serde_json::{Map, Value};

/// Why a settings file cannot be used. Never quotes the file's content (it may hold a key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    /// Not JSON; where the parser stopped.
    #[error("not valid JSON (line {line}, column {column})")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
    },
    /// JSON, but not an object at the top.
    #[error("not a JSON object")]
    NotObject,
}

/// A settings file's text as its object, keys in their order; empty (or blank) text is `{}`.
pub fn parse_settings(text: &str) -> Result<Map<String, Value>, SettingsError> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(SettingsError::NotObject),
        Err(e) => Err(SettingsError::Invalid {
            line: e.line(),
            column: e.column(),
        }),
    }
}

/// `kimi-vault token`'s default `--min-valid`, in seconds.
pub const DEFAULT_MIN_VALID: u64 = 300;

/// An `apiKeyHelper` command line, split as the shell Claude Code runs it with would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCommand {
    /// The program (first word).
    pub program: String,
    /// Whether a `token` word follows (a `kimi-vault token` command).
    pub runs_token: bool,
    /// The `--min-valid` it asks for (300 when it names none or an unusable one).
    pub min_valid: u64,
}

/// Splits a helper command line; `None` when the shell could not (an unclosed quote) or it is
/// empty.
pub fn parse_helper(command: &str) -> Option<HelperCommand> {
    let words = shlex::split(command)?;
    let (program, rest) = words.split_first()?;
    let mut min_valid = DEFAULT_MIN_VALID;
    let mut it = rest.iter();
    while let Some(w) = it.next() {
        if w == "--min-valid" {
            min_valid = it
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(DEFAULT_MIN_VALID);
        } else if let Some(v) = w.strip_prefix("--min-valid=") {
            min_valid = v.parse().unwrap_or(DEFAULT_MIN_VALID);
        }
    }
    Some(HelperCommand {
        program: program.clone(),
        runs_token: rest.iter().any(|w| w == "token"),
        min_valid,
    })
}

/// Which Kimi CLI an installed `kimi` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KimiTool {
    /// kimi-cli: a Python console script importing `kimi_cli` (PyPI, archived).
    KimiCli,
    /// kimi-code: npm `@moonshot-ai/kimi-code` (a Node script) or its native build.
    KimiCode,
    /// Neither, as far as the file tells.
    Unknown,
}

/// Tells kimi-cli from kimi-code by the installed file: `resolved` is its path with symlinks
/// resolved, `head` its first bytes (64 KiB is plenty).
pub fn identify_kimi(resolved: &str, head: &[u8]) -> KimiTool {
    let path = resolved.to_ascii_lowercase();
    if path.contains("kimi-code") || path.contains("kimi_code") {
        return KimiTool::KimiCode;
    }
    if path.contains("kimi-cli") || path.contains("kimi_cli") {
        return KimiTool::KimiCli;
    }
    if head.starts_with(b"\x7fELF")
        || head.starts_with(&[0xcf, 0xfa, 0xed, 0xfe])
        || head.starts_with(&[0xca, 0xfe, 0xba, 0xbe])
        || head.starts_with(b"MZ")
    {
        // kimi-cli ships only as Python; a native `kimi` is kimi-code's build.
        return KimiTool::KimiCode;
    }
    let text = String::from_utf8_lossy(head);
    let first = text.lines().next().unwrap_or_default();
    // The interpreter first: kimi-code's bundle may mention kimi-cli (it migrates its files).
    let shebang = first.starts_with("#!");
    if shebang && first.contains("python") {
        KimiTool::KimiCli
    } else if shebang && (first.contains("node") || first.contains("bun")) {
        KimiTool::KimiCode
    } else if text.contains("kimi_cli") {
        KimiTool::KimiCli
    } else if text.contains("kimi-code") {
        KimiTool::KimiCode
    } else {
        KimiTool::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helper_command_lines() {
        let min = |s: &str| parse_helper(s).unwrap().min_valid;
        assert_eq!(min("kimi-vault token"), 300);
        assert_eq!(min("kimi-vault token --min-valid 600"), 600);
        assert_eq!(min("'/a b/kimi-vault' token --min-valid=900"), 900);
        assert_eq!(min("kimi-vault token --min-valid"), 300);
        assert_eq!(min("kimi-vault token --min-valid x"), 300);
        let h = parse_helper("'/a b/kimi-vault' --profile w token").unwrap();
        assert_eq!(h.program, "/a b/kimi-vault");
        assert!(h.runs_token);
        assert!(parse_helper("'unclosed").is_none());
        assert!(parse_helper("   ").is_none());
    }

    #[test]
    fn settings_errors_say_where_not_what() {
        let e = parse_settings(r#"{"env": {"K": "sk-secret-value" "#).unwrap_err();
        assert!(matches!(e, SettingsError::Invalid { .. }));
        assert!(!e.to_string().contains("sk-secret"));
        assert_eq!(parse_settings("[1]"), Err(SettingsError::NotObject));
        assert!(parse_settings(" \n").unwrap().is_empty());
        let m = parse_settings(r#"{"z":1,"a":2}"#).unwrap();
        assert_eq!(m.keys().collect::<Vec<_>>(), ["z", "a"], "order kept");
    }

    #[test]
    fn kimi_tools() {
        assert_eq!(
            identify_kimi(
                "/usr/lib/node_modules/@moonshot-ai/kimi-code/dist/main.mjs",
                b""
            ),
            KimiTool::KimiCode
        );
        assert_eq!(
            identify_kimi(
                "/home/u/.local/bin/kimi",
                b"#!/usr/bin/python3\nfrom kimi_cli import x"
            ),
            KimiTool::KimiCli
        );
        assert_eq!(
            identify_kimi(
                "/b/kimi",
                b"#!/usr/bin/env node\n// migrates kimi_cli files"
            ),
            KimiTool::KimiCode
        );
        assert_eq!(identify_kimi("/b/kimi", b"\x7fELF\x02"), KimiTool::KimiCode);
        assert_eq!(
            identify_kimi("/b/kimi", b"#!/bin/sh\necho"),
            KimiTool::Unknown
        );
    }
}
