//! `kimi-vault migrate`: the report for people (stdout; stderr with `--json`) and for scripts
//! (`--json`).

use std::path::PathBuf;

use kimi_vault::migrate::{self, Entry, Options, Reason, Report, SourceDirs, Tool};
use kimi_vault::oauth::Region;
use kimi_vault::sanitize::for_terminal;

use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::output::resln;
use crate::cli::{Ctx, output};

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

/// The entry's reason in words, with the command to run next where there is one.
fn reason(e: &Entry) -> String {
    let profile = &e.profile;
    let region = e.region.unwrap_or("?");
    match &e.reason {
        Reason::UnknownRegion { slot, global_slot } => format!(
            "left untouched: kimi-code slot '{slot}' belongs to hosts of no known region (cn is `kimi-code`, global `{global_slot}`), and a credential refreshed at the wrong region's host is lost; if you know its region, run `kimi-vault migrate --from {} --region cn` (or `--region global`)",
            shell_quote(&e.path)
        ),
        Reason::NoSuchFile => "no such file".to_owned(),
        Reason::NoKeyringEntry => "there is no such keyring entry".to_owned(),
        Reason::Keyring(k) => k.to_string(),
        Reason::Unusable(why) | Reason::LockFailed(why) => why.clone(),
        Reason::Writable { mode } => format!(
            "it is writable by group or others (mode {mode:o}), so it could have been planted; chmod 600 it and run migrate again"
        ),
        Reason::ToolBusy {
            tool,
            lock,
            waited_seconds,
            kept_fresh,
        } => {
            let name = tool.name();
            let lock = lock.display();
            if *kept_fresh {
                format!(
                    "{name} is using it: its lock {lock} was held, and kept fresh, for the {waited_seconds} s migrate waits, so the file was left untouched; run migrate again when {name} is done"
                )
            } else {
                format!(
                    "{name} is using it: it held its lock {lock} for the {waited_seconds} s migrate waits, so the file was left untouched; run migrate again when {name} is done"
                )
            }
        }
        Reason::OtherToolBusy => "not imported, and left untouched: another tool is refreshing its credential right now (see above); run migrate again".to_owned(),
        Reason::NotChosen {
            chosen,
            own_profile,
            region,
        } => format!(
            "another valid credential ({chosen}) was chosen; to import this one into its own profile: kimi-vault migrate --from {}{} --profile {own_profile}",
            shell_quote(&e.path),
            region
                .map(|r| format!(" --region {}", r.as_str()))
                .unwrap_or_default()
        ),
        Reason::ProfileTaken => format!(
            "profile '{profile}' already has a credential: use --force to replace it, or --profile NAME"
        ),
        Reason::ProfileTakenMeanwhile => {
            format!("profile '{profile}' got a credential meanwhile: use --force")
        }
        Reason::WouldImport => format!("into profile '{profile}' ({region} region)"),
        Reason::WouldRemove { keyring: true } => {
            "deleted from the keyring once the vault copy is verified".to_owned()
        }
        Reason::WouldRemove { keyring: false } => {
            "overwritten with zeros and deleted once the vault copy is verified".to_owned()
        }
        Reason::Imported { backend } => format!(
            "imported into profile '{profile}' ({} backend, {region} region)",
            backend.as_str()
        ),
        Reason::Removed { keyring: true } => {
            "deleted from the keyring after a verified import".to_owned()
        }
        Reason::Removed { keyring: false } => {
            "overwritten with zeros and deleted after a verified import".to_owned()
        }
        Reason::NotRemoved(why) => {
            format!("still there: it could not be removed ({why}); delete it yourself")
        }
        _ => "see above".to_owned(),
    }
}

/// One entry of `migrate --json` (SPEC §3: `path`, `tool`, `profile`, `region`, `reason`).
#[derive(serde::Serialize)]
struct EntryJson<'a> {
    path: &'a str,
    tool: &'static str,
    profile: &'a str,
    region: Option<&'static str>,
    reason: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<&'a str>,
}

/// `migrate --json`.
#[derive(serde::Serialize)]
struct ReportJson<'a> {
    imported: Vec<EntryJson<'a>>,
    skipped: Vec<EntryJson<'a>>,
    removed: Vec<EntryJson<'a>>,
    not_removed: Vec<EntryJson<'a>>,
    dry_run: bool,
}

impl<'a> ReportJson<'a> {
    fn new(report: &'a Report) -> Self {
        let list = |entries: &'a [Entry]| {
            entries
                .iter()
                .map(|e| EntryJson {
                    path: &e.path,
                    tool: e.tool,
                    profile: &e.profile,
                    region: e.region,
                    reason: reason(e),
                    expires_at: e.expires_at.as_deref(),
                })
                .collect()
        };
        ReportJson {
            imported: list(&report.imported),
            skipped: list(&report.skipped),
            removed: list(&report.removed),
            not_removed: list(&report.not_removed),
            dry_run: report.dry_run,
        }
    }
}

fn show(json: bool, title: &str, entries: &[Entry]) {
    if entries.is_empty() {
        return;
    }
    resln!(json, "{title}:");
    for e in entries {
        let expiry = e
            .expires_at
            .as_deref()
            .map(|x| format!(", access token expires {x}"))
            .unwrap_or_default();
        let region = e
            .region
            .map(|r| format!(", {r} region"))
            .unwrap_or_default();
        // Other tools' file names (and what was read from them) are outside text.
        let path = for_terminal(&e.path);
        let expiry = for_terminal(&expiry);
        resln!(
            json,
            "  {path} ({}{region}{expiry})\n      {}",
            e.tool,
            for_terminal(&reason(e))
        );
    }
}

/// The generic recipe: any client that takes a base URL and an API key.
const PROXY_RECIPE: &str = "start `kimi-vault proxy` and give the tool the base URL and key it prints (Anthropic-style clients: http://127.0.0.1:18462, OpenAI-style: http://127.0.0.1:18462/v1)";

/// What changes for the user of that tool once its credential has moved, and how to keep
/// using it (each recipe is tested with a stand-in client that reads exactly those variables).
fn after_move(tool: Tool) -> String {
    match tool {
        Tool::KimiCli | Tool::KimiCliKeyring => {
            "kimi-cli will ask you to log in again; instead, run it as `kimi-vault exec --proxy --for kimi -- kimi` (a private proxy, KIMI_BASE_URL, KIMI_CODE_BASE_URL, KIMI_API_KEY and KIMI_MODEL_NAME set for it, tokens kept fresh however long it runs)".to_owned()
        }
        Tool::KimiCode => "kimi-code will ask you to log in again; instead, run it as `kimi-vault exec --proxy --for kimi -- kimi` (a private proxy, KIMI_MODEL_NAME, KIMI_MODEL_API_KEY, KIMI_MODEL_BASE_URL, KIMI_MODEL_PROVIDER_TYPE and KIMI_MODEL_MAX_CONTEXT_SIZE set for it, tokens kept fresh however long it runs)".to_owned(),
        Tool::Roder => format!("Roder will ask you to log in again; instead, {PROXY_RECIPE}"),
        Tool::CliProxyApi => format!(
            "CLIProxyAPI no longer has this Kimi account; instead, {PROXY_RECIPE}"
        ),
        Tool::Opencode => {
            format!("opencode-kimi-auth will ask you to log in again; instead, {PROXY_RECIPE}")
        }
    }
}

/// Other tools' directories: the home directory and their own override variables.
#[allow(
    clippy::disallowed_methods,
    reason = "the command line reads the other tools' override variables and passes the paths down"
)]
pub(crate) fn source_dirs(explicit: bool) -> Result<SourceDirs, Failure> {
    let var = |name: &str| std::env::var_os(name).map(PathBuf::from);
    let home = match dirs::home_dir() {
        Some(h) => h,
        // Only the scan needs it; --from paths are used as given.
        None if explicit => PathBuf::new(),
        None => {
            return Err(Failure::Usage(
                "cannot find your home directory: give the sources with --from".into(),
            ));
        }
    };
    Ok(SourceDirs {
        home,
        kimi_share_dir: var("KIMI_SHARE_DIR"),
        kimi_code_home: var("KIMI_CODE_HOME"),
        roder_data_dir: var("RODER_DATA_DIR"),
        roder_config_dir: var("RODER_CONFIG_DIR"),
    })
}

/// Runs the migration and reports it.
pub(crate) fn run(
    ctx: &Ctx,
    from: Vec<PathBuf>,
    keep: bool,
    dry_run: bool,
    force: bool,
    region: Option<Region>,
) -> CmdResult {
    let opts = Options {
        region,
        dirs: source_dirs(!from.is_empty())?,
        from,
        keep,
        dry_run,
        force,
        profile: ctx.profile().to_owned(),
    };
    let report = migrate::run(ctx.session.vault(), &opts)?;
    let json = ctx.json;
    if json {
        output::json_line(&ReportJson::new(&report));
    }
    show_report(json, dry_run, &report);
    Ok(
        if report.missing_explicit || report.lock_busy || !report.not_removed.is_empty() {
            exit::FAILURE
        } else {
            exit::OK
        },
    )
}

/// The report for people: each list, what changes for the tools whose credential moved, and
/// what went wrong.
fn show_report(json: bool, dry_run: bool, report: &Report) {
    if report.imported.is_empty() && report.skipped.is_empty() {
        resln!(
            json,
            "No plaintext Kimi credentials found: nothing to migrate."
        );
    }
    if dry_run && !report.imported.is_empty() {
        resln!(json, "Dry run: nothing was changed.");
    }
    show(
        json,
        if dry_run { "Would import" } else { "Imported" },
        &report.imported,
    );
    show(
        json,
        if dry_run { "Would remove" } else { "Removed" },
        &report.removed,
    );
    show(
        json,
        "Imported but still there (could not be removed)",
        &report.not_removed,
    );
    show(json, "Not imported", &report.skipped);
    for tool in &report.moved_tools {
        resln!(json, "\nWhat changes: {}.", after_move(*tool));
    }
    if report.lock_busy {
        eprintln!(
            "\nNothing was imported or removed: another tool held its lock (see above). Run migrate again when it is done."
        );
    }
    if !report.not_removed.is_empty() {
        eprintln!(
            "\nkimi-vault: error: the plaintext source above is still there. Refresh tokens rotate: a copy left behind breaks whichever install refreshes second. Delete it yourself (the vault copy was verified)."
        );
    }
}
