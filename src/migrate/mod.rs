//! `migrate`: moves other Kimi tools' plaintext credentials into the vault.
//!
//! Refresh tokens rotate, so migration moves rather than copies: parse, write to the vault, read
//! back and compare, then overwrite the source with zeros, fsync and delete it. Any failure before
//! the comparison leaves the source byte for byte as it was.

pub(crate) mod parse;
pub(crate) mod sources;

use std::path::PathBuf;

use crate::clock::rfc3339;
use crate::error::{Error, Result};
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
}

/// One line of the report (never a secret).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Entry {
    /// Source path (or `keyring:kimi-code`).
    pub path: String,
    /// Tool name.
    pub tool: &'static str,
    /// Profile concerned.
    pub profile: String,
    /// Why, in words.
    pub reason: String,
    /// Access-token expiry of the source, RFC 3339, when it was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

/// The outcome.
#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    /// Imported (or, with `--dry-run`, would be).
    pub imported: Vec<Entry>,
    /// Found and not imported, with the reason.
    pub skipped: Vec<Entry>,
    /// Sources removed after a verified import (or, with `--dry-run`, that would be).
    pub removed: Vec<Entry>,
    /// True for `--dry-run`.
    pub dry_run: bool,
    /// Backend the import went to.
    #[serde(skip)]
    pub backend: Option<BackendKind>,
    /// Tools whose credential moved (for the "what changes" hints).
    #[serde(skip)]
    pub moved_tools: Vec<Tool>,
    /// True when an explicit `--from` source did not exist.
    #[serde(skip)]
    pub missing_explicit: bool,
}

/// A source that parsed.
struct Valid {
    location: Location,
    tool: Tool,
    parsed: parse::Parsed,
    identity: Option<(u64, u64)>,
    /// opencode-kimi-auth's `.key`, as read: removed with the source.
    key_file: Option<(PathBuf, (u64, u64))>,
}

/// Test-only fault injection (`KIMI_VAULT_FAULT=readback-mismatch`), to prove that a failed
/// verification leaves the source in place. Compiled only with the `testing` feature.
fn fault(name: &str) -> bool {
    crate::fault::active(name)
}

fn entry(
    location: &Location,
    tool: Option<Tool>,
    profile: &str,
    reason: impl Into<String>,
) -> Entry {
    Entry {
        path: location.display(),
        tool: tool.map(Tool::name).unwrap_or("unknown"),
        profile: profile.to_owned(),
        reason: reason.into(),
        expires_at: None,
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
) -> std::result::Result<Option<Valid>, (Option<Tool>, String)> {
    match &c.location {
        Location::Keyring => {
            let (service, user) = sources::KIMI_CLI_KEYRING;
            let value = match keyring.read_any(service, user) {
                Ok(Some(v)) => v,
                Ok(None) if explicit => {
                    return Err((c.tool, "there is no such keyring entry".into()));
                }
                Ok(None) => return Ok(None),
                Err(e) if explicit => return Err((c.tool, e.to_string())),
                Err(_) => return Ok(None),
            };
            let parsed = parse::parse(Tool::KimiCliKeyring, value.as_bytes(), None)
                .map_err(|e| (c.tool, e.reason()))?;
            Ok(Some(Valid {
                location: c.location.clone(),
                tool: Tool::KimiCliKeyring,
                parsed,
                identity: None,
                key_file: None,
            }))
        }
        Location::File(path) => {
            let file = sources::read_source(path).map_err(|r| (c.tool, r))?;
            let tool = c.tool.unwrap_or_else(|| parse::sniff(&file.bytes));
            let key = (tool == Tool::Opencode)
                .then(|| sources::opencode_key(path))
                .flatten();
            let parsed = parse::parse(
                tool,
                &file.bytes,
                key.as_ref().map(|(_, k)| k.bytes.as_slice()),
            )
            .map_err(|e: ParseError| (Some(tool), e.reason()))?;
            if file.was_readable_by_others {
                tracing::warn!(
                    "{} was readable by other users: the token in it may have been exposed",
                    path.display()
                );
            }
            Ok(Some(Valid {
                location: c.location.clone(),
                tool,
                parsed,
                identity: Some(file.identity),
                key_file: key.map(|(path, k)| (path, k.identity)),
            }))
        }
    }
}

fn to_credential(p: &parse::Parsed) -> Credential {
    let mut cred = Credential::new(
        p.access_token.clone(),
        p.refresh_token.clone(),
        p.expires_at,
    );
    cred.scope = p.scope.clone();
    cred.token_type = p.token_type.clone();
    cred
}

fn same(a: &Credential, b: &Credential) -> bool {
    a.access_token.ct_eq(&b.access_token)
        && a.refresh_token.ct_eq(&b.refresh_token)
        && a.expires_at == b.expires_at
        && !fault("readback-mismatch")
}

/// Quotes a path for a shell command line when it needs it.
fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:@+=,".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
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
    let mut valid: Vec<Valid> = Vec::new();
    for c in candidates(vault, opts)? {
        match read_candidate(keyring, &c, !opts.from.is_empty()) {
            Ok(Some(v)) => valid.push(v),
            Ok(None) => {}
            Err((tool, reason)) => {
                if reason == "no such file" {
                    report.missing_explicit = true;
                }
                report
                    .skipped
                    .push(entry(&c.location, tool, profile, reason));
            }
        }
    }
    // Freshest first.
    valid.sort_by_key(|v| std::cmp::Reverse(v.parsed.expires_at));
    let mut valid = valid.into_iter();
    let Some(chosen) = valid.next() else {
        return Ok(report);
    };
    for other in valid {
        let suggestion = format!(
            "another valid credential ({}) was chosen; to import this one into its own profile: kimi-vault migrate --from {} --profile {}",
            chosen.location.display(),
            shell_quote(&other.location.display()),
            other.tool.name()
        );
        let mut e = entry(&other.location, Some(other.tool), profile, suggestion);
        e.expires_at = Some(rfc3339(other.parsed.expires_at));
        report.skipped.push(e);
    }
    let mut chosen_entry = entry(&chosen.location, Some(chosen.tool), profile, "");
    chosen_entry.expires_at = Some(rfc3339(chosen.parsed.expires_at));

    if let Some(existing) = vault.load(profile)?
        && !opts.force
        && !existing.cred.needs_login
    {
        chosen_entry.reason = format!(
            "profile '{profile}' already has a credential: use --force to replace it, or --profile NAME"
        );
        report.skipped.push(chosen_entry);
        return Ok(report);
    }
    if opts.dry_run {
        chosen_entry.reason = "dry run: would be imported".into();
        if !opts.keep {
            let mut removed = chosen_entry.clone();
            removed.reason = "dry run: would be removed after the import is verified".into();
            report.removed.push(removed);
        }
        report.imported.push(chosen_entry);
        return Ok(report);
    }

    let cred = to_credential(&chosen.parsed);
    let lock = vault.lock()?;
    if !opts.force
        && let Some(existing) = vault.load(profile)?
        && !existing.cred.needs_login
    {
        chosen_entry.reason =
            format!("profile '{profile}' got a credential meanwhile: use --force");
        report.skipped.push(chosen_entry);
        return Ok(report);
    }
    let backend = vault.save(profile, &cred, &lock, false)?;
    let back = vault.load(profile)?;
    if !back.is_some_and(|b| same(&b.cred, &cred)) {
        return Err(Error::Protocol(format!(
            "the vault copy of {} did not read back identically, so the source was left in place; migrate it again with --force",
            chosen.location.display()
        )));
    }
    drop(lock);
    report.backend = Some(backend);
    report.moved_tools.push(chosen.tool);
    chosen_entry.reason = format!(
        "imported into profile '{profile}' ({} backend)",
        backend.as_str()
    );
    report.imported.push(chosen_entry.clone());

    if opts.keep {
        tracing::warn!(
            "--keep: {} is still there. Refresh tokens rotate: whichever of kimi-vault and {} refreshes second will be logged out",
            chosen.location.display(),
            chosen.tool.name()
        );
        return Ok(report);
    }
    let removal = match (&chosen.location, chosen.identity) {
        (Location::File(path), Some(identity)) => sources::wipe_and_remove(path, identity)
            .and_then(|()| match &chosen.key_file {
                Some((key, key_identity)) => sources::wipe_and_remove(key, *key_identity),
                None => Ok(()),
            }),
        _ => {
            let (service, user) = sources::KIMI_CLI_KEYRING;
            keyring
                .delete_any(service, user)
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    };
    match removal {
        Ok(()) => {
            let mut removed = chosen_entry;
            removed.reason = "overwritten with zeros and deleted after a verified import".into();
            report.removed.push(removed);
        }
        Err(why) => {
            tracing::warn!(
                "imported {}, but could not remove it ({why}). Delete it yourself: refresh tokens rotate, and a copy left behind breaks whichever install refreshes second",
                chosen.location.display()
            );
            let mut e = chosen_entry;
            e.reason = format!("imported, but not removed: {why}");
            report.skipped.push(e);
        }
    }
    Ok(report)
}
