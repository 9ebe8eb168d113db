//! Snapshot tests (insta) of the human output of `status`, `usage`, `profiles` and `doctor`
//! (and, through `check`, of tests/it/cli_snapshots.rs: `--help`, errors, `models`), each from
//! the real binary with fixed inputs: the clock is fixed (`KIMI_VAULT_TEST_NOW`, compiled only
//! into `--features testing` builds, so the tests that show times are ignored without it), the
//! time zone is UTC, and paths, ports and timings are replaced by placeholders. The expected
//! texts are in tests/it/snapshots/*.snap; a mismatch fails with a diff. README.md ("Snapshot
//! tests") says how to review and accept a change.

use crate::common::*;

/// 2040-01-01T00:00:00Z: later than any file this test writes, so the clock checks pass.
const NOW: i64 = 2_208_988_800;

fn seed_at(env: &TestEnv, profile: &str, expires_in: i64, region: &str, needs_login: bool) {
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
    env.store(profile, &cred);
}

pub(super) fn run(env: &TestEnv, args: &[&str]) -> (Option<i32>, String) {
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
pub(super) fn normalize(env: &TestEnv, text: &str) -> String {
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
pub(super) fn check(name: &str, actual: &str) {
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
