//! SIGINT, SIGTERM and SIGHUP during a token refresh (issue 10, item 5): deferred from the
//! refresh request until its answer is stored, then acted on: the process is killed by the
//! signal (a shell reports 128+n), the rotated tokens are stored, and the next `token` works
//! without a new login. Outside a refresh the signals act at once, as by default.

use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::common::*;
use rustix::process::{Pid, Signal, kill_process};

fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_signal_during_a_refresh_is_acted_on_once_the_rotated_tokens_are_stored() {
    const DELAY: Duration = Duration::from_secs(2);
    let mut figures = Vec::new();
    for (signal, number, name) in [
        (Signal::TERM, 15, "SIGTERM"),
        (Signal::INT, 2, "SIGINT"),
        (Signal::HUP, 1, "SIGHUP"),
    ] {
        let env = TestEnv::new();
        env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 10);
        env.server.with(|s| s.delay_refresh = Some(DELAY));
        let child = env
            .std_cmd()
            .arg("token")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The refresh request has reached the server: Kimi rotates as it answers.
        wait_until("the refresh request", Duration::from_secs(30), || {
            env.server.refresh_requests() == 1
        });
        let sent = Instant::now();
        kill_process(Pid::from_child(&child), signal).unwrap();
        let out = child.wait_with_output().unwrap();
        let deferred = sent.elapsed();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.signal(), Some(number), "{name}: {err}");
        assert!(err.contains(name), "{name}: {err}");
        assert_no_secret(&out, &[CANARY_ACCESS, CANARY_REFRESH]);
        // The rotated tokens were stored before the signal was acted on.
        let stored = env.stored("default").unwrap();
        assert!(
            stored.refresh_token.expose().starts_with("rt-gen1-"),
            "{name}: the rotation was lost"
        );
        // The next token works without a new login, even when it must refresh again.
        env.cmd()
            .args(["token", "--min-valid", "99999"])
            .assert()
            .success()
            .stdout(predicates::str::starts_with("at-gen2-"));
        figures.push(format!("{name} deferred {:.1} s", deferred.as_secs_f64()));
    }
    report(&format!(
        "signals during a refresh (server answering after {} s): {}; rotated tokens stored each time, next token without login",
        DELAY.as_secs(),
        figures.join(", ")
    ));
}

#[test]
fn outside_a_refresh_a_signal_acts_at_once() {
    let env = TestEnv::new();
    env.seed("default", CANARY_ACCESS, CANARY_REFRESH, 10);
    // Another holder of the vault lock: the token process waits for it (no refresh yet).
    let vault = env.vault();
    let lock = vault.lock().unwrap();
    let child = env
        .std_cmd()
        .args(["-v", "token"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    kill_process(Pid::from_child(&child), Signal::TERM).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(15));
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "it took {:?}",
        sent.elapsed()
    );
    drop(lock);
    assert_eq!(env.server.refresh_requests(), 0);
    assert_eq!(
        env.stored("default").unwrap().refresh_token.expose(),
        CANARY_REFRESH
    );
}
