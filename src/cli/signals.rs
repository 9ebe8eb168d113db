//! SIGINT, SIGTERM and SIGHUP during a token refresh (SPEC §5): deferred from just before the
//! refresh request is sent until its answer is stored, then acted on at once; only SIGKILL can
//! still end the process in between (Kimi rotates the refresh token as it answers, so dying
//! there logs the user out).
//!
//! Outside a refresh each of these signals has its default action immediately, as if no handler
//! were installed: the process is killed by it (a shell reports 128+n). Inside one, the signal is
//! recorded; when the library reports that the last refresh critical section ended
//! ([`kimi_vault::session::set_critical_section_hook`]), the default action of the recorded
//! signal is performed: the process is killed by that signal, right after the new tokens are
//! stored. No thread is started: the handlers only set flags (signal-hook's safe API), and they
//! are installed when the first refresh critical section begins, not before: a command that
//! refreshes nothing never installs them.

#[cfg(unix)]
mod imp {
    use std::os::raw::c_int;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, OnceLock};

    use signal_hook::consts::signal::{SIGHUP, SIGINT, SIGTERM};

    const DEFERRED: [(c_int, &str); 3] =
        [(SIGINT, "SIGINT"), (SIGTERM, "SIGTERM"), (SIGHUP, "SIGHUP")];

    struct Flags {
        /// True outside a refresh critical section: the signal acts at once.
        outside: Arc<AtomicBool>,
        /// Set by each signal when it arrives.
        arrived: [Arc<AtomicBool>; 3],
    }

    static FLAGS: OnceLock<Flags> = OnceLock::new();

    /// Registers the hook only: the handlers are installed when the first refresh critical
    /// section begins (before its request is sent), so a command that refreshes nothing (a warm
    /// `token`) spends nothing on them, and outside a section every signal keeps its default
    /// action either way.
    pub(crate) fn defer_during_refresh() {
        kimi_vault::session::set_critical_section_hook(on_critical_section);
    }

    fn install() -> Flags {
        let flags = Flags {
            outside: Arc::new(AtomicBool::new(true)),
            arrived: std::array::from_fn(|_| Arc::new(AtomicBool::new(false))),
        };
        for (i, (signal, _)) in DEFERRED.iter().enumerate() {
            let registered = signal_hook::flag::register(*signal, flags.arrived[i].clone())
                .and_then(|_| {
                    signal_hook::flag::register_conditional_default(*signal, flags.outside.clone())
                });
            if let Err(e) = registered {
                tracing::debug!("cannot handle signal {signal}: {e}");
            }
        }
        flags
    }

    fn on_critical_section(in_flight: bool) {
        if in_flight {
            let flags = FLAGS.get_or_init(install);
            for arrived in &flags.arrived {
                arrived.store(false, Ordering::SeqCst);
            }
            flags.outside.store(false, Ordering::SeqCst);
            return;
        }
        let Some(flags) = FLAGS.get() else {
            return;
        };
        flags.outside.store(true, Ordering::SeqCst);
        for (i, (signal, name)) in DEFERRED.iter().enumerate() {
            if flags.arrived[i].swap(false, Ordering::SeqCst) {
                eprintln!(
                    "kimi-vault: {name} arrived during the token refresh; stopping now that its answer is stored"
                );
                if let Err(e) = signal_hook::low_level::emulate_default_handler(*signal) {
                    tracing::debug!("cannot act on {name}: {e}");
                    std::process::exit(128 + signal);
                }
            }
        }
    }
}

/// Installs the deferral for this process (short commands only: a long-running command with
/// its own shutdown must not call it, and waits with
/// [`kimi_vault::session::wait_for_critical_sections`] instead).
pub(crate) fn defer_during_refresh() {
    #[cfg(unix)]
    imp::defer_during_refresh();
}
