//! Device-flow login through the real binary against the fake Kimi server.

mod common;

use common::*;
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
    env.cmd().args(["exec"]).assert().code(2);
    env.cmd()
        .env("KIMI_VAULT_BACKEND", "floppy")
        .arg("status")
        .assert()
        .code(2);
    env.cmd().arg("--version").assert().success();
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
