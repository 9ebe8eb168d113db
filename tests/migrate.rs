//! `kimi-vault migrate` through the real binary, with fixtures of every format in a temp HOME.

mod common;

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use common::*;
use kimi_vault::now_unix;

fn write_private(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut f, bytes).unwrap();
}

fn tokens(tag: &str) -> (String, String) {
    (
        format!("CANARYat-{tag}-0123456789abcdef"),
        format!("CANARYrt-{tag}-0123456789abcdef"),
    )
}

/// (relative path, file content, tool name, access token, refresh token, expires_at)
fn fixture(kind: &str, expires: i64) -> (String, String, &'static str, String, String) {
    let (a, r) = tokens(kind);
    match kind {
        "kimi-cli" => (
            ".kimi/credentials/kimi-code.json".into(),
            format!(
                r#"{{"access_token":"{a}","refresh_token":"{r}","expires_at":{expires}.25,"scope":"kimi-code","token_type":"Bearer","expires_in":900}}"#
            ),
            "kimi-cli",
            a,
            r,
        ),
        "kimi-code" => (
            ".kimi-code/credentials/kimi-code-main.json".into(),
            format!(
                r#"{{"access_token":"{a}","refresh_token":"{r}","expires_at":{expires},"scope":"kimi-code","token_type":"Bearer"}}"#
            ),
            "kimi-code",
            a,
            r,
        ),
        "roder" => (
            ".roder/auth/kimi-code.json".into(),
            format!(
                r#"{{"type":"oauth","access":"{a}","refresh":"{r}","expires":{},"scope":"kimi-code"}}"#,
                expires * 1000
            ),
            "roder",
            a,
            r,
        ),
        "cliproxy" => (
            ".cli-proxy-api/kimi-me@example.com.json".into(),
            format!(
                r#"{{"type":"kimi","access_token":"{a}","refresh_token":"{r}","token_type":"Bearer","expired":"{}"}}"#,
                kimi_vault::rfc3339(expires)
            ),
            "cliproxyapi",
            a,
            r,
        ),
        "opencode" => (
            ".opencode-kimi-auth/oauth.json".into(),
            format!(
                r#"{{"access_token":"{a}","refresh_token":"{r}","expires_at":{}}}"#,
                expires * 1000
            ),
            "opencode-kimi-auth",
            a,
            r,
        ),
        _ => unreachable!(),
    }
}

fn run_json(env: &TestEnv, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let out = env
        .cmd()
        .arg("migrate")
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out, v)
}

fn all_canaries(env: &TestEnv) -> Vec<String> {
    let _ = env;
    [
        "kimi-cli",
        "kimi-code",
        "roder",
        "cliproxy",
        "opencode",
        "enc",
        "old",
        "new",
        "t",
    ]
    .iter()
    .flat_map(|k| {
        let (a, r) = tokens(k);
        [a, r]
    })
    .collect()
}

fn assert_clean(env: &TestEnv, out: &std::process::Output) {
    let c = all_canaries(env);
    let refs: Vec<&str> = c.iter().map(String::as_str).collect();
    assert_no_secret(out, &refs);
}

#[test]
fn every_format_migrates_and_the_source_is_removed() {
    let expires = now_unix() + 3600;
    for kind in ["kimi-cli", "kimi-code", "roder", "cliproxy", "opencode"] {
        let env = TestEnv::new();
        let (rel, content, tool, access, refresh) = fixture(kind, expires);
        let path = env.home().join(&rel);
        write_private(&path, content.as_bytes());
        let (out, v) = run_json(&env, &[]);
        assert!(
            out.status.success(),
            "{kind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_clean(&env, &out);
        assert_eq!(v["imported"][0]["tool"], tool, "{kind}");
        assert_eq!(v["imported"][0]["path"], path.display().to_string());
        assert_eq!(v["imported"][0]["profile"], "default");
        assert_eq!(v["removed"][0]["path"], path.display().to_string());
        assert!(!path.exists(), "{kind}: source removed");
        let stored = env.stored("default").unwrap();
        assert_eq!(stored.access_token.expose(), access);
        assert_eq!(stored.refresh_token.expose(), refresh);
        assert_eq!(stored.expires_at, expires, "{kind}: expiry unit");
        let human = String::from_utf8_lossy(&out.stderr);
        assert!(human.contains("What changes"), "{kind}: {human}");
        env.cmd()
            .arg("token")
            .assert()
            .success()
            .stdout(format!("{access}\n"));
        // Twice is harmless.
        let (out, v) = run_json(&env, &[]);
        assert!(out.status.success());
        assert_eq!(v["imported"].as_array().unwrap().len(), 0);
        assert_eq!(v["skipped"].as_array().unwrap().len(), 0);
    }
}

#[test]
fn override_variables_are_honoured() {
    let expires = now_unix() + 3600;
    for (var, dir, kind, rel) in [
        (
            "KIMI_SHARE_DIR",
            "share",
            "kimi-cli",
            "credentials/kimi-code.json",
        ),
        (
            "KIMI_CODE_HOME",
            "kc",
            "kimi-code",
            "credentials/kimi-code.json",
        ),
        (
            "RODER_DATA_DIR",
            "roderdata",
            "roder",
            "auth/kimi-code.json",
        ),
        (
            "RODER_CONFIG_DIR",
            "roderconf",
            "roder",
            "auth/kimi-code.json",
        ),
    ] {
        let env = TestEnv::new();
        let (_, content, tool, _, _) = fixture(kind, expires);
        let base = env.dir.path().join(dir);
        let path = base.join(rel);
        write_private(&path, content.as_bytes());
        let out = env
            .cmd()
            .env(var, &base)
            .args(["migrate", "--json"])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["imported"][0]["tool"], tool, "{var}");
        assert!(!path.exists());
    }
}

#[test]
fn opencode_encrypted_moves_and_both_files_go() {
    let env = TestEnv::new();
    let expires = now_unix() + 3600;
    let (a, r) = tokens("enc");
    let key = [0x42u8; 32];
    let iv = [0x24u8; 16];
    let plain = format!(
        r#"{{"access_token":"{a}","refresh_token":"{r}","expires_at":{}}}"#,
        expires * 1000
    );
    let ct = AesGcm::<Aes256, U16>::new_from_slice(&key)
        .unwrap()
        .encrypt(Nonce::<U16>::from_slice(&iv), plain.as_bytes())
        .unwrap();
    let (body, tag) = ct.split_at(ct.len() - 16);
    let raw = [&iv[..], tag, body].concat();
    let dir = env.home().join(".opencode-kimi-auth");
    write_private(
        &dir.join("oauth.json"),
        format!(
            r#"{{"encrypted":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
        .as_bytes(),
    );
    write_private(&dir.join(".key"), &key);
    let (out, v) = run_json(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(&env, &out);
    assert_eq!(v["imported"][0]["tool"], "opencode-kimi-auth");
    assert!(!dir.join("oauth.json").exists());
    assert!(!dir.join(".key").exists());
    assert_eq!(env.stored("default").unwrap().access_token.expose(), a);

    // Without the key: a clear reason, nothing touched.
    let env = TestEnv::new();
    let dir = env.home().join(".opencode-kimi-auth");
    write_private(&dir.join("oauth.json"), br#"{"encrypted":"AAAA"}"#);
    let (out, v) = run_json(&env, &[]);
    assert!(out.status.success());
    assert!(v["skipped"][0]["reason"].as_str().unwrap().contains(".key"));
    assert!(dir.join("oauth.json").exists());
}

#[test]
fn tombstones_and_other_types_are_skipped_and_kept() {
    let env = TestEnv::new();
    let tomb = env.home().join(".kimi-code/credentials/kimi-code.json");
    write_private(
        &tomb,
        br#"{"access_token":"","refresh_token":"","expires_at":0}"#,
    );
    let other = env.home().join(".cli-proxy-api/kimi-x.json");
    write_private(
        &other,
        br#"{"type":"claude","access_token":"x","refresh_token":"y"}"#,
    );
    let (out, v) = run_json(&env, &[]);
    assert!(out.status.success());
    let reasons: Vec<String> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(reasons.iter().any(|r| r.contains("revoked")), "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r.contains("not a Kimi credential")),
        "{reasons:?}"
    );
    assert!(tomb.exists() && other.exists());
    assert!(env.stored("default").is_none());
}

#[test]
fn the_freshest_is_imported_and_the_others_are_listed() {
    let env = TestEnv::new();
    let now = now_unix();
    let (rel_old, old, ..) = fixture("kimi-cli", now + 100);
    let (rel_new, new, _, access_new, _) = fixture("roder", now + 3000);
    let old_path = env.home().join(rel_old);
    let new_path = env.home().join(rel_new);
    write_private(&old_path, old.as_bytes());
    write_private(&new_path, new.as_bytes());
    let (out, v) = run_json(&env, &[]);
    assert!(out.status.success());
    assert_clean(&env, &out);
    assert_eq!(v["imported"][0]["tool"], "roder");
    assert_eq!(
        env.stored("default").unwrap().access_token.expose(),
        access_new
    );
    assert!(!new_path.exists());
    assert_eq!(
        std::fs::read(&old_path).unwrap(),
        old.as_bytes(),
        "other source untouched"
    );
    let hint = v["skipped"][0]["reason"].as_str().unwrap();
    assert!(
        hint.contains(&format!("kimi-vault migrate --from {}", old_path.display())),
        "{hint}"
    );
    // Following the hint imports it into its own profile.
    env.cmd()
        .args(["migrate", "--profile", "kimi-cli", "--from"])
        .arg(&old_path)
        .assert()
        .success();
    assert!(env.stored("kimi-cli").is_some());
    assert!(!old_path.exists());
}

#[test]
fn existing_credential_needs_force_dry_run_and_keep_change_nothing() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-existing-0123456789abcdef",
        "rt-existing-0123456789abcdef",
        3600,
    );
    let (rel, content, ..) = fixture("kimi-cli", now_unix() + 3600);
    let path = env.home().join(rel);
    write_private(&path, content.as_bytes());
    let nothing_changed = || {
        assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
        assert_eq!(
            env.stored("default").unwrap().access_token.expose(),
            "at-existing-0123456789abcdef"
        );
    };
    let (out, v) = run_json(&env, &[]);
    assert!(out.status.success());
    assert!(
        v["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("--force")
    );
    nothing_changed();

    let (out, v) = run_json(&env, &["--force", "--dry-run"]);
    assert!(out.status.success());
    assert_eq!(v["dry_run"], true);
    assert_eq!(v["imported"].as_array().unwrap().len(), 1);
    nothing_changed();

    let (out, _) = run_json(&env, &["--force", "--keep"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("rotate"));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        content.as_bytes(),
        "--keep keeps"
    );
    assert!(
        env.stored("default")
            .unwrap()
            .access_token
            .expose()
            .contains("kimi-cli")
    );
}

#[test]
fn hostile_sources_get_a_reason_and_are_never_touched() {
    let env = TestEnv::new();
    let (_, content, ..) = fixture("kimi-cli", now_unix() + 3600);
    // A symlink to a valid credential file.
    let target = env.dir.path().join("real.json");
    write_private(&target, content.as_bytes());
    let link = env.home().join(".kimi/credentials/kimi-code.json");
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&target, &link).unwrap();
    // World-writable.
    let writable = env.home().join(".roder/auth/kimi-code.json");
    let (_, roder, ..) = fixture("roder", now_unix() + 3600);
    write_private(&writable, roder.as_bytes());
    std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o666)).unwrap();
    // Unparseable, and absurdly large.
    let garbage = env.home().join(".kimi-code/credentials/kimi-code-a.json");
    write_private(&garbage, b"{not json");
    let huge = env.home().join(".kimi-code/credentials/kimi-code-b.json");
    write_private(&huge, &vec![b' '; 200_000]);
    // Missing fields.
    let fieldless = env.home().join(".kimi-code/credentials/kimi-code-c.json");
    write_private(&fieldless, br#"{"user":"someone"}"#);
    // A directory where a file should be.
    let dir = env.home().join(".cli-proxy-api/kimi-dir.json");
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot: Vec<(PathBuf, Vec<u8>)> = [&target, &writable, &garbage, &huge]
        .iter()
        .map(|p| (p.to_path_buf(), std::fs::read(p).unwrap()))
        .collect();
    let (out, v) = run_json(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(&env, &out);
    assert_eq!(v["imported"].as_array().unwrap().len(), 0, "{v}");
    let reasons = v["skipped"].to_string();
    for expected in [
        "symbolic link",
        "writable by group or others",
        "not valid JSON",
        "larger than",
        "not a regular file",
    ] {
        assert!(reasons.contains(expected), "{expected}: {reasons}");
    }
    for (p, bytes) in snapshot {
        assert_eq!(
            std::fs::read(&p).unwrap(),
            bytes,
            "{} untouched",
            p.display()
        );
    }
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(env.stored("default").is_none());
}

#[test]
fn sources_owned_by_someone_else_are_not_imported() {
    if rustix::process::geteuid().as_raw() != 0 {
        eprintln!("skipped: needs root to chown");
        return;
    }
    let env = TestEnv::new();
    let (rel, content, ..) = fixture("kimi-cli", now_unix() + 3600);
    let path = env.home().join(rel);
    write_private(&path, content.as_bytes());
    std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
    let (_, v) = run_json(&env, &[]);
    assert!(
        v["skipped"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("owned by uid 65534")
    );
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
}

#[test]
fn failures_before_verification_leave_the_source_byte_for_byte() {
    let (rel, content, ..) = fixture("kimi-cli", now_unix() + 3600);
    // 1. The vault cannot be written: vault.enc is a directory.
    let env = TestEnv::new();
    let path = env.home().join(&rel);
    write_private(&path, content.as_bytes());
    std::fs::create_dir_all(env.vault_home().join("vault.enc")).unwrap();
    let out = env.cmd().arg("migrate").output().unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert_clean(&env, &out);
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());

    // 2. The vault is unreadable (tampered): migrate refuses, never replaces it.
    let env = TestEnv::new();
    env.seed(
        "other",
        "at-o-0123456789abcdef",
        "rt-o-0123456789abcdef",
        3600,
    );
    let vault = env.vault_home().join("vault.enc");
    let mut bytes = std::fs::read(&vault).unwrap();
    bytes[30] ^= 1;
    std::fs::write(&vault, &bytes).unwrap();
    let path = env.home().join(&rel);
    write_private(&path, content.as_bytes());
    env.cmd().arg("migrate").assert().code(4);
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
    assert_eq!(std::fs::read(&vault).unwrap(), bytes);
}

/// The read-back comparison fails (fault injection, compiled only with the `testing` feature).
#[cfg(feature = "testing")]
#[test]
fn a_failed_verification_leaves_the_source_byte_for_byte() {
    let (rel, content, ..) = fixture("kimi-cli", now_unix() + 3600);
    let env = TestEnv::new();
    let path = env.home().join(&rel);
    write_private(&path, content.as_bytes());
    let out = env
        .cmd()
        .env("KIMI_VAULT_FAULT", "readback-mismatch")
        .arg("migrate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("left in place"));
    assert_clean(&env, &out);
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
}

#[test]
fn missing_from_path_is_an_error() {
    let env = TestEnv::new();
    env.cmd()
        .args(["migrate", "--from", "/nonexistent/kimi-code.json"])
        .assert()
        .code(1);
}

#[test]
fn from_an_unknown_place_sniffs_the_format() {
    let env = TestEnv::new();
    let expires = now_unix() + 3600;
    for kind in ["kimi-code", "roder", "cliproxy", "opencode"] {
        let (_, content, tool, access, _) = fixture(kind, expires);
        let path = env.dir.path().join(format!("backup of {kind}.json"));
        write_private(&path, content.as_bytes());
        let profile = format!("p-{kind}");
        let out = env
            .cmd()
            .args(["migrate", "--json", "--profile", &profile, "--from"])
            .arg(&path)
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["imported"][0]["tool"], tool, "{kind}");
        assert_eq!(env.stored(&profile).unwrap().access_token.expose(), access);
        assert_eq!(env.stored(&profile).unwrap().expires_at, expires, "{kind}");
        assert!(!path.exists());
    }
}

#[test]
fn a_dry_run_says_each_thing_once() {
    let (rel, content, ..) = fixture("kimi-cli", now_unix() + 3600);
    let env = TestEnv::new();
    let path = env.home().join(&rel);
    write_private(&path, content.as_bytes());
    let out = env.cmd().args(["migrate", "--dry-run"]).output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Dry run: nothing was changed."), "{err}");
    assert_eq!(err.matches("Would import:").count(), 1, "{err}");
    assert!(!err.contains("would be imported"), "no repetition: {err}");
    assert!(!err.contains("dry run:"), "no repetition: {err}");
    assert!(err.contains("into profile 'default'"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
    assert_clean(&env, &out);
}

/// The source cannot be removed (fault injection, compiled only with the `testing` feature):
/// listed once, as still there, and the exit code says it.
#[cfg(feature = "testing")]
#[test]
fn a_source_that_could_not_be_removed_is_said_plainly_and_exits_1() {
    let (rel, content, _, access, _) = fixture("kimi-cli", now_unix() + 3600);
    let env = TestEnv::new();
    let path = env.home().join(&rel);
    write_private(&path, content.as_bytes());
    let out = env
        .cmd()
        .env("KIMI_VAULT_FAULT", "source-removal")
        .args(["migrate", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["imported"].as_array().unwrap().len(), 1);
    assert_eq!(
        v["skipped"].as_array().unwrap().len(),
        0,
        "not also 'not imported'"
    );
    assert_eq!(v["removed"].as_array().unwrap().len(), 0);
    assert!(
        v["not_removed"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("still there")
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Imported but still there (could not be removed)"),
        "{err}"
    );
    assert!(!err.contains("Not imported"), "{err}");
    assert!(
        err.contains("kimi-vault: error: the plaintext source above is still there"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
    assert_eq!(env.stored("default").unwrap().access_token.expose(), access);
    assert_clean(&env, &out);
}
