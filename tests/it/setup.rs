//! `kimi-vault setup claude [--undo] [--dry-run]` through the real binary, on a private
//! CLAUDE_CONFIG_DIR: what it sets, what it keeps, the backup, refusals, running it twice, and
//! undoing it.

use std::path::PathBuf;

use crate::common::*;
use serde_json::{Value, json};

fn claude_dir(env: &TestEnv) -> PathBuf {
    env.dir.path().join("claude-config")
}

fn setup(env: &TestEnv, args: &[&str]) -> std::process::Output {
    env.cmd()
        .env("CLAUDE_CONFIG_DIR", claude_dir(env))
        .args(["setup", "claude"])
        .args(args)
        .output()
        .unwrap()
}

fn settings(env: &TestEnv) -> Value {
    serde_json::from_str(&std::fs::read_to_string(claude_dir(env).join("settings.json")).unwrap())
        .unwrap()
}

fn backups(env: &TestEnv) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(claude_dir(env))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("settings.json.bak-"))
        .collect();
    v.sort();
    v
}

/// The helper `setup claude` writes for `env`: the binary, `token --min-valid 600`, and what
/// it needs to find the same vault and hosts without the test's environment (the vault
/// directory, the file backend, the fake server's URLs).
fn helper(env: &TestEnv) -> String {
    format!(
        "{} token --min-valid 600 --vault-home {} --backend file --oauth-host {} --api-base {}/coding/v1",
        std::fs::canonicalize(env!("CARGO_BIN_EXE_kimi-vault"))
            .unwrap()
            .display(),
        env.vault_home().display(),
        env.server.url,
        env.server.url,
    )
}

#[test]
fn a_fresh_setup_creates_the_directory_and_needs_no_login() {
    let env = TestEnv::new();
    let out = setup(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = settings(&env);
    assert_eq!(s["apiKeyHelper"], helper(&env).as_str());
    assert_eq!(
        s["env"]["ANTHROPIC_BASE_URL"],
        format!("{}/coding", env.server.url).as_str()
    );
    assert_eq!(s["env"]["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"], "300000");
    assert!(backups(&env).is_empty(), "nothing to back up");
    // The helper it wrote works once logged in (run as Claude Code runs it: through a shell).
    env.seed(
        "default",
        "at-setup-0123456789abcdef",
        "rt-setup-0123456789abcdef",
        3600,
    );
    let out = std::process::Command::new("sh")
        .env_clear()
        .envs(env.std_cmd().get_envs().filter_map(|(k, v)| Some((k, v?))))
        .args(["-c", s["apiKeyHelper"].as_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "at-setup-0123456789abcdef\n"
    );
    // Undo removes all of it: the file it created goes (its last content kept as a backup).
    let out = setup(&env, &["--undo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!claude_dir(&env).join("settings.json").exists());
    assert_eq!(backups(&env).len(), 1);
    assert!(!env.vault_home().join("claude-setup.json").exists());
    // Someone added a key after setup: undo keeps the file with that key.
    assert!(setup(&env, &[]).status.success());
    let mut s = settings(&env);
    s["model"] = json!("opus");
    std::fs::write(
        claude_dir(&env).join("settings.json"),
        serde_json::to_string(&s).unwrap(),
    )
    .unwrap();
    assert!(setup(&env, &["--undo"]).status.success());
    assert_eq!(settings(&env), json!({"model": "opus"}));
}

const EXISTING: &str = r#"{
  "model": "opus",
  "apiKeyHelper": "~/bin/old-helper.sh",
  "env": {
    "ANTHROPIC_BASE_URL": "https://old.example/anthropic",
    "OTHER": "kept"
  },
  "permissions": {"allow": ["Bash(ls)"]},
  "zz_last": true
}
"#;

#[test]
fn other_keys_and_their_order_are_kept_twice_is_safe_and_undo_puts_values_back() {
    let env = TestEnv::new();
    std::fs::create_dir_all(claude_dir(&env)).unwrap();
    let path = claude_dir(&env).join("settings.json");
    std::fs::write(&path, EXISTING).unwrap();
    let out = setup(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let keys: Vec<usize> = [
        "\"model\"",
        "\"apiKeyHelper\"",
        "\"env\"",
        "\"permissions\"",
        "\"zz_last\"",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "order kept: {text}");
    let s = settings(&env);
    assert_eq!(s["apiKeyHelper"], helper(&env).as_str());
    assert_eq!(s["env"]["OTHER"], "kept");
    assert_eq!(s["permissions"]["allow"][0], "Bash(ls)");
    let b = backups(&env);
    assert_eq!(b.len(), 1);
    assert_eq!(std::fs::read_to_string(&b[0]).unwrap(), EXISTING);
    // Twice: nothing changes, no second backup.
    let out = setup(&env, &[]);
    assert!(out.status.success());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    assert_eq!(backups(&env).len(), 1);
    // Undo: the replaced values come back, the added one goes.
    let out = setup(&env, &["--undo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let original: Value = serde_json::from_str(EXISTING).unwrap();
    assert_eq!(settings(&env), original);
    let restored = std::fs::read_to_string(&path).unwrap();
    assert!(
        restored.find("\"model\"").unwrap() < restored.find("\"zz_last\"").unwrap(),
        "{restored}"
    );
    // Undo again: nothing to do.
    let out = setup(&env, &["--undo"]);
    assert!(out.status.success());
    assert_eq!(settings(&env), original);
}

#[test]
fn undo_leaves_values_someone_changed_since() {
    let env = TestEnv::new();
    assert!(setup(&env, &[]).status.success());
    let path = claude_dir(&env).join("settings.json");
    let mut s = settings(&env);
    s["env"]["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"] = json!("100000");
    std::fs::write(&path, serde_json::to_string_pretty(&s).unwrap()).unwrap();
    let out = setup(&env, &["--undo"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("left as it is"));
    let s = settings(&env);
    assert!(s.get("apiKeyHelper").is_none());
    assert!(s["env"].get("ANTHROPIC_BASE_URL").is_none());
    assert_eq!(s["env"]["CLAUDE_CODE_API_KEY_HELPER_TTL_MS"], "100000");
}

#[test]
fn refuses_when_settings_keys_would_override_the_helper_and_on_invalid_json() {
    for (text, name) in [
        (
            r#"{"env":{"ANTHROPIC_API_KEY":"sk-ant-CANARYsettingskey0123456789"}}"#,
            Some("ANTHROPIC_API_KEY"),
        ),
        (
            r#"{"env":{"ANTHROPIC_AUTH_TOKEN":"CANARYsettingstoken0123456789"}}"#,
            Some("ANTHROPIC_AUTH_TOKEN"),
        ),
        (r#"{"env": {"A": "sk-ant-CANARYbroken0123456789" "#, None),
        ("[1, 2]", None),
    ] {
        let env = TestEnv::new();
        std::fs::create_dir_all(claude_dir(&env)).unwrap();
        let path = claude_dir(&env).join("settings.json");
        std::fs::write(&path, text).unwrap();
        let out = setup(&env, &[]);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "untouched");
        assert!(backups(&env).is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        if let Some(name) = name {
            assert!(err.contains(name), "{err}");
        }
        assert!(err.contains("nothing was changed"), "{err}");
        assert_no_secret(
            &out,
            &["CANARYsettingskey", "CANARYsettingstoken", "CANARYbroken"],
        );
        // --dry-run refuses the same way.
        assert_eq!(setup(&env, &["--dry-run"]).status.code(), Some(1));
    }
}

#[test]
fn dry_run_prints_the_new_file_and_changes_nothing() {
    let env = TestEnv::new();
    std::fs::create_dir_all(claude_dir(&env)).unwrap();
    let path = claude_dir(&env).join("settings.json");
    std::fs::write(&path, EXISTING).unwrap();
    let out = setup(&env, &["--dry-run"]);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed["apiKeyHelper"], helper(&env).as_str());
    assert_eq!(printed["model"], "opus");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), EXISTING);
    assert!(backups(&env).is_empty());
    assert!(!env.vault_home().join("claude-setup.json").exists());
}

#[test]
fn a_profile_other_than_default_is_named_and_the_shell_keys_are_warned_about() {
    let env = TestEnv::new();
    let out = env
        .cmd()
        .env("CLAUDE_CONFIG_DIR", claude_dir(&env))
        .env("ANTHROPIC_API_KEY", "sk-ant-CANARYshellkey0123456789")
        .args(["--profile", "work", "setup", "claude"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        settings(&env)["apiKeyHelper"],
        format!("{} --profile work", helper(&env)).as_str()
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ANTHROPIC_API_KEY is set in this shell"),
        "{err}"
    );
    assert_no_secret(&out, &["CANARYshellkey"]);
}

#[test]
fn the_default_profile_is_named_when_profiles_use_made_another_the_default() {
    // `profiles use work` makes a bare `kimi-vault token` use 'work': a helper for profile
    // 'default' must then say so, or Claude Code gets the other profile's token.
    let env = TestEnv::new();
    env.cmd()
        .args(["profiles", "use", "work"])
        .assert()
        .success();
    let out = env
        .cmd()
        .env("CLAUDE_CONFIG_DIR", claude_dir(&env))
        .args(["--profile", "default", "setup", "claude"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        settings(&env)["apiKeyHelper"],
        format!("{} --profile default", helper(&env)).as_str()
    );
    // And the persisted default itself is named too (it is still pinned when `profiles use`
    // changes it later).
    let out = setup(&env, &["--dry-run"]);
    assert!(out.status.success());
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        printed["apiKeyHelper"],
        format!("{} --profile work", helper(&env)).as_str()
    );
}

#[cfg(unix)]
#[test]
fn a_symlinked_settings_file_stays_a_symlink() {
    let env = TestEnv::new();
    std::fs::create_dir_all(claude_dir(&env)).unwrap();
    let real = env.dir.path().join("dotfiles-settings.json");
    std::fs::write(&real, r#"{"model":"opus"}"#).unwrap();
    let link = claude_dir(&env).join("settings.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    assert!(setup(&env, &[]).status.success());
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(s["apiKeyHelper"], helper(&env).as_str());
    assert_eq!(s["model"], "opus");
}

#[test]
fn the_helper_finds_a_non_default_vault_without_the_shell_s_variables() {
    // Claude Code runs the helper with its own environment: no KIMI_VAULT_HOME, no
    // KIMI_VAULT_BACKEND, no endpoint override. The helper carries them.
    let env = TestEnv::new();
    assert!(setup(&env, &[]).status.success());
    let helper_line = settings(&env)["apiKeyHelper"].as_str().unwrap().to_owned();
    assert_eq!(helper_line, helper(&env));
    env.seed(
        "default",
        "at-elsewhere-0123456789abcdef",
        "rt-elsewhere-0123456789abcdef",
        3600,
    );
    let out = std::process::Command::new("sh")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", env.home())
        .current_dir(env.dir.path())
        .args(["-c", &helper_line])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "at-elsewhere-0123456789abcdef\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The default vault directory and backend are not written out.
    let default_env = TestEnv::new();
    let data = default_env.home().join(".local/share");
    let out = default_env
        .cmd()
        .env_remove("KIMI_VAULT_HOME")
        .env_remove("KIMI_VAULT_BACKEND")
        .env("XDG_DATA_HOME", &data)
        .env("CLAUDE_CONFIG_DIR", claude_dir(&default_env))
        .args(["setup", "claude"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = settings(&default_env)["apiKeyHelper"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !line.contains("--vault-home") && !line.contains("--backend"),
        "{line}"
    );
}
