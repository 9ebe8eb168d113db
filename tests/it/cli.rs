//! The rough edges a new user hits, each through the real binary: hints that name the profile,
//! commands named in messages exist, `--json` for every command (errors included), the profile
//! name rule, `exec` without `--`, status after a rejected refresh and on an unreadable vault,
//! logout that resets or touches nothing, the keyring-mode fix, one error prefix, `-v` on
//! status, `--help`, completions and the man page.

use std::collections::BTreeSet;

use crate::common::*;
use predicates::prelude::*;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    let s = text(&out.stdout);
    assert_eq!(s.lines().count(), 1, "one JSON value on stdout: {s}");
    serde_json::from_str(&s).unwrap_or_else(|_| panic!("not JSON: {s}"))
}

/// The subcommands `--help` lists.
fn subcommands(env: &TestEnv) -> BTreeSet<String> {
    let help = text(&env.cmd().arg("--help").output().unwrap().stdout);
    help.split("Commands:")
        .nth(1)
        .unwrap()
        .split("\n\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

#[test]
fn every_hint_names_the_profile() {
    let env = TestEnv::new();
    let want = "kimi-vault login --profile nope";
    for args in [
        &["--profile", "nope", "status"][..],
        &["--profile", "nope", "token"],
        &["--profile", "nope", "usage"],
        &["--profile", "nope", "models"],
        &["--profile", "nope", "exec", "--", "true"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        let all = text(&out.stdout) + &text(&out.stderr);
        assert!(all.contains(want), "{args:?}: {all}");
    }
    let out = env
        .cmd()
        .env("KIMI_VAULT_PROFILE", "nope")
        .arg("status")
        .output()
        .unwrap();
    assert!(text(&out.stdout).contains(want));
    // The unreadable-vault hints name it too.
    env.seed("nope", CANARY_ACCESS, CANARY_REFRESH, 3600);
    std::fs::write(env.vault_home().join("vault.key"), [7u8; 32]).unwrap();
    let out = env
        .cmd()
        .args(["--profile", "nope", "token"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    let err = text(&out.stderr);
    assert!(
        err.contains(want) && err.contains("kimi-vault logout --profile nope"),
        "{err}"
    );
}

#[test]
fn every_command_a_message_or_the_readme_names_exists() {
    let env = TestEnv::new();
    let commands = subcommands(&env);
    for c in [
        "login",
        "status",
        "token",
        "exec",
        "usage",
        "models",
        "profiles",
        "logout",
        "migrate",
        "doctor",
        "completions",
        "man",
    ] {
        assert!(
            commands.contains(c),
            "{c} missing from --help: {commands:?}"
        );
        env.cmd().args([c, "--help"]).assert().success();
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md"), root.join("SECURITY.md")];
    let mut dirs = vec![root.join("src")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                files.push(p);
            }
        }
    }
    let mut named = BTreeSet::new();
    for f in files {
        let body = std::fs::read_to_string(&f).unwrap();
        let is_md = f.extension().is_some_and(|x| x == "md");
        for (i, _) in body.match_indices("kimi-vault ") {
            // A command: "`kimi-vault CMD" anywhere, or a line of a Markdown code block.
            let before = &body[..i];
            let line_start = before.rfind('\n').map_or(0, |n| n + 1);
            let in_code_block = is_md && before.matches("```").count() % 2 == 1;
            let command =
                before.ends_with('`') || (in_code_block && before[line_start..].trim().is_empty());
            if !command {
                continue;
            }
            let rest = &body[i + "kimi-vault ".len()..];
            let span = &rest[..rest.find(['`', '\n']).unwrap_or(rest.len())];
            let mut words = span.split_whitespace();
            let mut word = words.next().unwrap_or_default();
            // Skip global options (and their values).
            while word.starts_with('-') {
                if matches!(word, "--profile" | "--vault-home" | "--backend") {
                    words.next();
                }
                word = words.next().unwrap_or_default();
            }
            let word: String = word
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if !word.is_empty() {
                named.insert((word, f.display().to_string()));
            }
        }
    }
    assert!(
        named.iter().any(|(w, _)| w == "doctor"),
        "the scan finds commands: {named:?}"
    );
    for (word, file) in named {
        assert!(
            commands.contains(&word),
            "`kimi-vault {word}` is named in {file} but is not a command"
        );
    }
}

#[test]
fn json_means_one_value_on_stdout_for_every_command_errors_included() {
    let env = TestEnv::new();
    // Errors: {"error":{"code","message"}} on stdout, the message on stderr too.
    for (args, code) in [
        (&["token", "--json"][..], 3),
        (&["exec", "--json", "--", "true"], 3),
        (&["usage", "--json"], 3),
        (&["models", "--json"], 3),
        (&["--json", "frobnicate"], 2),
        (&["--json", "exec", "env"], 2),
        (&["--json", "--profile", ".x", "token"], 2),
        (&["--json", "migrate", "--from", "/nonexistent/x.json"], 1),
    ] {
        let out = env.cmd().args(args).output().unwrap();
        if args.contains(&"migrate") {
            // migrate reports what it did, with the missing source under "skipped".
            assert_eq!(out.status.code(), Some(code));
            assert!(
                json(&out)["skipped"][0]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("no such file")
            );
            continue;
        }
        assert_eq!(out.status.code(), Some(code), "{args:?}");
        let v = json(&out);
        assert_eq!(v["error"]["code"], code, "{args:?}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(!message.is_empty());
        assert!(
            text(&out.stderr).contains("kimi-vault: error: "),
            "{args:?}"
        );
    }
    // status prints its own object even when not logged in.
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["logged_in"], false);
    // Success: one object each.
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let v = json(&env.cmd().args(["token", "--json"]).output().unwrap());
    assert_eq!(
        v["access_token"], CANARY_ACCESS,
        "token --json holds the token"
    );
    assert_eq!(v["token_type"], "Bearer");
    assert!(v["expires_in_seconds"].as_i64().unwrap() > 3500);
    assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
    for args in [
        &["status", "--json"][..],
        &["usage", "--json"],
        &["models", "--json"],
        &["profiles", "--json"],
        &["doctor", "--json"],
        &["migrate", "--json", "--dry-run"],
        &["logout", "--json"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let _ = json(&out);
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    }
    // exec --json: errors as JSON; on success stdout belongs to CMD.
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    env.cmd()
        .args(["exec", "--json", "--", "printf", "mine"])
        .assert()
        .success()
        .stdout("mine");
}

#[test]
fn a_bad_profile_name_states_the_rule() {
    let env = TestEnv::new();
    for bad in [".hidden", "a/b", ""] {
        env.cmd()
            .args(["--profile", bad, "status"])
            .assert()
            .code(2)
            .stderr(predicate::str::contains(
                "a profile name is 1 to 64 letters, digits, '-', '_' or '.', and does not start with '.'",
            ));
    }
    env.cmd()
        .arg("--help")
        .assert()
        .stdout(predicate::str::contains("not starting with '.'"));
}

#[test]
fn exec_without_double_dash_hints_at_it() {
    let env = TestEnv::new();
    env.cmd()
        .args(["exec", "env"])
        .assert()
        .code(2)
        .stderr(predicate::str::starts_with(
            "kimi-vault: error: unexpected argument 'env'",
        ))
        .stderr(predicate::str::contains(
            "goes after `--`, as in: kimi-vault exec -- env",
        ));
    env.cmd()
        .args(["exec", "--env", "X", "env", "FOO=1"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("kimi-vault exec -- env"));
    // With `--` there, the hint about `--` would be wrong: --for needs --proxy.
    let out = env
        .cmd()
        .args(["exec", "--for", "claude", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(!err.contains("goes after `--`"), "{err}");
    assert!(
        err.contains("--for needs --proxy: kimi-vault exec --proxy --for claude -- true"),
        "{err}"
    );
}

#[test]
fn status_after_a_rejected_refresh_says_what_is_true() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 200);
    env.server
        .with(|s| s.valid_refresh = Some("something-else".into()));
    env.cmd()
        .args(["token", "--min-valid", "600"])
        .assert()
        .code(3);
    let out = env.cmd().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    let s = text(&out.stdout);
    // Every command refuses the stored tokens (exit 3): status says so, not "may still work".
    assert!(
        s.contains(
            "logged in:  no: Kimi rejected the refresh token, so the stored tokens are no longer used; run `kimi-vault login`"
        ),
        "{s}"
    );
    assert!(!s.contains("may still work"), "{s}");
    env.cmd().args(["token"]).assert().code(3);
    assert!(s.contains("it cannot be renewed"), "{s}");
    let v = json(&env.cmd().args(["status", "--json"]).output().unwrap());
    assert_eq!(v["logged_in"], false);
    assert_eq!(v["needs_login"], true);
    assert_eq!(v["access_token_valid"], true);
    assert!(v["expires_in_seconds"].as_i64().unwrap() > 0);
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

fn aside_files(env: &TestEnv) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(env.vault_home())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".unreadable-"))
        .collect();
    v.sort();
    v
}

#[test]
fn an_unreadable_vault_status_reports_and_logout_resets() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    env.seed(
        "other",
        "at-other-0123456789abcdef",
        "rt-other-0123456789abcdef",
        3600,
    );
    let vault = env.vault_home().join("vault.enc");
    let mut bytes = std::fs::read(&vault).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 1;
    std::fs::write(&vault, &bytes).unwrap();

    let out = env.cmd().arg("status").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let s = text(&out.stdout);
    for want in [
        "profile:    default",
        "backend:    file",
        "vault file: ",
        "key file:   ",
    ] {
        assert!(s.contains(want), "{want}: {s}");
    }
    let err = text(&out.stderr);
    assert!(
        err.starts_with("kimi-vault: error: ") && err.contains("failed authentication"),
        "{err}"
    );
    assert!(
        err.contains("will be kept aside"),
        "future tense before: {err}"
    );
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    let v = json(&out);
    assert_eq!(v["logged_in"], false);
    assert_eq!(v["profile"], "default");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("failed authentication")
    );
    assert!(v["vault_file"].as_str().unwrap().ends_with("vault.enc"));
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);

    // logout resets it: the file is kept aside byte for byte, and it says so (past tense).
    let out = env.cmd().args(["logout", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("It was kept aside, not deleted"), "{err}");
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    let v = json(&out);
    assert_eq!(v["kept_aside"].as_array().unwrap().len(), 1);
    let aside = aside_files(&env);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(env.vault_home().join(&aside[0])).unwrap(),
        bytes
    );
    assert!(!vault.exists());
    env.cmd().arg("status").assert().code(3);

    // A broken key is kept aside with the vault.
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    std::fs::write(env.vault_home().join("vault.key"), b"short").unwrap();
    let out = env.cmd().arg("logout").output().unwrap();
    assert!(out.status.success());
    let aside = aside_files(&env);
    assert_eq!(aside.len(), 3, "{aside:?}");
    assert!(aside.iter().any(|n| n.starts_with("vault.key.unreadable-")));
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    env.cmd().args(["login", "--no-browser"]).assert().success();
    env.cmd().arg("token").assert().success();
}

#[test]
fn logout_with_nothing_stored_touches_nothing() {
    let env = TestEnv::new();
    env.cmd()
        .arg("logout")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "had no stored credential; nothing was changed",
        ));
    assert!(!env.vault_home().exists(), "no directory created");
    let out = env.cmd().args(["logout", "--json"]).output().unwrap();
    assert_eq!(json(&out)["removed"], false);
    assert!(!env.vault_home().exists());
    // With a vault holding another profile: nothing is rewritten, no lock file is made.
    env.seed(
        "other",
        "at-other-0123456789abcdef",
        "rt-other-0123456789abcdef",
        3600,
    );
    std::fs::remove_file(env.vault_home().join("vault.lock")).unwrap();
    let before = std::fs::read(env.vault_home().join("vault.enc")).unwrap();
    let mtime = std::fs::metadata(env.vault_home().join("vault.enc"))
        .unwrap()
        .modified()
        .unwrap();
    env.cmd()
        .args(["--profile", "nobody", "logout"])
        .assert()
        .success();
    assert!(!env.vault_home().join("vault.lock").exists());
    assert_eq!(
        std::fs::read(env.vault_home().join("vault.enc")).unwrap(),
        before
    );
    assert_eq!(
        std::fs::metadata(env.vault_home().join("vault.enc"))
            .unwrap()
            .modified()
            .unwrap(),
        mtime
    );
}

#[test]
fn keyring_mode_without_a_session_bus_names_the_fix() {
    let env = TestEnv::new();
    for args in [&["token"][..], &["status"], &["profiles"], &["logout"]] {
        let out = env
            .cmd()
            .env("KIMI_VAULT_BACKEND", "keyring")
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        for want in [
            "D-Bus",
            "KIMI_VAULT_BACKEND=auto",
            "KIMI_VAULT_BACKEND=file",
            "`kimi-vault doctor`",
        ] {
            assert!(err.contains(want), "{args:?} {want}: {err}");
        }
    }
    let out = env
        .cmd()
        .env("KIMI_VAULT_BACKEND", "keyring")
        .args(["status", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["backend"], "keyring");
    assert!(v["error"].as_str().unwrap().contains("kimi-vault doctor"));
}

#[test]
fn one_error_prefix_for_clap_and_for_us() {
    let env = TestEnv::new();
    for args in [
        &["frobnicate"][..],
        &["--no-such-flag", "status"],
        &["token", "--min-valid", "soon"],
        &["login", "--region", "mars"],
        &["token"],
        &["--profile", ".x", "status"],
        &["completions", "tcsh"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("kimi-vault: error: "), "{args:?}: {err}");
        assert!(
            !err.lines().any(|l| l.starts_with("error:")),
            "{args:?}: a second prefix: {err}"
        );
    }
}

#[test]
fn verbose_status_shows_what_was_looked_at() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let quiet = env.cmd().arg("status").output().unwrap();
    assert!(text(&quiet.stderr).is_empty(), "{}", text(&quiet.stderr));
    let out = env.cmd().args(["-v", "status"]).output().unwrap();
    assert!(out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("encrypted file: ") && err.contains("holds profile 'default'"),
        "{err}"
    );
    assert!(err.contains(" ms)"), "timings: {err}");
    assert!(
        text(&out.stdout).contains("looked up:  in "),
        "{}",
        text(&out.stdout)
    );
    let out = env
        .cmd()
        .args(["-v", "--profile", "none", "status"])
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("has no profile 'none'"));
    let out = env
        .cmd()
        .env("KIMI_VAULT_BACKEND", "auto")
        .args(["-v", "status"])
        .output()
        .unwrap();
    let err = text(&out.stderr);
    assert!(
        err.contains("OS keyring unavailable") && err.contains("D-Bus"),
        "{err}"
    );
    let out = env.cmd().args(["-vv", "status"]).output().unwrap();
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
}

#[test]
fn help_has_examples_environment_exit_codes_and_ordered_options() {
    let env = TestEnv::new();
    let help = text(&env.cmd().arg("--help").output().unwrap().stdout);
    for want in [
        "Examples:",
        "Environment:",
        "KIMI_VAULT_BACKEND",
        "KIMI_CODE_BASE_URL",
        "Exit codes:",
        "3  login required",
    ] {
        assert!(help.contains(want), "{want}");
    }
    let pos = |s: &str| help.find(s).unwrap_or_else(|| panic!("{s}"));
    assert!(pos("--profile") < pos("--json") && pos("--json") < pos("--verbose"));
    assert!(
        pos("--verbose") < pos("--vault-home"),
        "configuration after the everyday options"
    );
    assert!(pos("  login ") < pos("  status ") && pos("  status ") < pos("  token "));
    for sub in [
        "login",
        "status",
        "token",
        "exec",
        "usage",
        "models",
        "profiles",
        "logout",
        "migrate",
        "doctor",
        "completions",
    ] {
        let h = text(&env.cmd().args([sub, "--help"]).output().unwrap().stdout);
        assert!(h.contains("Example"), "{sub} --help has examples");
    }
    let h = text(&env.cmd().args(["token", "--help"]).output().unwrap().stdout);
    assert!(h.contains("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"));
    // Environment values are never shown (an override could carry a password).
    let h = text(
        &env.cmd()
            .env(
                "KIMI_CODE_BASE_URL",
                "https://user:hunter2@api.kimi.com/coding/v1",
            )
            .arg("--help")
            .output()
            .unwrap()
            .stdout,
    );
    assert!(!h.contains("hunter2"));
}

#[test]
fn completions_for_every_shell_and_a_man_page() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = env.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let s = text(&out.stdout);
        assert!(
            s.contains("kimi-vault") && s.contains("usage") && s.contains("profile"),
            "{shell}"
        );
    }
    let out = env.cmd().arg("man").output().unwrap();
    assert!(out.status.success());
    let man = text(&out.stdout);
    assert!(
        man.starts_with(".ie") || man.contains(".TH kimi-vault"),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains("doctor") && man.contains("KIMI_VAULT_HOME"));
    // They need no vault and no HOME.
    env.cmd()
        .env_remove("HOME")
        .env_remove("KIMI_VAULT_HOME")
        .args(["completions", "bash"])
        .assert()
        .success();
}

#[test]
fn the_readme_and_scripts_state_what_they_assume() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for want in [
        "Rust ≥ 1.89",
        "C compiler",
        "sudo",
        "exits 3",
        "CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
        "kimi-vault completions",
        "kimi-vault man",
    ] {
        assert!(readme.contains(want), "README lacks {want:?}");
    }
    // scripts/test.sh and CI write their reports into the cargo target directory, wherever it is.
    for script in ["scripts/test.sh", ".ci/run"] {
        let s = std::fs::read_to_string(root.join(script)).unwrap();
        assert!(
            !s.contains("$PWD/target/") && !s.contains(" target/test-"),
            "{script} assumes ./target"
        );
    }
}

#[test]
fn a_closed_stdout_is_an_exit_1_not_a_panic() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    for args in [&["doctor"][..], &["status"], &["profiles"], &["models"]] {
        // A pipe whose reading end is already closed, as in `kimi-vault doctor | true`.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = env.std_cmd().args(args).stdout(writer).output().unwrap();
        let err = text(&out.stderr);
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    }
}

#[test]
fn status_json_has_the_same_keys_in_every_state() {
    let keys = |v: &serde_json::Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let env = TestEnv::new();
    let mut seen = Vec::new();
    // Not logged in.
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    seen.push(("not logged in", json(&out)));
    // Logged in (no account known: a credential stored before accounts were).
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    seen.push(("logged in", json(&out)));
    // Needs a login.
    let mut cred = env.stored("default").unwrap();
    cred.needs_login = true;
    env.store("default", &cred);
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    seen.push(("needs login", json(&out)));
    // The vault cannot be read.
    let file = env.vault_home().join("vault.enc");
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    seen.push(("unreadable", json(&out)));

    let first = keys(&seen[0].1);
    for want in [
        "profile",
        "logged_in",
        "needs_login",
        "backend",
        "backend_reason",
        "expires_at",
        "expires_in_seconds",
        "scope",
        "region",
        "account",
        "error",
        "key_exposed",
    ] {
        assert!(first.contains(&want.to_owned()), "{want}: {first:?}");
    }
    for (state, v) in &seen {
        assert_eq!(keys(v), first, "{state}: {v}");
        assert_eq!(v["account"], serde_json::Value::Null, "{state}");
    }
    assert_eq!(seen[1].1["error"], serde_json::Value::Null);
    assert!(seen[3].1["error"].is_string());
    assert_eq!(seen[3].1["region"], serde_json::Value::Null);
}

#[test]
fn token_json_parses_and_holds_the_token_exactly_once() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    // The fast path (`token --json`) and clap's (`token --json --refresh` is not a fast-path
    // line; `--min-valid` past the expiry refreshes).
    for args in [&["token", "--json"][..], &["--json", "token", "--refresh"]] {
        let out = env.cmd().args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
        let stdout = text(&out.stdout);
        assert!(
            stdout.ends_with("}\n") && !stdout.ends_with("\n\n"),
            "{stdout:?}"
        );
        let v = json(&out);
        let token = v["access_token"].as_str().unwrap().to_owned();
        assert!(!token.is_empty());
        assert_eq!(
            stdout.matches(token.as_str()).count(),
            1,
            "{args:?}: the token once: {stdout}"
        );
        let keys: BTreeSet<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "access_token",
                "token_type",
                "expires_at",
                "expires_in_seconds"
            ]),
            "{args:?}"
        );
        assert!(!text(&out.stderr).contains(&token), "{args:?}");
    }
}

#[test]
fn completions_and_man_refuse_json_with_a_usage_error() {
    let env = TestEnv::new();
    for args in [
        &["completions", "bash", "--json"][..],
        &["--json", "man"],
        &["man", "login", "--json"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let v = json(&out);
        assert_eq!(v["error"]["code"], 2, "{args:?}");
        let message = v["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("no JSON form") && message.contains("without --json"),
            "{args:?}: {message}"
        );
        assert!(
            text(&out.stderr).contains("kimi-vault: error: "),
            "{args:?}"
        );
    }
}

#[test]
fn no_hidden_option_is_completed_and_kimi_oauth_host_still_works() {
    let env = TestEnv::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = env.cmd().args(["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let s = text(&out.stdout);
        assert!(s.contains("oauth-host"), "{shell}");
        assert!(
            !s.contains("kimi-oauth-host"),
            "{shell} completes a hidden option"
        );
    }
    // KIMI_OAUTH_HOST, the other name of the OAuth host override, is read from the environment.
    let out = env
        .cmd()
        .env_remove("KIMI_CODE_OAUTH_HOST")
        .env("KIMI_OAUTH_HOST", "http://127.0.0.1:9")
        .args(["doctor", "--json"])
        .output()
        .unwrap();
    let v = json(&out);
    let overrides = v["endpoints"]["overrides"].as_array().unwrap();
    assert!(
        overrides
            .iter()
            .any(|o| o["variable"] == "KIMI_OAUTH_HOST" && o["value"] == "http://127.0.0.1:9/"),
        "{overrides:?}"
    );
    assert_eq!(v["endpoints"]["cn"]["oauth_host"], "http://127.0.0.1:9/");
}

#[test]
fn login_without_a_usable_home_names_kimi_vault_home() {
    // A home directory whose data directory cannot even be looked at (a name too long for the
    // file system: the same for root and for a user).
    let env = TestEnv::new();
    let home = env.dir.path().join("h".repeat(300));
    let out = env
        .cmd()
        .env_remove("KIMI_VAULT_HOME")
        .env("HOME", &home)
        .args(["login", "--no-browser"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("KIMI_VAULT_HOME (or --vault-home)") && err.contains("hhhh"),
        "{err}"
    );
    // `status` says the same in its report.
    let out = env
        .cmd()
        .env_remove("KIMI_VAULT_HOME")
        .env("HOME", &home)
        .args(["status", "--json"])
        .output()
        .unwrap();
    let v = json(&out);
    assert!(
        v["error"].as_str().unwrap().contains("KIMI_VAULT_HOME"),
        "{v}"
    );
    assert_eq!(
        env.server.with(|s| s.device_requests),
        0,
        "no device flow starts before the vault directory is known to be usable"
    );
}
