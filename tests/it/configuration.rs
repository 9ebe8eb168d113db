//! The configuration layer and the fast paths of issue 15, through the real binary: bad
//! environment values name the variable (not a flag nobody typed), an empty variable is unset,
//! usage lines do not list options set through the environment, the `token` fast path honours
//! the persisted default profile, `auto` reads only the backend the index names, and a keyring
//! that accepts and never answers costs one timeout per 60 s for every process.

use std::time::{Duration, Instant};

use crate::common::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_bad_backend_variable_is_named() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    for args in [&["token"][..], &["status"], &["token", "--json"]] {
        let out = env
            .cmd()
            .env("KIMI_VAULT_BACKEND", "kering")
            .args(args)
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("KIMI_VAULT_BACKEND='kering'"), "{err}");
        assert!(err.contains("auto") && err.contains("keyring") && err.contains("file"));
        assert!(!err.contains("--backend"), "{err}");
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    }
    // The flag wins over the variable.
    let out = env
        .cmd()
        .env("KIMI_VAULT_BACKEND", "kering")
        .args(["--backend", "file", "token"])
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), format!("{CANARY_ACCESS}\n"));
}

#[test]
fn a_bad_profile_variable_is_named() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .env("KIMI_VAULT_PROFILE", "../x")
        .arg("token")
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("KIMI_VAULT_PROFILE"), "{err}");
}

#[test]
fn empty_variables_are_unset() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .env("KIMI_VAULT_HOME", "")
        .env("KIMI_VAULT_BACKEND", "")
        .env("KIMI_VAULT_PROFILE", "")
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(v["profile"], "default");
    let home = v["vault_home"].as_str().unwrap_or_default().to_owned();
    assert!(
        home.starts_with(env.home().to_str().unwrap()) && home.ends_with("kimi-vault"),
        "the platform default under HOME: {v}"
    );
}

#[test]
fn usage_lines_do_not_list_options_set_through_the_environment() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .env("KIMI_VAULT_PROFILE", "work")
        .env("KIMI_CLIENT_ID", "some-id")
        .args(["token", "--no-such-flag"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let usage = err
        .lines()
        .find(|l| l.contains("Usage:"))
        .unwrap_or_default();
    for flag in [
        "--profile",
        "--vault-home",
        "--backend",
        "--client-id",
        "--api-base",
    ] {
        assert!(!usage.contains(flag), "{usage}");
    }
    // --help still names the variables next to their options.
    let help = text(&env.cmd().arg("--help").output().unwrap().stdout);
    for var in [
        "[env: KIMI_VAULT_PROFILE]",
        "[env: KIMI_VAULT_HOME]",
        "[env: KIMI_VAULT_BACKEND]",
    ] {
        assert!(help.contains(var), "{var}");
    }
}

#[test]
fn token_honours_the_persisted_default_profile() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "default-access-token-0123",
        "default-refresh-0123",
        3600,
    );
    env.seed(
        "work",
        "work-access-token-0123456",
        "work-refresh-0123456",
        3600,
    );
    let file = env.vault_home().join("default-profile");
    std::fs::write(&file, "work\n").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let run = |args: &[&str], profile_var: Option<&str>| {
        let mut c = env.cmd();
        if let Some(p) = profile_var {
            c.env("KIMI_VAULT_PROFILE", p);
        }
        let out = c.args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    // The fast path and clap's path (a flag it does not know sends it there) agree.
    assert_eq!(run(&["token"], None), "work-access-token-0123456\n");
    assert_eq!(
        run(&["token", "--client-id", "some-client"], None),
        "work-access-token-0123456\n"
    );
    assert_eq!(
        run(&["token"], Some("default")),
        "default-access-token-0123\n"
    );
    assert_eq!(
        run(&["--profile", "default", "token"], Some("work")),
        "default-access-token-0123\n"
    );
    assert_eq!(
        run(&["token", "--profile=default"], None),
        "default-access-token-0123\n"
    );
}

/// A session bus that accepts connections and never answers.
fn silent_bus(dir: &std::path::Path) -> String {
    let path = dir.join("silent-bus");
    let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    format!("unix:path={}", path.display())
}

#[test]
fn auto_asks_only_the_backend_the_index_names() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    assert!(env.vault_home().join("vault.index").exists());
    let bus = silent_bus(env.dir.path());
    let started = Instant::now();
    let out = env
        .cmd()
        .env("KIMI_VAULT_BACKEND", "auto")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .arg("token")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), format!("{CANARY_ACCESS}\n"));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the keyring was not asked: {:?}",
        started.elapsed()
    );
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
}

#[test]
fn a_keyring_that_never_answers_costs_one_timeout_per_minute() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    // Without the index, `auto` asks the keyring first.
    std::fs::remove_file(env.vault_home().join("vault.index")).unwrap();
    let bus = silent_bus(env.dir.path());
    let cmd = |mode: &str| {
        let mut c = env.std_cmd();
        c.env("KIMI_VAULT_BACKEND", mode)
            .env("DBUS_SESSION_BUS_ADDRESS", &bus)
            .arg("token")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c
    };
    let started = Instant::now();
    let first = cmd("auto").spawn().unwrap();
    // While the first waits, others starting do not wait too.
    std::thread::sleep(Duration::from_millis(1500));
    let quick = Instant::now();
    let meanwhile = cmd("auto").output().unwrap();
    assert!(
        quick.elapsed() < Duration::from_secs(2),
        "{:?}",
        quick.elapsed()
    );
    assert_eq!(text(&meanwhile.stdout), format!("{CANARY_ACCESS}\n"));
    assert!(
        text(&meanwhile.stderr).contains("warning"),
        "{}",
        text(&meanwhile.stderr)
    );
    let first = first.wait_with_output().unwrap();
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(4), "it timed out: {waited:?}");
    assert_eq!(text(&first.stdout), format!("{CANARY_ACCESS}\n"));
    let err = text(&first.stderr);
    assert!(
        err.contains("warning") && err.contains("did not answer"),
        "{err}"
    );
    // After the timeout: every process, auto and keyring alike, is told at once.
    for mode in ["auto", "auto", "keyring"] {
        let quick = Instant::now();
        let out = cmd(mode).output().unwrap();
        assert!(
            quick.elapsed() < Duration::from_secs(2),
            "{mode}: {:?}",
            quick.elapsed()
        );
        let err = text(&out.stderr);
        assert!(err.contains("not asked again"), "{mode}: {err}");
        if mode == "keyring" {
            assert_eq!(out.status.code(), Some(1), "{err}");
        } else {
            assert_eq!(text(&out.stdout), format!("{CANARY_ACCESS}\n"));
        }
        assert_no_secret(&out, &[CANARY_REFRESH]);
    }
    // doctor still asks it (and says it does not answer).
    let out = env
        .cmd()
        .env("KIMI_VAULT_BACKEND", "auto")
        .env("DBUS_SESSION_BUS_ADDRESS", &bus)
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let report = text(&out.stdout);
    assert!(report.contains("did not answer within"), "{report}");
}
