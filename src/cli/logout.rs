//! `kimi-vault logout`: local state only (Kimi has no revoke endpoint). Nothing stored means
//! nothing touched; an unreadable vault is kept aside (renamed), never deleted.

use std::path::Path;

use serde::Serialize;

use crate::cli::failure::{CmdResult, exit, profile_flag};
use crate::cli::output::resln;
use crate::cli::{Ctx, output};

/// A vault file kept aside: where it was, its new name.
#[derive(Serialize)]
struct KeptAsideJson<'a> {
    from: &'a Path,
    to: &'a Path,
}

/// `logout --json`, and what people are told.
#[derive(Serialize)]
struct LogoutJson<'a> {
    profile: &'a str,
    removed: bool,
    kept_aside: Vec<KeptAsideJson<'a>>,
    /// Why the vault could not be read (when files were kept aside).
    #[serde(skip)]
    unreadable: Option<&'a str>,
}

impl LogoutJson<'_> {
    /// The result for people: on stdout, or on stderr with `--json`.
    fn print(&self, json: bool) {
        let profile = self.profile;
        if !self.kept_aside.is_empty() {
            let moved: Vec<String> = self
                .kept_aside
                .iter()
                .map(|k| format!("{} as {}", k.from.display(), k.to.display()))
                .collect();
            resln!(
                json,
                "The encrypted vault could not be read ({}).\nIt was kept aside, not deleted: {}.\nEvery profile it held must log in again: `kimi-vault login{}`.",
                self.unreadable.unwrap_or("unreadable"),
                moved.join("; "),
                profile_flag(profile)
            );
        }
        if self.removed {
            resln!(
                json,
                "Logged out of profile '{profile}'. Kimi has no revoke endpoint: the tokens were deleted locally only."
            );
        } else if self.kept_aside.is_empty() {
            resln!(
                json,
                "Profile '{profile}' had no stored credential; nothing was changed."
            );
        }
    }
}

/// Removes the profile from every backend; succeeds when there was nothing.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let done = ctx.session.logout()?;
    let report = LogoutJson {
        profile: ctx.profile(),
        removed: done.removed,
        kept_aside: done
            .kept_aside
            .iter()
            .map(|k| KeptAsideJson {
                from: &k.from,
                to: &k.to,
            })
            .collect(),
        unreadable: done.unreadable.as_deref(),
    };
    if ctx.json {
        output::json_line(&report);
    }
    report.print(ctx.json);
    if let Some(k) = &done.keyring_unreadable {
        eprintln!(
            "Note: the OS keyring could not be asked ({k}); a credential kept there was not removed."
        );
    }
    Ok(exit::OK)
}
