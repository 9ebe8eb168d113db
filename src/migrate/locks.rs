//! Other tools' own locks, held while `migrate` reads and removes their credential files: a tool
//! that refreshes meanwhile (and atomically rewrites its file) waits for us, instead of having
//! its new file removed unread.
//!
//! - kimi-cli (`<share>/credentials/kimi-code.json`): an exclusive `flock` on `kimi-code.lock`
//!   in the same directory, the lock kimi-cli itself takes around a refresh (it creates the file
//!   0600 when missing, and so do we).
//! - kimi-code (`<KIMI_CODE_HOME>/credentials/kimi-code*.json`): its proper-lockfile directory
//!   lock `<KIMI_CODE_HOME>/oauth/kimi-code.lock` (the lock of its `oauth/kimi-code` target, the
//!   one kimi-code is known to take around a refresh of `credentials/kimi-code.json`; taken for
//!   every kimi-code credential file): made with `mkdir` (held while it exists), its mtime
//!   renewed while held (kimi-code treats one not renewed for 5 s as abandoned; we renew it
//!   every second), removed with `rmdir`. When `<KIMI_CODE_HOME>/oauth` does not exist, that
//!   kimi-code does not use the lock and there is none to take.
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

/// A tool's lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ToolLock {
    /// kimi-cli: `flock` on this file.
    Flock(PathBuf),
    /// kimi-code: this directory, made with `mkdir`.
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
            dir.parent()?.join("oauth").join("kimi-code.lock"),
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
    /// Nothing to release (the tool uses no lock here).
    Nothing,
    Flock(File),
    LockDir {
        path: PathBuf,
        stop: Arc<AtomicBool>,
        renewer: Option<JoinHandle<()>>,
    },
}

impl Drop for Held {
    fn drop(&mut self) {
        match &mut self.kind {
            HeldKind::Nothing => {}
            HeldKind::Flock(file) => {
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

/// Takes `lock`, waiting at most `wait` for the tool to release it. `Err` is the reason for
/// the report (the source is then left untouched).
pub(crate) fn acquire(lock: &ToolLock, tool: Tool, wait: Duration) -> Result<Held, String> {
    let start = Instant::now();
    let held = match lock {
        ToolLock::Flock(path) => flock(path, tool, start, wait)?,
        ToolLock::LockDir(path) => lock_dir(path, tool, start, wait)?,
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

fn busy(tool: Tool, path: &Path, wait: Duration) -> String {
    format!(
        "{} is using it: its lock {} was held for {} s, so it was left untouched; run migrate again when {} is done (if none is running, a crashed one left the lock: remove it)",
        tool.name(),
        path.display(),
        wait.as_secs(),
        tool.name()
    )
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

fn flock(path: &Path, tool: Tool, start: Instant, wait: Duration) -> Result<Held, String> {
    let file = open_lock_file(path).map_err(|e| {
        format!(
            "cannot take {}'s lock {} ({e}), so it was left untouched",
            tool.name(),
            path.display()
        )
    })?;
    loop {
        match file.try_lock() {
            Ok(()) => {
                return Ok(Held {
                    kind: HeldKind::Flock(file),
                });
            }
            Err(TryLockError::WouldBlock) if start.elapsed() < wait => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => return Err(busy(tool, path, wait)),
            Err(TryLockError::Error(e)) => {
                return Err(format!(
                    "cannot take {}'s lock {} ({e}), so it was left untouched",
                    tool.name(),
                    path.display()
                ));
            }
        }
    }
}

fn lock_dir(path: &Path, tool: Tool, start: Instant, wait: Duration) -> Result<Held, String> {
    loop {
        match fs::create_dir(path) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if start.elapsed() >= wait {
                    return Err(busy(tool, path, wait));
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // No lock directory's parent: this install does not use the lock.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(Held {
                    kind: HeldKind::Nothing,
                });
            }
            Err(e) => {
                return Err(format!(
                    "cannot take {}'s lock {} ({e}), so it was left untouched",
                    tool.name(),
                    path.display()
                ));
            }
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
        std::fs::create_dir(dir.path().join("oauth")).unwrap();
        let lock = ToolLock::LockDir(dir.path().join("oauth/kimi-code.lock"));
        let held = acquire(&lock, Tool::KimiCode, LOCK_WAIT).unwrap();
        assert!(lock.path().is_dir());
        let busy = acquire(&lock, Tool::KimiCode, Duration::from_millis(100));
        assert!(busy.unwrap_err().contains("is using it"));
        drop(held);
        assert!(!lock.path().exists());
        // No oauth directory: nothing to take.
        let none = ToolLock::LockDir(dir.path().join("missing/kimi-code.lock"));
        drop(acquire(&none, Tool::KimiCode, LOCK_WAIT).unwrap());
        assert!(!dir.path().join("missing").exists());
    }
}
