//! The keyring backend against a real Secret Service (gnome-keyring under dbus-run-session,
//! started by scripts/test.sh, which sets KIMI_VAULT_TEST_KEYRING=1). Without it these tests are
//! ignored (`#[ignore]`, counted as such); the no-D-Bus fallback tests always run.

use crate::common::*;
use predicates::prelude::*;

/// The Secret Service tests are `#[ignore = "needs a Secret Service…"]`; run without one (with
/// `--include-ignored` outside scripts/test.sh) they fail here rather than pass having tested
/// nothing.
pub(crate) fn keyring_session() -> bool {
    let ok = std::env::var("KIMI_VAULT_TEST_KEYRING").as_deref() == Ok("1");
    assert!(
        ok,
        "no Secret Service: this test needs the D-Bus session and unlocked gnome-keyring that \
         scripts/test.sh sets up (it sets KIMI_VAULT_TEST_KEYRING=1)"
    );
    ok
}

pub(crate) fn unique(name: &str) -> String {
    format!("{name}-{}", std::process::id())
}

/// The binary in the test's D-Bus session, keyring mode `mode`.
fn kr_std_cmd(env: &TestEnv, mode: &str) -> std::process::Command {
    let mut c = env.std_cmd();
    c.env("KIMI_VAULT_BACKEND", mode);
    for var in ["DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR"] {
        if let Some(v) = std::env::var_os(var) {
            c.env(var, v);
        }
    }
    c
}

/// [`kr_std_cmd`] for assert_cmd (also kernel_cache.rs's).
pub(crate) fn kr_cmd(env: &TestEnv, mode: &str) -> assert_cmd::Command {
    assert_cmd::Command::from_std(kr_std_cmd(env, mode))
}

pub(crate) fn keyring_entry(profile: &str) -> keyring_core::Entry {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        keyring_core::set_default_store(zbus_secret_service_keyring_store::Store::new().unwrap())
    });
    keyring_core::Entry::new("kimi-vault", profile).unwrap()
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn login_token_status_logout_in_the_keyring() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let profile = unique("kr-login");
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    kr_cmd(&env, "auto")
        .args(["--profile", &profile, "login", "--no-browser", "--json"])
        .assert()
        .success()
        .stdout(predicate::str::contains(r#""backend":"keyring""#));
    let stored = keyring_entry(&profile).get_password().unwrap();
    assert!(stored.contains("at-gen1"));
    assert!(
        !env.vault_home().join("vault.enc").exists(),
        "nothing written to the file backend"
    );
    let out = kr_cmd(&env, "auto")
        .args(["--profile", &profile, "status", "--json"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "keyring");
    assert_eq!(v["logged_in"], true);
    kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "token"])
        .assert()
        .success()
        .stdout(predicate::str::starts_with("at-gen1"));
    kr_cmd(&env, "auto")
        .args(["--profile", &profile, "logout"])
        .assert()
        .success();
    assert!(matches!(
        keyring_entry(&profile).get_password(),
        Err(keyring_core::Error::NoEntry)
    ));
    kr_cmd(&env, "auto")
        .args(["--profile", &profile, "token"])
        .assert()
        .code(3);
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn a_keyring_write_removes_the_file_copy() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let profile = unique("kr-move");
    env.seed(
        &profile,
        "at-file-0123456789abcdef",
        "rt-file-0123456789abcdef",
        30,
    );
    // auto reads the file copy, refreshes, writes to the keyring, removes the file copy.
    kr_cmd(&env, "auto")
        .args(["--profile", &profile, "token"])
        .assert()
        .success()
        .stdout(predicate::str::contains("at-gen1"));
    assert!(env.stored(&profile).is_none(), "file copy removed");
    assert!(
        keyring_entry(&profile)
            .get_password()
            .unwrap()
            .contains("at-gen1")
    );
    let _ = keyring_entry(&profile).delete_credential();
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn keyring_refresh_is_single_flight() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let profile = unique("kr-flight");
    let cred = credential("at-kr-0123456789abcdef", "rt-kr-0123456789abcdef", 30);
    keyring_entry(&profile)
        .set_password(&serde_json::to_string(&cred).unwrap())
        .unwrap();
    env.server
        .with(|s| s.valid_refresh = Some("rt-kr-0123456789abcdef".into()));
    let children: Vec<_> = (0..12)
        .map(|_| {
            kr_std_cmd(&env, "keyring")
                .args(["--profile", &profile, "token"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("at-gen1"));
    }
    assert_eq!(env.server.refresh_requests(), 1);
    let _ = keyring_entry(&profile).delete_credential();
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn a_corrupt_keyring_entry_is_named_not_printed() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let profile = unique("kr-corrupt");
    let mut bytes = CANARY_REFRESH.as_bytes().to_vec();
    bytes.extend_from_slice(&[0xff, 0xfe, 0x00]);
    keyring_entry(&profile).set_secret(&bytes).unwrap();
    let out = kr_cmd(&env, "auto")
        .args(["--profile", &profile, "token"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_no_secret(&out, &[CANARY_REFRESH]);
    keyring_entry(&profile)
        .set_password(&format!("{{\"access_token\": \"{CANARY_ACCESS}\"}}"))
        .unwrap();
    let out = kr_cmd(&env, "auto")
        .args(["--profile", &profile, "token"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
    assert_no_secret(&out, &[CANARY_ACCESS]);
    let _ = keyring_entry(&profile).delete_credential();
}

#[test]
fn without_dbus_auto_falls_back_and_keyring_mode_fails() {
    let env = TestEnv::new();
    let mut c = env.cmd();
    c.env("KIMI_VAULT_BACKEND", "auto");
    let out = c.args(["status", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backend"], "file");
    assert!(v["backend_reason"].as_str().unwrap().contains("D-Bus"));
    env.seed(
        "default",
        "at-fb-0123456789abcdef",
        "rt-fb-0123456789abcdef",
        3600,
    );
    env.cmd()
        .env("KIMI_VAULT_BACKEND", "auto")
        .arg("token")
        .assert()
        .success();
    env.cmd()
        .env("KIMI_VAULT_BACKEND", "keyring")
        .arg("token")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("OS keyring"));
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn migrate_moves_kimi_cli_legacy_keyring_entry() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let profile = unique("kr-migrate");
    let _ = keyring_entry(&profile); // sets the default store
    let legacy = keyring_core::Entry::new("kimi-code", "oauth/kimi-code").unwrap();
    let expires = kimi_vault::now_unix() + 3600;
    legacy
        .set_password(&format!(
            r#"{{"access_token":"{CANARY_ACCESS}","refresh_token":"{CANARY_REFRESH}","expires_at":{expires}.5,"scope":"kimi-code","token_type":"Bearer"}}"#
        ))
        .unwrap();
    let out = kr_cmd(&env, "auto")
        .args(["--profile", &profile, "migrate", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["imported"][0]["tool"], "kimi-cli-keyring");
    assert_eq!(v["imported"][0]["path"], "keyring:kimi-code");
    assert_eq!(v["removed"][0]["path"], "keyring:kimi-code");
    assert_eq!(v["imported"][0]["region"], "cn");
    // A keyring entry is deleted, not "overwritten with zeros".
    let removed = v["removed"][0]["reason"].as_str().unwrap();
    assert!(removed.contains("deleted from the keyring"), "{removed}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("zeros"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(matches!(
        legacy.get_password(),
        Err(keyring_core::Error::NoEntry)
    ));
    assert!(
        keyring_entry(&profile)
            .get_password()
            .unwrap()
            .contains(CANARY_ACCESS)
    );
    let _ = keyring_entry(&profile).delete_credential();
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn a_locked_keyring_falls_back_at_once_and_says_why() {
    if !keyring_session() {
        return;
    }
    // Its own D-Bus session and gnome-keyring, since locking the shared one would disturb the
    // other tests.
    let env = TestEnv::new();
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let home = env.dir.path().join("locked-home");
    std::fs::create_dir_all(home.join(".local/share/keyrings")).unwrap();
    let script = r#"
        set -u
        printf 'locked-test-password' | gnome-keyring-daemon --unlock --components=secrets >/dev/null
        "$BIN" login --no-browser >/dev/null 2>&1 || echo "login failed"
        dbus-send --session --print-reply --dest=org.freedesktop.secrets /org/freedesktop/secrets \
            org.freedesktop.Secret.Service.Lock \
            array:objpath:/org/freedesktop/secrets/collection/login >/dev/null
        "$BIN" status --json
        "$BIN" token 2>&1 >/dev/null
        echo "token-exit=$?"
        "$BIN" doctor --json 2>/dev/null | sed 's/^/doctor: /'
        echo "doctor-exit=${PIPESTATUS[0]}"
        KIMI_VAULT_BACKEND=keyring "$BIN" login --no-browser >/dev/null 2>&1
        echo "keyring-login-exit=$?"
    "#;
    let template = env.std_cmd();
    let envs: Vec<_> = template
        .get_envs()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned())))
        .collect();
    let mut c = std::process::Command::new("dbus-run-session");
    c.env_clear()
        .envs(envs)
        .env("HOME", &home)
        .env("KIMI_VAULT_BACKEND", "auto")
        .env("BIN", assert_cmd::cargo::cargo_bin("kimi-vault"))
        .args(["--", "bash", "-c", script]);
    let out = c.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("login failed"), "{stdout}");
    let status_line = stdout
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| {
            panic!(
                "no status: {stdout} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let v: serde_json::Value = serde_json::from_str(status_line).unwrap();
    assert_eq!(v["backend"], "file");
    assert!(
        v["backend_reason"].as_str().unwrap().contains("locked"),
        "{v}"
    );
    assert!(stdout.contains("token-exit=3"), "{stdout}");
    // doctor explains the locked keyring, and exits 0: auto mode has the file backend.
    let doctor = stdout
        .lines()
        .find_map(|l| l.strip_prefix("doctor: "))
        .unwrap_or_else(|| panic!("no doctor output: {stdout}"));
    let d: serde_json::Value = serde_json::from_str(doctor).unwrap();
    assert_eq!(d["keyring"]["status"], "unavailable", "{d}");
    assert!(
        d["keyring"]["reason"].as_str().unwrap().contains("locked"),
        "{d}"
    );
    assert!(
        d["keyring"]["fix"].as_str().unwrap().contains("unlock"),
        "{d}"
    );
    assert_eq!(d["backend"], "file");
    assert!(stdout.contains("doctor-exit=0"), "{stdout}");
    // A login that must write to the locked keyring fails before asking for a device code.
    assert!(stdout.contains("keyring-login-exit=1"), "{stdout}");
    assert_eq!(
        env.server.with(|s| s.device_requests),
        1,
        "only the first login asked"
    );
    assert!(
        stdout.contains("the OS keyring could not be read"),
        "{stdout}"
    );
}

fn probe_entries_left() -> Vec<String> {
    let _ = keyring_entry("probe-check"); // sets the default store
    let spec = std::collections::HashMap::from([("service", "kimi-vault")]);
    keyring_core::Entry::search(&spec)
        .unwrap()
        .iter()
        .filter_map(|e| e.get_specifiers())
        .map(|(_, user)| user)
        .filter(|u| u.starts_with(".doctor-probe-"))
        .collect()
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn doctor_proves_the_keyring_with_a_round_trip_and_leaves_nothing() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    for mode in ["auto", "keyring"] {
        let out = kr_cmd(&env, mode)
            .args(["doctor", "--json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["backend"], "keyring", "{mode}");
        assert_eq!(v["keyring"]["status"], "ok");
        assert!(v["keyring"]["round_trip_ms"].is_number());
        assert_eq!(
            v["file"]["status"], "will_create",
            "the file backend is checked too"
        );
    }
    let out = kr_cmd(&env, "auto").arg("doctor").output().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("works: a throwaway entry was written, read back and deleted"),
        "{s}"
    );
    assert!(s.contains("credentials go to the OS keyring"), "{s}");
}

/// Every throwaway entry doctor writes is deleted (the keyring is shared with the other tests,
/// so the count before and after is compared).
#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn doctor_probe_entries_are_deleted() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let before = probe_entries_left();
    for _ in 0..3 {
        kr_cmd(&env, "auto").arg("doctor").assert().success();
    }
    assert_eq!(probe_entries_left(), before);
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn profiles_lists_the_keyring_and_the_file() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let in_keyring = unique("kr-list");
    let corrupt = unique("kr-list-corrupt");
    let cred = credential(CANARY_ACCESS, CANARY_REFRESH, 600);
    keyring_entry(&in_keyring)
        .set_password(&serde_json::to_string(&cred).unwrap())
        .unwrap();
    keyring_entry(&corrupt)
        .set_password(&format!("not json {CANARY_REFRESH}"))
        .unwrap();
    keyring_entry("not/a profile").set_password("{}").unwrap();
    let in_file = unique("file-list");
    env.seed(
        &in_file,
        "at-file-0123456789abcdef",
        "rt-file-0123456789abcdef",
        600,
    );
    let out = kr_cmd(&env, "auto")
        .args(["profiles", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH, "at-file", "rt-file"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = v.as_array().unwrap();
    let find = |name: &str| rows.iter().find(|r| r["profile"] == name).cloned();
    let k = find(&in_keyring).expect("the keyring profile is listed");
    assert_eq!(k["backend"], "keyring");
    assert_eq!(k["logged_in"], true);
    let f = find(&in_file).expect("the file profile is listed");
    assert_eq!(f["backend"], "file");
    let c = find(&corrupt).expect("a corrupt entry is listed as such");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("not a kimi-vault credential")
    );
    assert!(
        find("not/a profile").is_none(),
        "not a profile name: ignored"
    );
    assert!(
        rows.iter()
            .all(|r| !r["profile"].as_str().unwrap().starts_with('.'))
    );
    for p in [&in_keyring, &corrupt, "not/a profile"] {
        let _ = keyring_entry(p).delete_credential();
    }
}

/// Issue 14 item 5 with the keyring backend, where a `logout` changes no file: a running proxy
/// still notices it within 5 s and answers 403.
#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn a_running_proxy_notices_a_keyring_logout() {
    use std::io::BufRead;
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let profile = unique("kr-proxy");
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    kr_cmd(&env, "auto")
        .args(["--profile", &profile, "login", "--no-browser"])
        .assert()
        .success();
    let up = crate::common::upstream::Upstream::start();
    let mut child = kr_std_cmd(&env, "auto")
        .env("KIMI_CODE_BASE_URL", up.base())
        .args(["--profile", &profile, "proxy", "--port", "0", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let ready: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = ready["url"].as_str().unwrap().to_owned();
    let key = ready["api_key"].as_str().unwrap().to_owned();
    let status = || {
        let addr = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        use std::io::{Read, Write};
        s.write_all(format!("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out.split_whitespace().nth(1).unwrap_or("0").to_owned()
    };
    assert_eq!(status(), "200");
    kr_cmd(&env, "auto")
        .args(["--profile", &profile, "logout"])
        .assert()
        .success();
    let started = std::time::Instant::now();
    while status() != "403" {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "still served 5 s after a keyring logout"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = child.kill();
    let _ = child.wait();
}
