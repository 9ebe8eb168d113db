//! What `doctor` looks at in the vault directory, read-only: the directory and each file (kind,
//! mode, owner, and what is wrong with them), whether the encrypted file backend can write here
//! (a throwaway temp file written, read back and deleted), and whether `vault.key` opens
//! `vault.enc` on this machine. Nothing is created; the only changes any of this makes are the
//! mode repair every command makes on a too-open vault file, and removing probe files a killed
//! `doctor` left (exactly `.doctor-probe.XXXXXX.tmp`, ours, older than a minute).

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::store::Vault;
use crate::store::fsutil::current_uid;
use crate::store::key::MachineBinding;
use crate::store::paths::{
    BACKOFF_FILE, DEFAULT_PROFILE_FILE, DEVICE_ID_FILE, KEY_FILE, LOCK_FILE, VAULT_FILE,
};

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// It does not exist.
    Missing,
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symbolic link (never followed).
    Symlink,
    /// Something else (a FIFO, a socket, a device).
    Other,
}

impl PathKind {
    /// `missing`, `directory`, `file`, `symlink`, `other`, as in `doctor --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Missing => "missing",
            PathKind::Directory => "directory",
            PathKind::File => "file",
            PathKind::Symlink => "symlink",
            PathKind::Other => "other",
        }
    }
}

/// One path of the vault as found.
#[derive(Debug, Clone)]
pub struct PathCheck {
    /// The path.
    pub path: PathBuf,
    /// What it is.
    pub kind: PathKind,
    /// Permission bits (`0o600`), when it exists.
    pub mode: Option<u32>,
    /// Owner uid, when it exists.
    pub owner: Option<u32>,
    /// What is wrong with it, in words; `None` when it is fine.
    pub problem: Option<String>,
    /// True when the problem makes kimi-vault refuse the file (exit 4); false when it is only
    /// repaired or noted.
    pub blocking: bool,
}

/// The file backend's write test.
#[derive(Debug, Clone)]
pub enum FileProbe {
    /// A temp file was written, synced, read back and deleted in the vault directory.
    Works {
        /// How long the round trip took.
        took: Duration,
    },
    /// The vault directory does not exist yet; it would be created (0700) inside this existing,
    /// writable directory at the first write.
    WillCreate {
        /// The nearest existing ancestor.
        under: PathBuf,
    },
    /// Writing here fails; why.
    Fails(String),
}

/// Whether `vault.key` opens `vault.enc` here.
#[derive(Debug)]
pub enum KeyCheck {
    /// There is no `vault.enc` (and so nothing to open).
    NoVault,
    /// The key opens the vault on this machine, for this user; how many profiles it holds.
    Opens {
        /// Profiles in the file.
        profiles: usize,
    },
    /// The vault cannot be read (another machine or user, replaced key, damage, …).
    Unreadable(Error),
}

/// What the key is bound to.
#[derive(Debug, Clone)]
pub struct Binding {
    /// Where the machine id was read (`/etc/machine-id`, …); `None`: bound to the uid only.
    pub machine_id_source: Option<&'static str>,
    /// The user id mixed into the key.
    pub uid: u32,
}

fn check(path: &Path, want_dir: bool) -> PathCheck {
    let meta = std::fs::symlink_metadata(path);
    let mut c = PathCheck {
        path: path.to_owned(),
        kind: PathKind::Missing,
        mode: None,
        owner: None,
        problem: None,
        blocking: false,
    };
    let Ok(meta) = meta else {
        return c;
    };
    let ft = meta.file_type();
    c.kind = if ft.is_symlink() {
        PathKind::Symlink
    } else if ft.is_dir() {
        PathKind::Directory
    } else if ft.is_file() {
        PathKind::File
    } else {
        PathKind::Other
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        c.mode = Some(meta.mode() & 0o7777);
        c.owner = Some(meta.uid());
    }
    let me = current_uid();
    let mode = c.mode.unwrap_or(0);
    let (problem, blocking) = match (c.kind, want_dir) {
        (PathKind::Symlink, _) if want_dir => (
            Some("it is a symbolic link; use the real directory as KIMI_VAULT_HOME".to_owned()),
            false,
        ),
        (PathKind::Symlink, _) => (
            Some("it is a symbolic link, and kimi-vault never follows links: remove it".into()),
            true,
        ),
        (PathKind::Directory, false) | (PathKind::Other, _) | (PathKind::File, true) => (
            Some(format!(
                "it is not a {}: remove it",
                if want_dir {
                    "directory"
                } else {
                    "regular file"
                }
            )),
            true,
        ),
        _ if c.owner.is_some_and(|o| o != me) => (
            Some(format!(
                "it is owned by uid {}, not by you (uid {me})",
                c.owner.unwrap_or_default()
            )),
            true,
        ),
        (PathKind::Directory, true) if mode & 0o022 != 0 || mode & 0o1000 != 0 => (
            Some(format!(
                "mode {mode:o}: {}; others could replace your vault files: chmod 700 {}",
                if mode & 0o1000 != 0 {
                    "a shared (sticky) directory"
                } else {
                    "writable by group or others"
                },
                path.display()
            )),
            true,
        ),
        (PathKind::File, false) if mode & 0o077 != 0 => (
            Some(format!(
                "mode {:o}: readable or writable by others; it is repaired to 600 at its next use, but consider what it held exposed",
                mode & 0o777
            )),
            false,
        ),
        _ => (None, false),
    };
    c.problem = problem;
    c.blocking = blocking;
    c
}

impl Vault {
    /// The vault directory, its files (`vault.key`, `vault.enc`, `vault.lock`, `device-id`,
    /// `refresh.backoff`, `default-profile`), and any unreadable files kept aside earlier, as found; never
    /// following a link, changing nothing.
    pub fn inspect_paths(&self) -> Vec<PathCheck> {
        let paths = self.paths();
        let mut out = vec![check(paths.home(), true)];
        for name in [
            KEY_FILE,
            VAULT_FILE,
            LOCK_FILE,
            DEVICE_ID_FILE,
            BACKOFF_FILE,
            DEFAULT_PROFILE_FILE,
        ] {
            out.push(check(&paths.home().join(name), false));
        }
        let mut aside: Vec<PathBuf> = std::fs::read_dir(paths.home())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains(".unreadable-"))
            })
            .collect();
        aside.sort();
        for p in aside {
            let mut c = check(&p, false);
            if c.problem.is_none() {
                c.problem = Some(
                    "an unreadable vault file kept aside earlier; delete it once you no longer need it"
                        .into(),
                );
            }
            c.blocking = false;
            out.push(c);
        }
        out
    }

    /// Whether the encrypted file backend can write here: a temp file (0600, O_EXCL) written,
    /// synced, read back, compared and deleted in the vault directory; or, when the directory
    /// does not exist yet, whether its nearest existing ancestor is a writable directory.
    pub fn probe_file_backend(&self) -> FileProbe {
        let home = self.paths().home();
        match std::fs::symlink_metadata(home) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return FileProbe::Fails(format!("{} is not a directory", home.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // The same check as login's pre-check (`Vault::check_writable`).
                return match crate::store::fsutil::creation_parent(home) {
                    Ok(Some(under)) => FileProbe::WillCreate { under },
                    Ok(None) => FileProbe::Fails(format!(
                        "{} does not exist and no parent of it does",
                        home.display()
                    )),
                    Err(Error::VaultDirNotWritable {
                        blocked, source, ..
                    }) => FileProbe::Fails(format!(
                        "{} does not exist and cannot be created in {} ({source})",
                        home.display(),
                        blocked.display()
                    )),
                    Err(e) => FileProbe::Fails(e.to_string()),
                };
            }
            Err(e) => return FileProbe::Fails(format!("cannot inspect {}: {e}", home.display())),
        }
        sweep_stale_probes(home);
        let started = Instant::now();
        let payload = [0x5au8; 2048];
        let result = (|| -> std::io::Result<()> {
            let mut tmp = tempfile::Builder::new()
                .prefix(PROBE_PREFIX)
                .rand_bytes(PROBE_RANDOM)
                .suffix(PROBE_SUFFIX)
                .tempfile_in(home)?;
            tmp.write_all(&payload)?;
            tmp.as_file().sync_all()?;
            tmp.rewind()?;
            let mut back = Vec::new();
            tmp.read_to_end(&mut back)?;
            if back != payload {
                return Err(std::io::Error::other(
                    "read back different from what was written",
                ));
            }
            tmp.close()
        })();
        match result {
            Ok(()) => FileProbe::Works {
                took: started.elapsed(),
            },
            Err(e) => FileProbe::Fails(format!("cannot write in {}: {e}", home.display())),
        }
    }

    /// Whether `vault.key` opens `vault.enc` on this machine, for this user.
    pub fn check_key(&self) -> KeyCheck {
        let file = crate::store::file::FileBackend::new(self.paths().clone());
        match file.load_contents() {
            Ok(None) => KeyCheck::NoVault,
            Ok(Some(c)) => KeyCheck::Opens {
                profiles: c.profiles.len(),
            },
            Err(e) => KeyCheck::Unreadable(e),
        }
    }

    /// Whether the vault lock can be taken now, and who holds it when not (without waiting and
    /// without creating `vault.lock`).
    pub fn lock_state(&self) -> Result<crate::store::LockState> {
        crate::store::lock::probe(self.paths())
    }

    /// What the file backend's key is bound to on this machine.
    pub fn binding(&self) -> Binding {
        let b = MachineBinding::current();
        Binding {
            machine_id_source: (!b.machine_id.is_empty())
                .then(MachineBinding::machine_id_source)
                .flatten(),
            uid: b.uid,
        }
    }
}

/// The probe's temp files: `.doctor-probe.XXXXXX.tmp`.
const PROBE_PREFIX: &str = ".doctor-probe.";
const PROBE_SUFFIX: &str = ".tmp";
const PROBE_RANDOM: usize = 6;
/// A probe file older than this was left by a doctor that was killed (a probe takes
/// milliseconds).
const PROBE_STALE: Duration = Duration::from_secs(60);

/// True for a name of exactly the probe's pattern.
fn is_probe_name(name: &str) -> bool {
    name.strip_prefix(PROBE_PREFIX)
        .and_then(|rest| rest.strip_suffix(PROBE_SUFFIX))
        .is_some_and(|random| {
            random.len() == PROBE_RANDOM && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Removes probe files a killed `doctor` left: only regular files (never through a link) of
/// exactly the probe's name pattern, owned by this user, older than a minute.
fn sweep_stale_probes(home: &Path) {
    let Ok(entries) = std::fs::read_dir(home) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_str().is_some_and(is_probe_name) {
            continue;
        }
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        #[cfg(unix)]
        let ours = {
            use std::os::unix::fs::MetadataExt;
            meta.uid() == current_uid()
        };
        #[cfg(not(unix))]
        let ours = true;
        let stale = meta
            .modified()
            .ok()
            .and_then(|m| m.elapsed().ok())
            .is_some_and(|age| age >= PROBE_STALE);
        if meta.is_file() && ours && stale {
            match std::fs::remove_file(&path) {
                Ok(()) => tracing::info!(
                    "removed {}, left by a doctor that was stopped",
                    path.display()
                ),
                Err(e) => tracing::debug!("cannot remove {}: {e}", path.display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{BackendKind, BackendMode, VaultPaths};

    #[test]
    fn doctor_and_the_login_pre_check_agree_on_where_a_vault_would_be_made() {
        // A relative KIMI_VAULT_HOME whose parents do not exist: it would be made in the
        // working directory (doctor once said "no parent of it does" while login went ahead).
        let relative = Vault::new(
            VaultPaths::at(PathBuf::from("kimi-vault-test-missing-parent-7f3a/vault")),
            BackendMode::File,
        );
        match relative.probe_file_backend() {
            FileProbe::WillCreate { under } => assert_eq!(under, Path::new(".")),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            relative.check_writable("default").unwrap(),
            BackendKind::File
        );
        assert!(!Path::new("kimi-vault-test-missing-parent-7f3a").exists());

        let dir = tempfile::tempdir().unwrap();
        let absolute = Vault::new(
            VaultPaths::at(dir.path().join("new").join("vault")),
            BackendMode::File,
        );
        match absolute.probe_file_backend() {
            FileProbe::WillCreate { under } => assert_eq!(under, dir.path()),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            absolute.check_writable("default").unwrap(),
            BackendKind::File
        );
    }
}
