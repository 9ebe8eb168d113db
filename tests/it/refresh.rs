//! Token, refresh and rotation through the real binary against the fake Kimi server.

use crate::common::*;
use predicates::prelude::*;

#[test]
fn valid_token_is_printed_without_any_request() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-valid-0123456789abcdef",
        "rt-0123456789abcdef",
        3600,
    );
    env.cmd()
        .arg("token")
        .assert()
        .success()
        .stdout("at-valid-0123456789abcdef\n");
    assert_eq!(env.server.with(|s| s.seen_headers.len()), 0);
}

#[test]
fn a_warm_token_starts_no_runtime_and_no_http_client() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-valid-0123456789abcdef",
        "rt-0123456789abcdef",
        3600,
    );
    let out = env.cmd().args(["-vv", "token"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("runtime") && !err.contains("HTTP client"),
        "{err}"
    );
    // The same -vv on a token that needs a refresh shows both being built.
    env.seed(
        "default",
        "at-old-0123456789abcdef",
        "rt-old-0123456789abcdef",
        10,
    );
    let out = env.cmd().args(["-vv", "token"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("runtime") && err.contains("HTTP client"),
        "{err}"
    );
    for secret in ["at-old-0123", "rt-old-0123", "at-gen1", "rt-gen1"] {
        assert!(!err.contains(secret), "{secret} in -vv output: {err}");
    }
}

#[test]
fn expiring_token_is_refreshed_and_rotated() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-old-0123456789abcdef",
        "rt-old-0123456789abcdef",
        60,
    );
    let out = env.cmd().arg("token").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "at-gen1-0123456789abcdef0123456789"
    );
    let stored = env.stored("default").unwrap();
    assert_eq!(
        stored.refresh_token.expose(),
        "rt-gen1-0123456789abcdef0123456789"
    );
    assert!(stored.expires_at > kimi_vault::now_unix() + 800);
    // The next call uses the stored token; --min-valid beyond its life forces another rotation.
    env.cmd()
        .arg("token")
        .assert()
        .stdout(predicate::str::contains("at-gen1"));
    env.cmd()
        .args(["token", "--min-valid", "2000"])
        .assert()
        .stdout(predicate::str::contains("at-gen2"));
    assert_eq!(env.server.refresh_requests(), 2);
    let forms = env.server.with(|s| s.seen_forms.clone());
    assert_eq!(forms[0]["grant_type"], "refresh_token");
    assert_eq!(forms[0]["refresh_token"], "rt-old-0123456789abcdef");
    assert_eq!(
        forms[1]["refresh_token"],
        "rt-gen1-0123456789abcdef0123456789"
    );
}

#[test]
fn omitted_refresh_token_keeps_the_old_one() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-old-0123456789abcdef",
        "rt-keep-0123456789abcdef",
        10,
    );
    env.server.with(|s| s.omit_refresh_in_response = true);
    env.cmd().arg("token").assert().success();
    assert_eq!(
        env.stored("default").unwrap().refresh_token.expose(),
        "rt-keep-0123456789abcdef"
    );
}

#[test]
fn rejected_refresh_marks_needs_login_and_exits_3() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 10);
    env.server
        .with(|s| s.valid_refresh = Some("something-else".into()));
    let out = env.cmd().arg("token").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kimi-vault login"));
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    let stored = env.stored("default").expect("the record is kept");
    assert!(stored.needs_login);
    // No further request: needs_login is remembered.
    let before = env.server.refresh_requests();
    env.cmd().arg("token").assert().code(3);
    assert_eq!(env.server.refresh_requests(), before);
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["needs_login"], true);
    assert_eq!(v["logged_in"], false);
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn retry_after_is_honoured_then_success() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-old-0123456789abcdef",
        "rt-old-0123456789abcdef",
        10,
    );
    env.server.with(|s| {
        s.canned.push_back(Canned {
            status: 503,
            body: "{}".into(),
            headers: vec![("Retry-After".into(), "1".into())],
        });
        s.canned.push_back(Canned {
            status: 429,
            body: "{}".into(),
            headers: vec![],
        });
    });
    env.cmd()
        .arg("token")
        .assert()
        .success()
        .stdout(predicate::str::contains("at-gen1"));
    assert_eq!(env.server.refresh_requests(), 3);
}

fn server_errors(env: &TestEnv, n: usize) {
    env.server.with(|s| {
        for _ in 0..n {
            s.canned.push_back(Canned {
                status: 500,
                body: format!(r#"{{"error":"server_error","debug":"{CANARY_REFRESH}"}}"#),
                headers: vec![],
            });
        }
    });
}

#[test]
fn persistent_failure_exits_5_and_keeps_credential() {
    let env = TestEnv::new();
    // Expired: after the failed refresh there is no valid token left to hand out.
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, -10);
    server_errors(&env, 4);
    let out = env.cmd().arg("token").output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    let stored = env.stored("default").unwrap();
    assert_eq!(stored.refresh_token.expose(), CANARY_REFRESH);
    assert!(!stored.needs_login);
    assert_eq!(env.server.refresh_requests(), 4);
    // The failure is recorded beside the lock: the next process reports it at once, without
    // asking the server again.
    let out = env.cmd().arg("token").output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("reported by a kimi-vault process"), "{err}");
    assert_eq!(env.server.refresh_requests(), 4);
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    assert_eq!(mode_of(&env.vault_home().join("refresh.backoff")), 0o600);
}

#[test]
fn transient_failure_hands_out_a_still_valid_token_with_a_warning() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 120);
    server_errors(&env, 4);
    // Wants 300 s: a refresh is attempted, fails for good, and the 120 s token is handed out.
    let out = env.cmd().arg("token").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{CANARY_ACCESS}\n")
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("still valid"),
        "{err}"
    );
    assert!(!err.contains(CANARY_REFRESH));
    // A second process within the back-off does not ask again.
    env.cmd().arg("token").assert().success();
    assert_eq!(env.server.refresh_requests(), 4);
}

#[test]
fn waiters_behind_a_hung_auth_server_finish_within_the_budget() {
    const N: usize = 6;
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, -10);
    env.server
        .with(|s| s.hang_refresh = Some(std::time::Duration::from_secs(120)));
    let start = std::time::Instant::now();
    let children = env.spawn_many(N, &["token"]);
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(5),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    }
    let elapsed = start.elapsed();
    // One process spends the 30 s budget (two 15 s attempts); the others wait for the lock and
    // then report its outcome at once, instead of each trying for 30 s in turn.
    assert!(
        elapsed < std::time::Duration::from_secs(45),
        "{N} processes took {elapsed:?}"
    );
    assert!(
        env.server.refresh_requests() <= 2,
        "one process's attempts only"
    );
    report(&format!(
        "hung auth server: {N} token processes finished in {:.1} s (refresh budget 30 s), {} refresh requests",
        elapsed.as_secs_f64(),
        env.server.refresh_requests()
    ));
}

#[test]
fn malformed_bodies_with_canaries_never_leak() {
    let bodies = [
        format!(r#"{{"refresh_token":"{CANARY_REFRESH}"}}"#),
        format!(r#"{{"access_token":"{CANARY_ACCESS}","expires_in":-5}}"#),
        format!("<html>{CANARY_ACCESS} {CANARY_REFRESH}</html>"),
        format!(r#"{{"error":"weird","error_description":"token {CANARY_REFRESH} is bad"}}"#),
        format!(r#"["{CANARY_ACCESS}"]"#),
        "not json at all".into(),
    ];
    for body in bodies {
        let env = TestEnv::new();
        env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 10);
        env.server.with(|s| {
            s.canned.push_back(Canned {
                status: 200,
                body: body.clone(),
                headers: vec![],
            })
        });
        let out = env.cmd().arg("token").output().unwrap();
        assert_eq!(out.status.code(), Some(1), "body {body}");
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
        assert!(String::from_utf8_lossy(&out.stderr).contains("unchanged"));
        assert_eq!(
            env.stored("default").unwrap().refresh_token.expose(),
            CANARY_REFRESH
        );
    }
}

#[test]
fn not_logged_in_exits_3() {
    let env = TestEnv::new();
    env.cmd()
        .arg("token")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("kimi-vault login"));
    env.cmd()
        .args(["--profile", "work", "token"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("--profile work"));
}

#[test]
fn concurrent_token_processes_refresh_exactly_once() {
    const N: usize = 24;
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-old-0123456789abcdef",
        "rt-old-0123456789abcdef",
        30,
    );
    let children = env.spawn_many(N, &["token"]);
    let outputs: Vec<_> = children
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let tokens: std::collections::BTreeSet<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect();
    assert_eq!(tokens.len(), 1, "one resulting token: {tokens:?}");
    assert!(tokens.iter().next().unwrap().contains("at-gen1"));
    assert_eq!(
        env.server.refresh_requests(),
        1,
        "exactly one refresh request"
    );
}

#[test]
fn status_never_shows_a_secret() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    for args in [
        vec!["status"],
        vec!["status", "--json"],
        vec!["-v", "status"],
    ] {
        let out = env.cmd().args(&args).output().unwrap();
        assert!(out.status.success());
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    }
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "profile",
        "logged_in",
        "needs_login",
        "backend",
        "backend_reason",
        "expires_at",
        "expires_in_seconds",
        "scope",
    ] {
        assert!(v.get(key).is_some(), "{key}");
    }
    assert_eq!(v["logged_in"], true);
    assert_eq!(v["backend"], "file");
    assert_eq!(v["scope"], "kimi-code");
    assert!(v["expires_in_seconds"].as_i64().unwrap() > 3500);
}

#[test]
fn logout_removes_and_is_idempotent() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    env.seed(
        "other",
        "at-other-0123456789abcdef",
        "rt-other-0123456789abcdef",
        3600,
    );
    env.cmd().arg("logout").assert().success();
    assert!(env.stored("default").is_none());
    assert!(env.stored("other").is_some(), "other profiles untouched");
    env.cmd().arg("logout").assert().success();
    env.cmd().arg("token").assert().code(3);
}

#[test]
fn token_refresh_after_a_transient_failure_hands_out_the_still_valid_token() {
    // SPEC §5: whatever asked for the refresh (here `token --refresh`), a transient failure
    // with a still-valid stored token hands it out with a warning, exit 0.
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    server_errors(&env, 4);
    let out = env.cmd().args(["token", "--refresh"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{CANARY_ACCESS}\n")
    );
    assert!(
        err.contains("warning") && err.contains("still valid"),
        "{err}"
    );
    assert!(!err.contains(CANARY_REFRESH));
}
