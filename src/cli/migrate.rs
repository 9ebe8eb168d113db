//! `kimi-vault migrate`: the report for people (stderr) and for scripts (`--json`).

use std::path::PathBuf;

use kimi_vault::migrate::{self, Entry, Options, SourceDirs, Tool};
use kimi_vault::sanitize::for_terminal;

use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::{Ctx, output};

fn show(title: &str, entries: &[Entry]) {
    if entries.is_empty() {
        return;
    }
    eprintln!("{title}:");
    for e in entries {
        let expiry = e
            .expires_at
            .as_deref()
            .map(|x| format!(", access token expires {x}"))
            .unwrap_or_default();
        // Other tools' file names (and what was read from them) are outside text.
        let path = for_terminal(&e.path);
        let expiry = for_terminal(&expiry);
        if e.reason.is_empty() {
            eprintln!("  {path} ({}{expiry})", e.tool);
        } else {
            eprintln!(
                "  {path} ({}{expiry})\n      {}",
                e.tool,
                for_terminal(&e.reason)
            );
        }
    }
}

/// The generic recipe: any client that takes a base URL and an API key.
const PROXY_RECIPE: &str = "start `kimi-vault proxy` and give the tool the base URL and key it prints (Anthropic-style clients: http://127.0.0.1:18462, OpenAI-style: http://127.0.0.1:18462/v1)";

/// What changes for the user of that tool once its credential has moved, and how to keep
/// using it (each recipe is tested with a stand-in client that reads exactly those variables).
fn after_move(tool: Tool) -> String {
    match tool {
        Tool::KimiCli | Tool::KimiCliKeyring => {
            "kimi-cli will ask you to log in again; instead, run it as `kimi-vault exec --proxy --for kimi -- kimi` (a private proxy, KIMI_BASE_URL and KIMI_API_KEY set for it, tokens kept fresh however long it runs)".to_owned()
        }
        Tool::KimiCode => format!("kimi-code will ask you to log in again; instead, {PROXY_RECIPE}"),
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
) -> CmdResult {
    let opts = Options {
        dirs: source_dirs(!from.is_empty())?,
        from,
        keep,
        dry_run,
        force,
        profile: ctx.profile().to_owned(),
    };
    let report = migrate::run(ctx.session.vault(), &opts)?;
    if ctx.json {
        output::json_line(&serde_json::to_value(&report).expect("report serializes"));
    }
    if report.imported.is_empty() && report.skipped.is_empty() {
        eprintln!("No plaintext Kimi credentials found: nothing to migrate.");
    }
    if dry_run && !report.imported.is_empty() {
        eprintln!("Dry run: nothing was changed.");
    }
    show(
        if dry_run { "Would import" } else { "Imported" },
        &report.imported,
    );
    show(
        if dry_run { "Would remove" } else { "Removed" },
        &report.removed,
    );
    show(
        "Imported but still there (could not be removed)",
        &report.not_removed,
    );
    show("Not imported", &report.skipped);
    for tool in &report.moved_tools {
        eprintln!("\nWhat changes: {}.", after_move(*tool));
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
    Ok(
        if report.missing_explicit || report.lock_busy || !report.not_removed.is_empty() {
            exit::FAILURE
        } else {
            exit::OK
        },
    )
}
