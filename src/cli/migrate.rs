//! `kimi-vault migrate`: the report for people (stderr) and for scripts (`--json`).

use std::path::PathBuf;

use kimi_vault::migrate::{self, Entry, Options, SourceDirs, Tool};

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
        eprintln!("  {} ({}{expiry})\n      {}", e.path, e.tool, e.reason);
    }
}

/// What changes for the user of that tool once its credential has moved.
fn after_move(tool: Tool) -> &'static str {
    match tool {
        Tool::KimiCli | Tool::KimiCliKeyring => {
            "kimi-cli will ask you to log in again; to keep one login, run it as `kimi-vault exec -- kimi`"
        }
        Tool::KimiCode => {
            "kimi-code will ask you to log in again; run it as `kimi-vault exec -- kimi-code`, or point it at `kimi-vault proxy`"
        }
        Tool::Roder => {
            "Roder will ask you to log in again; give it `kimi-vault token` as its key command, or `kimi-vault proxy`"
        }
        Tool::CliProxyApi => {
            "CLIProxyAPI no longer has this Kimi account; use `kimi-vault proxy` as the local Anthropic-compatible endpoint instead"
        }
        Tool::Opencode => {
            "opencode-kimi-auth will ask you to log in again; use `kimi-vault exec -- opencode` or `kimi-vault proxy`"
        }
    }
}

/// Other tools' directories: the home directory and their own override variables.
fn source_dirs(explicit: bool) -> Result<SourceDirs, Failure> {
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
    show(
        if dry_run { "Would import" } else { "Imported" },
        &report.imported,
    );
    show(
        if dry_run { "Would remove" } else { "Removed" },
        &report.removed,
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
    Ok(if report.missing_explicit || report.lock_busy {
        exit::FAILURE
    } else {
        exit::OK
    })
}
