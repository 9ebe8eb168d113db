//! Adversarial tests through the real binary: SIGKILLed writers, a concurrency soak, hostile
//! files, a full disk and a read-only directory.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use predicates::prelude::*;

/// A small deterministic generator (no extra crate for test jitter).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound
    }
}

fn is_issued_or_seed(access: &str, seed: &str) -> bool {
    access == seed
        || (access.starts_with("at-gen") && access.ends_with("0123456789abcdef0123456789"))
}

#[test]
fn sigkilled_writers_leave_the_old_or_the_new_vault() {
    const ROUNDS: usize = 300;
    let env = TestEnv::new();
    let seed = "at-seed-0123456789abcdef";
    env.seed("default", seed, "rt-seed-0123456789abcdef", 3600);
    env.server.with(|s| s.accept_any_refresh = true);
    let mut rng = Lcg(0x5eed);
    // Kill uniformly over the life of a whole run (the slowest of three, as other tests load
    // the machine), so some kills land inside the write.
    let mut slowest = 0u64;
    for _ in 0..3 {
        let t = Instant::now();
        env.cmd()
            .args(["token", "--min-valid", "99999"])
            .assert()
            .success();
        slowest = slowest.max(t.elapsed().as_micros() as u64);
    }
    let span = slowest.max(1000) * 3 / 2;
    let seed_now = env
        .stored("default")
        .unwrap()
        .access_token
        .expose()
        .to_owned();
    let seed = seed_now.as_str();
    let mut changes = 0;
    let mut last = seed.to_owned();
    for round in 0..ROUNDS {
        // Every call refreshes (and so writes): --min-valid is beyond the token's life.
        let mut child = env
            .std_cmd()
            .args(["token", "--min-valid", "99999"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.next(span)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let cred = env
            .vault()
            .load("default")
            .unwrap_or_else(|e| panic!("round {round}: vault broken after SIGKILL: {e}"))
            .expect("the credential survives")
            .cred;
        let access = cred.access_token.expose().to_owned();
        assert!(is_issued_or_seed(&access, seed), "round {round}: {access}");
        if access != last {
            changes += 1;
            last = access;
        }
    }
    report(&format!(
        "crash consistency: {ROUNDS} SIGKILLs spread over {span} µs runs; the vault was replaced {changes} times and always decrypted to the old or the new credential"
    ));
    assert!(changes > 0, "some writes completed");
    // The next completed write sweeps what killed writers left behind.
    env.cmd()
        .args(["token", "--min-valid", "99999"])
        .assert()
        .success();
    let temps = std::fs::read_dir(env.vault_home())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(temps, 0, "stale temp files swept");
}

#[test]
fn soak_token_login_logout_no_corruption_no_lost_rotation() {
    const SOAK: Duration = Duration::from_secs(8);
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-soak-0123456789abcdef",
        "rt-soak-0123456789abcdef",
        3600,
    );
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let start = Instant::now();
    let waits = std::sync::Mutex::new(Vec::<u64>::new());
    let runs = std::sync::atomic::AtomicUsize::new(0);
    let workers: &[&[&str]] = &[
        &["-v", "token", "--min-valid", "99999"],
        &["-v", "token", "--min-valid", "99999"],
        &["-v", "token"],
        &["-v", "login", "--no-browser"],
        &["-v", "logout"],
    ];
    std::thread::scope(|scope| {
        for args in workers {
            let (env, waits, runs) = (&env, &waits, &runs);
            scope.spawn(move || {
                while start.elapsed() < SOAK {
                    let out = env
                        .cmd()
                        .args(*args)
                        .timeout(Duration::from_secs(60))
                        .output()
                        .unwrap();
                    runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let code = out.status.code();
                    assert!(
                        matches!(code, Some(0) | Some(3)),
                        "{args:?} exited {code:?} (a deadlock is killed by the timeout): {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    let err = String::from_utf8_lossy(&out.stderr);
                    for line in err.lines() {
                        if let Some(ms) = line
                            .strip_prefix("kimi-vault: waited ")
                            .and_then(|r| r.strip_suffix(" ms for the vault lock"))
                        {
                            waits.lock().unwrap().push(ms.parse().unwrap());
                        }
                    }
                }
            });
        }
    });
    let mut waits = waits.into_inner().unwrap();
    waits.sort_unstable();
    let max = waits.last().copied().unwrap_or(0);
    let p50 = waits.get(waits.len() / 2).copied().unwrap_or(0);
    report(&format!(
        "soak: {} commands (token, forced refresh, login, logout) in {} s; {} lock waits, median {p50} ms, max {max} ms",
        runs.into_inner(),
        SOAK.as_secs(),
        waits.len()
    ));
    assert!(max < 30_000, "lock waits bounded");
    // No corruption; no lost rotation: a usable stored credential holds the server's valid token.
    if let Some(cred) = env
        .vault()
        .load("default")
        .expect("vault readable")
        .map(|l| l.cred)
        && !cred.needs_login
    {
        let valid = env.server.with(|s| s.valid_refresh.clone()).unwrap();
        assert_eq!(cred.refresh_token.expose(), valid, "rotation lost");
    }
}

#[test]
fn hostile_vault_files_get_clear_errors_and_are_not_followed() {
    struct Case {
        name: &'static str,
        setup: fn(&TestEnv, &std::path::Path),
        command: &'static [&'static str],
        code: i32,
        message: &'static str,
    }
    fn other_owned_target(env: &TestEnv) -> std::path::PathBuf {
        let t = env.dir.path().join("someone-elses");
        std::fs::write(&t, b"not yours").unwrap();
        if rustix::process::geteuid().as_raw() == 0 {
            std::os::unix::fs::chown(&t, Some(65534), None).unwrap();
        }
        t
    }
    let cases = [
        Case {
            name: "vault.lock symlink to own file",
            setup: |env, v| {
                let t = env.dir.path().join("mine");
                std::fs::write(&t, b"mine").unwrap();
                std::fs::remove_file(v.join("vault.lock")).unwrap();
                std::os::unix::fs::symlink(t, v.join("vault.lock")).unwrap();
            },
            command: &["logout"],
            code: 4,
            message: "symbolic link",
        },
        Case {
            name: "vault.lock symlink to someone else's file",
            setup: |env, v| {
                std::fs::remove_file(v.join("vault.lock")).unwrap();
                std::os::unix::fs::symlink(other_owned_target(env), v.join("vault.lock")).unwrap()
            },
            command: &["logout"],
            code: 4,
            message: "symbolic link",
        },
        Case {
            name: "vault.key symlink to someone else's file",
            setup: |env, v| {
                std::fs::remove_file(v.join("vault.key")).unwrap();
                std::os::unix::fs::symlink(other_owned_target(env), v.join("vault.key")).unwrap()
            },
            command: &["token"],
            code: 4,
            message: "symbolic link",
        },
        Case {
            name: "vault.lock directory",
            setup: |_, v| {
                std::fs::remove_file(v.join("vault.lock")).ok();
                std::fs::create_dir(v.join("vault.lock")).unwrap()
            },
            command: &["logout"],
            code: 4,
            message: "not a regular file",
        },
        Case {
            name: "vault.key directory",
            setup: |_, v| {
                std::fs::remove_file(v.join("vault.key")).unwrap();
                std::fs::create_dir(v.join("vault.key")).unwrap()
            },
            command: &["token"],
            code: 4,
            message: "not a regular file",
        },
        Case {
            name: "zero-length vault.key",
            setup: |_, v| std::fs::write(v.join("vault.key"), b"").unwrap(),
            command: &["token"],
            code: 4,
            message: "exactly 32 bytes",
        },
        Case {
            name: "zero-length vault.enc",
            setup: |_, v| std::fs::write(v.join("vault.enc"), b"").unwrap(),
            command: &["token"],
            code: 4,
            message: "not a readable kimi-vault file",
        },
        Case {
            name: "huge vault.enc",
            setup: |_, v| std::fs::write(v.join("vault.enc"), vec![0u8; 5 << 20]).unwrap(),
            command: &["token"],
            code: 4,
            message: "larger than",
        },
        Case {
            name: "huge vault.key",
            setup: |_, v| std::fs::write(v.join("vault.key"), vec![0u8; 1 << 20]).unwrap(),
            command: &["token"],
            code: 4,
            message: "larger than",
        },
        Case {
            name: "world-readable vault.enc (repaired)",
            setup: |_, v| {
                std::fs::set_permissions(
                    v.join("vault.enc"),
                    std::fs::Permissions::from_mode(0o644),
                )
                .unwrap()
            },
            command: &["status"],
            code: 0,
            message: "repaired to 600",
        },
    ];
    for case in cases {
        let env = TestEnv::new();
        env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
        let v = env.vault_home();
        (case.setup)(&env, &v);
        let snapshot: Vec<_> = std::fs::read_dir(env.dir.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().unwrap().is_file())
            .map(|e| (e.path(), std::fs::read(e.path()).unwrap()))
            .collect();
        let out = env.cmd().args(case.command).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(case.code),
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(case.message),
            "{}: {}",
            case.name,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
        for (path, bytes) in snapshot {
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "{}: {} changed",
                case.name,
                path.display()
            );
        }
    }
}

/// A small tmpfs of our own, unmounted on drop. `None` where mounting is not permitted.
struct SmallFs(std::path::PathBuf);
impl SmallFs {
    fn mount(at: std::path::PathBuf, size: &str) -> Option<Self> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallFs(at))
    }
    fn remount(&self, opts: &str) {
        assert!(
            Command::new("mount")
                .args(["-o", &format!("remount,{opts}")])
                .arg(&self.0)
                .status()
                .unwrap()
                .success()
        );
    }
}
impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
#[ignore = "needs root (with CAP_SYS_ADMIN, to mount a small tmpfs; the RLIMIT_FSIZE test below runs everywhere): scripts/test.sh runs it with --include-ignored when it runs as root, as CI does"]
fn full_disk_and_read_only_directory_keep_the_old_vault() {
    let env = TestEnv::new();
    let Some(fs) = SmallFs::mount(env.vault_home(), "64k") else {
        panic!(
            "cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN); see the RLIMIT_FSIZE test below"
        );
    };
    env.seed(
        "default",
        "at-disk-0123456789abcdef",
        "rt-disk-0123456789abcdef",
        10,
    );
    let before = std::fs::read(env.vault_home().join("vault.enc")).unwrap();
    // Fill the disk.
    let filler = env.vault_home().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 64 * 1024]);
    let out = env.cmd().arg("token").output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left"));
    assert_eq!(
        std::fs::read(env.vault_home().join("vault.enc")).unwrap(),
        before
    );
    std::fs::remove_file(&filler).unwrap();
    // Read-only.
    fs.remount("ro");
    let out = env.cmd().arg("token").output().unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Read-only"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(env.vault_home().join("vault.enc")).unwrap(),
        before
    );
    fs.remount("rw");
    // The server rotated during the failed attempts; the vault still holds a usable copy.
    env.server.with(|s| s.accept_any_refresh = true);
    env.cmd().arg("token").assert().success();
}

#[test]
fn file_size_limit_keeps_the_old_vault() {
    // RLIMIT_FSIZE = 0 makes every write fail (EFBIG), like a full disk, without privileges.
    // The shell ignores SIGXFSZ, and the ignored disposition survives exec, so the write returns
    // an error instead of killing the process.
    let env = TestEnv::new();
    env.seed(
        "default",
        "at-fsize-0123456789abcdef",
        "rt-fsize-0123456789abcdef",
        10,
    );
    let before = std::fs::read(env.vault_home().join("vault.enc")).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("kimi-vault");
    let template = env.std_cmd();
    let mut sh = Command::new("sh");
    sh.env_clear().arg("-c").arg(format!(
        "trap '' XFSZ; ulimit -f 0; exec '{}' token",
        bin.display()
    ));
    for (k, v) in template.get_envs() {
        if let Some(v) = v {
            sh.env(k, v);
        }
    }
    let out = sh.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("File too large"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(env.vault_home().join("vault.enc")).unwrap(),
        before
    );
    // The server rotated during the failed attempt; accept the kept copy from now on.
    env.server.with(|s| s.accept_any_refresh = true);
    env.cmd()
        .arg("token")
        .assert()
        .success()
        .stdout(predicate::str::contains("at-gen"));
}

/// Characters that must never reach a terminal raw (issue 14 item 2).
const HOSTILE: [char; 7] = [
    '\u{1b}', '\u{7}', '\u{9b}', '\u{7f}', '\u{202e}', '\u{200b}', '\r',
];

fn assert_escaped(text: &str, what: &str) {
    for c in HOSTILE {
        assert!(
            !text.contains(c),
            "{what}: {c:?} reached the terminal: {text:?}"
        );
    }
}

#[test]
fn hostile_server_text_reaches_the_terminal_escaped_and_json_keeps_it_exact() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 3600);
    // An error body with an OSC 52 clipboard write, a C1 CSI, DEL, a bidi override.
    let body = "{\"error\":{\"type\":\"bad\",\"message\":\"x\\u001b]52;c;aGVsbG8=\\u0007 \\u009b31m \\u007f \\u202eevil \\u200b\"}}";
    for (args, route) in [(&["usage"][..], "usages"), (&["models"], "models")] {
        env.server.with(|s| {
            let c = Canned::new(400, body);
            if route == "usages" {
                s.usages.push_back(c);
            } else {
                s.models.push_back(c);
            }
        });
        let out = env.cmd().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        let text = format!("{err}{}", String::from_utf8_lossy(&out.stdout));
        assert_escaped(&text, &format!("{args:?}"));
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
    }
    // -v log lines too (every line of the tracing subscriber).
    env.server
        .with(|s| s.usages.push_back(Canned::new(400, body)));
    let out = env.cmd().args(["-vv", "usage"]).output().unwrap();
    assert_escaped(&String::from_utf8_lossy(&out.stderr), "-vv usage");
    // Raw bytes in the plain-text 400 body.
    env.server.with(|s| {
        s.usages
            .push_back(Canned::new(400, "oops \u{1b}]52;c;aGVsbG8=\u{7} \u{9b}2J"))
    });
    let out = env.cmd().arg("usage").output().unwrap();
    assert_escaped(&String::from_utf8_lossy(&out.stderr), "usage, text body");
}

#[test]
fn a_hostile_user_code_and_verification_uri_are_shown_escaped() {
    let env = TestEnv::new();
    env.server.with(|s| {
        s.device = DeviceScenario::Deny;
        s.device_text = Some((
            "ABCD\u{1b}]52;c;aGVsbG8=\u{7}-1234\u{202e}".to_owned(),
            "https://www.kimi.com/\u{9b}2J\u{200b}device".to_owned(),
        ));
    });
    let out = env.cmd().args(["login", "--no-browser"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_escaped(&err, "login");
    assert!(err.contains("ABCD\\x1b]52"), "{err}");
    // --json carries the exact values.
    env.server.with(|s| s.polls = 0);
    let out = env
        .cmd()
        .args(["login", "--no-browser", "--json"])
        .output()
        .unwrap();
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap()
        .to_owned();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["user_code"], "ABCD\u{1b}]52;c;aGVsbG8=\u{7}-1234\u{202e}");
    assert_eq!(
        v["verification_uri"],
        "https://www.kimi.com/\u{9b}2J\u{200b}device"
    );
    // ... JSON-escaped: the C1 CSI, bidi and zero-width characters never reach a terminal raw
    // (serde_json itself escapes only C0).
    assert_escaped(&String::from_utf8_lossy(&out.stdout), "login --json");
    assert!(first.contains(r"\u009b2J\u200bdevice"), "{first}");
}
