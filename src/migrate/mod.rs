//! `migrate`: moves other Kimi tools' plaintext credentials into the vault.
//!
//! Refresh tokens rotate, so migration moves rather than copies: parse, write to the vault, read
//! back and compare, then overwrite the source with zeros, fsync and delete it (a keyring entry:
//! delete it). Any failure before
//! the comparison leaves the source byte for byte as it was. From before a source is read until
//! it is removed, the lock its tool takes around its own refreshes is held (`locks`), and only
//! the very file that was imported is removed (`sources::remove_imported`).
//!
//! The region travels with the credential (a refresh at the other region's host loses it): a
//! kimi-code slot gives its region by its name (`sources::kimi_code_slot_region`), every other
//! source is `cn`, its tool's only region, and a slot of unknown hosts is left untouched unless
//! [`Options::region`] says which region it is. It is never guessed.

pub(crate) mod locks;
pub(crate) mod parse;
pub(crate) mod sources;

use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::clock::rfc3339;
use crate::error::{Error, KeyringError, Result};
use crate::oauth::endpoints::Region;
use crate::store::keyring::KeyringBackend;
use crate::store::{BackendKind, BackendMode, Credential, Vault};
use parse::ParseError;
pub use parse::Tool;
pub use sources::SourceDirs;
use sources::{Candidate, Location};

/// What the user asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// `--from PATH`...: only these sources (`keyring:kimi-code` for the old keyring entry).
    pub from: Vec<PathBuf>,
    /// `--keep`: leave the sources in place.
    pub keep: bool,
    /// `--dry-run`: read and report only.
    pub dry_run: bool,
    /// `--force`: replace an existing credential in the profile.
    pub force: bool,
    /// Target profile.
    pub profile: String,
    /// Where to look.
    pub dirs: SourceDirs,
    /// `--region`: the region of kimi-code slots whose name matches no known region (never
    /// used for a source whose region is known).
    pub region: Option<Region>,
}

/// Why a source is in its list of the report: the library's decision, with the data the
/// command line needs to word it (and to name the command to run next). Never a secret, never
/// a value read from a source.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// A kimi-code slot whose name matches no known region: left untouched, since a credential
    /// refreshed at the wrong region's host is lost ([`Options::region`] says which it is).
    UnknownRegion {
        /// The slot's name.
        slot: String,
        /// The global region's slot name (the cn region's is `kimi-code`).
        global_slot: String,
    },
    /// A source given with `--from` does not exist.
    NoSuchFile,
    /// The old keyring entry was asked for explicitly and is not there.
    NoKeyringEntry,
    /// The old keyring entry was asked for explicitly and the keyring failed.
    Keyring(KeyringError),
    /// The source cannot be used as it is (refused, unreadable, not a Kimi credential,
    /// revoked): what is wrong, in words, never a value from it.
    Unusable(String),
    /// Group or others can write the source file, so it could have been planted: not read.
    Writable {
        /// Its permission bits.
        mode: u32,
    },
    /// The source's tool held its lock for as long as `migrate` waits: it is using the
    /// credential right now. Left untouched.
    ToolBusy {
        /// The tool.
        tool: Tool,
        /// Its lock.
        lock: PathBuf,
        /// How long it was waited for, in seconds.
        waited_seconds: u64,
        /// True for a lock directory that its holder kept fresh meanwhile (kimi-code), false
        /// for a `flock` (kimi-cli: the kernel releases it when its holder ends).
        kept_fresh: bool,
    },
    /// The source's tool's lock could not be taken: left untouched. What happened, in words.
    LockFailed(String),
    /// Another source's tool held its lock: nothing was imported, this one left untouched.
    OtherToolBusy,
    /// A fresher valid credential (at `chosen`) was imported instead; this one can go into
    /// its own profile, `own_profile`.
    NotChosen {
        /// The chosen source's path.
        chosen: String,
        /// The profile this one would go to on its own.
        own_profile: String,
        /// The `--region` that importing it again needs (a kimi-code slot of unknown hosts).
        region: Option<Region>,
    },
    /// The profile already holds a credential that works, and `force` was not given.
    ProfileTaken,
    /// The profile got a credential between the check and the write (`force` not given).
    ProfileTakenMeanwhile,
    /// Dry run: it would be imported.
    WouldImport,
    /// Dry run: it would be removed once the vault copy is verified.
    WouldRemove {
        /// True for the old keyring entry (deleted), false for a file (overwritten with zeros,
        /// then deleted).
        keyring: bool,
    },
    /// Imported into `backend`.
    Imported {
        /// Where it went.
        backend: BackendKind,
    },
    /// Removed after a verified import.
    Removed {
        /// True for the old keyring entry (deleted), false for a file (overwritten with zeros,
        /// then deleted).
        keyring: bool,
    },
    /// Imported, but it could not be removed: why, in words.
    NotRemoved(String),
}

/// One line of the report (never a secret).
#[derive(Debug, Clone)]
pub struct Entry {
    /// Source path (or `keyring:kimi-code`).
    pub path: String,
    /// Tool name.
    pub tool: &'static str,
    /// Profile concerned.
    pub profile: String,
    /// The region the credential belongs to (`cn` or `global`); null when it is not known.
    pub region: Option<&'static str>,
    /// Why it is in its list.
    pub reason: Reason,
    /// Access-token expiry of the source, RFC 3339, when it was read.
    pub expires_at: Option<String>,
}

/// The outcome.
#[derive(Debug, Default)]
pub struct Report {
    /// Imported (or, with `--dry-run`, would be).
    pub imported: Vec<Entry>,
    /// Found and not imported, with the reason.
    pub skipped: Vec<Entry>,
    /// Sources removed after a verified import (or, with `--dry-run`, that would be).
    pub removed: Vec<Entry>,
    /// Sources imported but that could not be removed: still there, with the reason. A copy
    /// left behind breaks whichever install refreshes second, so the command line exits 1.
    pub not_removed: Vec<Entry>,
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// Backend the import went to.
    pub backend: Option<BackendKind>,
    /// Tools whose credential moved (for the "what changes" hints).
    pub moved_tools: Vec<Tool>,
    /// True when an explicit `--from` source did not exist.
    pub missing_explicit: bool,
    /// True when a tool held its lock for longer than `migrate` waits (or it could not be
    /// taken): nothing was imported or removed, and the sources are listed with the reason.
    pub lock_busy: bool,
}

/// A source that parsed.
struct Valid {
    location: Location,
    tool: Tool,
    region: Region,
    parsed: parse::Parsed,
    /// The file as read (identity and bytes), to remove only that very file.
    read: Option<sources::SourceFile>,
    /// opencode-kimi-auth's `.key`, as read: removed with the source.
    key_file: Option<(PathBuf, sources::SourceFile)>,
    /// The keyring entry's value, as read.
    entry: Option<Zeroizing<String>>,
}

/// Test-only fault injection (`KIMI_VAULT_FAULT=readback-mismatch`), to prove that a failed
/// verification leaves the source in place. Compiled only with the `testing` feature.
fn fault(name: &str) -> bool {
    crate::fault::active(name)
}

fn entry(
    location: &Location,
    tool: Option<Tool>,
    region: Option<Region>,
    profile: &str,
    reason: Reason,
) -> Entry {
    Entry {
        path: location.display(),
        tool: tool.map(Tool::name).unwrap_or("unknown"),
        profile: profile.to_owned(),
        region: region.map(Region::as_str),
        reason,
        expires_at: None,
    }
}

/// The region of `tool`'s credential at `location`: a kimi-code slot's from its name (or, for
/// a slot of unknown hosts, `forced`, the `--region` given); `cn` for every other tool, its only
/// region. `Err` is the reason a slot is left untouched.
fn source_region(
    tool: Tool,
    location: &Location,
    forced: Option<Region>,
) -> std::result::Result<Region, Reason> {
    let Tool::KimiCode = tool else {
        return Ok(Region::Cn);
    };
    let slot = match location {
        Location::File(path) => sources::slot_of(path),
        Location::Keyring => None,
    };
    match (slot.and_then(sources::kimi_code_slot_region), forced) {
        (Some(known), _) => Ok(known),
        (None, Some(asked)) => Ok(asked),
        (None, None) => Err(Reason::UnknownRegion {
            slot: slot.unwrap_or("?").to_owned(),
            global_slot: sources::kimi_code_slot(
                crate::oauth::endpoints::OAUTH_HOST_GLOBAL,
                crate::oauth::endpoints::API_BASE_GLOBAL,
            ),
        }),
    }
}

fn candidates(vault: &Vault, opts: &Options) -> Result<Vec<Candidate>> {
    if !opts.from.is_empty() {
        return Ok(opts
            .from
            .iter()
            .map(|p| {
                if p.as_os_str() == sources::KEYRING_SOURCE {
                    Candidate {
                        location: Location::Keyring,
                        tool: Some(Tool::KimiCliKeyring),
                    }
                } else {
                    Candidate {
                        tool: sources::tool_for_path(p),
                        location: Location::File(p.clone()),
                    }
                }
            })
            .collect());
    }
    let mut found = sources::discover(&opts.dirs);
    if vault.mode() != BackendMode::File {
        found.push(Candidate {
            location: Location::Keyring,
            tool: Some(Tool::KimiCliKeyring),
        });
    }
    Ok(found)
}

/// Reads and parses one candidate; `Ok(None)` for an absent keyring entry.
fn read_candidate(
    keyring: &KeyringBackend,
    c: &Candidate,
    explicit: bool,
    forced: Option<Region>,
) -> std::result::Result<Option<Valid>, (Option<Tool>, Reason)> {
    match &c.location {
        Location::Keyring => {
            let (service, user) = sources::KIMI_CLI_KEYRING;
            let value = match keyring.read_any(service, user) {
                Ok(Some(v)) => v,
                Ok(None) if explicit => {
                    return Err((c.tool, Reason::NoKeyringEntry));
                }
                Ok(None) => return Ok(None),
                Err(e) if explicit => return Err((c.tool, Reason::Keyring(e))),
                Err(_) => return Ok(None),
            };
            let parsed = parse::parse(Tool::KimiCliKeyring, value.as_bytes(), None)
                .map_err(|e| (c.tool, Reason::Unusable(e.reason())))?;
            Ok(Some(Valid {
                location: c.location.clone(),
                tool: Tool::KimiCliKeyring,
                region: Region::Cn,
                parsed,
                read: None,
                key_file: None,
                entry: Some(value),
            }))
        }
        Location::File(path) => {
            let file = sources::read_source(path).map_err(|r| (c.tool, r))?;
            let tool = c.tool.unwrap_or_else(|| parse::sniff(&file.bytes));
            let region = source_region(tool, &c.location, forced).map_err(|r| (Some(tool), r))?;
            if let Some(asked) = forced
                && asked != region
            {
                tracing::warn!(
                    "{} is {}'s {} credential (by {}): it is imported as {}, not as the --region given ({}), which is only for kimi-code slots of unknown hosts",
                    path.display(),
                    tool.name(),
                    region.as_str(),
                    if tool == Tool::KimiCode {
                        "its slot name"
                    } else {
                        "its tool, which has no other region"
                    },
                    region.as_str(),
                    asked.as_str()
                );
            }
            let key = (tool == Tool::Opencode)
                .then(|| sources::opencode_key(path))
                .flatten();
            let parsed = parse::parse(
                tool,
                &file.bytes,
                key.as_ref().map(|(_, k)| k.bytes.as_slice()),
            )
            .map_err(|e: ParseError| (Some(tool), Reason::Unusable(e.reason())))?;
            if file.was_readable_by_others {
                tracing::warn!(
                    "{} was readable by other users: the token in it may have been exposed",
                    path.display()
                );
            }
            Ok(Some(Valid {
                location: c.location.clone(),
                tool,
                region,
                parsed,
                read: Some(file),
                key_file: key,
                entry: None,
            }))
        }
    }
}

fn to_credential(p: &parse::Parsed, region: Region) -> Credential {
    let mut cred = Credential::new(
        p.access_token.clone(),
        p.refresh_token.clone(),
        p.expires_at,
    );
    cred.scope = p.scope.clone();
    cred.token_type = p.token_type.clone();
    cred.region = region.as_str().to_owned();
    cred
}

fn same(a: &Credential, b: &Credential) -> bool {
    a.access_token.ct_eq(&b.access_token)
        && a.refresh_token.ct_eq(&b.refresh_token)
        && a.expires_at == b.expires_at
        && a.region == b.region
        && !fault("readback-mismatch")
}

/// Every plaintext credential file of another Kimi tool that `migrate` would look at and that
/// is there (for `doctor`): the path and the tool. Nothing is read.
pub fn discover(dirs: &SourceDirs) -> Vec<(PathBuf, Tool)> {
    sources::discover(dirs)
        .into_iter()
        .filter_map(|c| match (c.location, c.tool) {
            (Location::File(p), Some(tool)) => Some((p, tool)),
            _ => None,
        })
        .collect()
}

/// Takes the locks of the candidates' tools (each lock once), waiting for each at most
/// [`locks::LOCK_WAIT`]: kimi-code's lock directories first, kimi-cli's `flock` last (it is
/// held for a few seconds at most, so its clock starts only when the others are held). `Err`
/// lists the candidates whose tool kept its lock, with the reason.
fn take_locks(
    candidates: &[Candidate],
) -> std::result::Result<Vec<locks::Held>, Vec<(Candidate, Reason)>> {
    let mut held = Vec::new();
    let mut taken: Vec<locks::ToolLock> = Vec::new();
    let mut busy = Vec::new();
    let flock_last = |c: &&Candidate| {
        matches!(
            (&c.location, c.tool),
            (Location::File(p), Some(t)) if matches!(locks::lock_for(t, p), Some(locks::ToolLock::Flock(_)))
        )
    };
    let ordered = candidates
        .iter()
        .filter(|c| !flock_last(c))
        .chain(candidates.iter().filter(flock_last));
    for c in ordered {
        let (Location::File(path), Some(tool)) = (&c.location, c.tool) else {
            continue;
        };
        let Some(lock) = locks::lock_for(tool, path) else {
            continue;
        };
        if taken.contains(&lock) {
            continue;
        }
        match locks::acquire(&lock, tool, locks::LOCK_WAIT) {
            Ok(h) => {
                held.push(h);
                taken.push(lock);
            }
            Err(locks::LockError::Busy { lock, waited }) => busy.push((
                c.clone(),
                Reason::ToolBusy {
                    tool,
                    kept_fresh: matches!(lock, locks::ToolLock::LockDir(_)),
                    lock: lock.path().to_path_buf(),
                    waited_seconds: waited.as_secs(),
                },
            )),
            Err(locks::LockError::Cannot(why)) => {
                busy.push((c.clone(), Reason::LockFailed(why)));
            }
        }
    }
    if busy.is_empty() { Ok(held) } else { Err(busy) }
}

/// A tool kept its lock: it is refreshing its credential right now, which will be the freshest.
/// Nothing is imported or removed; every source is listed with the reason.
/// A candidate's region when it is known without reading it.
fn region_of(c: &Candidate, forced: Option<Region>) -> Option<Region> {
    source_region(c.tool?, &c.location, forced).ok()
}

fn report_busy(
    report: &mut Report,
    candidates: &[Candidate],
    busy: Vec<(Candidate, Reason)>,
    profile: &str,
    forced: Option<Region>,
) {
    report.lock_busy = true;
    for c in candidates {
        let Location::File(path) = &c.location else {
            continue;
        };
        if busy.iter().any(|(b, _)| b.location == c.location)
            || std::fs::symlink_metadata(path).is_err()
        {
            continue;
        }
        report.skipped.push(entry(
            &c.location,
            c.tool,
            region_of(c, forced),
            profile,
            Reason::OtherToolBusy,
        ));
    }
    for (c, reason) in busy {
        report.skipped.push(entry(
            &c.location,
            c.tool,
            region_of(&c, forced),
            profile,
            reason,
        ));
    }
}

/// Removes kimi-cli's old keyring entry, if it still holds what was imported.
fn remove_keyring_entry(
    keyring: &KeyringBackend,
    imported: Option<&str>,
) -> std::result::Result<(), String> {
    let (service, user) = sources::KIMI_CLI_KEYRING;
    let now = keyring.read_any(service, user).map_err(|e| e.to_string())?;
    match (now, imported) {
        (None, _) => Err("it was removed by someone else meanwhile".into()),
        (Some(now), Some(read)) if crate::secret::ct_eq(now.as_bytes(), read.as_bytes()) => keyring
            .delete_any(service, user)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        _ => Err("it was rewritten since it was read: it was left in place".into()),
    }
}

impl Valid {
    /// Its line of the report, with its expiry.
    fn entry(&self, profile: &str, reason: Reason) -> Entry {
        Entry {
            expires_at: Some(rfc3339(self.parsed.expires_at)),
            ..entry(
                &self.location,
                Some(self.tool),
                Some(self.region),
                profile,
                reason,
            )
        }
    }
}

/// Leaves out (and lists) the kimi-code slots of unknown hosts: they are neither locked nor
/// read (unless `--region` says which region they are).
fn skip_unknown_regions(candidates: &mut Vec<Candidate>, report: &mut Report, opts: &Options) {
    candidates.retain(|c| match c.tool {
        Some(tool) => match source_region(tool, &c.location, opts.region) {
            Ok(_) => true,
            Err(reason) => {
                report
                    .skipped
                    .push(entry(&c.location, Some(tool), None, &opts.profile, reason));
                false
            }
        },
        None => true,
    });
}

/// Reads and parses every candidate; those that cannot be used are listed with the reason.
fn read_all(
    keyring: &KeyringBackend,
    candidates: Vec<Candidate>,
    opts: &Options,
    report: &mut Report,
) -> Vec<Valid> {
    let mut valid: Vec<Valid> = Vec::new();
    for c in candidates {
        match read_candidate(keyring, &c, !opts.from.is_empty(), opts.region) {
            Ok(Some(v)) => valid.push(v),
            Ok(None) => {}
            Err((tool, reason)) => {
                if reason == Reason::NoSuchFile {
                    report.missing_explicit = true;
                }
                let region = tool.and_then(|t| source_region(t, &c.location, opts.region).ok());
                report
                    .skipped
                    .push(entry(&c.location, tool, region, &opts.profile, reason));
            }
        }
    }
    valid
}

/// Lists the valid credentials that were not chosen, each with the profile it could go to.
fn list_others(
    report: &mut Report,
    chosen: &Valid,
    others: impl Iterator<Item = Valid>,
    opts: &Options,
) {
    for other in others {
        let own_profile = match other.region {
            Region::Cn => other.tool.name().to_owned(),
            region => format!("{}-{}", other.tool.name(), region.as_str()),
        };
        let region = match (other.tool, opts.region) {
            (Tool::KimiCode, Some(r)) => Some(r),
            _ => None,
        };
        report.skipped.push(other.entry(
            &opts.profile,
            Reason::NotChosen {
                chosen: chosen.location.display(),
                own_profile,
                region,
            },
        ));
    }
}

/// True when the profile holds a credential that works (one that needs a login may be
/// replaced without `--force`).
fn profile_taken(vault: &Vault, profile: &str) -> Result<bool> {
    Ok(vault
        .load(profile)?
        .is_some_and(|existing| !existing.cred.needs_login))
}

/// Writes the chosen credential under the vault lock and reads it back. `Ok(None)` when the
/// profile got a credential meanwhile (and `--force` was not given): nothing was written.
fn import(vault: &Vault, chosen: &Valid, opts: &Options) -> Result<Option<BackendKind>> {
    let profile = opts.profile.as_str();
    let cred = to_credential(&chosen.parsed, chosen.region);
    let lock = vault.lock()?;
    if !opts.force && profile_taken(vault, profile)? {
        return Ok(None);
    }
    let backend = vault.save(profile, &cred, &lock, false)?;
    let back = vault.load(profile)?;
    if !back.is_some_and(|b| same(&b.cred, &cred)) {
        return Err(Error::ReadBackMismatch {
            location: chosen.location.display(),
        });
    }
    Ok(Some(backend))
}

/// Removes the very source that was imported (and opencode-kimi-auth's key beside it). `Err`
/// is why it could not be.
fn remove_source(keyring: &KeyringBackend, chosen: &Valid) -> std::result::Result<(), String> {
    match (&chosen.location, &chosen.read) {
        _ if fault("source-removal") => Err("injected fault (source-removal)".to_owned()),
        (Location::File(path), Some(file)) => {
            sources::remove_imported(path, file.identity, &file.bytes).and_then(|()| match &chosen
                .key_file
            {
                Some((key, k)) => sources::remove_imported(key, k.identity, &k.bytes),
                None => Ok(()),
            })
        }
        _ => remove_keyring_entry(keyring, chosen.entry.as_ref().map(|e| e.as_str())),
    }
}

/// Runs the migration.
pub fn run(vault: &Vault, opts: &Options) -> Result<Report> {
    let keyring = vault.keyring();
    let profile = opts.profile.as_str();
    let mut report = Report {
        dry_run: opts.dry_run,
        ..Report::default()
    };
    let mut candidates = candidates(vault, opts)?;
    skip_unknown_regions(&mut candidates, &mut report, opts);
    // Sources are removed after the import: hold their tools' locks from before they are read.
    let _held = if opts.dry_run || opts.keep {
        Vec::new()
    } else {
        match take_locks(&candidates) {
            Ok(held) => held,
            Err(busy) => {
                report_busy(&mut report, &candidates, busy, profile, opts.region);
                return Ok(report);
            }
        }
    };
    let mut valid = read_all(keyring, candidates, opts, &mut report);
    // Freshest first.
    valid.sort_by_key(|v| std::cmp::Reverse(v.parsed.expires_at));
    let mut valid = valid.into_iter();
    let Some(chosen) = valid.next() else {
        return Ok(report);
    };
    list_others(&mut report, &chosen, valid, opts);

    // Read even with --force: a vault that cannot be read is an error, not overwritten.
    if profile_taken(vault, profile)? && !opts.force {
        report
            .skipped
            .push(chosen.entry(profile, Reason::ProfileTaken));
        return Ok(report);
    }
    if opts.dry_run {
        if !opts.keep {
            report.removed.push(chosen.entry(
                profile,
                Reason::WouldRemove {
                    keyring: chosen.location == Location::Keyring,
                },
            ));
        }
        report
            .imported
            .push(chosen.entry(profile, Reason::WouldImport));
        return Ok(report);
    }

    let Some(backend) = import(vault, &chosen, opts)? else {
        report
            .skipped
            .push(chosen.entry(profile, Reason::ProfileTakenMeanwhile));
        return Ok(report);
    };
    report.backend = Some(backend);
    report.moved_tools.push(chosen.tool);
    report
        .imported
        .push(chosen.entry(profile, Reason::Imported { backend }));
    if fault("slow-import") {
        // Test-only: a slow import (a keyring that takes its time), to show that kimi-cli's
        // flock is not held past its limit.
        std::thread::sleep(std::time::Duration::from_secs(5));
    }

    if opts.keep {
        tracing::warn!(
            "--keep: {} is still there. Refresh tokens rotate: whichever of kimi-vault and {} refreshes second will be logged out",
            chosen.location.display(),
            chosen.tool.name()
        );
        return Ok(report);
    }
    report_removal(&mut report, keyring, &chosen, profile);
    Ok(report)
}

/// Removes the imported source and lists it as removed, or as still there with the reason.
fn report_removal(report: &mut Report, keyring: &KeyringBackend, chosen: &Valid, profile: &str) {
    match remove_source(keyring, chosen) {
        Ok(()) => report.removed.push(chosen.entry(
            profile,
            Reason::Removed {
                keyring: chosen.location == Location::Keyring,
            },
        )),
        Err(why) => {
            tracing::warn!(
                "imported {}, but could not remove it ({why}). Delete it yourself: refresh tokens rotate, and a copy left behind breaks whichever install refreshes second",
                chosen.location.display()
            );
            report
                .not_removed
                .push(chosen.entry(profile, Reason::NotRemoved(why)));
        }
    }
}
