//! Other tools' own locks, held while `migrate` reads and removes their credential files: a tool
//! that refreshes meanwhile (and atomically rewrites its file) waits for us, instead of having
//! its new file removed unread.
//!
//! - kimi-cli (`<share>/credentials/kimi-code.json`): an exclusive `flock` on `kimi-code.lock`
//!   in the same directory, the lock kimi-cli itself takes around a refresh (it creates the file
//!   0600 when missing, and so do we). kimi-cli waits about 5 s for it and then refreshes
//!   without it, so it is held for at most [`FLOCK_HOLD`] (3 s): past that, it is released
//!   and the removal relies on its own check that the file is still the one imported. The
//!   kernel releases a `flock` when its holder ends: a busy one is always a live kimi-cli.
//! - kimi-code (`<KIMI_CODE_HOME>/credentials/<slot>.json`, one file per slot): the
//!   proper-lockfile lock of that very slot, the directory `<KIMI_CODE_HOME>/oauth/<slot>.lock`
//!   beside its sentinel file `oauth/<slot>` (created first, as kimi-code does, with the
//!   `oauth` directory): made with `mkdir` (held while it exists), its mtime renewed every
//!   second while held (kimi-code treats one not renewed for 5 s as abandoned), removed with
//!   `rmdir`. One untouched for more than [`STALE_AFTER`] (10 s) was left by a kimi-code that
//!   ended without releasing it: it is taken over, as proper-lockfile does.
//!
//! Other tools (Roder, CLIProxyAPI, opencode-kimi-auth) have no lock we know of; for every tool,
//! removal checks that the file is still the one imported (`sources::remove_imported`).

use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crate::migrate::parse::Tool;

/// How long a lock another process holds is waited for.
pub(crate) const LOCK_WAIT: Duration = Duration::from_secs(10);
/// How often a held kimi-code lock directory is renewed.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// A kimi-code lock directory untouched for longer than this is stale (its holder is gone).
pub(crate) const STALE_AFTER: Duration = Duration::from_secs(10);
/// kimi-cli's `flock` is held at most this long (kimi-cli gives up waiting after about 5 s).
pub(crate) const FLOCK_HOLD: Duration = Duration::from_secs(3);

/// A tool's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolLock {
    /// kimi-cli: `flock` on this file.
    Flock(PathBuf),
    /// kimi-code: this directory (`oauth/<slot>.lock`), made with `mkdir`; its sentinel file is
    /// the same path without `.lock`.
    LockDir(PathBuf),
}

impl ToolLock {
    /// The lock's path.
    pub(crate) fn path(&self) -> &Path {
        match self {
            ToolLock::Flock(p) | ToolLock::LockDir(p) => p,
        }
    }
}

/// The lock `tool` takes around its own use of the credential file at `path`, when it has one.
pub(crate) fn lock_for(tool: Tool, path: &Path) -> Option<ToolLock> {
    let dir = path.parent()?;
    let stem = path.file_stem()?.to_str()?;
    match tool {
        Tool::KimiCli => Some(ToolLock::Flock(dir.join(format!("{stem}.lock")))),
        Tool::KimiCode if dir.file_name()? == "credentials" => Some(ToolLock::LockDir(
            dir.parent()?.join("oauth").join(format!("{stem}.lock")),
        )),
        _ => None,
    }
}

/// A lock held; released on drop.
#[derive(Debug)]
pub(crate) struct Held {
    kind: HeldKind,
}

#[derive(Debug)]
enum HeldKind {
    /// kimi-cli's flock, released by the watchdog after [`FLOCK_HOLD`] at the latest.
    Flock {
        file: Arc<File>,
        /// Dropped to stop the watchdog.
        stop: Option<std::sync::mpsc::Sender<()>>,
        watchdog: Option<JoinHandle<()>>,
    },
    LockDir {
        path: PathBuf,
        stop: Arc<AtomicBool>,
        renewer: Option<JoinHandle<()>>,
    },
}

impl Drop for Held {
    fn drop(&mut self) {
        match &mut self.kind {
            HeldKind::Flock {
                file,
                stop,
                watchdog,
            } => {
                drop(stop.take());
                if let Some(w) = watchdog.take() {
                    let _ = w.join();
                }
                let _ = file.unlock();
            }
            HeldKind::LockDir {
                path,
                stop,
                renewer,
            } => {
                stop.store(true, Ordering::SeqCst);
                if let Some(r) = renewer.take() {
                    let _ = r.join();
                }
                if let Err(e) = fs::remove_dir(&*path) {
                    tracing::warn!("cannot remove the lock {}: {e}", path.display());
                }
            }
        }
    }
}

/// Why a tool's lock was not taken (the source is then left untouched).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LockError {
    /// The tool held it (and, for a lock directory, kept it fresh) for all of `waited`.
    Busy {
        /// The lock.
        lock: ToolLock,
        /// How long it was waited for.
        waited: Duration,
    },
    /// It could not be taken for another reason: what happened, in words.
    Cannot(String),
}

/// Takes `lock`, waiting at most `wait` for the tool to release it.
pub(crate) fn acquire(lock: &ToolLock, tool: Tool, wait: Duration) -> Result<Held, LockError> {
    let start = Instant::now();
    let held = match lock {
        ToolLock::Flock(_) => flock(lock, tool, start, wait)?,
        ToolLock::LockDir(_) => lock_dir(lock, tool, start, wait)?,
    };
    let waited = start.elapsed();
    if waited > Duration::from_millis(100) {
        tracing::info!(
            "waited {} ms for {}'s lock {}",
            waited.as_millis(),
            tool.name(),
            lock.path().display()
        );
    }
    Ok(held)
}

fn busy(lock: &ToolLock, wait: Duration) -> LockError {
    LockError::Busy {
        lock: lock.clone(),
        waited: wait,
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    let open = |write: bool| {
        let mut options = OpenOptions::new();
        options.read(true);
        if write {
            options.write(true).create(true).truncate(false);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        }
        options.open(path)
    };
    match open(true) {
        // Not ours to write, but an existing lock file can be locked through a read-only handle.
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => open(false),
        other => other,
    }
}

fn cannot(tool: Tool, path: &Path, e: impl std::fmt::Display) -> LockError {
    LockError::Cannot(format!(
        "cannot take {}'s lock {} ({e}), so it was left untouched",
        tool.name(),
        path.display()
    ))
}

fn flock(lock: &ToolLock, tool: Tool, start: Instant, wait: Duration) -> Result<Held, LockError> {
    let path = lock.path();
    let file = open_lock_file(path).map_err(|e| cannot(tool, path, e))?;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => return Err(busy(lock, wait)),
            Err(TryLockError::Error(e)) => return Err(cannot(tool, path, e)),
        }
    }
    // kimi-cli gives up waiting for it after about 5 s and then refreshes without it: release
    // it after FLOCK_HOLD whatever migrate is doing by then.
    let file = Arc::new(file);
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (held, shown) = (file.clone(), path.to_path_buf());
    let watchdog = std::thread::Builder::new()
        .name("flock-watchdog".into())
        .spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                stopped.recv_timeout(FLOCK_HOLD)
            {
                let _ = held.unlock();
                tracing::info!(
                    "released {}'s lock {} after {} s, so that it never waits for it long enough to go on without it",
                    tool.name(),
                    shown.display(),
                    FLOCK_HOLD.as_secs()
                );
            }
        })
        .map_err(|e| cannot(tool, path, e))?;
    Ok(Held {
        kind: HeldKind::Flock {
            file,
            stop: Some(stop),
            watchdog: Some(watchdog),
        },
    })
}

/// True when the lock directory at `path` was not touched for longer than [`STALE_AFTER`].
fn stale(path: &Path) -> bool {
    fs::symlink_metadata(path)
        .ok()
        .filter(fs::Metadata::is_dir)
        .and_then(|m| m.modified().ok())
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > STALE_AFTER)
}

/// kimi-code's sentinel file `oauth/<slot>` (and the `oauth` directory), created when missing
/// as kimi-code creates them before it locks; never followed through a symlink.
fn sentinel(lock_dir: &Path) -> std::io::Result<()> {
    let (Some(oauth), Some(name)) = (lock_dir.parent(), lock_dir.file_name()) else {
        return Err(io::Error::other("the lock has no directory"));
    };
    let mut dir = fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut dir, 0o700);
    match dir.create(oauth) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
        _ => {}
    }
    let name = name.to_string_lossy();
    let target = oauth.join(name.strip_suffix(".lock").unwrap_or(&name));
    let mut options = OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
    }
    options.open(target).map(drop)
}

fn lock_dir(
    lock: &ToolLock,
    tool: Tool,
    start: Instant,
    wait: Duration,
) -> Result<Held, LockError> {
    let path = lock.path();
    sentinel(path).map_err(|e| cannot(tool, path, e))?;
    loop {
        match fs::create_dir(path) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if stale(path) {
                    // Left by a kimi-code that ended without releasing it: take it over, as
                    // proper-lockfile does (remove, then make it again).
                    tracing::info!(
                        "{}'s lock {} was not renewed for more than {} s: taking it over",
                        tool.name(),
                        path.display(),
                        STALE_AFTER.as_secs()
                    );
                    match fs::remove_dir(path) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            return Err(cannot(tool, path, e));
                        }
                        _ => continue,
                    }
                }
                if start.elapsed() >= wait {
                    return Err(busy(lock, wait));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(cannot(tool, path, e)),
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let (dir, flag) = (path.to_path_buf(), stop.clone());
    let renewer = std::thread::Builder::new()
        .name("lock-renewer".into())
        .spawn(move || {
            let mut last = Instant::now();
            while !flag.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
                if last.elapsed() >= RENEW_EVERY {
                    let renewed = File::open(&dir).and_then(|d| d.set_modified(SystemTime::now()));
                    if let Err(e) = renewed {
                        tracing::debug!("cannot renew the lock {}: {e}", dir.display());
                    }
                    last = Instant::now();
                }
            }
        })
        .ok();
    Ok(Held {
        kind: HeldKind::LockDir {
            path: path.to_path_buf(),
            stop,
            renewer,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_of_each_tool() {
        assert_eq!(
            lock_for(
                Tool::KimiCli,
                Path::new("/h/.kimi/credentials/kimi-code.json")
            ),
            Some(ToolLock::Flock(
                "/h/.kimi/credentials/kimi-code.lock".into()
            ))
        );
        // kimi-code: the lock of that very slot.
        assert_eq!(
            lock_for(
                Tool::KimiCode,
                Path::new("/h/.kimi-code/credentials/kimi-code.json")
            ),
            Some(ToolLock::LockDir(
                "/h/.kimi-code/oauth/kimi-code.lock".into()
            ))
        );
        assert_eq!(
            lock_for(
                Tool::KimiCode,
                Path::new("/h/.kimi-code/credentials/kimi-code-env-0e4f99c69cc27850.json")
            ),
            Some(ToolLock::LockDir(
                "/h/.kimi-code/oauth/kimi-code-env-0e4f99c69cc27850.lock".into()
            ))
        );
        assert_eq!(
            lock_for(Tool::KimiCode, Path::new("/backup/kimi-code.json")),
            None
        );
        assert_eq!(
            lock_for(Tool::Roder, Path::new("/h/.roder/auth/kimi-code.json")),
            None
        );
    }

    #[test]
    fn a_lock_directory_is_taken_renewed_and_released() {
        let dir = tempfile::tempdir().unwrap();
        // No oauth directory yet: made, with the sentinel, as kimi-code makes them.
        let lock = ToolLock::LockDir(dir.path().join("oauth/kimi-code.lock"));
        let held = acquire(&lock, Tool::KimiCode, LOCK_WAIT).unwrap();
        assert!(lock.path().is_dir());
        assert!(dir.path().join("oauth/kimi-code").is_file(), "sentinel");
        let busy = acquire(&lock, Tool::KimiCode, Duration::from_millis(100));
        let why = busy.unwrap_err();
        assert!(matches!(why, LockError::Busy { .. }), "{why:?}");
        drop(held);
        assert!(!lock.path().exists());
        assert!(
            dir.path().join("oauth/kimi-code").is_file(),
            "sentinel kept"
        );
    }

    #[test]
    fn a_stale_lock_directory_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = ToolLock::LockDir(dir.path().join("oauth/kimi-code.lock"));
        fs::create_dir_all(lock.path()).unwrap();
        let old = SystemTime::now() - Duration::from_secs(30);
        File::open(lock.path()).unwrap().set_modified(old).unwrap();
        let start = Instant::now();
        let held = acquire(&lock, Tool::KimiCode, LOCK_WAIT).unwrap();
        assert!(start.elapsed() < Duration::from_secs(2));
        let age = SystemTime::now()
            .duration_since(fs::metadata(lock.path()).unwrap().modified().unwrap())
            .unwrap_or_default();
        assert!(age < Duration::from_secs(5), "ours now: fresh");
        drop(held);
    }

    #[test]
    fn a_flock_is_released_after_at_most_three_seconds() {
        let dir = tempfile::tempdir().unwrap();
        let lock = ToolLock::Flock(dir.path().join("kimi-code.lock"));
        let start = Instant::now();
        let held = acquire(&lock, Tool::KimiCli, LOCK_WAIT).unwrap();
        let other = File::open(lock.path()).unwrap();
        assert!(matches!(other.try_lock(), Err(TryLockError::WouldBlock)));
        while other.try_lock().is_err() {
            assert!(start.elapsed() < FLOCK_HOLD + Duration::from_secs(1));
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(start.elapsed() >= FLOCK_HOLD - Duration::from_millis(100));
        other.unlock().unwrap();
        drop(held);
        let why = acquire(&lock, Tool::KimiCli, Duration::ZERO).map(drop);
        assert!(why.is_ok());
        // Busy: no word of a crashed holder (the kernel releases a flock).
        other.lock().unwrap();
        let why = acquire(&lock, Tool::KimiCli, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(why, LockError::Busy { .. }), "{why:?}");
    }
}
