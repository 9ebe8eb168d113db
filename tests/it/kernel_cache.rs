//! The kernel keyring cache in front of the Secret Service (src/store/kernel_cache.rs), with
//! the real binary against the real Secret Service (scripts/test.sh) and the real kernel
//! keyring. Where `keyctl` is refused (a container's seccomp profile), the flows still run and
//! must work; the cache-specific checks are then reported as not made (never a silent pass).

use crate::common::*;
use crate::keyring::{keyring_entry, keyring_session, kr_cmd, unique};
use linux_keyutils::{Key, KeyRing, KeyRingIdentifier};
use predicates::prelude::*;

/// Stores `cred` in the Secret Service behind kimi-vault's back (no cache is touched).
fn put_behind_the_back(profile: &str, cred: &kimi_vault::store::Credential) {
    keyring_entry(profile)
        .set_password(&serde_json::to_string(cred).unwrap())
        .unwrap();
}

/// Whether this process may use the user keyring (a throwaway key added and invalidated).
fn keyctl_works() -> bool {
    let Ok(ring) = KeyRing::from_special_id(KeyRingIdentifier::User, true) else {
        return false;
    };
    match ring.add_key(
        &format!("kimi-vault-test-probe-{}", std::process::id()),
        b"x",
    ) {
        Ok(key) => {
            let _ = key.invalidate();
            true
        }
        Err(_) => false,
    }
}

/// The cached key of `profile` on this test's bus, if there is one.
fn cached_key(profile: &str) -> Option<Key> {
    let bus = std::env::var("DBUS_SESSION_BUS_ADDRESS").unwrap_or_default();
    let (desc, _) = kimi_vault::internals::kernel_cache_descriptions(profile, &bus)?;
    KeyRing::from_special_id(KeyRingIdentifier::User, false)
        .ok()?
        .search(&desc)
        .ok()
}

fn payload(key: Key) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = key.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// The key's line of /proc/keys (flags, usage, timeout, permissions, owner, type, description).
fn proc_keys_line(key: Key) -> String {
    let id = format!("{:08x}", key.get_id().as_raw_id());
    std::fs::read_to_string("/proc/keys")
        .unwrap()
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("key {id} not in /proc/keys"))
        .to_owned()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn the_cache_serves_a_hit_and_never_a_token_after_logout_or_refresh() {
    if !keyring_session() {
        return;
    }
    let works = keyctl_works();
    let env = TestEnv::new();
    let profile = unique("kc-hit");
    let first = credential("at-kc-first-0123456789abcdef", CANARY_REFRESH, 3600);
    put_behind_the_back(&profile, &first);
    env.server
        .with(|s| s.valid_refresh = Some(CANARY_REFRESH.into()));

    // The first `token` reads the Secret Service and fills the cache.
    let out = kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "token"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "at-kc-first-0123456789abcdef\n");
    assert!(out.stderr.is_empty(), "{out:?}");
    assert_no_secret(&out, &[CANARY_REFRESH]);

    if works {
        let key = cached_key(&profile).expect("the read filled the cache");
        let data = payload(key);
        let text = String::from_utf8_lossy(&data);
        // Canary: the refresh token never reaches the kernel.
        assert!(
            !text.contains(CANARY_REFRESH),
            "the refresh token is cached"
        );
        assert!(text.contains("at-kc-first-0123456789abcdef"));
        // Possessor and user only, and a timeout (at most 10 minutes).
        let line = proc_keys_line(key);
        let fields: Vec<&str> = line.split_whitespace().collect();
        let perm = u32::from_str_radix(fields[4], 16).unwrap();
        assert_eq!(perm & 0xffff, 0, "no group, no other: {line}");
        assert_ne!(perm & 0x3f00_0000, 0, "the possessor may use it: {line}");
        assert!(
            fields[3].ends_with('m') || fields[3].ends_with('s'),
            "{line}"
        );
        assert!(!fields[3].starts_with("perm"), "it expires: {line}");

        // A hit: a change made behind kimi-vault's back is not seen while the cache holds.
        let other = credential("at-kc-behind-0123456789abcdef", CANARY_REFRESH, 3600);
        put_behind_the_back(&profile, &other);
        let out = kr_cmd(&env, "keyring")
            .args(["--profile", &profile, "-v", "token"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(stdout(&out), "at-kc-first-0123456789abcdef\n");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("kernel keyring cache"),
            "{out:?}"
        );
    } else {
        report(
            "kernel_cache: keyctl is refused here: the cache's hit/permission checks were not made (the flows ran without it)",
        );
    }

    // A refresh by another process (`token --refresh` is one) replaces the cached token.
    let out = kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "token", "--refresh"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let refreshed = stdout(&out);
    assert!(refreshed.starts_with("at-gen1"), "{refreshed}");
    if works {
        assert!(
            cached_key(&profile).is_none(),
            "a write invalidates the cache"
        );
    }
    kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "token"])
        .assert()
        .success()
        .stdout(refreshed.clone());
    if works {
        let data = payload(cached_key(&profile).expect("filled again"));
        assert!(String::from_utf8_lossy(&data).contains(refreshed.trim()));
    }
    // Served again from the cache (`auto`: the refresh wrote the index).
    kr_cmd(&env, "auto")
        .args(["--profile", &profile, "token"])
        .assert()
        .success()
        .stdout(refreshed.clone());

    // A logout: the next `token` is not served from the cache.
    kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "logout"])
        .assert()
        .success();
    if works {
        assert!(
            cached_key(&profile).is_none(),
            "logout invalidates the cache"
        );
    }
    kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "token"])
        .assert()
        .code(3)
        .stdout("");
    let _ = keyring_entry(&profile).delete_credential();
}

/// The keyring entry is the same for every vault directory (`KIMI_VAULT_HOME`), and so is its
/// cache: a logout made through another vault directory invalidates it too.
#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn a_write_from_another_vault_directory_invalidates_too() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let elsewhere = TestEnv::new();
    let profile = unique("kc-other");
    put_behind_the_back(
        &profile,
        &credential("at-kc-other-0123456789abcdef", CANARY_REFRESH, 3600),
    );
    kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "token"])
        .assert()
        .success()
        .stdout("at-kc-other-0123456789abcdef\n");
    // The keyring entry is the same for every vault directory: a logout in another one
    // removes it, and this one's next `token` must not be served the old token.
    kr_cmd(&elsewhere, "keyring")
        .args(["--profile", &profile, "logout"])
        .assert()
        .success();
    kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "token"])
        .assert()
        .code(3)
        .stdout("");
}

#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn without_keyctl_everything_works_and_says_nothing() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let profile = unique("kc-off");
    env.server
        .with(|s| s.device = DeviceScenario::Approve { pending: 0 });
    let run = |args: &[&str]| {
        kr_cmd(&env, "keyring")
            .env("KIMI_VAULT_FAULT", "keyctl-unavailable")
            .args(["--profile", &profile])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["login", "--no-browser", "--json"]);
    assert!(out.status.success(), "{out:?}");
    for _ in 0..2 {
        let out = run(&["token"]);
        assert!(out.status.success(), "{out:?}");
        assert!(stdout(&out).starts_with("at-gen1"), "{out:?}");
        assert!(out.stderr.is_empty(), "no warning: {out:?}");
    }
    assert!(
        cached_key(&profile).is_none(),
        "nothing cached without keyctl"
    );
    let out = run(&["token", "--refresh"]);
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.is_empty(), "no warning: {out:?}");
    let out = run(&["logout"]);
    assert!(out.status.success(), "{out:?}");
    let out = run(&["token"]);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("keyctl"),
        "{out:?}"
    );
}

/// Without a D-Bus session, `token` in `keyring` mode fails as before: a cache filled on
/// another bus is never used for this one.
#[test]
#[ignore = "needs a Secret Service (D-Bus session + unlocked gnome-keyring): scripts/test.sh runs it with --include-ignored"]
fn a_cache_is_for_its_own_session_bus() {
    if !keyring_session() {
        return;
    }
    let env = TestEnv::new();
    let profile = unique("kc-bus");
    put_behind_the_back(
        &profile,
        &credential("at-kc-bus-0123456789abcdef", CANARY_REFRESH, 3600),
    );
    kr_cmd(&env, "keyring")
        .args(["--profile", &profile, "token"])
        .assert()
        .success();
    env.cmd()
        .env("KIMI_VAULT_BACKEND", "keyring")
        .args(["--profile", &profile, "token"])
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicate::str::contains("OS keyring"));
    let _ = keyring_entry(&profile).delete_credential();
}
