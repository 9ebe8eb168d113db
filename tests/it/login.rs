//! Device-flow login through the real binary against the fake Kimi server.

use crate::common::*;
use predicates::prelude::*;

fn json_lines(out: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

#[test]
fn login_json_events_and_storage() {
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 2 });
    let out = env
        .cmd()
        .args(["login", "--no-browser", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events = json_lines(&out.stdout);
    assert_eq!(events[0]["type"], "verification");
    assert_eq!(events[0]["user_code"], "ABCD-1234");
    assert!(
        events[0]["verification_uri_complete"]
            .as_str()
            .unwrap()
            .contains("ABCD-1234")
    );
    assert_eq!(events[0]["expires_in"], 600);
    let waiting = events.iter().filter(|e| e["type"] == "waiting").count();
    assert_eq!(
        waiting, 2,
        "one waiting line per pending poll (400 and 200)"
    );
    let last = events.last().unwrap();
    assert_eq!(last["type"], "success");
    assert_eq!(last["profile"], "default");
    assert_eq!(last["backend"], "file");
    assert!(last["expires_at"].as_str().unwrap().contains('T'));
    // Tokens never shown.
    assert_no_secret(&out, &["at-gen1", "rt-gen1", "dc-0123"]);
    let stored = env.stored("default").unwrap();
    assert!(stored.access_token.expose().starts_with("at-gen1"));
    assert_eq!(stored.region, "cn");
    // Files private.
    assert_eq!(mode_of(&env.vault_home()), 0o700);
    for f in ["vault.key", "vault.enc", "vault.lock", "device-id"] {
        assert_eq!(mode_of(&env.vault_home().join(f)), 0o600, "{f}");
    }
}

#[test]
fn device_headers_are_sent() {
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    env.cmd().args(["login", "--no-browser"]).assert().success();
    let headers = env.server.with(|s| s.seen_headers.clone());
    let id = std::fs::read_to_string(env.vault_home().join("device-id")).unwrap();
    for h in &headers {
        assert_eq!(h["x-msh-platform"], "kimi-vault");
        assert!(h["user-agent"].starts_with("kimi-vault/"));
        for name in [
            "x-msh-version",
            "x-msh-device-name",
            "x-msh-device-model",
            "x-msh-os-version",
        ] {
            assert!(
                h.get(name).is_some_and(|v| v.is_ascii() && !v.is_empty()),
                "{name}"
            );
        }
        assert_eq!(h["x-msh-device-id"], id.trim());
    }
    let forms = env.server.with(|s| s.seen_forms.clone());
    assert_eq!(
        forms[0]["client_id"],
        "17e5f671-d194-4dfb-9706-5516cb48c098"
    );
    assert_eq!(
        forms[1]["grant_type"],
        "urn:ietf:params:oauth:grant-type:device_code"
    );
}

#[test]
fn slow_down_is_honoured() {
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::SlowDownThenApprove);
    env.cmd()
        .args(["login", "--no-browser", "-v"])
        .assert()
        .success()
        .stderr(predicate::str::contains("polling every 6 s"));
}

#[test]
fn denied_and_expired_fail_cleanly() {
    for (scenario, text) in [
        (DeviceScenario::Deny, "denied"),
        (DeviceScenario::Expire, "expired"),
    ] {
        let env = TestEnv::new();
        env.server.with(|s| s.device = scenario.clone());
        let out = env
            .cmd()
            .args(["login", "--no-browser", "--json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let events = json_lines(&out.stdout);
        let last = events.last().unwrap();
        assert_eq!(last["type"], "error");
        assert!(last["message"].as_str().unwrap().contains(text));
        assert!(env.stored("default").is_none());
        env.cmd().arg("status").assert().code(3);
    }
}

#[test]
fn endpoint_rule_refuses_before_sending() {
    let env = TestEnv::new();
    for bad in [
        "https://evil.example.com",
        "http://auth.kimi.com",
        "https://10.1.2.3",
    ] {
        env.cmd()
            .env("KIMI_CODE_OAUTH_HOST", bad)
            .args(["login", "--no-browser"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("must be https on kimi.com"));
    }
    env.cmd()
        .env("KIMI_CODE_BASE_URL", "https://api.example.org/v1")
        .args(["login", "--no-browser"])
        .assert()
        .code(1);
    assert_eq!(
        env.server.with(|s| s.seen_headers.len()),
        0,
        "nothing was sent"
    );
}

#[test]
fn unreachable_server_exits_5() {
    let env = TestEnv::new();
    // A loopback port with nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    env.cmd()
        .env("KIMI_CODE_OAUTH_HOST", format!("http://127.0.0.1:{port}"))
        .args(["login", "--no-browser"])
        .assert()
        .code(5);
}

#[test]
fn login_keeps_unreadable_vault_aside() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let vault = env.vault_home().join("vault.enc");
    let mut bytes = std::fs::read(&vault).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    std::fs::write(&vault, &bytes).unwrap();
    env.cmd().arg("token").assert().code(4);
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let out = env.cmd().args(["login", "--no-browser"]).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("kept aside"));
    let aside: Vec<_> = std::fs::read_dir(env.vault_home())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("vault.enc.unreadable-")
        })
        .collect();
    assert_eq!(aside.len(), 1);
    assert_eq!(
        std::fs::read(aside[0].path()).unwrap(),
        bytes,
        "kept byte for byte"
    );
    env.cmd().arg("token").assert().success();
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new();
    env.cmd().arg("frobnicate").assert().code(2);
    env.cmd()
        .args(["login", "--region", "mars"])
        .assert()
        .code(2);
    env.cmd()
        .args(["--profile", "../x", "status"])
        .assert()
        .code(2);
    env.cmd()
        .args(["exec", "--for", "kimi", "--", "true"])
        .assert()
        .code(2);
    env.cmd()
        .env("KIMI_VAULT_BACKEND", "floppy")
        .arg("status")
        .assert()
        .code(2);
    env.cmd().arg("--version").assert().success();
}

#[test]
fn the_login_screen_counts_down_offers_ctrl_c_and_names_the_next_step() {
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let out = env.cmd().args(["login", "--no-browser"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.to_lowercase().contains("browser"),
        "--no-browser: {err}"
    );
    assert!(err.contains("open this URL on any device"), "{err}");
    assert!(
        err.contains("The code expires in 10m 0s. Press Ctrl-C to cancel."),
        "{err}"
    );
    // The result on stdout, the device-flow screen on stderr.
    let res = String::from_utf8_lossy(&out.stdout);
    assert!(res.contains("The access token expires at "), "{res}");
    assert!(
        res.contains("(in 15m 0s)") || res.contains("(in 14m 5"),
        "{res}"
    );
    assert!(res.contains("Next: `kimi-vault status`"), "{res}");
    assert!(res.contains("(cn region)"), "{res}");
}

#[test]
fn login_over_a_valid_credential_says_what_it_replaces() {
    let env = TestEnv::new();
    env.seed("work", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let expiry = kimi_vault::rfc3339(env.stored("work").unwrap().expires_at);
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let out = env
        .cmd()
        .args(["--profile", "work", "login", "--no-browser", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "Profile 'work' already has a credential (encrypted file, access token valid until {expiry}); this login replaces it."
        )),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "Replaced the earlier credential of profile 'work' (access token expiring {expiry})."
        )),
        "{err}"
    );
    assert!(
        err.contains("Next: `kimi-vault --profile work status`"),
        "{err}"
    );
    let last = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(last["replaced"]["expires_at"], expiry);
    assert_eq!(last["replaced"]["needs_login"], false);
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    // A first login replaces nothing.
    let out = env
        .cmd()
        .args(["--profile", "fresh", "login", "--no-browser", "--json"])
        .output()
        .unwrap();
    assert!(json_lines(&out.stdout).pop().unwrap()["replaced"].is_null());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("replace"));
}

#[test]
fn ctrl_c_cancels_the_login_cleanly() {
    use std::io::{BufRead, BufReader};
    for json in [false, true] {
        let env = TestEnv::new();
        env.server
            .with(|s| s.device = DeviceScenario::Approve { pending: 100_000 });
        let mut cmd = env.std_cmd();
        cmd.args(["login", "--no-browser"]);
        if json {
            cmd.arg("--json");
        }
        let mut child = cmd
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        while !seen.contains("Ctrl-C to cancel") {
            let mut line = String::new();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "ended early: {seen}"
            );
            seen.push_str(&line);
        }
        // Let it poll at least once, then interrupt it as a terminal would.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let status = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = child.wait_with_output().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        assert_eq!(out.status.code(), Some(130), "{seen}{rest}");
        assert!(
            rest.contains("kimi-vault: error: login cancelled (Ctrl-C): nothing was stored"),
            "{rest}"
        );
        if json {
            let last = json_lines(&out.stdout).pop().unwrap();
            assert_eq!(last["type"], "error");
            assert!(last["message"].as_str().unwrap().contains("cancelled"));
        }
        assert!(env.stored("default").is_none());
    }
}

#[test]
fn login_region_global_is_stored_and_shown() {
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let out = env
        .cmd()
        .args(["login", "--no-browser", "--region", "global", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(json_lines(&out.stdout).pop().unwrap()["region"], "global");
    assert_eq!(env.stored("default").unwrap().region, "global");
    let status = env.cmd().arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&status.stdout).contains("region:     global"));
    let v = env.status_json();
    assert_eq!(v["region"], "global");
    let v: serde_json::Value = serde_json::from_slice(
        &env.cmd()
            .args(["profiles", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v[0]["region"], "global");
    // Without overrides, global means auth.kimi.ai and api.kimi.ai/coding/v1 (nothing is sent).
    let out = env
        .cmd()
        .env_remove("KIMI_CODE_OAUTH_HOST")
        .env_remove("KIMI_CODE_BASE_URL")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["endpoints"]["global"]["oauth_host"],
        "https://auth.kimi.ai/"
    );
    assert_eq!(
        v["endpoints"]["global"]["api_base"],
        "https://api.kimi.ai/coding/v1"
    );
    assert_eq!(
        v["endpoints"]["cn"]["api_base"],
        "https://api.kimi.com/coding/v1"
    );
}

#[test]
fn login_checks_the_vault_can_be_written_before_asking_for_a_code() {
    use std::os::unix::fs::PermissionsExt;
    type Setup = fn(&TestEnv) -> Vec<(&'static str, std::ffi::OsString)>;
    let root = rustix::process::geteuid().as_raw() == 0;
    let cases: Vec<(&str, Setup, i32)> = vec![
        (
            "vault.enc is a directory",
            |env| {
                std::fs::create_dir_all(env.vault_home().join("vault.enc")).unwrap();
                vec![]
            },
            4,
        ),
        (
            "vault.key is a symlink",
            |env| {
                env.seed("other", CANARY_ACCESS, CANARY_REFRESH, 3600);
                let key = env.vault_home().join("vault.key");
                let real = env.dir.path().join("elsewhere.key");
                std::fs::rename(&key, &real).unwrap();
                std::os::unix::fs::symlink(&real, &key).unwrap();
                vec![]
            },
            4,
        ),
        (
            "vault.lock is a symlink",
            |env| {
                env.seed("other", CANARY_ACCESS, CANARY_REFRESH, 3600);
                let lock = env.vault_home().join("vault.lock");
                std::fs::remove_file(&lock).unwrap();
                std::os::unix::fs::symlink(env.dir.path().join("x"), &lock).unwrap();
                vec![]
            },
            4,
        ),
        (
            "KIMI_VAULT_HOME is a file",
            |env| {
                let file = env.dir.path().join("file");
                std::fs::write(&file, b"x").unwrap();
                vec![("KIMI_VAULT_HOME", file.into())]
            },
            4,
        ),
        (
            "KIMI_VAULT_HOME is under a file",
            |env| {
                let file = env.dir.path().join("file");
                std::fs::write(&file, b"x").unwrap();
                vec![("KIMI_VAULT_HOME", file.join("vault").into())]
            },
            4,
        ),
        (
            "the vault directory is group-writable",
            |env| {
                std::fs::create_dir_all(env.vault_home()).unwrap();
                std::fs::set_permissions(env.vault_home(), std::fs::Permissions::from_mode(0o770))
                    .unwrap();
                vec![]
            },
            4,
        ),
        (
            "keyring mode with no keyring",
            |_| vec![("KIMI_VAULT_BACKEND", "keyring".into())],
            1,
        ),
    ];
    let mut cases = cases;
    if !root {
        // Root may write anywhere: only meaningful for other users.
        cases.push((
            "the vault directory is read-only",
            |env| {
                std::fs::create_dir_all(env.vault_home()).unwrap();
                std::fs::set_permissions(env.vault_home(), std::fs::Permissions::from_mode(0o500))
                    .unwrap();
                vec![]
            },
            1,
        ));
    }
    for (name, setup, code) in cases {
        let env = TestEnv::new();
        env.server
            .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
        let envs = setup(&env);
        let out = env
            .cmd()
            .envs(envs)
            .args(["login", "--no-browser", "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(code),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            env.server.with(|s| s.device_requests),
            0,
            "{name}: a device code was asked for"
        );
        let events = json_lines(&out.stdout);
        assert_eq!(events.last().unwrap()["type"], "error", "{name}");
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    }
}

/// Stderr lines written by the log (`kimi-vault: …`), as opposed to the command's own text.
fn log_lines(stderr: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter(|l| l.starts_with("kimi-vault: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn login_reads_the_account_stores_it_and_warns_about_a_second_profile_of_it() {
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let out = env
        .cmd()
        .args(["-vv", "login", "--no-browser", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let success = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(
        success["account"],
        serde_json::json!({"id":"u_canary_4242","name":"moonwalker","level":"Vivace"})
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Kimi account: moonwalker (id u_canary_4242, Vivace)"),
        "{err}"
    );
    // Personal: in no log line, at any verbosity.
    for line in log_lines(&out.stderr) {
        assert!(
            !line.contains("u_canary_4242") && !line.contains("moonwalker"),
            "{line}"
        );
    }
    // /me was asked with the new access token.
    let auth = env.server.with(|s| s.api_auth.clone());
    assert_eq!(auth[0].0, "me");
    assert!(auth[0].1.starts_with("Bearer at-gen1"), "{:?}", auth[0]);
    let stored = env.stored("default").unwrap();
    let account = stored.account.unwrap();
    assert_eq!(account.user_id, "u_canary_4242");
    assert_eq!(account.nickname.as_deref(), Some("moonwalker"));
    assert_eq!(account.level_name.as_deref(), Some("Vivace"));
    assert_eq!(account.region.as_deref(), Some("REGION_CN"));

    // status and profiles show it, human and --json.
    let status = env.cmd().arg("status").output().unwrap();
    assert!(
        String::from_utf8_lossy(&status.stdout)
            .contains("account:    moonwalker (id u_canary_4242, Vivace)")
    );
    let v = env.status_json();
    assert_eq!(v["account"]["id"], "u_canary_4242");
    assert_eq!(v["account"]["name"], "moonwalker");
    assert_eq!(v["account"]["level"], "Vivace");
    let profiles = env.cmd().arg("profiles").output().unwrap();
    assert!(String::from_utf8_lossy(&profiles.stdout).contains("moonwalker (id u_canary_4242"));
    let v: serde_json::Value = serde_json::from_slice(
        &env.cmd()
            .args(["profiles", "--json"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(v[0]["account"]["id"], "u_canary_4242");

    // The same account in a second profile: logged in, with a warning naming the other.
    env.server.with(|s| s.polls = 0);
    let out = env
        .cmd()
        .args(["--profile", "work", "login", "--no-browser"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("profile 'default' already holds this Kimi account"),
        "{err}"
    );
    // Another account: no warning.
    env.server.with(|s| {
        s.polls = 0;
        s.me_body = r#"{"user_id":"u_other","nickname":"sun"}"#.into();
    });
    let out = env
        .cmd()
        .args(["--profile", "home", "login", "--no-browser"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Kimi account: sun (id u_other)"), "{err}");
    assert!(!err.contains("already hold"), "{err}");
}

#[test]
fn a_failed_account_lookup_is_a_warning_not_a_failed_login() {
    let env = TestEnv::new();
    env.server.with(|s| {
        s.device = DeviceScenario::Approve { pending: 0 };
        s.me.push_back(Canned::new(404, r#"{"error":"not found"}"#));
    });
    let out = env
        .cmd()
        .args(["login", "--no-browser", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let success = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(success["type"], "success");
    assert_eq!(success["account"], serde_json::Value::Null);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning: logged in, but could not read which account"),
        "{err}"
    );
    let stored = env.stored("default").unwrap();
    assert!(stored.account.is_none());
    assert!(stored.access_token.expose().starts_with("at-gen1"));
    let v = env.status_json();
    assert_eq!(v["logged_in"], true);
    assert_eq!(v["account"], serde_json::Value::Null);
}

#[test]
fn an_account_keeps_across_refreshes() {
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    env.cmd().args(["login", "--no-browser"]).assert().success();
    // Force a refresh: the new tokens keep the account.
    env.cmd()
        .args(["token", "--min-valid", "100000"])
        .assert()
        .success();
    assert_eq!(env.server.refresh_requests(), 1);
    let stored = env.stored("default").unwrap();
    assert!(stored.access_token.expose().starts_with("at-gen2"));
    assert_eq!(stored.account.unwrap().user_id, "u_canary_4242");
}

#[test]
fn a_login_token_rejected_by_the_api_is_refreshed_once_even_right_after_a_refresh() {
    // The 30 s guard (SPEC §5) is about a token a refresh produced; a login's token is not one,
    // even when the credential it replaced was refreshed a moment ago.
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-old-0123456789abcdef",
        "rt-old-0123456789abcdef",
        3600,
    );
    env.cmd().args(["token", "--refresh"]).assert().success();
    env.cmd().args(["login", "--no-browser"]).assert().success();
    let before = env.server.refresh_requests();
    env.server.with(|s| {
        s.usages
            .push_back(Canned::new(401, r#"{"error":{"message":"rejected"}}"#))
    });
    let out = env.cmd().arg("usage").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.server.refresh_requests(), before + 1);
}
