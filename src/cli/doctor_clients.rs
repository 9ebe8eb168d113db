//! `doctor`'s client checks: Claude Code's settings (a helper that is not this binary, keys in
//! the settings' `env` that override it, a base URL ending in `/v1`, a helper TTL not below the
//! helper's `--min-valid`), the shell's `ANTHROPIC_API_KEY`, an HTTP proxy that would be asked
//! for loopback URLs, and which `kimi` is on PATH. Each finding comes with its fix.

// Environment reads belong to the edge, and this is the edge: doctor checks the shell variables that clients will see.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use kimi_vault::clients::KimiTool;
use serde_json::Value;

use crate::cli::output::outln;
use crate::cli::setup::{self, DEFAULT_HELPER_TTL_MS, OVERRIDING};

/// How a check came out (`--json`: `ok`, `info`, `problem`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    /// Nothing to do.
    Ok,
    /// Worth knowing; nothing is broken.
    Info,
    /// Something bypasses or breaks the vault for a client.
    Problem,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Info => "info",
            Status::Problem => "problem",
        }
    }
}

/// One finding: an entry of `doctor --json`'s `clients.checks`, and a line for people.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Finding {
    /// A stable name (`--json`).
    pub(crate) check: &'static str,
    pub(crate) status: Status,
    /// What was found (paths and values from outside escaped for the terminal when printed).
    pub(crate) detail: String,
    /// What to do, when anything.
    pub(crate) fix: Option<String>,
}

fn finding(check: &'static str, status: Status, detail: String, fix: Option<String>) -> Finding {
    Finding {
        check,
        status,
        detail,
        fix,
    }
}

/// True when `program` (a helper's first word) is this binary.
fn is_this_binary(program: &str) -> bool {
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    let path = if program.contains('/') {
        Some(PathBuf::from(program))
    } else {
        setup::find_on_path(program)
    };
    path.and_then(|p| std::fs::canonicalize(p).ok())
        .is_some_and(|p| p == exe)
}

fn shown(path: &Path) -> String {
    kimi_vault::sanitize::for_terminal(&path.display().to_string()).into_owned()
}

/// Claude Code's settings files.
fn claude_settings(out: &mut Vec<Finding>) {
    let user = setup::settings_path();
    let mut any = false;
    for path in setup::all_settings_paths() {
        let is_user = Some(&path) == user.as_ref();
        let map = match setup::read_settings(&path) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(why) => {
                out.push(finding(
                    "claude_settings",
                    Status::Problem,
                    kimi_vault::sanitize::for_terminal(&why).into_owned(),
                    Some(format!(
                        "fix the JSON in {} (Claude Code ignores a file it cannot read)",
                        shown(&path)
                    )),
                ));
                continue;
            }
        };
        any = true;
        let env = map.get("env").and_then(Value::as_object);
        for name in OVERRIDING {
            if env.is_some_and(|e| e.contains_key(name)) {
                out.push(finding(
                    "claude_settings_key",
                    Status::Problem,
                    format!(
                        "{} sets env.{name}: Claude Code uses it instead of apiKeyHelper, and it overrides what `kimi-vault exec` and `exec --proxy` give Claude Code",
                        shown(&path)
                    ),
                    Some(format!("remove env.{name} from {}", shown(&path))),
                ));
            }
        }
        if let Some(base) = env
            .and_then(|e| e.get("ANTHROPIC_BASE_URL"))
            .and_then(Value::as_str)
        {
            let trimmed = base.trim_end_matches('/');
            if trimmed.ends_with("/v1") {
                out.push(finding(
                    "claude_base_url",
                    Status::Problem,
                    format!(
                        "{} sets env.ANTHROPIC_BASE_URL to {}: Claude Code adds /v1/messages itself, so requests would go to …/v1/v1/messages",
                        shown(&path),
                        kimi_vault::sanitize::for_terminal(base)
                    ),
                    Some(format!(
                        "set it to {} (without /v1); `kimi-vault setup claude` does",
                        kimi_vault::sanitize::for_terminal(trimmed.trim_end_matches("/v1"))
                    )),
                ));
            }
        }
        let Some(helper) = map.get("apiKeyHelper").and_then(Value::as_str) else {
            if is_user {
                out.push(finding(
                    "claude_helper",
                    Status::Info,
                    format!("{} has no apiKeyHelper", shown(&path)),
                    Some("to have Claude Code take its key from the vault without a proxy: kimi-vault setup claude".into()),
                ));
            }
            continue;
        };
        let parsed = kimi_vault::clients::parse_helper(helper);
        let ours = parsed
            .as_ref()
            .is_some_and(|h| h.runs_token && is_this_binary(&h.program));
        if !ours {
            out.push(finding(
                "claude_helper",
                Status::Problem,
                format!(
                    "{}: apiKeyHelper runs {}, which is not this kimi-vault's `token`",
                    shown(&path),
                    kimi_vault::sanitize::for_terminal(helper)
                ),
                Some("kimi-vault setup claude (it keeps the old value for --undo)".into()),
            ));
            continue;
        }
        let min_valid = parsed.map_or(kimi_vault::clients::DEFAULT_MIN_VALID, |h| h.min_valid);
        let ttl_ms = env
            .and_then(|e| e.get("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"))
            .and_then(|v| match v {
                Value::String(s) => s.trim().parse::<u64>().ok(),
                Value::Number(n) => n.as_u64(),
                _ => None,
            })
            .or_else(|| {
                std::env::var("CLAUDE_CODE_API_KEY_HELPER_TTL_MS")
                    .ok()
                    .and_then(|s| s.trim().parse().ok())
            })
            .unwrap_or(DEFAULT_HELPER_TTL_MS);
        if ttl_ms / 1000 >= min_valid {
            out.push(finding(
                "claude_helper_ttl",
                Status::Problem,
                format!(
                    "{}: Claude Code keeps the helper's token for {} s (CLAUDE_CODE_API_KEY_HELPER_TTL_MS), not less than the {min_valid} s the helper's --min-valid guarantees: a cached token can expire while Claude Code still uses it",
                    shown(&path),
                    ttl_ms / 1000
                ),
                Some("kimi-vault setup claude (helper --min-valid 600, TTL 300000 ms)".into()),
            ));
        } else {
            out.push(finding(
                "claude_helper",
                Status::Ok,
                format!(
                    "{}: apiKeyHelper is this kimi-vault (--min-valid {min_valid} s, cached {} s)",
                    shown(&path),
                    ttl_ms / 1000
                ),
                None,
            ));
        }
    }
    if !any {
        out.push(finding(
            "claude_settings",
            Status::Info,
            format!(
                "no Claude Code settings file here ({})",
                user.as_deref().map(shown).unwrap_or_else(|| "~/.claude/settings.json".into())
            ),
            Some("to have Claude Code take its key from the vault: kimi-vault setup claude (or run it with kimi-vault exec --proxy -- claude)".into()),
        ));
    }
}

/// The shell's variables.
fn shell(out: &mut Vec<Finding>) {
    if std::env::var_os("ANTHROPIC_API_KEY").is_some() {
        out.push(finding(
            "shell_anthropic_api_key",
            Status::Problem,
            "ANTHROPIC_API_KEY is set in this shell: Claude Code sends it beside (or instead of) the key from kimi-vault, and interactive Claude Code asks whether to use it".into(),
            Some("unset ANTHROPIC_API_KEY, and remove it from your shell's startup files (`kimi-vault exec` removes it for the program it runs)".into()),
        ));
    } else {
        out.push(finding(
            "shell_anthropic_api_key",
            Status::Ok,
            "ANTHROPIC_API_KEY is not set in this shell".into(),
            None,
        ));
    }
    let proxies: Vec<&str> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .into_iter()
    .filter(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()))
    .collect();
    if proxies.is_empty() {
        return;
    }
    out.push(no_proxy_finding(
        &proxies,
        std::env::var("NO_PROXY").ok().as_deref(),
        std::env::var("no_proxy").ok().as_deref(),
    ));
}

/// True when a `NO_PROXY` value lets a client reach 127.0.0.1 directly.
fn has_loopback(value: &str) -> bool {
    value
        .split([',', ' '])
        .map(|e| e.trim().to_ascii_lowercase())
        .any(|e| e == "*" || e == "127.0.0.1" || e == "127.0.0.0/8")
}

/// `"NO_PROXY=…"` or `"NO_PROXY unset"`, for the finding's detail.
fn shown_var(name: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{name}={}", kimi_vault::sanitize::for_terminal(v)),
        None => format!("{name} unset"),
    }
}

/// Whether the HTTP proxy in the environment would be asked for loopback URLs. `NO_PROXY` and
/// `no_proxy` are taken as the environment has them, not merged: each client reads one of
/// them. curl, Python (urllib, requests, httpx) and Node.js's undici (`EnvHttpProxyAgent`)
/// read `no_proxy` first and `NO_PROXY` only when it is unset; Go's net/http and Rust's
/// reqwest read `NO_PROXY` first. Loopback is safe only when both readings have it.
fn no_proxy_finding(proxies: &[&str], upper: Option<&str>, lower: Option<&str>) -> Finding {
    let lowercase_first = lower.or(upper);
    let uppercase_first = upper.or(lower);
    let vars = format!(
        "{}, {}",
        shown_var("NO_PROXY", upper),
        shown_var("no_proxy", lower)
    );
    let fix = "export NO_PROXY=\"${NO_PROXY:+$NO_PROXY,}127.0.0.1,localhost,::1\" no_proxy=\"${no_proxy:+$no_proxy,}127.0.0.1,localhost,::1\" (`kimi-vault exec --proxy` does this for its program)";
    let proxies = proxies.join(", ");
    let clients = match (
        lowercase_first.is_some_and(has_loopback),
        uppercase_first.is_some_and(has_loopback),
    ) {
        (true, true) => {
            return finding(
                "http_proxy",
                Status::Ok,
                format!(
                    "{proxies} is set and the NO_PROXY every client reads has loopback ({vars}): clients reach a local proxy directly"
                ),
                None,
            );
        }
        (false, true) => {
            "curl, Python (urllib, requests, httpx) and Node.js (Claude Code, the SDKs), which read no_proxy first,"
        }
        (true, false) => "Go and Rust (reqwest) programs, which read NO_PROXY first,",
        (false, false) => "Claude Code, curl and the SDKs",
    };
    finding(
        "http_proxy",
        Status::Problem,
        format!(
            "{proxies} is set and 127.0.0.1 is not exempted ({vars}): {clients} send requests for a running `kimi-vault proxy` (http://127.0.0.1:…) through that HTTP proxy (NO_PROXY=localhost is not enough)"
        ),
        Some(fix.into()),
    )
}

/// Which Kimi CLI the `kimi` at `path` is: its resolved path and its first 64 KiB.
fn identify_kimi(path: &Path) -> KimiTool {
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    let mut head = vec![0u8; 64 * 1024];
    let n = std::fs::File::open(&real)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .unwrap_or(0);
    head.truncate(n);
    kimi_vault::clients::identify_kimi(&real.to_string_lossy(), &head)
}

fn kimi_on_path(out: &mut Vec<Finding>) {
    let Some(path) = setup::find_on_path("kimi") else {
        out.push(finding(
            "kimi_cli",
            Status::Info,
            "no `kimi` on PATH".into(),
            None,
        ));
        return;
    };
    let p = shown(&path);
    let (status, detail, fix) = match identify_kimi(&path) {
        KimiTool::KimiCode => (
            Status::Ok,
            format!("{p} is kimi-code (it reads its key only from KIMI_MODEL_*, not KIMI_API_KEY)"),
            "kimi-vault exec --proxy --for kimi -- kimi".to_owned(),
        ),
        KimiTool::KimiCli => (
            Status::Info,
            format!("{p} is kimi-cli (Python, archived on PyPI; 1.52 is a stub that only points to kimi-code)"),
            "kimi-vault exec --proxy --for kimi -- kimi (1.51 or older); MoonshotAI's kimi-code replaces it".to_owned(),
        ),
        KimiTool::Unknown => (
            Status::Info,
            format!("{p} is neither kimi-cli nor kimi-code as far as its file tells"),
            "kimi-vault exec --proxy --for kimi -- kimi serves both Kimi CLIs".to_owned(),
        ),
    };
    out.push(finding("kimi_cli", status, detail, Some(fix)));
}

/// Every client check.
pub(crate) fn check() -> Vec<Finding> {
    let mut out = Vec::new();
    claude_settings(&mut out);
    shell(&mut out);
    kimi_on_path(&mut out);
    out
}

/// True when no client check found a problem.
pub(crate) fn all_ok(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.status != Status::Problem)
}

/// The human section.
pub(crate) fn print(findings: &[Finding]) {
    outln!("\nClients (Claude Code's settings, the shell, kimi on PATH)");
    for f in findings {
        outln!("  {}: {}", f.status.as_str(), f.detail);
        if let Some(fix) = &f.fix {
            outln!("    fix: {fix}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (status, detail) for HTTPS_PROXY and the two variables.
    fn verdict(upper: Option<&str>, lower: Option<&str>) -> (Status, String) {
        let f = no_proxy_finding(&["HTTPS_PROXY"], upper, lower);
        (f.status, f.detail)
    }

    #[test]
    fn no_proxy_and_no_proxy_lowercase_are_read_apart_not_merged() {
        // Each alone, with loopback: every client reads it.
        assert_eq!(verdict(Some("127.0.0.1"), None).0, Status::Ok);
        assert_eq!(verdict(None, Some("localhost, 127.0.0.1")).0, Status::Ok);
        assert_eq!(verdict(Some("*"), Some("127.0.0.0/8")).0, Status::Ok);
        // Merged, these would pass; read apart, one family of clients misses loopback.
        let (status, detail) = verdict(Some("127.0.0.1"), Some("localhost"));
        assert_eq!(status, Status::Problem);
        assert!(detail.contains("read no_proxy first"), "{detail}");
        let (status, detail) = verdict(Some("localhost"), Some("127.0.0.1"));
        assert_eq!(status, Status::Problem);
        assert!(detail.contains("read NO_PROXY first"), "{detail}");
        // An empty no_proxy is set: curl reads it (and not NO_PROXY).
        assert_eq!(verdict(Some("127.0.0.1"), Some("")).0, Status::Problem);
        assert_eq!(verdict(None, None).0, Status::Problem);
        // The values are shown as they are.
        let (_, detail) = verdict(Some("a,b"), None);
        assert!(detail.contains("NO_PROXY=a,b, no_proxy unset"), "{detail}");
    }
}
