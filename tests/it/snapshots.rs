//! Snapshot tests (insta) of what a user reads: `--help` of the tool and of every subcommand,
//! the main error messages, and the human output of `status`, `usage`, `models`, `profiles` and
//! `doctor`, each from the real binary with fixed inputs: the clock is fixed
//! (`KIMI_VAULT_TEST_NOW`, compiled only into `--features testing` builds, so the tests that
//! show times are ignored without it), the time zone is UTC, and paths, ports and timings are
//! replaced by placeholders. The expected texts are in tests/it/snapshots/*.snap; a mismatch
//! fails with a diff. README.md ("Snapshot tests") says how to review and accept a change.

use std::collections::BTreeSet;

use crate::common::*;

/// 2040-01-01T00:00:00Z: later than any file this test writes, so the clock checks pass.
const NOW: i64 = 2_208_988_800;

fn seed_at(env: &TestEnv, profile: &str, expires_in: i64, region: &str, needs_login: bool) {
    let vault = env.vault();
    let lock = vault.lock().unwrap();
    let mut cred = credential(
        &format!("at-{profile}-0123456789abcdef"),
        &format!("rt-{profile}-0123456789abcdef"),
        0,
    );
    cred.expires_at = NOW + expires_in;
    cred.region = region.into();
    cred.needs_login = needs_login;
    if profile == "default" {
        // Read from /me at login (the others: from before accounts were stored).
        cred.account = Some(kimi_vault::store::Account {
            user_id: "u_123".into(),
            nickname: Some("moonwalker".into()),
            level_name: Some("Vivace".into()),
            region: Some("REGION_CN".into()),
        });
    }
    vault.save(profile, &cred, &lock, false).unwrap();
}

fn run(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
    let out = env
        .cmd()
        .env("KIMI_VAULT_TEST_NOW", NOW.to_string())
        .env("TZ", "UTC")
        .args(args)
        .output()
        .unwrap();
    assert_no_secret(&out, &["at-", "rt-"]);
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

/// Replaces what differs between runs and machines.
fn normalize(env: &TestEnv, text: &str) -> String {
    let mut t = text
        .replace(&env.dir.path().display().to_string(), "<TMP>")
        .replace(&env.server.url, "<SERVER>");
    for src in ["/etc/machine-id", "/var/lib/dbus/machine-id"] {
        t = t.replace(src, "<MACHINE-ID>");
    }
    let uid = rustix::process::geteuid().as_raw();
    t = t.replace(&format!("uid {uid}"), "uid <UID>");
    // "12 ms" -> "N ms"
    let mut out = String::with_capacity(t.len());
    let chars: Vec<char> = t.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() && (i == 0 || !chars[i - 1].is_ascii_alphanumeric()) {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let rest: String = chars[i..chars.len().min(i + 3)].iter().collect();
            if rest == " ms" {
                out.push('N');
            } else {
                out.extend(&chars[start..i]);
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// Runs of three or more spaces become two: column padding after a path depends on the temp
/// directory's name.
fn collapse(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut spaces = 0;
    for c in text.chars() {
        if c == ' ' {
            spaces += 1;
            continue;
        }
        out.push_str(&" ".repeat(if spaces >= 3 { 2 } else { spaces }));
        spaces = 0;
        out.push(c);
    }
    out
}

/// The snapshot `name` (tests/it/snapshots/it__snapshots__NAME.snap) must be `actual`.
fn check(name: &str, actual: &str) {
    insta::assert_snapshot!(name, actual);
}

#[test]
#[cfg_attr(
    not(feature = "testing"),
    ignore = "needs `--features testing` (the KIMI_VAULT_TEST_NOW clock); scripts/test.sh turns it on"
)]
fn status_snapshots() {
    let env = TestEnv::new();
    let mut all = String::new();
    let (code, text) = run(&env, &["--profile", "work", "status"]);
    assert_eq!(code, Some(3));
    all += &text;
    seed_at(&env, "default", 843, "cn", false);
    seed_at(&env, "gone", 893, "global", true);
    seed_at(&env, "old", -120, "cn", true);
    for args in [
        &["status"][..],
        &["--profile", "gone", "status"],
        &["--profile", "old", "status"],
    ] {
        all += "\n";
        all += &run(&env, args).1;
    }
    std::fs::write(env.vault_home().join("vault.enc"), b"KVLT\x01garbage").unwrap();
    let (code, text) = run(&env, &["status"]);
    assert_eq!(code, Some(4));
    all += "\n";
    all += &text;
    check("status", &normalize(&env, &all));
}

#[test]
#[cfg_attr(
    not(feature = "testing"),
    ignore = "needs `--features testing` (the KIMI_VAULT_TEST_NOW clock); scripts/test.sh turns it on"
)]
fn usage_snapshot() {
    let env = TestEnv::new();
    seed_at(&env, "default", 843, "cn", false);
    let weekly = kimi_vault::rfc3339(NOW + 4 * 86_400 + 5 * 3600 + 7);
    let five = kimi_vault::rfc3339(NOW + 3 * 3600 + 12 * 60 + 30);
    env.server.with(|s| {
        s.usages_body = format!(
            r#"{{"usage":{{"limit":"2000","used":"512","remaining":"1488","resetTime":"{weekly}"}},"limits":[{{"window":{{"duration":300,"timeUnit":"TIME_UNIT_MINUTE"}},"detail":{{"limit":"200","remaining":"37","resetTime":"{five}"}}}}],"user":{{"membership":{{"level":"LEVEL_ADVANCED"}}}}}}"#
        )
    });
    let mut all = run(&env, &["usage"]).1;
    env.server
        .with(|s| s.usages_body = r#"{"usage":{"limit":"100","remaining":"100"}}"#.into());
    all += "\n";
    all += &run(&env, &["usage"]).1;
    // Extra usage: a balance, with a monthly cap and without.
    env.server.with(|s| {
        s.usages_body = r#"{"usage":{"limit":"100","remaining":"100"},"boosterWallet":{"balance":{"type":"BOOSTER","amount":"2000000000","amountLeft":"1234500000"},"monthlyChargeLimitEnabled":true,"monthlyChargeLimit":{"priceInCents":"5000","currency":"USD"},"monthlyUsed":{"priceInCents":"766","currency":"USD"}}}"#.into()
    });
    all += "\n";
    all += &run(&env, &["usage"]).1;
    env.server.with(|s| {
        s.usages_body = r#"{"boosterWallet":{"balance":{"type":"BOOSTER","amount":"500000000","amountLeft":"0"},"monthlyChargeLimitEnabled":false,"monthlyUsed":{"priceInCents":"500","currency":"CNY"}}}"#.into()
    });
    all += "\n";
    all += &run(&env, &["usage"]).1;
    check("usage", &normalize(&env, &all));
}

#[test]
#[cfg_attr(
    not(feature = "testing"),
    ignore = "needs `--features testing` (the KIMI_VAULT_TEST_NOW clock); scripts/test.sh turns it on"
)]
fn profiles_snapshot() {
    let env = TestEnv::new();
    let mut all = run(&env, &["profiles"]).1;
    seed_at(&env, "default", 843, "cn", false);
    seed_at(&env, "work", 3 * 3600, "global", false);
    seed_at(&env, "gone", -60, "cn", true);
    all += "\n";
    all += &run(&env, &["--profile", "work", "profiles"]).1;
    check("profiles", &normalize(&env, &all));
}

#[test]
#[cfg_attr(
    not(feature = "testing"),
    ignore = "needs `--features testing` (the KIMI_VAULT_TEST_NOW clock); scripts/test.sh turns it on"
)]
fn doctor_snapshot() {
    let env = TestEnv::new();
    let mut all = run(&env, &["doctor"]).1;
    seed_at(&env, "default", 843, "cn", false);
    let (code, text) = run(&env, &["doctor"]);
    assert_eq!(code, Some(0));
    all += "\n";
    all += &text;
    check("doctor", &collapse(&normalize(&env, &all)));
}

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
