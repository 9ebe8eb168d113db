//! The vault lock: an exclusive `std::fs::File::lock` on `vault.lock`, held for every write and
//! for every refresh, so that N processes make exactly one refresh request.

use std::fs::{File, TryLockError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::store::fsutil;
use crate::store::paths::VaultPaths;

/// How long a process waits for the lock before giving up with a clear message: three times the
/// longest a refresh may take under the lock, so that a waiter never fails merely because
/// another process's refresh was slow.
pub(crate) const LOCK_TIMEOUT: Duration = Duration::from_secs(90);

/// Proof that this process holds the vault lock; released on drop.
#[derive(Debug)]
pub struct VaultLock {
    file: File,
    waited: Duration,
}

impl VaultLock {
    /// Takes the exclusive lock, creating the vault directory and `vault.lock` if needed.
    pub(crate) fn acquire(paths: &VaultPaths) -> Result<Self> {
        Self::acquire_within(paths, LOCK_TIMEOUT)
    }

    /// Takes the exclusive lock, waiting at most `timeout`.
    pub(crate) fn acquire_within(paths: &VaultPaths, timeout: Duration) -> Result<Self> {
        fsutil::ensure_private_dir(paths.home())?;
        let path = paths.lock();
        let file = fsutil::open_lock_file(&path)?;
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => {
                    let waited = start.elapsed();
                    tracing::info!("waited {} ms for the vault lock", waited.as_millis());
                    return Ok(VaultLock { file, waited });
                }
                Err(TryLockError::WouldBlock) => {
                    if start.elapsed() >= timeout {
                        return Err(Error::LockTimeout {
                            path,
                            seconds: timeout.as_secs(),
                        });
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::io(format!("cannot lock {}", path.display()), e));
                }
            }
        }
    }

    /// How long this process waited for the lock.
    pub fn waited(&self) -> Duration {
        self.waited
    }
}

impl Drop for VaultLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

/// Whether the vault lock could be taken now (for `doctor`), and who holds it when not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LockState {
    /// There is no `vault.lock` yet: it is created at the first write.
    NoLockFile,
    /// The lock was taken and released at once.
    Free,
    /// Another process holds it.
    Held {
        /// Its process id, when the system tells (Linux: `/proc/locks`).
        pid: Option<u32>,
        /// Its command name (`/proc/PID/comm`), when known.
        command: Option<String>,
    },
}

/// Tries the vault lock without waiting and without creating anything.
pub fn probe(paths: &VaultPaths) -> Result<LockState> {
    let path = paths.lock();
    let Some(file) = fsutil::open_private(&path)? else {
        return Ok(LockState::NoLockFile);
    };
    match file.try_lock() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(LockState::Free)
        }
        Err(TryLockError::WouldBlock) => {
            let (pid, command) = holder(&file).unzip();
            Ok(LockState::Held {
                pid,
                command: command.flatten(),
            })
        }
        Err(TryLockError::Error(e)) => Err(Error::io(
            format!("cannot try the lock {}", path.display()),
            e,
        )),
    }
}

/// The process holding a `flock` on `file`, from `/proc/locks` (Linux), and its command name.
#[cfg(target_os = "linux")]
fn holder(file: &File) -> Option<(u32, Option<String>)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata().ok()?;
    let (major, minor) = (
        rustix::fs::major(meta.dev() as _),
        rustix::fs::minor(meta.dev() as _),
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let pid = locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().filter(|f| *f != "->").collect();
        // "1:", "FLOCK", "ADVISORY", "WRITE", pid, "maj:min:inode", start, end
        if fields.len() < 6 || fields[1] != "FLOCK" {
            return None;
        }
        let mut id = fields[5].split(':');
        let maj = u32::from_str_radix(id.next()?, 16).ok()?;
        let min = u32::from_str_radix(id.next()?, 16).ok()?;
        let ino: u64 = id.next()?.parse().ok()?;
        (maj == major && min == minor && ino == meta.ino())
            .then(|| fields[4].parse::<u32>().ok())
            .flatten()
    })?;
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|c| c.trim().chars().filter(|c| !c.is_control()).collect());
    Some((pid, command))
}

#[cfg(not(target_os = "linux"))]
fn holder(_file: &File) -> Option<(u32, Option<String>)> {
    None
}
