//! Refresh critical sections: from just before a refresh request is sent until its answer (new
//! tokens, a rejection, a recorded back-off) is durably stored. Kimi rotates the refresh token
//! when it answers, so a process that ends inside one loses the rotation: the user is logged
//! out.
//!
//! The library installs no signal handler. It counts the sections in flight and tells the
//! program when the first begins and the last ends ([`set_critical_section_hook`]); a program
//! that wants SIGINT/SIGTERM/SIGHUP deferred during them registers a hook (the `kimi-vault`
//! binary does, for its short commands). A long-running program with its own graceful shutdown
//! (a proxy) instead calls [`wait_for_critical_sections`] before it exits.

use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

struct State {
    in_flight: usize,
    hook: Option<fn(bool)>,
}

static STATE: Mutex<State> = Mutex::new(State {
    in_flight: 0,
    hook: None,
});
static CHANGED: Condvar = Condvar::new();

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Registers `hook`, called with `true` when the first refresh critical section of the process
/// begins (before any request is sent) and with `false` when the last one ends (after the answer
/// is stored, or the refresh failed). It runs on the thread entering or leaving the section, while
/// no other section can begin or end: it must be quick and must not call the functions of this
/// module. It may end the process (to act on a signal it deferred). Replaces an earlier hook.
pub fn set_critical_section_hook(hook: fn(bool)) {
    state().hook = Some(hook);
}

/// How many refresh critical sections are in flight in this process now.
pub fn critical_sections_in_flight() -> usize {
    state().in_flight
}

/// Waits until no refresh critical section is in flight in this process, at most `timeout`;
/// true when none is. For a long-running program that is about to exit (after it stopped
/// starting new work): a refresh in flight then still stores its rotated tokens. One refresh
/// takes at most its 30 s budget plus the time to store the answer.
pub fn wait_for_critical_sections(timeout: Duration) -> bool {
    let deadline = Instant::now().checked_add(timeout);
    let mut state = state();
    while state.in_flight > 0 {
        let left = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()),
            None => Duration::from_secs(3600),
        };
        if left.is_zero() {
            return false;
        }
        state = CHANGED
            .wait_timeout(state, left)
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
    true
}

/// Marks a refresh critical section while it lives.
pub(crate) struct CriticalSection(());

impl CriticalSection {
    /// Enters a critical section (call it before the request is sent).
    pub(crate) fn enter() -> Self {
        let mut state = state();
        state.in_flight += 1;
        if state.in_flight == 1
            && let Some(hook) = state.hook
        {
            hook(true);
        }
        CriticalSection(())
    }
}

impl Drop for CriticalSection {
    fn drop(&mut self) {
        let mut state = state();
        state.in_flight -= 1;
        let last = state.in_flight == 0;
        CHANGED.notify_all();
        if last && let Some(hook) = state.hook {
            hook(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_counted_and_waited_for() {
        let before = critical_sections_in_flight();
        let section = CriticalSection::enter();
        assert_eq!(critical_sections_in_flight(), before + 1);
        let waiter = std::thread::spawn(|| wait_for_critical_sections(Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(50));
        drop(section);
        assert!(waiter.join().unwrap());
        let _held = CriticalSection::enter();
        assert!(!wait_for_critical_sections(Duration::from_millis(20)));
    }
}
