//! `kimi-vault logout`: local state only (Kimi has no revoke endpoint). Nothing stored means
//! nothing touched; an unreadable vault is kept aside (renamed), never deleted.

use crate::cli::failure::{CmdResult, exit, profile_flag};
use crate::cli::output::resln;
use crate::cli::{Ctx, output};

/// Removes the profile from every backend; succeeds when there was nothing.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let profile = ctx.profile();
    let done = ctx.session.logout()?;
    if ctx.json {
        output::json_line(&serde_json::json!({
            "profile": profile,
            "removed": done.removed,
            "kept_aside": done.kept_aside.iter().map(|k| serde_json::json!({
                "from": k.from,
                "to": k.to,
            })).collect::<Vec<_>>(),
        }));
    }
    if !done.kept_aside.is_empty() {
        let moved: Vec<String> = done
            .kept_aside
            .iter()
            .map(|k| format!("{} as {}", k.from.display(), k.to.display()))
            .collect();
        resln!(
            ctx.json,
            "The encrypted vault could not be read ({}).\nIt was kept aside, not deleted: {}.\nEvery profile it held must log in again: `kimi-vault login{}`.",
            done.unreadable.as_deref().unwrap_or("unreadable"),
            moved.join("; "),
            profile_flag(profile)
        );
    }
    if done.removed {
        resln!(
            ctx.json,
            "Logged out of profile '{profile}'. Kimi has no revoke endpoint: the tokens were deleted locally only."
        );
    } else if done.kept_aside.is_empty() {
        resln!(
            ctx.json,
            "Profile '{profile}' had no stored credential; nothing was changed."
        );
    }
    if let Some(k) = &done.keyring_unreadable {
        eprintln!(
            "Note: the OS keyring could not be asked ({k}); a credential kept there was not removed."
        );
    }
    Ok(exit::OK)
}
