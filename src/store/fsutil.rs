//! Careful file handling for the vault directory: private directory, files opened without
//! following symlinks and checked for owner and mode, atomic durable writes, exclusive creation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, VaultProblem};
use crate::secret::SecretBytes;

/// The effective user id of this process (0 where there is no such notion).
pub(crate) fn current_uid() -> u32 {
    #[cfg(unix)]
    {
        rustix::process::geteuid().as_raw()
    }
    #[cfg(not(unix))]
    {
        0
    }
}

#[cfg(unix)]
fn nofollow_flags() -> i32 {
    libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK
}

/// True when an open with `O_NOFOLLOW` failed because the path is a symlink.
pub(crate) fn is_symlink_error(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        e.raw_os_error() == Some(libc::ELOOP)
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        false
    }
}

fn symlink_refused(path: &Path) -> Error {
    Error::vault(
        path,
        VaultProblem::Unsafe("it is a symbolic link, and kimi-vault never follows links".into()),
    )
}

fn directory_refused(dir: &Path, why: String) -> Error {
    Error::vault(dir, VaultProblem::Directory(why))
}

/// Checks the vault directory without creating anything; `Ok(false)` when it does not exist.
///
/// Refused: not a directory, owned by someone else, writable by group or others, or sticky
/// (a shared directory such as /tmp: others could plant or swap files in it). Its mode is never
/// changed (SPEC §4: a directory the tool did not create keeps the mode its owner gave it;
/// merely readable by group or others is allowed: the files in it are 0600).
pub(crate) fn check_dir(dir: &Path) -> Result<bool> {
    let meta = match fs::metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) if e.kind() == io::ErrorKind::NotADirectory => {
            return Err(directory_refused(
                dir,
                "a part of its path is not a directory".into(),
            ));
        }
        Err(e) => return Err(Error::io(format!("cannot inspect {}", dir.display()), e)),
    };
    if !meta.is_dir() {
        return Err(directory_refused(dir, "it is not a directory".into()));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = current_uid();
        if meta.uid() != uid {
            return Err(directory_refused(
                dir,
                format!("it is owned by uid {}, not by you (uid {uid})", meta.uid()),
            ));
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o1000 != 0 {
            return Err(directory_refused(
                dir,
                format!("it is a shared directory (mode {mode:o}, sticky)"),
            ));
        }
        if mode & 0o022 != 0 {
            return Err(directory_refused(
                dir,
                format!(
                    "it is writable by group or others (mode {mode:o}), who could replace the vault's files"
                ),
            ));
        }
    }
    Ok(true)
}

/// Checks that this process can create and replace files in `dir` (write and search
/// permission), without creating anything; `home` is the vault directory the check is for
/// (named in the error).
pub(crate) fn check_writable_dir(dir: &Path, home: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use rustix::fs::{Access, access};
        access(dir, Access::WRITE_OK | Access::EXEC_OK).map_err(|e| Error::VaultDirNotWritable {
            home: home.to_owned(),
            blocked: dir.to_owned(),
            source: io::Error::from(e),
        })
    }
    #[cfg(not(unix))]
    {
        let _ = (dir, home);
        Ok(())
    }
}

/// Where the missing vault directory `home` would be created: the nearest ancestor that exists,
/// which must be a directory this user can write in (else [`Error::VaultDirNotWritable`], or
/// [`VaultProblem::Directory`] when it is not a directory). `Ok(None)`: no ancestor exists
/// (a relative path under a working directory that was removed). The one "can a vault be made
/// here" check: login's pre-check and `doctor` both use it.
pub(crate) fn creation_parent(home: &Path) -> Result<Option<PathBuf>> {
    let mut ancestor = home.parent();
    while let Some(dir) = ancestor {
        // A relative path's last parent is empty: the working directory.
        let (dir, last) = if dir.as_os_str().is_empty() {
            (Path::new("."), true)
        } else {
            (dir, false)
        };
        match fs::metadata(dir) {
            Ok(meta) if meta.is_dir() => {
                check_writable_dir(dir, home)?;
                return Ok(Some(dir.to_owned()));
            }
            Ok(_) => {
                return Err(Error::vault(
                    home,
                    VaultProblem::Directory(format!("{} is not a directory", dir.display())),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                ancestor = if last { None } else { dir.parent() };
            }
            Err(e) => return Err(Error::io(format!("cannot inspect {}", dir.display()), e)),
        }
    }
    Ok(None)
}

/// Checks the vault directory, or creates it (and any missing parent) with mode 0700 when it
/// does not exist. Directories that exist keep their mode (see [`check_dir`]).
pub(crate) fn ensure_private_dir(dir: &Path) -> Result<()> {
    if check_dir(dir)? {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied | io::ErrorKind::ReadOnlyFilesystem => {
            // Name the directory that refused: the nearest one that exists.
            let blocked = dir
                .ancestors()
                .skip(1)
                .find(|a| a.is_dir())
                .unwrap_or(dir)
                .to_owned();
            Error::VaultDirNotWritable {
                home: dir.to_owned(),
                blocked,
                source: e,
            }
        }
        _ => Error::io(format!("cannot create {}", dir.display()), e),
    })?;
    // Another process may have made it meanwhile, with another mode: check what is there.
    check_dir(dir).map(|_| ())
}

#[cfg(unix)]
fn mode_permissions(mode: u32) -> fs::Permissions {
    std::os::unix::fs::PermissionsExt::from_mode(mode)
}
#[cfg(not(unix))]
fn mode_permissions(_mode: u32) -> fs::Permissions {
    unreachable!("no modes off unix")
}

/// Refuses files owned by someone else; repairs group/other permission bits, calling
/// `before_repair` with the mode found first. Returns that mode when it repaired one (the
/// caller warns).
fn check_owner_and_mode(
    path: &Path,
    meta: &fs::Metadata,
    wanted: u32,
    before_repair: &dyn Fn(u32),
    repair: impl FnOnce(u32) -> io::Result<()>,
) -> Result<Option<u32>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = current_uid();
        if meta.uid() != uid {
            return Err(Error::vault(
                path,
                VaultProblem::Unsafe(format!(
                    "it is owned by uid {}, not by you (uid {uid})",
                    meta.uid()
                )),
            ));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            before_repair(mode);
            repair(wanted).map_err(|e| {
                Error::io(
                    format!("cannot repair permissions of {}", path.display()),
                    e,
                )
            })?;
            return Ok(Some(mode));
        }
        Ok(None)
    }
    #[cfg(not(unix))]
    {
        let _ = (path, meta, wanted, before_repair, repair);
        Ok(None)
    }
}

/// The warning for a vault file found too open (and repaired).
fn warn_repaired(path: &Path, mode: u32) {
    tracing::warn!(
        "{} had mode {mode:o} (readable or writable by others); repaired to 600. If others could read it, consider its secrets exposed and log in again",
        path.display()
    );
}

/// Opens a file without following a symlink (`O_NOFOLLOW`, and `O_NONBLOCK` so a FIFO cannot
/// block), for reading, or for reading and writing.
pub(crate) fn open_nofollow(path: &Path, write: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(write);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut options, nofollow_flags());
    options.open(path)
}

/// An existing vault file opened for reading without following a symlink, checked to be a
/// regular file owned by us; a too-open mode is repaired, and reported as the mode found.
/// `Ok(None)` when it does not exist.
fn open_checked(path: &Path, before_repair: &dyn Fn(u32)) -> Result<Option<(File, Option<u32>)>> {
    let file = match open_nofollow(path, false) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) if is_symlink_error(&e) => return Err(symlink_refused(path)),
        Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
    };
    let repaired = check_open_file(path, &file, before_repair)?;
    Ok(Some((file, repaired)))
}

/// Opens an existing vault file for reading without following a symlink, and checks that it
/// is a regular file owned by us (repairing too-open modes with a warning). `Ok(None)` when it
/// does not exist.
pub(crate) fn open_private(path: &Path) -> Result<Option<File>> {
    Ok(open_checked(path, &|_| {})?.map(|(file, repaired)| {
        if let Some(mode) = repaired {
            warn_repaired(path, mode);
        }
        file
    }))
}

fn check_open_file(path: &Path, file: &File, before_repair: &dyn Fn(u32)) -> Result<Option<u32>> {
    let meta = file
        .metadata()
        .map_err(|e| Error::io(format!("cannot inspect {}", path.display()), e))?;
    if !meta.is_file() {
        return Err(Error::vault(
            path,
            VaultProblem::Unsafe("it is not a regular file".into()),
        ));
    }
    check_owner_and_mode(path, &meta, 0o600, before_repair, |mode| {
        file.set_permissions(mode_permissions(mode))
    })
}

/// Reads a whole vault file of at most `max` bytes into a buffer sized from the file's length
/// (so that growing it leaves no copies behind), wiped on drop. `Ok(None)` when it does not
/// exist. A too-open mode is repaired with a warning.
pub(crate) fn read_private(path: &Path, max: u64) -> Result<Option<SecretBytes>> {
    Ok(
        read_private_noting(path, max, &|_| {})?.map(|(data, repaired)| {
            if let Some(mode) = repaired {
                warn_repaired(path, mode);
            }
            data
        }),
    )
}

/// [`read_private`] without the warning: calls `before_repair` with a too-open mode before it
/// repairs it, and returns that mode.
pub(crate) fn read_private_noting(
    path: &Path,
    max: u64,
    before_repair: &dyn Fn(u32),
) -> Result<Option<(SecretBytes, Option<u32>)>> {
    let Some((file, repaired)) = open_checked(path, before_repair)? else {
        return Ok(None);
    };
    let capacity = file.metadata().map(|m| m.len().min(max) + 1).unwrap_or(0);
    let mut data = SecretBytes::new(Vec::with_capacity(capacity as usize));
    let read = data.with_vec(|buf| (&file).take(max + 1).read_to_end(buf));
    read.map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    if data.len() as u64 > max {
        return Err(Error::vault(
            path,
            VaultProblem::Corrupt(format!("larger than {max} bytes")),
        ));
    }
    Ok(Some((data, repaired)))
}

/// Opens (creating with mode 0600 if needed) a file for locking, never through a symlink.
pub(crate) fn open_lock_file(path: &Path) -> Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(nofollow_flags());
    }
    let file = match options.open(path) {
        Ok(f) => f,
        Err(e) if is_symlink_error(&e) => return Err(symlink_refused(path)),
        Err(e) if e.kind() == io::ErrorKind::IsADirectory => {
            return Err(Error::vault(
                path,
                VaultProblem::Unsafe("it is not a regular file".into()),
            ));
        }
        Err(e) => return Err(Error::io(format!("cannot open {}", path.display()), e)),
    };
    if let Some(mode) = check_open_file(path, &file, &|_| {})? {
        warn_repaired(path, mode);
    }
    Ok(file)
}

/// Creates an empty marker file (0600, never through a symlink); false when it existed.
pub(crate) fn create_marker(path: &Path) -> Result<bool> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600).custom_flags(nofollow_flags());
    }
    match options.open(path) {
        Ok(file) => {
            file.sync_all()
                .map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
            if let Some(dir) = path.parent() {
                sync_dir(dir)?;
            }
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(format!("cannot create {}", path.display()), e)),
    }
}

/// Removes a file if it exists (never following a symlink: a link is removed itself).
pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("cannot remove {}", path.display()), e)),
    }
}

/// Removes temp files that a killed writer left behind (`.NAME.*.tmp`). Only call it while
/// holding the vault lock: then no live writer of NAME has one open.
pub(crate) fn sweep_stale_temps(dir: &Path, name: &str) {
    let prefix = format!(".{name}.");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(n) = file_name.to_str() else {
            continue;
        };
        let is_regular = entry.file_type().is_ok_and(|t| t.is_file());
        if n.starts_with(&prefix) && n.ends_with(".tmp") && is_regular {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn temp_in(dir: &Path, name: &str, data: &[u8]) -> Result<tempfile::NamedTempFile> {
    let ctx = || format!("cannot write a temporary file in {}", dir.display());
    // tempfile creates with O_CREAT|O_EXCL and mode 0600 on Unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io(ctx(), e))?;
    tmp.write_all(data).map_err(|e| Error::io(ctx(), e))?;
    tmp.as_file().sync_all().map_err(|e| Error::io(ctx(), e))?;
    Ok(tmp)
}

/// Flushes a directory's entries to disk (after a rename or link).
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(format!("cannot sync directory {}", dir.display()), e))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Replaces `dir/name` with `data` atomically and durably: temp file in the same directory,
/// write, fsync, rename, fsync the directory. A crash leaves the old or the new file.
/// The caller holds the vault lock.
pub(crate) fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let target = dir.join(name);
    let tmp = temp_in(dir, name, data)?;
    tmp.persist(&target)
        .map_err(|e| Error::io(format!("cannot replace {}", target.display()), e.error))?;
    sync_dir(dir)
}

/// Creates `dir/name` holding `data` only if nothing of that name exists (not even a symlink),
/// atomically: the file appears complete or not at all. Returns false when it already existed.
pub(crate) fn create_exclusive(dir: &Path, name: &str, data: &[u8]) -> Result<bool> {
    let target = dir.join(name);
    let tmp = temp_in(dir, name, data)?;
    let created = match fs::hard_link(tmp.path(), &target) {
        Ok(()) => true,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
        Err(e) => return Err(Error::io(format!("cannot create {}", target.display()), e)),
    };
    drop(tmp);
    sync_dir(dir)?;
    Ok(created)
}

/// Renames `path` to `path.unreadable-<UTC time>` (`20261201T164500Z`) so that nothing
/// overwrites it; returns the new name.
pub(crate) fn set_aside(path: &Path) -> Result<PathBuf> {
    let now = crate::clock::now_unix();
    let stamp = time::OffsetDateTime::from_unix_timestamp(now)
        .map(|t| {
            format!(
                "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            )
        })
        .unwrap_or_else(|_| now.to_string());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".unreadable-{stamp}"));
    let mut aside = PathBuf::from(name);
    let mut n = 1;
    while fs::symlink_metadata(&aside).is_ok() {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".unreadable-{stamp}-{n}"));
        aside = PathBuf::from(name);
        n += 1;
    }
    fs::rename(path, &aside)
        .map_err(|e| Error::io(format!("cannot move {} aside", path.display()), e))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(aside)
}
