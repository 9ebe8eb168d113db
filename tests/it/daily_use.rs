//! What gh and aws-vault users reach for, and the daily-use details of issue 17, through the
//! real binary: `profiles use`, `exec` with no command, `KIMI_VAULT_PROFILE` in every `exec`
//! child and the nested warning, `token --refresh`, the `--env` naming rule, the proxy's
//! `/health` profile and `proxy --check`, a busy port, streams, an unwritable home, the name of
//! a kept-aside vault, and colour.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use crate::common::*;
use predicates::prelude::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}{}", text(&out.stdout), text(&out.stderr)))
}

#[test]
fn profiles_use_persists_the_default_and_flag_and_env_still_win() {
    let env = TestEnv::new();
    env.seed("work", CANARY_ACCESS, CANARY_REFRESH, 3600);
    env.seed(
        "default",
        "at-default-0123456789abcdef",
        "rt-default-0123456789abcdef",
        3600,
    );
    let out = env
        .cmd()
        .args(["profiles", "use", "work"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("'work' is now the default profile"));
    let file = env.vault_home().join("default-profile");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "work\n");
    assert_eq!(mode_of(&file) & 0o777, 0o600);

    // The default now: status, token, profiles.
    let v = json(&env.cmd().args(["status", "--json"]).output().unwrap());
    assert_eq!(v["profile"], "work");
    assert_eq!(v["default_profile"], "work");
    let out = env.cmd().arg("status").output().unwrap();
    assert!(
        text(&out.stdout)
            .contains("profile:    work (the default, set by `kimi-vault profiles use`)"),
        "{}",
        text(&out.stdout)
    );
    env.cmd()
        .arg("token")
        .assert()
        .success()
        .stdout(format!("{CANARY_ACCESS}\n"));
    let rows = json(&env.cmd().args(["profiles", "--json"]).output().unwrap());
    let rows = rows.as_array().unwrap();
    let row = |p: &str| rows.iter().find(|r| r["profile"] == p).unwrap().clone();
    assert_eq!(row("work")["default"], true);
    assert_eq!(row("default")["default"], false);
    let out = env.cmd().arg("profiles").output().unwrap();
    assert!(
        text(&out.stdout).contains("work (default)"),
        "{}",
        text(&out.stdout)
    );

    // --profile and KIMI_VAULT_PROFILE win over the file.
    env.cmd()
        .args(["--profile", "default", "token"])
        .assert()
        .stdout("at-default-0123456789abcdef\n");
    env.cmd()
        .env("KIMI_VAULT_PROFILE", "default")
        .arg("token")
        .assert()
        .stdout("at-default-0123456789abcdef\n");
    let out = env
        .cmd()
        .args(["--profile", "default", "status"])
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("profile:    default (the default is 'work'"),
        "{}",
        text(&out.stdout)
    );

    // A bad name is refused (exit 2), the file untouched; a damaged file names itself.
    env.cmd().args(["profiles", "use", "../x"]).assert().code(2);
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "work\n");
    std::fs::write(&file, "bad/name\n").unwrap();
    env.cmd()
        .arg("token")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "default-profile does not hold a profile name",
        ));
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

/// A `SHELL` that records what it was given.
fn recording_shell(env: &TestEnv) -> (std::path::PathBuf, std::path::PathBuf) {
    let seen = env.dir.path().join("seen");
    let shell = env.dir.path().join("fake-shell");
    std::fs::write(
        &shell,
        format!(
            "#!/bin/sh\nprintf '%s|%s|%s|%s' \"$#\" \"$KIMI_VAULT_PROFILE\" \"${{ANTHROPIC_AUTH_TOKEN:+token}}\" \"${{ANTHROPIC_BASE_URL:+base}}\" > '{}'\nexit 5\n",
            seen.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&shell, std::fs::Permissions::from_mode(0o755)).unwrap();
    (shell, seen)
}

#[test]
fn exec_without_a_command_starts_shell_with_the_credentials() {
    let env = TestEnv::new();
    env.seed("work", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let (shell, seen) = recording_shell(&env);
    let out = env
        .cmd()
        .env("SHELL", &shell)
        .args(["--profile", "work", "exec"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(5),
        "the shell's exit code: {}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&seen).unwrap(), "0|work|token|base");
    // With --proxy too.
    std::fs::remove_file(&seen).unwrap();
    let out = env
        .cmd()
        .env("SHELL", &shell)
        .args(["--profile", "work", "exec", "--proxy"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    assert!(
        std::fs::read_to_string(&seen)
            .unwrap()
            .starts_with("0|work|")
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn every_exec_child_knows_its_profile_and_a_nested_exec_says_so() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    for proxy in [&[][..], &["--proxy"][..]] {
        let out = env
            .cmd()
            .env_remove("KIMI_VAULT_PROFILE")
            .arg("exec")
            .args(proxy)
            .args(["--", "sh", "-c", "printf %s \"$KIMI_VAULT_PROFILE\""])
            .output()
            .unwrap();
        assert!(out.status.success(), "{proxy:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "default", "{proxy:?}");
        assert!(!text(&out.stderr).contains("nested"), "{proxy:?}");
    }
    // kimi-vault exec inside kimi-vault exec: a warning on stderr, and it still runs.
    let bin = assert_cmd::cargo::cargo_bin("kimi-vault");
    let inner = format!("'{}' exec -- sh -c 'printf inner'", bin.display());
    let out = env
        .cmd()
        .args(["exec", "--", "sh", "-c", &inner])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "inner");
    let err = text(&out.stderr);
    assert!(
        err.contains("kimi-vault: warning: nested: this exec runs inside another `kimi-vault exec` (profile 'default')"),
        "{err}"
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn token_refresh_refreshes_now_whatever_the_age() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let before = env.server.refresh_requests();
    let out = env.cmd().args(["token", "--refresh"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(env.server.refresh_requests(), before + 1);
    let fresh = text(&out.stdout);
    assert!(
        fresh.starts_with("at-gen") && fresh.ends_with('\n'),
        "{fresh}"
    );
    assert_eq!(
        env.stored("default").unwrap().access_token.expose(),
        fresh.trim_end()
    );
    // Without --refresh, the fresh token is used as it is.
    env.cmd()
        .arg("token")
        .assert()
        .success()
        .stdout(fresh.clone());
    assert_eq!(env.server.refresh_requests(), before + 1);
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn profiles_use_repairs_an_unusable_default_profile_file() {
    // The error for a broken `default-profile` names `profiles use NAME` as the fix: it works.
    let env = TestEnv::new();
    env.seed("work", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let file = env.vault_home().join("default-profile");
    std::fs::write(&file, "not a name/\n").unwrap();
    let out = env.cmd().arg("token").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("profiles use NAME"),
        "{}",
        text(&out.stderr)
    );
    let out = env
        .cmd()
        .args(["profiles", "use", "work"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "work\n");
    env.cmd()
        .arg("token")
        .assert()
        .success()
        .stdout(format!("{CANARY_ACCESS}\n"));
}

#[test]
fn hints_name_the_profile_when_a_bare_command_would_use_another() {
    // After `profiles use work`, a bare `kimi-vault login` logs in 'work': the hint for profile
    // 'default' must name it, and the one for 'work' need not.
    let env = TestEnv::new();
    env.cmd()
        .args(["profiles", "use", "work"])
        .assert()
        .success();
    let out = env
        .cmd()
        .args(["--profile", "default", "token"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(
        err.contains("run `kimi-vault login --profile default`"),
        "{err}"
    );
    let out = env.cmd().arg("token").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = text(&out.stderr);
    assert!(err.contains("run `kimi-vault login`"), "{err}");
}

#[cfg(unix)]
#[test]
fn status_json_prints_its_object_when_the_default_profile_file_is_unusable() {
    // SPEC §3: `status --json` prints its object even when the vault cannot be read.
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let file = env.vault_home().join("default-profile");
    std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    let v = json(&out);
    assert_eq!(v["logged_in"], false);
    assert!(
        v["error"].as_str().unwrap().contains("default-profile"),
        "{v}"
    );
    for key in [
        "profile",
        "needs_login",
        "backend",
        "expires_at",
        "region",
        "account",
    ] {
        assert!(v.get(key).is_some(), "{key} missing: {v}");
    }
    let out = env.cmd().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stdout).contains("profile:"),
        "{}",
        text(&out.stdout)
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[cfg(unix)]
#[test]
fn a_too_open_default_profile_file_is_repaired_without_talking_of_secrets() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.seed("work", CANARY_ACCESS, CANARY_REFRESH, 3600);
    env.cmd()
        .args(["profiles", "use", "work"])
        .assert()
        .success();
    let file = env.vault_home().join("default-profile");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = env.cmd().arg("token").output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("repaired to 600"), "{err}");
    assert!(!err.contains("secrets exposed"), "{err}");
    assert_eq!(mode_of(&file) & 0o777, 0o600);
}

#[test]
fn token_refresh_twice_in_a_row_refreshes_twice() {
    // The guard against refreshing a just-refreshed token that the API rejects again (SPEC §5)
    // is about a 401: nobody rejected anything here, so a second `token --refresh` right after
    // the first refreshes again (it used to exit 3 with "run `kimi-vault login`").
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let before = env.server.refresh_requests();
    let first = env.cmd().args(["token", "--refresh"]).output().unwrap();
    assert!(first.status.success(), "{}", text(&first.stderr));
    let second = env.cmd().args(["token", "--refresh"]).output().unwrap();
    assert!(second.status.success(), "{}", text(&second.stderr));
    assert_eq!(env.server.refresh_requests(), before + 2);
    assert_ne!(text(&first.stdout), text(&second.stdout));
    assert_eq!(
        env.stored("default").unwrap().access_token.expose(),
        text(&second.stdout).trim_end()
    );
    assert_no_secret(&second, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn exec_env_names_a_credential_variable_or_is_refused() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    for var in [
        "HTTPS_PROXY",
        "https_proxy",
        "SSLKEYLOGFILE",
        "LD_PRELOAD",
        "PATH",
        "HOME",
        "MY_VAR",
        "ANTHROPIC_BASE_URL",
        "KEY",
        "TOKENS",
    ] {
        let out = env
            .cmd()
            .args(["exec", "--env", var, "--", "sh", "-c", "exit 9"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--env {var} was accepted");
        let err = text(&out.stderr);
        assert!(err.contains(&format!("--env {var}")), "{var}: {err}");
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    }
    let out = env
        .cmd()
        .args(["exec", "--env", "SSLKEYLOGFILE", "--", "true"])
        .output()
        .unwrap();
    assert!(
        text(&out.stderr)
            .contains("must end in _KEY, _TOKEN, _SECRET, _PASSWORD or _CREDENTIALS (any case)"),
        "{}",
        text(&out.stderr)
    );
    for var in [
        "MY_API_KEY",
        "my_token",
        "DB_PASSWORD",
        "X_Secret",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ] {
        env.cmd()
            .args(["exec", "--env", var, "--", "sh", "-c", "exit 9"])
            .assert()
            .code(9);
    }
}

/// `kimi-vault [--profile P] proxy --port PORT --json`: the child and its URL.
fn start_proxy(env: &TestEnv, profile: &str, port: u16) -> (std::process::Child, String) {
    let mut child = env
        .std_cmd()
        .args([
            "--profile",
            profile,
            "proxy",
            "--port",
            &port.to_string(),
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).expect("a ready line");
    (child, ready["url"].as_str().unwrap().to_owned())
}

#[test]
fn health_names_the_profile_and_check_says_when_it_is_another() {
    let env = TestEnv::new();
    env.seed("work", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let (mut child, url) = start_proxy(&env, "work", 0);
    let port = url.rsplit(':').next().unwrap().to_owned();
    // The right profile: healthy, on stdout.
    let out = env
        .cmd()
        .args(["--profile", "work", "proxy", "--check", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.contains("(profile 'work'): ok"), "{line}");
    assert!(
        line.contains(" requests") || line.contains(" request"),
        "{line}"
    );
    let v = json(
        &env.cmd()
            .args([
                "--profile",
                "work",
                "proxy",
                "--check",
                "--port",
                &port,
                "--json",
            ])
            .output()
            .unwrap(),
    );
    assert_eq!(v["profile"], "work");
    // Another profile asked for: exit 1, and it says which one is served.
    let out = env
        .cmd()
        .args(["proxy", "--check", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("serves profile 'work', not 'default'"),
        "{}",
        text(&out.stderr)
    );

    // The same port again: the message gives the next step.
    let out = env
        .cmd()
        .args(["--profile", "work", "proxy", "--port", &port])
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("`kimi-vault proxy --check --port {port}`"))
            && err.contains("--port 0"),
        "{err}"
    );
    let _ = child.kill();
    let _ = child.wait();
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn results_go_to_stdout_and_diagnostics_to_stderr() {
    let env = TestEnv::new();
    // migrate --dry-run | less shows the report.
    let out = env.cmd().args(["migrate", "--dry-run"]).output().unwrap();
    assert!(
        text(&out.stdout).contains("nothing to migrate"),
        "{}",
        text(&out.stdout)
    );
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let out = env.cmd().arg("logout").output().unwrap();
    assert!(text(&out.stdout).contains("Logged out of profile 'default'"));
    assert!(!text(&out.stderr).contains("Logged out"));
    // With --json, stdout is JSON only; the human text goes to stderr.
    let out = env.cmd().args(["logout", "--json"]).output().unwrap();
    json(&out);
    assert!(text(&out.stderr).contains("had no stored credential"));
}

#[test]
fn an_unwritable_home_names_the_vault_directory_and_the_variable() {
    let env = TestEnv::new();
    // /proc/1 refuses new entries to every user, root included.
    let out = env
        .cmd()
        .env_remove("KIMI_VAULT_HOME")
        .env("HOME", "/proc/1/no-home")
        .env("XDG_DATA_HOME", "/proc/1/no-home/.local/share")
        .args(["login", "--no-browser"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("cannot use /proc/1/no-home/.local/share/kimi-vault as the vault directory: cannot write in /proc/1")
            && err.contains("KIMI_VAULT_HOME"),
        "{err}"
    );
    let out = env
        .cmd()
        .env("KIMI_VAULT_HOME", "/proc/1/no-home/vault")
        .arg("doctor")
        .output()
        .unwrap();
    let report = text(&out.stdout);
    let file_section = report.split("Encrypted file").nth(1).unwrap_or_default();
    assert!(
        file_section.contains("  fix: point KIMI_VAULT_HOME"),
        "{report}"
    );
    let v = json(
        &env.cmd()
            .env("KIMI_VAULT_HOME", "/proc/1/no-home/vault")
            .args(["doctor", "--json"])
            .output()
            .unwrap(),
    );
    assert!(
        v["file"]["fix"]
            .as_str()
            .unwrap()
            .contains("KIMI_VAULT_HOME")
    );
}

#[test]
fn a_vault_from_another_machine_gets_advice_that_helps() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    // Another machine's key: a fresh vault.key that does not open vault.enc.
    let key = env.vault_home().join("vault.key");
    let other = TestEnv::new();
    other.seed(
        "default",
        "at-other-0123456789abcdef",
        "rt-other-0123456789abcdef",
        3600,
    );
    std::fs::copy(other.vault_home().join("vault.key"), &key).unwrap();
    let out = env.cmd().arg("token").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(!err.contains("Restore the matching vault.key"), "{err}");
    assert!(
        err.contains("bound to the machine and user that made it"),
        "{err}"
    );
    let out = env.cmd().arg("doctor").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let report = text(&out.stdout);
    assert!(
        !report.contains("works here: credentials go to"),
        "{report}"
    );
    assert!(
        report.contains("but the vault here cannot be used as it is"),
        "{report}"
    );
    // logout keeps it aside under a readable UTC time.
    env.cmd().arg("logout").assert().success();
    let aside: Vec<String> = std::fs::read_dir(env.vault_home())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("vault.enc.unreadable-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    let stamp = &aside[0]["vault.enc.unreadable-".len()..];
    assert_eq!(stamp.len(), 16, "{stamp}");
    assert!(
        stamp.as_bytes()[8] == b'T'
            && stamp.ends_with('Z')
            && stamp[..8].chars().all(|c| c.is_ascii_digit())
            && stamp[9..15].chars().all(|c| c.is_ascii_digit()),
        "{stamp}"
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

/// Runs `kimi-vault ARGS` on a pseudo-terminal (`script`), so that stdout and stderr are a TTY.
fn on_a_terminal(env: &TestEnv, args: &str, no_color: bool) -> String {
    let bin = assert_cmd::cargo::cargo_bin("kimi-vault");
    let mut script = std::process::Command::new("script");
    script
        .env_clear()
        .envs(
            env.std_cmd()
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k, v))),
        )
        .env("TERM", "xterm")
        .args(["-qec", &format!("'{}' {args}", bin.display()), "/dev/null"]);
    if no_color {
        script.env("NO_COLOR", "1");
    }
    let out = script.output().expect("script (util-linux) runs");
    text(&out.stdout)
}

#[test]
fn colour_on_a_terminal_only_and_never_with_no_color() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    // Not a terminal (a pipe): no escape sequence.
    let out = env.cmd().arg("status").output().unwrap();
    assert!(!text(&out.stdout).contains('\x1b'));
    let out = env
        .cmd()
        .args(["--profile", "nobody", "token"])
        .output()
        .unwrap();
    assert!(!text(&out.stderr).contains('\x1b'));
    // A terminal: colour.
    let tty = on_a_terminal(&env, "status", false);
    assert!(tty.contains("\x1b[32myes"), "{tty:?}");
    let tty = on_a_terminal(&env, "--profile nobody token", false);
    assert!(
        tty.contains("\x1b[1m\x1b[31merror:") || tty.contains("\x1b[1;31merror:"),
        "{tty:?}"
    );
    // NO_COLOR: none.
    let tty = on_a_terminal(&env, "status", true);
    assert!(tty.contains("yes") && !tty.contains('\x1b'), "{tty:?}");
    let tty = on_a_terminal(&env, "--profile nobody token", true);
    assert!(tty.contains("error:") && !tty.contains('\x1b'), "{tty:?}");
}

#[test]
fn ctrl_c_on_a_terminal_leaves_no_spinner_frame() {
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 100_000 });
    let bin = assert_cmd::cargo::cargo_bin("kimi-vault");
    let log = env.dir.path().join("typescript");
    // An 80-column terminal; Ctrl-C typed after the spinner has run (the terminal echoes ^C
    // and sends SIGINT).
    let mut script = std::process::Command::new("script");
    script
        .env_clear()
        .envs(
            env.std_cmd()
                .get_envs()
                .filter_map(|(k, v)| v.map(|v| (k, v))),
        )
        .env("TERM", "xterm")
        .args([
            "-qfec",
            &format!("stty cols 80; '{}' login --no-browser", bin.display()),
        ])
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = script.spawn().expect("script (util-linux) runs");
    std::thread::sleep(Duration::from_millis(2500));
    use std::io::Write;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"\x03").unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drop(stdin);
    let _ = child.wait();
    let raw = text(&std::fs::read(&log).unwrap());
    let frames: Vec<&str> = raw
        .split("\r\x1b[2K")
        .filter_map(|f| f.rsplit('\n').next())
        .filter(|f| f.contains("Waiting for approval"))
        .collect();
    assert!(!frames.is_empty(), "no spinner: {raw:?}");
    for f in &frames {
        // With the echoed "^C" the line still fits: it does not wrap, so clearing it clears all.
        let columns = f.trim_end_matches("^C").chars().count() + 2;
        assert!(
            columns < 80,
            "a frame of {columns} columns wraps with ^C: {f:?}"
        );
    }
    let tail = &raw[raw.rfind("Waiting for approval").unwrap()..];
    assert!(tail.contains("^C\r\x1b[2K"), "{tail:?}");
    assert!(tail.contains("login cancelled (Ctrl-C)"), "{tail:?}");
}

#[test]
fn token_json_escapes_server_text_for_the_terminal() {
    // token_type came from the server: like every --json output, C1 and bidi characters are
    // JSON escapes, not raw (the value is unchanged).
    let env = TestEnv::new();
    let mut cred = credential(CANARY_ACCESS, CANARY_REFRESH, 3600);
    cred.token_type = "Bearer\u{9b}2J\u{202e}".into();
    env.store("default", &cred);
    let out = env.cmd().args(["token", "--json"]).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !stdout.contains('\u{9b}') && !stdout.contains('\u{202e}'),
        "{stdout:?}"
    );
    let v = json(&out);
    assert_eq!(v["token_type"], "Bearer\u{9b}2J\u{202e}");
    assert_eq!(v["access_token"], CANARY_ACCESS);
}
