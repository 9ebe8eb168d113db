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
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(90);

/// Proof that this process holds the vault lock; released on drop.
#[derive(Debug)]
pub struct VaultLock {
    file: File,
    waited: Duration,
}

impl VaultLock {
    /// Takes the exclusive lock, creating the vault directory and `vault.lock` if needed.
    pub fn acquire(paths: &VaultPaths) -> Result<Self> {
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
