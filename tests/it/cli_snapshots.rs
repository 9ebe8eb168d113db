//! Snapshot tests (insta, through `snapshots::check`, so the files are
//! tests/it/snapshots/it__snapshots__NAME.snap) of what a user reads first: `--help` of the tool
//! and of every subcommand, the main error messages with their exit codes, and `models`. None
//! needs the fixed clock. README.md ("Snapshot tests") says how to review and accept a change.

use std::collections::BTreeSet;

use super::snapshots::{check, normalize, run};
use crate::common::*;

/// `kimi-vault ARGS…` with nothing from the test's environment that clap would show in
/// `--help` (`[env: NAME=value]`): only PATH and a private HOME.
fn run_bare(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
    let out = env
        .cmd()
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home())
        .env("TZ", "UTC")
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "$ kimi-vault {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The subcommands a `--help` text lists under "Commands:" (clap's own `help` left out).
fn commands_in(help: &str) -> BTreeSet<String> {
    let Some(list) = help.split("\nCommands:\n").nth(1) else {
        return BTreeSet::new();
    };
    list.split("\n\n")
        .next()
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .filter(|c| c != "help")
        .collect()
}

/// `--help` of the tool and of every subcommand, nested ones included, one snapshot each
/// (`help`, `help-login`, `help-profiles-use`…): a new subcommand gets a new snapshot to accept.
#[test]
fn help_of_every_command() {
    let env = TestEnv::new();
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = 0;
    while let Some(path) = todo.pop() {
        let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
        args.push("--help");
        let (code, text) = run_bare(&env, &args);
        assert_eq!(code, Some(0), "{text}");
        let name = std::iter::once("help")
            .chain(path.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join("-");
        check(&name, &normalize(&env, &text));
        seen += 1;
        for sub in commands_in(&text) {
            let mut next = path.clone();
            next.push(sub);
            todo.push(next);
        }
    }
    assert!(
        seen > 10,
        "only {seen} help texts: is the Commands: list still parsed?"
    );
}

/// `KIMI_VAULT_BACKEND=keyring` with no keyring to be had.
const KEYRING_UNAVAILABLE_EXIT: i32 = 1;

/// The error messages a user meets most, with their exit codes.
#[test]
fn main_error_messages() {
    let env = TestEnv::new();
    let mut all = String::new();
    let mut case = |want: i32, (code, text): (Option<i32>, String)| {
        assert_eq!(code, Some(want), "{text}");
        all += &format!("{text}[exit {want}]\n\n");
    };
    // Usage errors (2): a bad flag, an unknown command, a bad profile name, a bad `--env`.
    case(2, run(&env, &["status", "--bogus"]));
    case(2, run(&env, &["frobnicate"]));
    case(2, run(&env, &["--profile", "../etc", "status"]));
    case(2, run(&env, &["exec", "--env", "HOME", "--", "true"]));
    // Not logged in (3).
    case(3, run(&env, &["token"]));
    case(3, run(&env, &["--profile", "work", "usage"]));
    // An endpoint off the rule is refused before a byte is sent (1).
    {
        let out = env
            .cmd()
            .env("KIMI_CODE_OAUTH_HOST", "http://auth.example.test")
            .args(["login", "--no-browser"])
            .output()
            .unwrap();
        case(
            1,
            (
                out.status.code(),
                format!(
                    "$ KIMI_CODE_OAUTH_HOST=http://auth.example.test kimi-vault login --no-browser\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
        );
    }
    // The keyring required but not there (no D-Bus session at all).
    {
        let out = env
            .cmd()
            .env("KIMI_VAULT_BACKEND", "keyring")
            .arg("token")
            .output()
            .unwrap();
        case(
            KEYRING_UNAVAILABLE_EXIT,
            (
                out.status.code(),
                format!(
                    "$ KIMI_VAULT_BACKEND=keyring kimi-vault token\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            ),
        );
    }
    // A corrupt vault (4).
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    std::fs::write(env.vault_home().join("vault.enc"), b"KVLT\x01garbage").unwrap();
    case(4, run(&env, &["token"]));
    let all = normalize(&env, &all);
    assert!(!all.contains("CANARY"), "{all}");
    check("errors", &all);
}

#[test]
fn models_snapshot() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let (code, text) = run(&env, &["models"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("CANARY"), "{text}");
    check("models", &normalize(&env, &text));
}
