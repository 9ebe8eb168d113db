//! `kimi-vault migrate` through the real binary, with fixtures of every format in a temp HOME.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::common::*;
use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
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
            ".kimi-code/credentials/kimi-code.json".into(),
            kimi_code_file(&a, &r, expires),
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

/// A credential file exactly as kimi-code writes it (`JSON.stringify(wire, null, 2)` and a
/// newline; `expires_at` integer seconds).
fn kimi_code_file(access: &str, refresh: &str, expires: i64) -> String {
    format!(
        "{{\n  \"access_token\": \"{access}\",\n  \"refresh_token\": \"{refresh}\",\n  \"expires_at\": {expires},\n  \"scope\": \"kimi-code\",\n  \"token_type\": \"Bearer\",\n  \"expires_in\": 900\n}}\n"
    )
}

/// kimi-code's slot of the global region (SPEC §6).
const GLOBAL_SLOT: &str = "kimi-code-env-0e4f99c69cc27850";

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
    // kimi-code's tombstone (its revokedTombstone), in its global slot.
    let tomb = env
        .home()
        .join(format!(".kimi-code/credentials/{GLOBAL_SLOT}.json"));
    let tomb_content =
        kimi_code_file("", "", 0).replace("\"expires_in\": 900", "\"expires_in\": 0");
    write_private(&tomb, tomb_content.as_bytes());
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
    assert_eq!(v["skipped"][0]["region"], "global", "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("revoked"));
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
    let garbage = env.home().join(".kimi-code/credentials/kimi-code.json");
    write_private(&garbage, b"{not json");
    let huge = env
        .home()
        .join(format!(".kimi-code/credentials/{GLOBAL_SLOT}.json"));
    write_private(&huge, &vec![b' '; 200_000]);
    // Missing fields.
    let fieldless = env.home().join(".kimi-code/credentials/kimi-code-c.json");
    write_private(&fieldless, br#"{"user":"someone"}"#);
    // A directory where a file should be.
    let dir = env.home().join(".cli-proxy-api/kimi-dir.json");
    std::fs::create_dir_all(&dir).unwrap();
    let snapshot: Vec<(PathBuf, Vec<u8>)> = [&target, &writable, &garbage, &huge, &fieldless]
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
        "no known region",
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
#[ignore = "needs root (chown to another user): scripts/test.sh runs it with --include-ignored when it runs as root, as CI does"]
fn sources_owned_by_someone_else_are_not_imported() {
    require_root("to chown");
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
#[test]
#[cfg_attr(
    not(feature = "testing"),
    ignore = "needs `--features testing` (the KIMI_VAULT_FAULT fault injection); scripts/test.sh turns it on"
)]
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
        let migrate = |extra: &[&str]| {
            let out = env
                .cmd()
                .args(["migrate", "--json", "--profile", &profile])
                .args(extra)
                .arg("--from")
                .arg(&path)
                .output()
                .unwrap();
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        let mut v = migrate(&[]);
        if kind == "kimi-code" {
            // Not in a slot: its region is not known, and never guessed.
            assert_eq!(v["imported"].as_array().unwrap().len(), 0, "{v}");
            assert_eq!(v["skipped"][0]["tool"], "kimi-code");
            assert!(v["skipped"][0]["reason"].to_string().contains("--region"));
            assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
            v = migrate(&["--region", "global"]);
            assert_eq!(v["imported"][0]["region"], "global");
        } else {
            assert_eq!(v["imported"][0]["region"], "cn");
        }
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
    // The report is the result: on stdout (`migrate --dry-run | less`).
    let err = String::from_utf8_lossy(&out.stdout);
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
#[test]
#[cfg_attr(
    not(feature = "testing"),
    ignore = "needs `--features testing` (the KIMI_VAULT_FAULT fault injection); scripts/test.sh turns it on"
)]
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

/// Holds `lock` (kimi-cli's lock file) as kimi-cli does, an exclusive `flock` of another
/// process (`flock(1)`), for `secs` seconds or until the process is killed; returns once it is
/// held.
fn hold_flock(lock: &Path, secs: u64) -> std::process::Child {
    std::fs::create_dir_all(lock.parent().unwrap()).unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(lock)
        .unwrap();
    let child = std::process::Command::new("flock")
        .args(["--exclusive", "--close"])
        .arg(lock)
        .args(["sleep", &secs.to_string()])
        .spawn()
        .expect("flock(1) (util-linux)");
    loop {
        match file.try_lock() {
            Ok(()) => {
                file.unlock().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(_) => return child,
        }
    }
}

#[test]
fn a_source_whose_tool_holds_its_lock_is_waited_for_then_left_untouched() {
    let env = TestEnv::new();
    let (rel, content, ..) = fixture("kimi-cli", now_unix() + 3600);
    let path = env.home().join(&rel);
    write_private(&path, content.as_bytes());
    // Another source, fresher: nothing is imported while kimi-cli refreshes.
    let (rel2, content2, ..) = fixture("roder", now_unix() + 7200);
    let other = env.home().join(&rel2);
    write_private(&other, content2.as_bytes());
    let lock = path.with_file_name("kimi-code.lock");
    let mut holder = hold_flock(&lock, 60);
    let start = std::time::Instant::now();
    let (out, v) = run_json(&env, &[]);
    let waited = start.elapsed();
    holder.kill().unwrap();
    holder.wait().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        waited >= std::time::Duration::from_secs(10),
        "waited {waited:?}"
    );
    assert_clean(&env, &out);
    let reasons = v["skipped"].to_string();
    assert!(
        reasons.contains("kimi-code.lock") && reasons.contains("left untouched"),
        "{reasons}"
    );
    // The kernel releases a flock when its holder ends: no word of a crashed one.
    let human = String::from_utf8_lossy(&out.stderr);
    assert!(
        !reasons.contains("crashed") && !human.contains("crashed"),
        "{human}"
    );
    assert_eq!(v["imported"].as_array().unwrap().len(), 0);
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
    assert_eq!(std::fs::read(&other).unwrap(), content2.as_bytes());
    assert!(env.stored("default").is_none());
    report(&format!(
        "migrate: kimi-cli's lock held throughout: waited {:.1} s, imported nothing, exit 1",
        waited.as_secs_f64()
    ));

    // Released after 2 s: migrate waits for it, then moves the credential.
    let mut holder = hold_flock(&lock, 2);
    let start = std::time::Instant::now();
    let out = env
        .cmd()
        .args(["migrate", "--json", "--from"])
        .arg(&path)
        .output()
        .unwrap();
    let waited = start.elapsed();
    holder.wait().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        waited >= std::time::Duration::from_millis(1500),
        "waited {waited:?}"
    );
    assert!(!path.exists());
    let stored = env.stored("default").unwrap();
    assert_eq!(stored.region, "cn");
}

#[test]
fn kimi_clis_lock_is_held_three_seconds_at_most() {
    let env = TestEnv::new();
    let (rel, content, ..) = fixture("kimi-cli", now_unix() + 3600);
    let path = env.home().join(&rel);
    write_private(&path, content.as_bytes());
    let lock = path.with_file_name("kimi-code.lock");
    write_private(&lock, b"");
    // A slow import (5 s between the vault write and the removal): kimi-cli, which waits
    // about 5 s for its lock, must get it back before that.
    let child = env
        .std_cmd()
        .args(["migrate", "--json"])
        .env("KIMI_VAULT_FAULT", "slow-import")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let file = std::fs::File::open(&lock).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    // Until migrate holds it…
    let taken = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "migrate never took it"
        );
        match file.try_lock() {
            Ok(()) => {
                file.unlock().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(_) => break std::time::Instant::now(),
        }
    };
    // …and until it is free again.
    while file.try_lock().is_err() {
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let held = taken.elapsed();
    file.unlock().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        held <= std::time::Duration::from_millis(3300),
        "held {held:?}"
    );
    // The file was still the one imported: removed.
    assert!(!path.exists());
    assert!(env.stored("default").is_some());
    report(&format!(
        "migrate: kimi-cli's flock held {:.2} s during a 5 s import (limit 3 s)",
        held.as_secs_f64()
    ));
}

/// Holds kimi-code's lock of `slot` under `kimi_code_home` as kimi-code does (proper-lockfile):
/// the sentinel `oauth/<slot>`, then the directory `oauth/<slot>.lock`, its mtime renewed every
/// second until `release` is sent; then removed.
fn hold_lock_dir(
    kimi_code_home: &Path,
    slot: &str,
) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let oauth = kimi_code_home.join("oauth");
    std::fs::create_dir_all(&oauth).unwrap();
    std::fs::write(oauth.join(slot), b"").unwrap();
    let dir = oauth.join(format!("{slot}.lock"));
    std::fs::create_dir(&dir).unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
            rx.recv_timeout(std::time::Duration::from_secs(1))
        {
            let now = std::time::SystemTime::now();
            std::fs::File::open(&dir)
                .unwrap()
                .set_modified(now)
                .unwrap();
        }
        std::fs::remove_dir(&dir).unwrap();
    });
    (tx, handle)
}

#[test]
fn kimi_codes_slot_lock_is_waited_for_then_left_untouched() {
    let env = TestEnv::new();
    let kimi_code = env.home().join(".kimi-code");
    let path = kimi_code.join(format!("credentials/{GLOBAL_SLOT}.json"));
    let (a, r) = tokens("kimi-code");
    let content = kimi_code_file(&a, &r, now_unix() + 3600);
    write_private(&path, content.as_bytes());
    // The lock of another slot (cn's `kimi-code`) does not hold this one up.
    let (release_cn, cn_holder) = hold_lock_dir(&kimi_code, "kimi-code");
    let (release, holder) = hold_lock_dir(&kimi_code, GLOBAL_SLOT);
    let start = std::time::Instant::now();
    let (out, v) = run_json(&env, &[]);
    let waited = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        waited >= std::time::Duration::from_secs(10),
        "waited {waited:?}"
    );
    assert_clean(&env, &out);
    let skipped = &v["skipped"][0];
    let reason = skipped["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("oauth/{GLOBAL_SLOT}.lock")) && reason.contains("left untouched"),
        "{reason}"
    );
    assert!(!reason.contains("crashed"), "{reason}");
    assert_eq!(skipped["region"], "global");
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
    assert!(
        kimi_code.join(format!("oauth/{GLOBAL_SLOT}.lock")).is_dir(),
        "someone else's lock is never removed"
    );
    let human = String::from_utf8_lossy(&out.stderr);
    assert!(!human.contains("crashed"), "{human}");
    report(&format!(
        "migrate: kimi-code's slot lock kept fresh throughout: waited {:.1} s, imported nothing, exit 1",
        waited.as_secs_f64()
    ));

    // Released: migrate takes that slot's lock (while cn's is still held), moves the
    // credential with its region, and releases the lock.
    release.send(()).unwrap();
    holder.join().unwrap();
    let start = std::time::Instant::now();
    let (out, v) = run_json(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(v["imported"][0]["region"], "global");
    assert!(!path.exists());
    assert!(!kimi_code.join(format!("oauth/{GLOBAL_SLOT}.lock")).exists());
    assert!(kimi_code.join(format!("oauth/{GLOBAL_SLOT}")).is_file());
    assert_eq!(env.stored("default").unwrap().region, "global");
    release_cn.send(()).unwrap();
    cn_holder.join().unwrap();
}

#[test]
fn a_stale_kimi_code_lock_is_taken_over() {
    let env = TestEnv::new();
    let kimi_code = env.home().join(".kimi-code");
    let (rel, content, ..) = fixture("kimi-code", now_unix() + 3600);
    let path = env.home().join(&rel);
    write_private(&path, content.as_bytes());
    // Left by a kimi-code that ended without releasing it: not renewed for 20 s.
    let lock = kimi_code.join("oauth/kimi-code.lock");
    std::fs::create_dir_all(&lock).unwrap();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(20);
    std::fs::File::open(&lock)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let start = std::time::Instant::now();
    let (out, v) = run_json(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(v["imported"][0]["region"], "cn");
    assert!(!path.exists());
    assert!(!lock.exists(), "taken over, then released");
}

#[test]
fn kimi_code_slots_migrate_with_their_region() {
    let env = TestEnv::new();
    let now = now_unix();
    let creds = env.home().join(".kimi-code/credentials");
    let (a_cn, r_cn) = tokens("old");
    let (a_gl, r_gl) = tokens("new");
    let cn = creds.join("kimi-code.json");
    let global = creds.join(format!("{GLOBAL_SLOT}.json"));
    let cn_content = kimi_code_file(&a_cn, &r_cn, now + 600);
    write_private(&cn, cn_content.as_bytes());
    write_private(&global, kimi_code_file(&a_gl, &r_gl, now + 3000).as_bytes());
    let (out, v) = run_json(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_clean(&env, &out);
    // Every entry says its region.
    for list in ["imported", "skipped", "removed"] {
        for e in v[list].as_array().unwrap() {
            assert!(e.get("region").is_some(), "{list}: {e}");
        }
    }
    assert_eq!(v["imported"][0]["path"], global.display().to_string());
    assert_eq!(v["imported"][0]["region"], "global");
    assert_eq!(v["removed"][0]["region"], "global");
    let stored = env.stored("default").unwrap();
    assert_eq!(stored.access_token.expose(), a_gl);
    assert_eq!(stored.region, "global", "never imported as cn");
    assert!(!global.exists());
    let status = env.cmd().args(["status", "--json"]).output().unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["region"], "global");
    // The cn slot: listed, untouched, with the command that imports it into its own profile.
    assert_eq!(v["skipped"][0]["region"], "cn");
    assert_eq!(std::fs::read(&cn).unwrap(), cn_content.as_bytes());
    let hint = v["skipped"][0]["reason"].as_str().unwrap();
    assert!(hint.contains("--profile kimi-code"), "{hint}");
    env.cmd()
        .args(["migrate", "--profile", "kimi-code", "--from"])
        .arg(&cn)
        .assert()
        .success();
    assert_eq!(env.stored("kimi-code").unwrap().region, "cn");
    assert!(!cn.exists());
}

#[test]
fn an_unknown_slot_is_left_untouched_unless_region_is_given() {
    let env = TestEnv::new();
    let kimi_code = env.home().join(".kimi-code");
    // kimi-code logged in with other hosts (KIMI_CODE_OAUTH_HOST/KIMI_CODE_BASE_URL): a slot
    // whose hash is of no known region.
    let path = kimi_code.join("credentials/kimi-code-env-0123456789abcdef.json");
    let (a, r) = tokens("kimi-code");
    let content = kimi_code_file(&a, &r, now_unix() + 3600);
    write_private(&path, content.as_bytes());
    let (out, v) = run_json(&env, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["imported"].as_array().unwrap().len(), 0);
    let skipped = &v["skipped"][0];
    assert_eq!(skipped["region"], serde_json::Value::Null);
    let reason = skipped["reason"].as_str().unwrap();
    assert!(
        reason.contains("no known region") && reason.contains("--region"),
        "{reason}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), content.as_bytes());
    assert!(!kimi_code.join("oauth").exists(), "not even locked");
    assert!(env.stored("default").is_none());
    let human = String::from_utf8_lossy(&out.stderr);
    assert!(human.contains("no known region"), "{human}");

    // Said: imported with that region (kimi-code's name for cn works too).
    let (out, v) = run_json(&env, &["--region", "mainland-cn"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(v["imported"][0]["region"], "cn");
    assert_eq!(env.stored("default").unwrap().region, "cn");
    assert!(!path.exists());

    // --region never overrides a slot whose region is known.
    let env = TestEnv::new();
    let path = env
        .home()
        .join(format!(".kimi-code/credentials/{GLOBAL_SLOT}.json"));
    write_private(&path, content.as_bytes());
    let (out, v) = run_json(&env, &["--region", "cn"]);
    assert!(out.status.success());
    assert_eq!(v["imported"][0]["region"], "global");
    assert_eq!(env.stored("default").unwrap().region, "global");
    assert!(String::from_utf8_lossy(&out.stderr).contains("not as the --region given"));
}

/// A competing writer: rewrites the credential file (atomically: temp + rename) generation
/// after generation, as a tool refreshing would, taking kimi-cli's lock around each write when
/// `lock` is given. Before each write it checks that the previous generation was not removed
/// without being imported.
struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, Vec<String>)>>,
}

fn writer_content(roder: bool, generation: u64) -> String {
    let expires = now_unix() + 3600;
    if roder {
        format!(
            r#"{{"type":"oauth","access":"CANARYat-w{generation}-0123456789abcdef","refresh":"CANARYrt-w{generation}-0123456789abcdef","expires":{},"scope":"kimi-code"}}"#,
            expires * 1000
        )
    } else {
        format!(
            r#"{{"access_token":"CANARYat-w{generation}-0123456789abcdef","refresh_token":"CANARYrt-w{generation}-0123456789abcdef","expires_at":{expires}.5,"scope":"kimi-code","token_type":"Bearer"}}"#
        )
    }
}

fn vault_generation(env_vault: &kimi_vault::store::Vault) -> Option<u64> {
    let cred = env_vault.load("default").ok()??.cred;
    cred.access_token
        .expose()
        .strip_prefix("CANARYat-w")?
        .split('-')
        .next()?
        .parse()
        .ok()
}

impl Writer {
    fn start(
        env: &TestEnv,
        path: PathBuf,
        lock: Option<PathBuf>,
        roder: bool,
        period: std::time::Duration,
    ) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let vault = env.vault();
        let handle = std::thread::spawn(move || {
            let mut generation = 0u64;
            let mut lost = Vec::new();
            let tmp = path.with_file_name(".writer.tmp");
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let guard = lock.as_ref().map(|l| {
                    let f = std::fs::OpenOptions::new()
                        .read(true)
                        .write(true)
                        .create(true)
                        .truncate(false)
                        .mode(0o600)
                        .open(l)
                        .unwrap();
                    f.lock().unwrap();
                    f
                });
                if generation > 0 && !path.exists() {
                    // Removed: by a migrate that imported exactly this generation (under the
                    // lock, that migrate is done), or, without a lock, maybe one that is putting
                    // back a file it found changed (give it a moment).
                    if guard.is_none() {
                        std::thread::sleep(std::time::Duration::from_millis(30));
                    }
                    if !path.exists() && vault_generation(&vault) != Some(generation) {
                        lost.push(format!(
                            "generation {generation} removed, vault holds {:?}",
                            vault_generation(&vault)
                        ));
                    }
                }
                generation += 1;
                let _ = std::fs::remove_file(&tmp);
                write_private(&tmp, writer_content(roder, generation).as_bytes());
                std::fs::rename(&tmp, &path).unwrap();
                drop(guard);
                std::thread::sleep(period);
            }
            (generation, lost)
        });
        Writer {
            stop,
            handle: Some(handle),
        }
    }

    fn finish(mut self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.take().unwrap().join().unwrap()
    }
}

#[test]
fn a_competing_writer_never_loses_a_generation() {
    let mut figures = Vec::new();
    let fast = std::time::Duration::from_micros(300);
    for (kind, rel, locked, period) in [
        (
            "kimi-cli, respecting its lock",
            ".kimi/credentials/kimi-code.json",
            true,
            fast,
        ),
        // Without a lock: rewritten faster than migrate runs (every file it read has changed by
        // the time it removes it), then slower (some are unchanged).
        (
            "roder, no lock, fast",
            ".roder/auth/kimi-code.json",
            false,
            fast,
        ),
        (
            "roder, no lock, slow",
            ".roder/auth/kimi-code.json",
            false,
            std::time::Duration::from_millis(40),
        ),
    ] {
        let env = TestEnv::new();
        let path = env.home().join(rel);
        write_private(&path, writer_content(!locked, 0).as_bytes());
        let lock = locked.then(|| path.with_file_name("kimi-code.lock"));
        let writer = Writer::start(&env, path.clone(), lock, !locked, period);
        let (mut imported, mut put_back) = (0, 0);
        for _ in 0..12 {
            // Each run finds a file to move (the writer makes the next one after a removal).
            let start = std::time::Instant::now();
            while !path.exists() && start.elapsed() < std::time::Duration::from_secs(5) {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            let out = env
                .cmd()
                .args(["migrate", "--json", "--force"])
                .output()
                .unwrap();
            assert!(
                matches!(out.status.code(), Some(0) | Some(1)),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value =
                serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
            imported += v["removed"].as_array().map_or(0, Vec::len);
            // A file rewritten since it was read is put back: reported under `not_removed`
            // (imported, source still there) or `skipped`.
            for list in ["skipped", "not_removed"] {
                put_back += v[list].as_array().map_or(0, |s| {
                    s.iter()
                        .filter(|e| e["reason"].to_string().contains("since it was read"))
                        .count()
                });
            }
        }
        let (generations, lost) = writer.finish();
        assert!(lost.is_empty(), "{kind}: {lost:?}");
        assert!(imported + put_back > 0, "{kind}: nothing happened");
        // What is left is the last generation, on disk or in the vault.
        let on_disk = std::fs::read_to_string(&path).ok();
        let last = writer_content(!locked, generations);
        let last_token = format!("CANARYat-w{generations}-");
        assert!(
            on_disk.is_some_and(|d| d.contains(&last_token))
                || vault_generation(&env.vault()) == Some(generations),
            "{kind}: generation {generations} lost ({last})"
        );
        figures.push(format!(
            "{kind}: {generations} rewrites, {imported} moved, {put_back} put back, none lost"
        ));
    }
    report(&format!(
        "migrate against a competing writer (12 runs each): {}",
        figures.join("; ")
    ));
}
