//! `kimi-vault exec` through the real binary.

use crate::common::*;

#[test]
fn exec_injects_token_and_base_url_and_returns_exit_code() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-exec-0123456789abcdef",
        "rt-exec-0123456789abcdef",
        3600,
    );
    let out_file = env.dir.path().join("seen");
    let script = format!(
        "printf '%s|%s|%s' \"$ANTHROPIC_AUTH_TOKEN\" \"$ANTHROPIC_BASE_URL\" \"$MY_TOKEN\" > {}; exit 7",
        out_file.display()
    );
    let out = env
        .cmd()
        .args(["exec", "--", "sh", "-c", &script])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7), "CMD's exit code is ours");
    assert_no_secret(&out, &["at-exec-0123456789abcdef"]);
    let seen = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(
        seen,
        format!("at-exec-0123456789abcdef|{}/coding|", env.server.url)
    );

    // --env replaces the default variable; a preset ANTHROPIC_BASE_URL is kept.
    env.cmd()
        .env("ANTHROPIC_BASE_URL", "http://127.0.0.1:1/custom")
        .args(["exec", "--env", "MY_TOKEN", "--", "sh", "-c", &script])
        .assert()
        .code(7);
    let seen = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(seen, "|http://127.0.0.1:1/custom|at-exec-0123456789abcdef");
}

#[test]
fn exec_refuses_when_not_logged_in_and_bad_vars() {
    let env = TestEnv::new();
    env.cmd().args(["exec", "--", "true"]).assert().code(3);
    env.seed(
        "default",
        "at-exec-0123456789abcdef",
        "rt-exec-0123456789abcdef",
        3600,
    );
    env.cmd()
        .args(["exec", "--env", "BAD=NAME", "--", "true"])
        .assert()
        .code(2);
    // As shells do: 127 when the program is not found, 126 when it cannot be executed.
    env.cmd()
        .args(["exec", "--", "/nonexistent/program"])
        .assert()
        .code(127)
        .stderr(predicates::str::contains("not found"));
    let not_executable = env.dir.path().join("data.txt");
    std::fs::write(&not_executable, "just data").unwrap();
    env.cmd()
        .args(["exec", "--"])
        .arg(&not_executable)
        .assert()
        .code(126);
}

#[test]
fn exec_uses_the_stored_region() {
    let env = TestEnv::new();
    let mut cred = credential(
        "at-global-0123456789abcdef",
        "rt-global-0123456789abcdef",
        3600,
    );
    cred.region = "global".into();
    env.store("default", &cred);
    // No override: the base URL comes from the region the credential was logged in to.
    let out = env
        .cmd()
        .env_remove("KIMI_CODE_BASE_URL")
        .args([
            "exec",
            "--",
            "sh",
            "-c",
            "printf %s \"$ANTHROPIC_BASE_URL\"",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "https://api.kimi.ai/coding"
    );
    assert_no_secret(&out, &["at-global", "rt-global"]);
}

#[test]
fn exec_refuses_variables_the_loader_or_the_shell_interpret() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    for (var, rule) in [
        ("LD_PRELOAD", "LD_*"),
        ("ld_preload", "LD_*"),
        ("LD_LIBRARY_PATH", "LD_*"),
        ("DYLD_INSERT_LIBRARIES", "DYLD_*"),
        ("MALLOC_CHECK_", "MALLOC_*"),
        ("PATH", "looks commands up"),
        ("path", "looks commands up"),
        ("IFS", "splits words"),
        ("ENV", "source the file"),
        ("BASH_ENV", "sources the file"),
        ("PS4", "expands it"),
        ("SHELLOPTS", "bash options"),
        ("BASHOPTS", "bash options"),
        ("PROMPT_COMMAND", "runs it"),
        ("GCONV_PATH", "loads modules"),
        ("LOCPATH", "loads locales"),
        ("LC_ALL", "LC_*"),
        ("PYTHONSTARTUP", "PYTHON*"),
        ("NODE_OPTIONS", "NODE_*"),
        ("PERL5OPT", "PERL5*"),
        ("GIT_SSH_COMMAND", "GIT_*"),
    ] {
        let out = env
            .cmd()
            .args(["exec", "--env", var, "--", "sh", "-c", "exit 9"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "--env {var} was accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(var) && err.contains(rule), "{var}: {err}");
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    }
    // An ordinary name is still fine.
    env.cmd()
        .args(["exec", "--env", "MY_API_KEY", "--", "sh", "-c", "exit 9"])
        .assert()
        .code(9);
}

#[test]
fn exec_removes_anthropic_api_key_unless_env_names_it() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-exec-0123456789abcdef",
        "rt-exec-0123456789abcdef",
        3600,
    );
    let script = "printf '%s|%s' \"${ANTHROPIC_API_KEY-unset}\" \"$ANTHROPIC_AUTH_TOKEN\"";
    // Claude Code would send the shell's ANTHROPIC_API_KEY beside the token: removed.
    let out = env
        .cmd()
        .env("ANTHROPIC_API_KEY", "sk-stale-from-the-shell")
        .args(["exec", "--", "sh", "-c", script])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "unset|at-exec-0123456789abcdef"
    );
    // Named with --env, it holds the token.
    let out = env
        .cmd()
        .env("ANTHROPIC_API_KEY", "sk-stale-from-the-shell")
        .args([
            "exec",
            "--env",
            "ANTHROPIC_API_KEY",
            "--",
            "sh",
            "-c",
            script,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "at-exec-0123456789abcdef|"
    );
}

#[test]
fn kimi_vault_inside_exec_proxy_for_kimi_keeps_its_own_api_base() {
    // Inside `exec --proxy --for kimi`, KIMI_CODE_BASE_URL is the private proxy's URL (for
    // kimi-cli). A kimi-vault run there must not take it as its API base: it would send the
    // Kimi token to the proxy, get 401, and rotate the refresh token for nothing.
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let proxy_url = "http://127.0.0.1:9/v1";
    let out = env
        .cmd()
        .env("KIMI_CODE_BASE_URL", proxy_url)
        .env("KIMI_VAULT_EXEC_PROXY_URL", proxy_url)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_ne!(v["api_base"], proxy_url, "{v}");
    // Without the marker, the variable is the user's override, as always.
    let out = env
        .cmd()
        .env("KIMI_CODE_BASE_URL", proxy_url)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["api_base"], proxy_url, "{v}");
}
