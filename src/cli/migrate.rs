//! `kimi-vault migrate`: the report for people (stderr) and for scripts (`--json`).

use std::path::PathBuf;

use crate::cli::{Ctx, output};
use crate::error::{Result, exit};
use crate::migrate::{self, Entry, Options};

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

/// Runs the migration and reports it.
pub fn run(ctx: &Ctx, from: Vec<PathBuf>, keep: bool, dry_run: bool, force: bool) -> Result<u8> {
    let opts = Options {
        from,
        keep,
        dry_run,
        force,
        profile: ctx.profile.clone(),
    };
    let report = migrate::run(&ctx.vault, &opts)?;
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
        eprintln!("\nWhat changes: {}.", tool.after_move());
    }
    Ok(if report.missing_explicit {
        exit::FAILURE
    } else {
        exit::OK
    })
}
