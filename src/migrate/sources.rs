//! Where other Kimi tools keep their plaintext credentials, and reading them carefully: no
//! symlinks, regular files owned by the user, not writable by others, of sane size.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::migrate::Reason;
use crate::migrate::parse::Tool;
use crate::oauth::endpoints::{
    API_BASE_CN, API_BASE_GLOBAL, OAUTH_HOST_CN, OAUTH_HOST_GLOBAL, Region,
};
use crate::store::fsutil;

/// Largest source file read.
pub(crate) const MAX_SOURCE_BYTES: u64 = 64 * 1024;
/// `--from` value naming kimi-cli's old keyring entry.
pub(crate) const KEYRING_SOURCE: &str = "keyring:kimi-code";
/// kimi-cli's old keyring entry.
pub(crate) const KIMI_CLI_KEYRING: (&str, &str) = ("kimi-code", "oauth/kimi-code");

/// Where a credential comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Location {
    /// A file.
    File(PathBuf),
    /// kimi-cli's old keyring entry.
    Keyring,
}

impl Location {
    /// For reports.
    pub fn display(&self) -> String {
        match self {
            Location::File(p) => p.display().to_string(),
            Location::Keyring => KEYRING_SOURCE.to_owned(),
        }
    }
}

/// kimi-code's slot of the default (cn) hosts: `credentials/kimi-code.json`.
pub(crate) const KIMI_CODE_DEFAULT_SLOT: &str = "kimi-code";
/// The prefix of kimi-code's other slots: `kimi-code-env-<16 hex digits>`.
pub(crate) const KIMI_CODE_ENV_SLOT_PREFIX: &str = "kimi-code-env-";

/// The slot kimi-code keeps a login of these hosts in (its `resolveKimiCodeOAuthKey`): the
/// default hosts share `kimi-code`; any other pair is `kimi-code-env-` and the first 16 hex
/// digits of SHA-256 of `{"oauthHost":"<host>","baseUrl":"<base>"}` (JSON, no spaces, trailing
/// slashes removed).
pub(crate) fn kimi_code_slot(oauth_host: &str, api_base: &str) -> String {
    let (host, base) = (
        oauth_host.trim().trim_end_matches('/'),
        api_base.trim().trim_end_matches('/'),
    );
    if host == OAUTH_HOST_CN && base == API_BASE_CN {
        KIMI_CODE_DEFAULT_SLOT.to_owned()
    } else {
        env_slot(host, base)
    }
}

fn env_slot(host: &str, base: &str) -> String {
    use sha2::{Digest, Sha256};
    // In this key order, as JavaScript's JSON.stringify writes it (a serde_json map would
    // sort the keys).
    let quoted = |v: &str| serde_json::to_string(v).expect("a string serializes");
    let json = format!(
        r#"{{"oauthHost":{},"baseUrl":{}}}"#,
        quoted(host),
        quoted(base)
    );
    let digest = crate::store::crypto::hex(&Sha256::digest(json.as_bytes()));
    format!("{KIMI_CODE_ENV_SLOT_PREFIX}{}", &digest[..16])
}

/// The region of a kimi-code slot, when the slot is that of a known region's hosts (`None`:
/// other hosts, or no slot name at all; a region is never guessed).
pub(crate) fn kimi_code_slot_region(slot: &str) -> Option<Region> {
    [
        (Region::Cn, OAUTH_HOST_CN, API_BASE_CN),
        (Region::Global, OAUTH_HOST_GLOBAL, API_BASE_GLOBAL),
    ]
    .into_iter()
    .find(|(_, host, base)| slot == kimi_code_slot(host, base) || slot == env_slot(host, base))
    .map(|(region, ..)| region)
}

/// The slot of a kimi-code credential file: its name without `.json`.
pub(crate) fn slot_of(path: &Path) -> Option<&str> {
    path.file_name()?.to_str()?.strip_suffix(".json")
}

/// A place to look, with the tool it belongs to (`None`: guess from the content).
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    /// Where.
    pub location: Location,
    /// Whose format.
    pub tool: Option<Tool>,
}

/// Where other tools keep their files: the home directory and the tools' own overrides
/// (`KIMI_SHARE_DIR`, `KIMI_CODE_HOME`, `RODER_DATA_DIR`, `RODER_CONFIG_DIR` on the command
/// line).
#[derive(Debug, Clone, Default)]
pub struct SourceDirs {
    /// The user's home directory.
    pub home: PathBuf,
    /// kimi-cli's share directory (default `~/.kimi`).
    pub kimi_share_dir: Option<PathBuf>,
    /// kimi-code's home (default `~/.kimi-code`).
    pub kimi_code_home: Option<PathBuf>,
    /// Roder's data directory.
    pub roder_data_dir: Option<PathBuf>,
    /// Roder's config directory.
    pub roder_config_dir: Option<PathBuf>,
}

fn nonempty(p: &Option<PathBuf>) -> Option<PathBuf> {
    p.clone().filter(|p| !p.as_os_str().is_empty())
}

fn files_matching(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix) && n.ends_with(".json"))
        })
        .collect();
    found.sort();
    found
}

/// Every known location that exists (as anything, even a symlink), in a stable order.
pub(crate) fn discover(dirs: &SourceDirs) -> Vec<Candidate> {
    let home = &dirs.home;
    let mut out: Vec<(PathBuf, Tool)> = Vec::new();
    let kimi_share = nonempty(&dirs.kimi_share_dir).unwrap_or_else(|| home.join(".kimi"));
    out.push((kimi_share.join("credentials/kimi-code.json"), Tool::KimiCli));
    let kimi_code = nonempty(&dirs.kimi_code_home).unwrap_or_else(|| home.join(".kimi-code"));
    for p in files_matching(&kimi_code.join("credentials"), "kimi-code") {
        out.push((p, Tool::KimiCode));
    }
    for dir in [
        nonempty(&dirs.roder_data_dir),
        nonempty(&dirs.roder_config_dir),
        Some(home.join(".roder")),
    ]
    .into_iter()
    .flatten()
    {
        out.push((dir.join("auth/kimi-code.json"), Tool::Roder));
    }
    for p in files_matching(&home.join(".cli-proxy-api"), "kimi-") {
        out.push((p, Tool::CliProxyApi));
    }
    out.push((home.join(".opencode-kimi-auth/oauth.json"), Tool::Opencode));
    let mut seen = std::collections::HashSet::new();
    out.into_iter()
        .filter(|(p, _)| fs::symlink_metadata(p).is_ok())
        .filter(|(p, _)| seen.insert(p.clone()))
        .map(|(p, tool)| Candidate {
            location: Location::File(p),
            tool: Some(tool),
        })
        .collect()
}

/// The tool a `--from` path belongs to, from where it is (or `None`: sniff the content).
pub(crate) fn tool_for_path(path: &Path) -> Option<Tool> {
    let name = path.file_name()?.to_str()?;
    let parent = path
        .parent()
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    let grand = path
        .parent()
        .and_then(Path::parent)
        .and_then(|p| p.file_name())
        .and_then(|n| n.to_str());
    match (grand, parent, name) {
        (Some(".kimi"), Some("credentials"), "kimi-code.json") => Some(Tool::KimiCli),
        (Some(".kimi-code"), Some("credentials"), n) if n.starts_with("kimi-code") => {
            Some(Tool::KimiCode)
        }
        (_, Some("auth"), "kimi-code.json") => Some(Tool::Roder),
        (_, Some(".cli-proxy-api"), n) if n.starts_with("kimi-") => Some(Tool::CliProxyApi),
        (_, Some(".opencode-kimi-auth"), "oauth.json") => Some(Tool::Opencode),
        _ => None,
    }
}

/// A source file read and checked; `identity` pins the file for the later removal.
pub(crate) struct SourceFile {
    /// The bytes, wiped on drop.
    pub bytes: Zeroizing<Vec<u8>>,
    /// (device, inode) of what was read.
    pub identity: (u64, u64),
    /// True when group or others could read it (the token may have been exposed).
    pub was_readable_by_others: bool,
}

/// Reads a source file, refusing what must not be trusted or followed. `Err` is the reason.
pub(crate) fn read_source(path: &Path) -> Result<SourceFile, Reason> {
    let file = fsutil::open_nofollow(path, false).map_err(|e| {
        if fsutil::is_symlink_error(&e) {
            Reason::Unusable("it is a symbolic link: not followed".to_owned())
        } else if e.kind() == std::io::ErrorKind::NotFound {
            Reason::NoSuchFile
        } else {
            Reason::Unusable(format!("cannot open it: {e}"))
        }
    })?;
    read_opened(file).map_err(|refused| match refused {
        Refusal::Writable { mode } => Reason::Writable { mode },
        Refusal::Other(why) => Reason::Unusable(why),
    })
}

/// Why a source file is not read (or not removed).
enum Refusal {
    /// Group or others can write it: it could have been planted.
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// Anything else, in words.
    Other(String),
}

impl From<String> for Refusal {
    fn from(why: String) -> Self {
        Refusal::Other(why)
    }
}

/// Reads the opened source file, within the size limit, if it is one of ours.
fn read_opened(file: File) -> Result<SourceFile, Refusal> {
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect it: {e}"))?;
    let (identity, readable) = check_source(&meta)?;
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(Refusal::Other(format!(
            "it is {} bytes, far larger than a credential file",
            meta.len()
        )));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read it: {e}"))?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(Refusal::Other(
            "it grew past the size limit while being read".into(),
        ));
    }
    Ok(SourceFile {
        bytes,
        identity,
        was_readable_by_others: readable,
    })
}

#[cfg(unix)]
fn check_source(meta: &fs::Metadata) -> Result<((u64, u64), bool), Refusal> {
    use std::os::unix::fs::MetadataExt;
    if !meta.is_file() {
        return Err(Refusal::Other("it is not a regular file".into()));
    }
    let uid = fsutil::current_uid();
    if meta.uid() != uid {
        return Err(Refusal::Other(format!(
            "it is owned by uid {}, not by you (uid {uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Refusal::Writable {
            mode: meta.mode() & 0o777,
        });
    }
    Ok(((meta.dev(), meta.ino()), meta.mode() & 0o044 != 0))
}

#[cfg(not(unix))]
fn check_source(meta: &fs::Metadata) -> Result<((u64, u64), bool), Refusal> {
    if !meta.is_file() {
        return Err(Refusal::Other("it is not a regular file".into()));
    }
    Ok(((0, 0), false))
}

/// opencode-kimi-auth's `.key` beside `oauth.json`, read with the same care, and its path.
pub(crate) fn opencode_key(path: &Path) -> Option<(PathBuf, SourceFile)> {
    let key = path.with_file_name(".key");
    read_source(&key).ok().map(|file| (key, file))
}

/// Removes the very file that was imported, and nothing else: the file at `path` is first
/// renamed aside (atomically, to a name nobody else uses), then checked against what was read
/// (same device and inode, a regular file of ours, byte for byte the same content); only then
/// is it overwritten with zeros, fsynced, deleted, and its directory fsynced. Anything else
/// (another tool rewrote the file meanwhile) is put back where it was, or, when a newer file
/// took that place in the meantime, kept beside it under the aside name. `Err` is the reason.
pub(crate) fn remove_imported(
    path: &Path,
    identity: (u64, u64),
    read: &[u8],
) -> Result<(), String> {
    use std::io::Write;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err("it has no directory".into());
    };
    let mut stamp = [0u8; 4];
    let _ = crate::error::random_fill(&mut stamp);
    let mut aside_name = std::ffi::OsString::from(".");
    aside_name.push(name);
    aside_name.push(format!(
        ".kimi-vault-{}-{}.removing",
        std::process::id(),
        crate::store::crypto::hex(&stamp)
    ));
    let aside = dir.join(aside_name);
    fs::rename(path, &aside).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            "it was removed by someone else meanwhile".to_owned()
        } else {
            format!("cannot move it aside for removal: {e}")
        }
    })?;
    match same_file(&aside, identity, read) {
        Ok(mut file) => {
            let zeros = vec![0u8; read.len()];
            file.write_all(&zeros)
                .and_then(|()| file.sync_all())
                .map_err(|e| format!("cannot overwrite it: {e} (it is at {})", aside.display()))?;
            drop(file);
            fs::remove_file(&aside).map_err(|e| format!("cannot delete it: {e}"))?;
            fsutil::sync_dir(dir).map_err(|e| e.to_string())
        }
        Err(why) => {
            // Not what was imported: put it back, without replacing a newer file.
            let back = match fs::hard_link(&aside, path) {
                Ok(()) => {
                    let _ = fs::remove_file(&aside);
                    format!("{why}: it was put back, not removed")
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => format!(
                    "{why}; a newer file took its place meanwhile, so the one that was there is kept as {}",
                    aside.display()
                ),
                Err(e) => format!(
                    "{why}; it could not be put back ({e}) and is kept as {}",
                    aside.display()
                ),
            };
            let _ = fsutil::sync_dir(dir);
            Err(back)
        }
    }
}

/// The file at `aside`, opened for writing, if it is the regular file of ours that was read:
/// same (device, inode), same content.
fn same_file(aside: &Path, identity: (u64, u64), read: &[u8]) -> Result<File, String> {
    let mut file = fsutil::open_nofollow(aside, true).map_err(|e| {
        if fsutil::is_symlink_error(&e) {
            "it was replaced by a symbolic link since it was read".to_owned()
        } else {
            format!("cannot open it for removal: {e}")
        }
    })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot inspect it: {e}"))?;
    let (now, _) = check_source(&meta).map_err(|refused| match refused {
        Refusal::Writable { mode } => format!(
            "it is writable by group or others (mode {mode:o}), so it could have been planted"
        ),
        Refusal::Other(why) => why,
    })?;
    if now != identity {
        return Err("it was replaced by another file since it was read".into());
    }
    let mut content = Zeroizing::new(Vec::with_capacity(read.len() + 1));
    (&mut file)
        .take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut content)
        .map_err(|e| format!("cannot read it again: {e}"))?;
    if !crate::secret::ct_eq(&content, read) {
        return Err("it was rewritten since it was read".into());
    }
    std::io::Seek::rewind(&mut file).map_err(|e| format!("cannot rewind it: {e}"))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_source_is_a_typed_reason() {
        let dir = tempfile::tempdir().unwrap();
        let missing = read_source(&dir.path().join("absent.json")).err();
        assert_eq!(missing, Some(Reason::NoSuchFile));
        std::fs::create_dir(dir.path().join("d")).unwrap();
        assert!(matches!(
            read_source(&dir.path().join("d")).err(),
            Some(Reason::Unusable(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_source_others_can_write_is_a_typed_reason() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kimi-code.json");
        std::fs::write(&path, b"{}").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o622)).unwrap();
        assert_eq!(
            read_source(&path).err(),
            Some(Reason::Writable { mode: 0o622 })
        );
    }

    #[test]
    fn kimi_code_slots_give_the_region() {
        // The global slot, as kimi-code names it (SPEC §6).
        assert_eq!(
            kimi_code_slot(OAUTH_HOST_GLOBAL, API_BASE_GLOBAL),
            "kimi-code-env-0e4f99c69cc27850"
        );
        assert_eq!(
            kimi_code_slot("https://auth.kimi.ai/", "https://api.kimi.ai/coding/v1/"),
            "kimi-code-env-0e4f99c69cc27850",
            "trailing slashes do not count"
        );
        assert_eq!(kimi_code_slot(OAUTH_HOST_CN, API_BASE_CN), "kimi-code");
        assert_eq!(kimi_code_slot_region("kimi-code"), Some(Region::Cn));
        assert_eq!(
            kimi_code_slot_region("kimi-code-env-0e4f99c69cc27850"),
            Some(Region::Global)
        );
        // Other hosts (a staging server, a proxy), or no slot name at all: unknown.
        let other = kimi_code_slot("https://auth.example.kimi.com", API_BASE_CN);
        assert!(other.starts_with("kimi-code-env-") && other.len() == 30);
        for unknown in [other.as_str(), "kimi-code-env-", "kimi-code-main", "x"] {
            assert_eq!(kimi_code_slot_region(unknown), None, "{unknown}");
        }
        assert_eq!(
            slot_of(Path::new("/h/.kimi-code/credentials/kimi-code.json")),
            Some("kimi-code")
        );
    }
}
