//! `kimi-vault doctor` and `kimi-vault profiles` through the real binary (file backend, and
//! `auto` with no session bus at all; the real gnome-keyring cases are in tests/keyring.rs).

use crate::common::*;

fn run_json(
    env: &TestEnv,
    extra_env: &[(&str, &str)],
    args: &[&str],
) -> (Option<i32>, serde_json::Value, String) {
    let mut c = env.cmd();
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let out = c.args(args).arg("--json").output().unwrap();
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (
        out.status.code(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn doctor_on_a_fresh_machine_creates_nothing_and_exits_0() {
    let env = TestEnv::new();
    let (code, v, _) = run_json(&env, &[], &["doctor"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["ok"], true);
    assert_eq!(v["backend_mode"], "file");
    assert_eq!(v["backend"], "file");
    assert_eq!(v["keyring"]["status"], "not_checked");
    assert_eq!(v["file"]["status"], "will_create");
    assert_eq!(v["key"]["status"], "no_vault");
    assert_eq!(v["lock"]["status"], "no_lock_file");
    assert_eq!(v["clock"]["ok"], true);
    assert_eq!(v["paths"][0]["kind"], "missing");
    assert!(!env.vault_home().exists(), "doctor created nothing");
}

#[test]
fn doctor_in_auto_mode_without_a_session_bus_explains_the_keyring_and_exits_0() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let (code, v, _) = run_json(&env, &[("KIMI_VAULT_BACKEND", "auto")], &["doctor"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        v["backend"], "file",
        "auto falls back to the usable file backend"
    );
    assert_eq!(v["keyring"]["status"], "unavailable");
    assert!(v["keyring"]["reason"].as_str().unwrap().contains("D-Bus"));
    assert!(
        v["keyring"]["fix"]
            .as_str()
            .unwrap()
            .contains("dbus-run-session")
    );
    assert_eq!(v["file"]["status"], "ok");
    assert!(v["file"]["round_trip_ms"].is_number());
    assert_eq!(v["key"]["status"], "opens");
    assert_eq!(v["key"]["profiles"], 1);
    assert_eq!(
        v["key"]["bound_to"]["uid"],
        rustix::process::geteuid().as_raw()
    );
    for p in v["paths"].as_array().unwrap().iter().take(4) {
        assert_eq!(p["ok"], true, "{p}");
    }
    assert_eq!(v["paths"][1]["mode"], "600");
    let out = env
        .cmd()
        .env("KIMI_VAULT_BACKEND", "auto")
        .arg("doctor")
        .output()
        .unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("does not work here") && s.contains("fix: there is no D-Bus session"),
        "{s}"
    );
    assert!(s.contains("Result: the configured backend (auto) works here: credentials go to the encrypted file."), "{s}");
    // In keyring mode the same machine fails doctor, with the reason.
    let out = env
        .cmd()
        .env("KIMI_VAULT_BACKEND", "keyring")
        .arg("doctor")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .starts_with("kimi-vault: error: the configured backend")
    );
}

#[test]
fn doctor_names_who_holds_the_lock() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let vault = env.vault();
    let lock = vault.lock().unwrap();
    let (code, v, _) = run_json(&env, &[], &["doctor"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["lock"]["status"], "held");
    assert_eq!(v["lock"]["holder_pid"], std::process::id());
    let out = env.cmd().arg("doctor").output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("held by process {}", std::process::id()))
    );
    drop(lock);
    let (_, v, _) = run_json(&env, &[], &["doctor"]);
    assert_eq!(v["lock"]["status"], "free");
}

#[test]
fn doctor_reports_unsafe_paths_and_an_unreadable_vault_with_exit_4() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    std::fs::set_permissions(env.vault_home(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, v, err) = run_json(&env, &[], &["doctor"]);
    assert_eq!(code, Some(4));
    assert_eq!(v["ok"], false);
    assert_eq!(v["paths"][0]["blocking"], true);
    assert!(
        v["paths"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("writable by group or others")
    );
    assert!(err.contains("is refused"), "{err}");
    std::fs::set_permissions(env.vault_home(), std::fs::Permissions::from_mode(0o700)).unwrap();
    // A too-open file is a note (repaired at its next use), not a refusal.
    std::fs::set_permissions(
        env.vault_home()
            .join("device-id")
            .parent()
            .unwrap()
            .join("vault.enc"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let (code, v, _) = run_json(&env, &[], &["doctor"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["paths"][2]["blocking"], false);
    assert!(
        v["paths"][2]["problem"]
            .as_str()
            .unwrap()
            .contains("repaired to 600")
    );
    // Made on another machine: the key does not open the vault.
    std::fs::write(env.vault_home().join("vault.key"), [3u8; 32]).unwrap();
    let (code, v, err) = run_json(&env, &[], &["doctor"]);
    assert_eq!(code, Some(4));
    assert_eq!(v["key"]["status"], "unreadable");
    assert!(
        v["key"]["error"]
            .as_str()
            .unwrap()
            .contains("different key")
    );
    assert!(err.contains("different key"));
    // Kept-aside files are listed.
    env.cmd().arg("logout").assert().success();
    let (code, v, _) = run_json(&env, &[], &["doctor"]);
    assert_eq!(code, Some(0));
    assert!(v["paths"].as_array().unwrap().iter().any(|p| {
        p["path"]
            .as_str()
            .unwrap()
            .contains("vault.enc.unreadable-")
    }));
}

#[test]
fn doctor_lists_plaintext_credentials_that_migrate_would_find() {
    let env = TestEnv::new();
    let path = env.home().join(".kimi/credentials/kimi-code.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        format!(r#"{{"access_token":"{CANARY_ACCESS}","refresh_token":"{CANARY_REFRESH}"}}"#),
    )
    .unwrap();
    let (code, v, _) = run_json(&env, &[], &["doctor"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["migrate_sources"][0]["tool"], "kimi-cli");
    assert_eq!(v["migrate_sources"][0]["path"], path.display().to_string());
    let out = env.cmd().arg("doctor").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("kimi-code.json (kimi-cli): there") && s.contains("`kimi-vault migrate`"),
        "{s}"
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn doctor_checks_configured_hosts_against_the_endpoint_rule_without_echoing_passwords() {
    let env = TestEnv::new();
    let (code, v, _) = run_json(
        &env,
        &[(
            "KIMI_CODE_BASE_URL",
            "https://user:hunter2@evil.example.com/v1",
        )],
        &["doctor"],
    );
    assert_eq!(code, Some(0), "the backend still works");
    assert_eq!(v["endpoints"]["cn"]["ok"], false);
    assert!(
        v["endpoints"]["cn"]["error"]
            .as_str()
            .unwrap()
            .contains("refusing endpoint https://evil.example.com/v1")
    );
    let o = &v["endpoints"]["overrides"];
    let base = o
        .as_array()
        .unwrap()
        .iter()
        .find(|x| {
            x["variable"]
                .as_str()
                .unwrap()
                .starts_with("KIMI_CODE_BASE_URL")
        })
        .unwrap();
    assert_eq!(base["ok"], false);
    assert_eq!(base["value"], "https://evil.example.com/v1");
    let out = env
        .cmd()
        .env(
            "KIMI_CODE_BASE_URL",
            "https://user:hunter2@evil.example.com/v1",
        )
        .arg("doctor")
        .output()
        .unwrap();
    assert_no_secret(&out, &["hunter2"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused"));
}

#[test]
#[cfg_attr(
    not(feature = "testing"),
    ignore = "needs `--features testing` (the KIMI_VAULT_TEST_NOW clock); scripts/test.sh turns it on"
)]
fn doctor_notices_a_clock_that_went_back() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let (code, v, _) = run_json(&env, &[("KIMI_VAULT_TEST_NOW", "1000000000")], &["doctor"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["clock"]["ok"], false);
    let problems = v["clock"]["problems"].to_string();
    assert!(
        problems.contains("before this version") && problems.contains("in the future"),
        "{problems}"
    );
}

#[test]
fn profiles_lists_every_stored_profile_without_secrets() {
    let env = TestEnv::new();
    let (code, v, _) = run_json(&env, &[], &["profiles"]);
    assert_eq!(code, Some(0));
    assert_eq!(v, serde_json::json!([]));
    assert!(!env.vault_home().exists());
    env.seed("work", CANARY_ACCESS, CANARY_REFRESH, 3600);
    env.seed(
        "default",
        "at-def-0123456789abcdef",
        "rt-def-0123456789abcdef",
        -10,
    );
    let mut marked = credential("at-x-0123456789abcdef", "rt-x-0123456789abcdef", 60);
    marked.needs_login = true;
    marked.region = "global".into();
    env.store("gone", &marked);
    let (code, v, err) = run_json(&env, &[], &["profiles"]);
    assert_eq!(code, Some(0));
    assert!(err.contains("not consulted"), "{err}");
    let rows = v.as_array().unwrap();
    let names: Vec<&str> = rows
        .iter()
        .map(|r| r["profile"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["default", "gone", "work"]);
    for r in rows {
        for key in [
            "profile",
            "backend",
            "logged_in",
            "needs_login",
            "expires_at",
            "region",
        ] {
            assert!(r.get(key).is_some(), "{key} in {r}");
        }
        assert_eq!(r["backend"], "file");
    }
    assert_eq!(rows[1]["needs_login"], true);
    assert_eq!(rows[1]["logged_in"], false);
    assert_eq!(rows[1]["region"], "global");
    assert_eq!(rows[2]["logged_in"], true);
    assert!(rows[0]["expires_in_seconds"].as_i64().unwrap() < 0);
    let out = env
        .cmd()
        .args(["--profile", "gone", "profiles"])
        .output()
        .unwrap();
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH, "at-", "rt-"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("gone *"));
    // An unreadable file: exit 4, said, and the rest still printed.
    std::fs::write(env.vault_home().join("vault.enc"), b"garbage").unwrap();
    let (code, v, err) = run_json(&env, &[], &["profiles"]);
    assert_eq!(code, Some(4));
    assert_eq!(v, serde_json::json!([]));
    assert!(
        err.contains("kimi-vault: error: the encrypted file's profiles are not listed"),
        "{err}"
    );
}

/// The client findings of `doctor --json`, by check name: (status, detail, fix).
fn client_checks(v: &serde_json::Value) -> Vec<(String, String, String, String)> {
    v["clients"]["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
                c["detail"].as_str().unwrap().to_owned(),
                c["fix"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

#[test]
fn doctor_checks_the_clients_settings_and_the_shell() {
    let env = TestEnv::new();
    let claude = env.dir.path().join("claude-config");
    std::fs::create_dir_all(&claude).unwrap();
    std::fs::write(
        claude.join("settings.json"),
        r#"{"apiKeyHelper":"/usr/local/bin/other-helper --x",
            "env":{"ANTHROPIC_BASE_URL":"https://api.kimi.com/coding/v1",
                   "ANTHROPIC_AUTH_TOKEN":"CANARYsettingstoken0123456789"}}"#,
    )
    .unwrap();
    let dir = claude.to_str().unwrap();
    let (code, v, _) = run_json(
        &env,
        &[
            ("CLAUDE_CONFIG_DIR", dir),
            ("ANTHROPIC_API_KEY", "sk-ant-CANARYshell0123456789"),
            ("HTTPS_PROXY", "http://proxy.corp.example:3128"),
            ("NO_PROXY", "localhost"),
        ],
        &["doctor"],
    );
    assert_eq!(
        code,
        Some(0),
        "client findings do not fail the backend check"
    );
    assert_eq!(v["clients"]["ok"], false);
    let checks = client_checks(&v);
    let problem = |name: &str, needle: &str| {
        let hit = checks
            .iter()
            .find(|(c, s, d, _)| c == name && s == "problem" && d.contains(needle));
        assert!(hit.is_some(), "{name} / {needle}: {checks:#?}");
        assert!(!hit.unwrap().3.is_empty(), "{name} has a fix");
    };
    problem("claude_helper", "other-helper");
    problem("claude_settings_key", "ANTHROPIC_AUTH_TOKEN");
    problem("claude_base_url", "/v1");
    problem("shell_anthropic_api_key", "ANTHROPIC_API_KEY");
    problem("http_proxy", "HTTPS_PROXY");
    let text = v.to_string();
    assert!(!text.contains("CANARY"), "{text}");

    // After `setup claude`, with loopback in NO_PROXY and no key in the shell: all ok.
    std::fs::write(claude.join("settings.json"), "{}").unwrap();
    env.cmd()
        .env("CLAUDE_CONFIG_DIR", dir)
        .args(["setup", "claude"])
        .assert()
        .success();
    let (_, v, _) = run_json(
        &env,
        &[
            ("CLAUDE_CONFIG_DIR", dir),
            ("HTTPS_PROXY", "http://proxy.corp.example:3128"),
            ("NO_PROXY", "localhost,127.0.0.1"),
        ],
        &["doctor"],
    );
    let checks = client_checks(&v);
    assert_eq!(v["clients"]["ok"], true, "{checks:#?}");
    assert!(
        checks
            .iter()
            .any(|(c, s, _, _)| c == "claude_helper" && s == "ok")
    );

    // A helper TTL not below its --min-valid.
    let mut s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(claude.join("settings.json")).unwrap())
            .unwrap();
    s["env"]["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"] = "900000".into();
    std::fs::write(claude.join("settings.json"), s.to_string()).unwrap();
    let (_, v, _) = run_json(&env, &[("CLAUDE_CONFIG_DIR", dir)], &["doctor"]);
    let checks = client_checks(&v);
    assert!(
        checks
            .iter()
            .any(|(c, s, _, _)| c == "claude_helper_ttl" && s == "problem"),
        "{checks:#?}"
    );

    // The human output has each finding with its fix line.
    let out = env
        .cmd()
        .env("CLAUDE_CONFIG_DIR", dir)
        .env("ANTHROPIC_API_KEY", "sk-ant-CANARYshell0123456789")
        .arg("doctor")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Clients ("), "{text}");
    assert!(text.contains("problem: ANTHROPIC_API_KEY is set"), "{text}");
    assert!(text.contains("fix: unset ANTHROPIC_API_KEY"), "{text}");
    assert_no_secret(&out, &["CANARYshell"]);
}

#[cfg(unix)]
#[test]
fn doctor_tells_kimi_cli_from_kimi_code() {
    use std::os::unix::fs::PermissionsExt;
    let env = TestEnv::new();
    let exe = |path: &std::path::Path, text: &str| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    let root = env.dir.path();
    // kimi-cli: a Python console script (uv tool / pip).
    exe(
        &root.join("cli/bin/kimi"),
        "#!/home/u/.local/share/uv/tools/kimi-cli/bin/python3\nimport sys\nfrom kimi_cli.cli import cli\nif __name__ == \"__main__\":\n    sys.exit(cli())\n",
    );
    // kimi-code: npm's link to @moonshot-ai/kimi-code's dist/main.mjs.
    let main = root.join("npm/lib/node_modules/@moonshot-ai/kimi-code/dist/main.mjs");
    exe(&main, "#!/usr/bin/env node\nimport './cli.mjs';\n");
    std::fs::create_dir_all(root.join("npm/bin")).unwrap();
    std::os::unix::fs::symlink(&main, root.join("npm/bin/kimi")).unwrap();
    for (dir, want) in [("cli/bin", "kimi-cli"), ("npm/bin", "kimi-code")] {
        let path = format!("{}:/usr/bin:/bin", root.join(dir).display());
        let (_, v, _) = run_json(&env, &[("PATH", &path)], &["doctor"]);
        let checks = client_checks(&v);
        let kimi = checks.iter().find(|(c, _, _, _)| c == "kimi_cli").unwrap();
        assert!(kimi.2.contains(&format!("is {want}")), "{want}: {kimi:?}");
        assert!(kimi.3.contains("exec --proxy --for kimi"), "{kimi:?}");
    }
}

#[cfg(unix)]
#[test]
fn doctor_runs_and_names_an_unusable_default_profile_file() {
    // Every other command stops at an unusable `default-profile`; doctor is where one looks
    // then: it runs, says why, and lists the file among the vault's.
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let file = env.vault_home().join("default-profile");
    std::os::unix::fs::symlink("/etc/hostname", &file).unwrap();
    let (code, v, err) = run_json(&env, &[], &["doctor"]);
    assert_ne!(code, Some(0));
    assert_ne!(code, Some(2), "{err}");
    assert!(err.contains("default-profile"), "{err}");
    let listed = v["paths"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["path"].as_str().unwrap().ends_with("/default-profile"))
        .unwrap_or_else(|| panic!("default-profile not listed: {}", v["paths"]));
    assert!(
        listed["problem"]
            .as_str()
            .unwrap()
            .contains("symbolic link"),
        "{listed}"
    );
}

#[test]
fn doctor_reads_no_proxy_and_its_lowercase_twin_apart() {
    // Each client reads one of the two: curl, Python and Node.js `no_proxy` first, Go and
    // reqwest `NO_PROXY` first. Loopback in one of them only is a problem for the others.
    let env = TestEnv::new();
    let http_proxy = |vars: &[(&str, &str)]| {
        let mut all = vec![("HTTPS_PROXY", "http://proxy.corp.example:3128")];
        all.extend_from_slice(vars);
        let (_, v, _) = run_json(&env, &all, &["doctor"]);
        client_checks(&v)
            .into_iter()
            .find(|(c, _, _, _)| c == "http_proxy")
            .expect("an http_proxy finding")
    };
    // Loopback in NO_PROXY, not in no_proxy: curl, Python and Node.js go through the proxy.
    let (_, status, detail, fix) =
        http_proxy(&[("NO_PROXY", "127.0.0.1"), ("no_proxy", "localhost")]);
    assert_eq!(status, "problem", "{detail}");
    assert!(
        detail.contains("NO_PROXY=127.0.0.1")
            && detail.contains("no_proxy=localhost")
            && detail.contains("curl")
            && detail.contains("no_proxy first"),
        "{detail}"
    );
    assert!(fix.contains("no_proxy="), "{fix}");
    // The other way round: Go and reqwest do.
    let (_, status, detail, _) =
        http_proxy(&[("NO_PROXY", "localhost"), ("no_proxy", "127.0.0.1")]);
    assert_eq!(status, "problem", "{detail}");
    assert!(detail.contains("NO_PROXY first"), "{detail}");
    // One of them set, with loopback: every client reads it.
    let (_, status, detail, _) = http_proxy(&[("no_proxy", "localhost,127.0.0.1")]);
    assert_eq!(status, "ok", "{detail}");
    assert!(detail.contains("NO_PROXY unset"), "{detail}");
    // Both, with loopback.
    let (_, status, detail, _) =
        http_proxy(&[("NO_PROXY", "127.0.0.1"), ("no_proxy", "127.0.0.0/8")]);
    assert_eq!(status, "ok", "{detail}");
}
