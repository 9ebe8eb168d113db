//! `usage` and `models` through the real binary against the fake Kimi API on loopback:
//! decimal strings, missing windows, extra fields, 401 → one refresh → retry, a second 401,
//! 402, 5xx, and canaries that never reach the output.

mod common;

use common::*;
use predicates::prelude::*;

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {} / {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn seeded() -> TestEnv {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    env
}

#[test]
fn usage_json_schema_from_decimal_strings_with_unknown_fields() {
    let env = seeded();
    let out = env.cmd().args(["usage", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    let v = json(&out);
    assert_eq!(v["profile"], "default");
    assert_eq!(v["plan"], "LEVEL_INTERMEDIATE");
    let w = &v["weekly"];
    assert_eq!(
        (
            w["used"].clone(),
            w["limit"].clone(),
            w["remaining"].clone()
        ),
        (26.into(), 100.into(), 74.into())
    );
    assert_eq!(w["used_percent"], 26.0);
    assert_eq!(w["resets_at"], "2099-01-01T00:00:00Z");
    assert!(w["resets_in_seconds"].as_i64().unwrap() > 0);
    let f = &v["five_hour"];
    assert_eq!(f["used"], 15, "used derived from limit - remaining");
    assert_eq!(f["remaining"], 85);
    assert_eq!(v["windows"][0]["window_seconds"], 18000);
    assert_eq!(v["windows"][0]["time_unit"], "TIME_UNIT_MINUTE");
    // The stored token was sent as a bearer token, and nothing else was asked.
    let auth = env.server.with(|s| s.api_auth.clone());
    assert_eq!(
        auth,
        vec![("usages".to_owned(), format!("Bearer {CANARY_ACCESS}"))]
    );
    assert_eq!(env.server.refresh_requests(), 0);
}

#[test]
fn usage_for_people_shows_bars_plan_and_reset_times() {
    let env = seeded();
    let out = env.cmd().env("TZ", "UTC").arg("usage").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "plan: Intermediate",
        "weekly",
        "26% used",
        "26 of 100 used, 74 left",
        "5-hour window",
        "15 of 100 used, 85 left",
        "resets in ",
        "Thu 1 Jan 00:00",
        "█",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn missing_and_unusual_windows_are_shown_as_such() {
    let env = seeded();
    env.server
        .with(|s| s.usages_body = r#"{"usage":{},"limits":"nope"}"#.into());
    let out = env.cmd().arg("usage").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.matches("not reported by Kimi").count(), 2, "{text}");
    assert!(!text.contains("plan:"), "{text}");
    let v = json(&env.cmd().args(["usage", "--json"]).output().unwrap());
    assert!(v["weekly"].is_null() && v["five_hour"].is_null() && v["plan"].is_null());
    assert_eq!(v["windows"], serde_json::json!([]));

    env.server.with(|s| {
        s.usages_body = r#"{"limits":[{"window":{"duration":"1","timeUnit":"TIME_UNIT_DAY"},"detail":{"limit":"10.5","used":"1.25"}}]}"#.into()
    });
    let out = env.cmd().arg("usage").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1-day window"), "{text}");
    assert!(text.contains("1.25 of 10.5 used, 9.25 left"), "{text}");
    assert!(text.contains("reset time not reported"), "{text}");
    let v = json(&env.cmd().args(["usage", "--json"]).output().unwrap());
    assert!(v["five_hour"].is_null());
    assert_eq!(v["windows"][0]["window_seconds"], 86400);
    assert_eq!(v["windows"][0]["used"], 1.25);
}

#[test]
fn an_unusable_answer_exits_1_without_leaking() {
    let env = seeded();
    env.server.with(|s| {
        s.usages
            .push_back(Canned::new(200, &format!("<html>{CANARY_REFRESH} oops")));
        s.models.push_back(Canned::new(
            200,
            &format!(r#"{{"access_token":"{CANARY_REFRESH}"}}"#),
        ));
    });
    let out = env.cmd().arg("usage").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unusable usage answer"));
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    let out = env.cmd().arg("models").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn a_401_forces_one_refresh_and_one_retry() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-old-0123456789abcdef",
        "rt-old-0123456789abcdef",
        3600,
    );
    env.server.with(|s| {
        s.usages
            .push_back(Canned::new(401, r#"{"error":"unauthorized"}"#))
    });
    let out = env.cmd().args(["usage", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.server.refresh_requests(), 1);
    let auth = env.server.with(|s| s.api_auth.clone());
    assert_eq!(auth.len(), 2);
    assert_eq!(auth[0].1, "Bearer at-old-0123456789abcdef");
    assert!(
        auth[1].1.starts_with("Bearer at-gen1-"),
        "the retry uses the new token"
    );
    assert!(
        env.stored("default")
            .unwrap()
            .access_token
            .expose()
            .starts_with("at-gen1")
    );
}

#[test]
fn a_second_401_means_login_required_without_marking_needs_login() {
    let env = seeded();
    env.server.with(|s| {
        for _ in 0..2 {
            s.models.push_back(Canned::new(
                401,
                &format!(r#"{{"detail":"bad token {CANARY_ACCESS}"}}"#),
            ));
        }
    });
    let out = env.cmd().arg("models").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("even after a refresh") && err.contains("run `kimi-vault login`"),
        "{err}"
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH, "at-gen1", "rt-gen1"]);
    assert_eq!(env.server.refresh_requests(), 1, "refreshed at most once");
    assert_eq!(env.api_requests(), 2);
    assert!(!env.stored("default").unwrap().needs_login);
}

#[test]
fn a_402_is_an_inactive_membership_not_a_login_problem() {
    let env = seeded();
    env.server.with(|s| {
        s.usages.push_back(Canned::new(
            402,
            r#"{"error":{"message":"membership expired"}}"#,
        ));
        s.usages.push_back(Canned::new(402, "{}"));
    });
    let out = env.cmd().arg("usage").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("kimi-vault: error: your Kimi membership is not active"),
        "{err}"
    );
    assert!(err.contains("login is fine"), "{err}");
    let out = env.cmd().args(["usage", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["error"]["code"], 1);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("membership is not active")
    );
    assert_eq!(
        env.server.refresh_requests(),
        0,
        "a 402 triggers no refresh"
    );
    assert!(!env.stored("default").unwrap().needs_login);
    env.cmd().arg("status").assert().code(0);
}

#[test]
fn server_errors_are_retried_then_exit_5() {
    let env = seeded();
    env.server.with(|s| {
        for _ in 0..3 {
            s.usages
                .push_back(Canned::new(503, &format!("upstream down {CANARY_REFRESH}")));
        }
    });
    let out = env.cmd().arg("usage").output().unwrap();
    assert_eq!(out.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unreachable or failing"));
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    assert_eq!(env.api_requests(), 3, "three attempts");
    // Two failures, then an answer: the retry succeeds.
    env.server.with(|s| {
        s.models.push_back(Canned::new(500, ""));
        s.models.push_back(Canned::new(429, ""));
    });
    env.cmd().arg("models").assert().success();
}

#[test]
fn models_for_people_and_json() {
    let env = seeded();
    let out = env.cmd().arg("models").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("ID"), "{text}");
    assert!(
        text.contains("kimi-for-coding") && text.contains("Kimi For Coding"),
        "{text}"
    );
    assert!(
        text.contains("262144 tokens") && text.contains("reasoning, image input"),
        "{text}"
    );
    let v = json(&env.cmd().args(["models", "--json"]).output().unwrap());
    let models = v.as_array().unwrap();
    assert_eq!(models.len(), 2);
    assert_eq!(models[0]["id"], "kimi-for-coding");
    assert_eq!(models[0]["context_length"], 262144);
    assert_eq!(
        models[0]["capabilities"],
        serde_json::json!(["reasoning", "image input"])
    );
    assert_eq!(models[1]["display_name"], serde_json::Value::Null);
    assert_eq!(models[1]["context_length"], 131072, "a decimal string");
    assert_eq!(models[1]["supports_reasoning"], false);
}

#[test]
fn an_expiring_token_is_refreshed_before_the_call_and_not_logged_in_exits_3() {
    let env = TestEnv::new();
    env.cmd()
        .args(["--profile", "work", "usage"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("kimi-vault login --profile work"));
    assert_eq!(env.api_requests(), 0);
    env.seed(
        "work",
        "at-soon-0123456789abcdef",
        "rt-soon-0123456789abcdef",
        20,
    );
    env.cmd()
        .args(["--profile", "work", "usage"])
        .assert()
        .success();
    assert_eq!(env.server.refresh_requests(), 1);
    let auth = env.server.with(|s| s.api_auth.clone());
    assert!(auth[0].1.starts_with("Bearer at-gen1-"));
}

#[test]
fn profiles_are_isolated() {
    let env = TestEnv::new();
    env.seed(
        "alpha",
        "at-alpha-0123456789abcdef",
        "rt-alpha-0123456789abcdef",
        3600,
    );
    env.seed(
        "beta",
        "at-beta-0123456789abcdef",
        "rt-beta-0123456789abcdef",
        3600,
    );
    env.cmd()
        .args(["--profile", "alpha", "token"])
        .assert()
        .success()
        .stdout("at-alpha-0123456789abcdef\n");
    env.cmd()
        .args(["--profile", "beta", "usage"])
        .assert()
        .success();
    env.cmd()
        .args(["--profile", "alpha", "models"])
        .assert()
        .success();
    let auth = env.server.with(|s| s.api_auth.clone());
    assert_eq!(
        auth[0],
        ("usages".into(), "Bearer at-beta-0123456789abcdef".into())
    );
    assert_eq!(
        auth[1],
        ("models".into(), "Bearer at-alpha-0123456789abcdef".into())
    );
    for profile in ["alpha", "beta"] {
        let other = if profile == "alpha" { "beta" } else { "alpha" };
        for args in [
            vec!["status"],
            vec!["status", "--json"],
            vec!["profiles", "--json"],
            vec!["usage", "--json"],
        ] {
            let out = env
                .cmd()
                .args(["--profile", profile])
                .args(&args)
                .output()
                .unwrap();
            assert_no_secret(
                &out,
                &[&format!("at-{other}"), &format!("at-{profile}"), "rt-"],
            );
        }
    }
    env.cmd()
        .args(["--profile", "alpha", "logout"])
        .assert()
        .success();
    assert!(env.stored("alpha").is_none());
    assert_eq!(
        env.stored("beta").unwrap().access_token.expose(),
        "at-beta-0123456789abcdef"
    );
}

#[test]
fn a_permanent_401_rotates_the_refresh_token_at_most_once_per_30_s_across_runs() {
    // Issue 14 item 9: 5 runs against a permanent 401 made 5 rotations; SPEC §5's guard,
    // recorded beside the lock, holds across processes.
    let env = seeded();
    env.server.with(|s| {
        for _ in 0..20 {
            s.models
                .push_back(Canned::new(401, r#"{"error":"unauthorized"}"#));
            s.usages
                .push_back(Canned::new(401, r#"{"error":"unauthorized"}"#));
        }
    });
    for args in [
        &["models"][..],
        &["usage"],
        &["models"],
        &["usage"],
        &["models"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("run `kimi-vault login`"), "{err}");
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH, "at-gen1", "rt-gen1"]);
    }
    assert_eq!(
        env.server.refresh_requests(),
        1,
        "one rotation, not one per run"
    );
    assert!(!env.stored("default").unwrap().needs_login);
}
