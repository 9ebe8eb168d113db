//! Issue 10, "hardening, round two", through the real binary: the vault directory's mode is
//! only ever the tool's business when the tool created it; an exposed key is replaced at the next
//! write, crash-safely; leftovers of killed writers are swept; an unusable vault home gives one
//! exit code and one message for every command.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use crate::common::*;

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The whole mode, special bits included.
fn full_mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o7777
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn error_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with("kimi-vault: error:"))
        .map(str::to_owned)
        .collect()
}

/// Every command, reads included.
const COMMANDS: &[&[&str]] = &[
    &["token"],
    &["token", "--min-valid", "0"],
    &["status"],
    &["status", "--json"],
    &["logout"],
    &["login", "--no-browser"],
    &["migrate"],
    &["migrate", "--dry-run"],
    &["exec", "--", "true"],
];

#[test]
fn a_shared_or_writable_vault_directory_is_refused_and_left_as_it_is() {
    for mode in [0o1777, 0o777, 0o775, 0o757, 0o1700] {
        let env = TestEnv::new();
        let dir = env.dir.path().join("shared");
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, mode);
        for args in COMMANDS {
            let out = env
                .cmd()
                .env("KIMI_VAULT_HOME", &dir)
                .args(*args)
                .output()
                .unwrap();
            assert_eq!(
                out.status.code(),
                Some(4),
                "mode {mode:o}, {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains("cannot be used as the vault directory")
                    && err.contains("KIMI_VAULT_HOME"),
                "mode {mode:o}, {args:?}: {err}"
            );
        }
        assert_eq!(
            full_mode(&dir),
            mode,
            "the mode of a directory we did not create is kept"
        );
        assert!(
            entries(&dir).is_empty(),
            "nothing created in it: {:?}",
            entries(&dir)
        );
        assert_eq!(env.server.with(|s| s.device_requests), 0);
    }
}

#[test]
fn a_vault_directory_readable_by_others_keeps_its_mode_for_every_command() {
    // Issue 14 item 6: every command used to strip the group/other bits of a directory it did
    // not create (755, 750, 711 -> 700), and doctor then reported the mode it had made.
    for mode in [0o755, 0o750, 0o711] {
        let env = TestEnv::new();
        env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
        set_mode(&env.vault_home(), mode);
        for args in [&["status"][..], &["token"], &["profiles"], &["logout"]] {
            let out = env.cmd().args(args).output().unwrap();
            assert!(
                out.status.success(),
                "{mode:o} {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(full_mode(&env.vault_home()), mode, "{args:?}");
            assert_no_secret(&out, &[CANARY_REFRESH]);
        }
        let out = env.cmd().args(["doctor", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let text = v.to_string();
        assert!(text.contains(&format!("\"{mode:o}\"")), "{text}");
        assert_eq!(full_mode(&env.vault_home()), mode, "doctor");
    }
}

#[test]
#[ignore = "needs root (chown to another user): scripts/test.sh runs it with --include-ignored when it runs as root, as CI does"]
fn a_vault_directory_of_someone_else_is_refused() {
    require_root("to chown a directory to another user");
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    std::os::unix::fs::chown(env.vault_home(), Some(65534), None).unwrap();
    for args in [&["status"][..], &["token"], &["logout"]] {
        let out = env.cmd().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(4), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("owned by uid 65534"));
    }
}

#[test]
fn a_no_op_creates_nothing() {
    let env = TestEnv::new();
    for args in [
        &["logout"][..],
        &["logout", "--json"],
        &["status"],
        &["status", "--json"],
        &["token"],
        &["migrate"],
        &["exec", "--", "true"],
    ] {
        let out = env.cmd().args(args).output().unwrap();
        assert!(
            matches!(out.status.code(), Some(0) | Some(3)),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !env.vault_home().exists(),
            "{args:?} created the vault directory"
        );
    }
    // An existing, empty vault directory: a logout with nothing stored makes no lock file.
    std::fs::create_dir(env.vault_home()).unwrap();
    set_mode(&env.vault_home(), 0o700);
    env.cmd().arg("logout").assert().success();
    assert!(
        entries(&env.vault_home()).is_empty(),
        "{:?}",
        entries(&env.vault_home())
    );
}

#[test]
fn a_vault_home_that_is_a_file_gives_one_code_and_one_message() {
    let env = TestEnv::new();
    let file = env.dir.path().join("not-a-directory");
    std::fs::write(&file, b"hello").unwrap();
    let mut messages = std::collections::BTreeSet::new();
    for args in COMMANDS {
        let out = env
            .cmd()
            .env("KIMI_VAULT_HOME", &file)
            .args(*args)
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(4),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines = error_lines(&out);
        assert_eq!(lines.len(), 1, "{args:?}: {lines:?}");
        messages.extend(lines);
        if args.contains(&"--json") && args.contains(&"status") {
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["logged_in"], false);
            assert!(
                v["error"].as_str().unwrap().contains("not a directory"),
                "{v}"
            );
        }
    }
    assert_eq!(
        messages.len(),
        1,
        "one message for every command: {messages:?}"
    );
    assert!(
        messages
            .iter()
            .next()
            .unwrap()
            .contains("it is not a directory")
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"hello");
    assert_eq!(env.server.with(|s| s.device_requests), 0);
}

#[test]
fn temp_files_of_killed_device_id_writers_are_swept() {
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-dev-0123456789abcdef",
        "rt-dev-0123456789abcdef",
        10,
    );
    let plant = |name: &str| {
        let path = env.vault_home().join(name);
        std::fs::write(&path, b"0123456789abcdef").unwrap();
        set_mode(&path, 0o600);
    };
    let leftovers = || {
        entries(&env.vault_home())
            .into_iter()
            .filter(|n| n.starts_with(".device-id.") && n.ends_with(".tmp"))
            .count()
    };
    // No device id yet: the first request creates it, under the lock, sweeping what a killed
    // writer left.
    assert!(!env.vault_home().join("device-id").exists());
    plant(".device-id.Xk3j9Q.tmp");
    env.cmd().arg("token").assert().success();
    assert!(env.vault_home().join("device-id").exists());
    assert_eq!(leftovers(), 0, "{:?}", entries(&env.vault_home()));
    // Once it exists, every write sweeps them too.
    plant(".device-id.Pq8Zz1.tmp");
    env.cmd()
        .args(["token", "--min-valid", "99999"])
        .assert()
        .success();
    assert_eq!(leftovers(), 0, "{:?}", entries(&env.vault_home()));
}

#[test]
fn an_exposed_key_is_reported_then_replaced_at_the_next_write() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 10);
    env.seed(
        "other",
        "at-other-0123456789abcdef",
        "rt-other-0123456789abcdef",
        3600,
    );
    env.server.with(|s| s.accept_any_refresh = true);
    let key = env.vault_home().join("vault.key");
    let original = std::fs::read(&key).unwrap();
    set_mode(&key, 0o644);

    // A read repairs the mode with a warning, and from then on status says the key is exposed.
    let out = env.cmd().args(["status", "--json"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("repaired to 600") && err.contains("fresh key"),
        "{err}"
    );
    assert_eq!(mode_of(&key), 0o600);
    for _ in 0..2 {
        let out = env.cmd().args(["status", "--json"]).output().unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["key_exposed"], true, "{v}");
        let human = env.cmd().arg("status").output().unwrap();
        assert!(String::from_utf8_lossy(&human.stdout).contains("EXPOSED"));
    }
    assert_eq!(
        std::fs::read(&key).unwrap(),
        original,
        "reads do not replace it"
    );

    // The next write (a refresh) replaces it: fresh key material, every profile re-encrypted.
    let out = env.cmd().arg("token").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_no_secret(&out, &[CANARY_REFRESH]);
    let replaced = std::fs::read(&key).unwrap();
    assert_ne!(replaced, original, "fresh key material");
    assert_eq!(replaced.len(), 32);
    assert_eq!(mode_of(&key), 0o600);
    let v = env.status_json();
    assert_eq!(v["key_exposed"], false);
    env.cmd()
        .args(["--profile", "other", "token"])
        .assert()
        .success()
        .stdout("at-other-0123456789abcdef\n");
    assert!(
        env.stored("default")
            .unwrap()
            .access_token
            .expose()
            .starts_with("at-gen1")
    );
    let names = entries(&env.vault_home());
    assert!(
        !names.iter().any(|n| n.starts_with("vault.key.")),
        "no replacement or marker left: {names:?}"
    );
}

#[test]
fn a_login_replaces_an_exposed_key_too() {
    let env = TestEnv::new();
    env.seed(
        "other",
        "at-other-0123456789abcdef",
        "rt-other-0123456789abcdef",
        3600,
    );
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let key = env.vault_home().join("vault.key");
    let original = std::fs::read(&key).unwrap();
    set_mode(&key, 0o640);
    env.cmd().args(["login", "--no-browser"]).assert().success();
    assert_ne!(std::fs::read(&key).unwrap(), original);
    env.cmd()
        .args(["--profile", "other", "token"])
        .assert()
        .success()
        .stdout("at-other-0123456789abcdef\n");
}

#[test]
#[cfg_attr(
    not(feature = "testing"),
    ignore = "needs `--features testing` (the KIMI_VAULT_FAULT crash points); scripts/test.sh turns it on"
)]
fn replacing_an_exposed_key_is_crash_safe() {
    let mut figures = Vec::new();
    for fault in [
        "rotate-after-next-key",
        "rotate-after-vault",
        "rotate-after-rename",
    ] {
        let env = TestEnv::new();
        env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
        env.seed(
            "other",
            "at-other-0123456789abcdef",
            "rt-other-0123456789abcdef",
            3600,
        );
        env.server.with(|s| s.accept_any_refresh = true);
        let key = env.vault_home().join("vault.key");
        let original = std::fs::read(&key).unwrap();
        set_mode(&key, 0o604);
        env.cmd().arg("status").assert().success();
        // A write that dies at the fault, as if killed there.
        let out = env
            .cmd()
            .env("KIMI_VAULT_FAULT", fault)
            .args(["token", "--min-valid", "99999"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.signal(),
            Some(6),
            "{fault}: aborted at the crash point"
        );
        // Whatever instant it died at, vault.enc opens with a key on disk: lock-free reads work.
        env.cmd()
            .args(["--profile", "other", "token"])
            .assert()
            .success()
            .stdout("at-other-0123456789abcdef\n");
        let stored = env
            .vault()
            .load("default")
            .unwrap_or_else(|e| panic!("{fault}: the vault does not open: {e}"))
            .expect("the profile survives");
        figures.push(format!(
            "{fault}: {}",
            &stored.cred.access_token.expose()[..6]
        ));
        // The next write finishes (or redoes) the replacement.
        env.cmd()
            .args(["token", "--min-valid", "99999"])
            .assert()
            .success();
        assert_ne!(std::fs::read(&key).unwrap(), original, "{fault}");
        let v = env.status_json();
        assert_eq!(v["key_exposed"], false, "{fault}");
        let names = entries(&env.vault_home());
        assert!(
            !names.iter().any(|n| n.starts_with("vault.key.")),
            "{fault}: {names:?}"
        );
        env.cmd()
            .args(["--profile", "other", "token"])
            .assert()
            .success();
    }
    report(&format!(
        "exposed key replacement: a crash after each of its three steps left a vault that opens (stored access token then: {})",
        figures.join(", ")
    ));
}

#[test]
fn probe_files_a_killed_doctor_left_are_swept_and_nothing_else() {
    // Issue 14 item 11: `.doctor-probe.*.tmp` left after SIGKILL were never swept.
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    let home = env.vault_home();
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    let make = |name: &str, age_old: bool| {
        let path = home.join(name);
        let f = std::fs::File::create(&path).unwrap();
        if age_old {
            f.set_modified(old).unwrap();
        }
        path
    };
    let stale = make(".doctor-probe.AbC123.tmp", true);
    let fresh = make(".doctor-probe.XyZ789.tmp", false);
    let other_names = [
        make(".doctor-probe.AbC123.tmp.keep", true),
        make(".doctor-probe.toolong1.tmp", true),
        make("doctor-probe.AbC123.tmp", true),
    ];
    let outside = env.dir.path().join("outside");
    std::fs::File::create(&outside)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let link = home.join(".doctor-probe.Lnk123.tmp");
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let out = env.cmd().arg("doctor").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!stale.exists(), "the stale probe file is swept");
    assert!(fresh.exists(), "a probe of a doctor running now is left");
    for p in &other_names {
        assert!(p.exists(), "{} is not a probe file", p.display());
    }
    assert!(
        std::fs::symlink_metadata(&link).is_ok() && outside.exists(),
        "links are left"
    );
    assert!(
        !entries(&home)
            .iter()
            .any(|n| n.starts_with(".doctor-probe.")
                && n.len() == ".doctor-probe.XXXXXX.tmp".len()
                && n != ".doctor-probe.XyZ789.tmp"
                && n != ".doctor-probe.Lnk123.tmp"),
        "the doctor's own probe is gone: {:?}",
        entries(&home)
    );
}
