//! `kimi-vault logout`: local state only (Kimi has no revoke endpoint).

use crate::cli::failure::{CmdResult, exit};
use crate::cli::{Ctx, output};

/// Removes the profile from every backend; succeeds when there was nothing.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let removed = ctx.session.logout()?;
    if ctx.json {
        output::json_line(&serde_json::json!({"profile": ctx.profile(), "removed": removed}));
    }
    if removed {
        eprintln!(
            "Logged out of profile '{}'. Kimi has no revoke endpoint: the tokens were deleted locally only.",
            ctx.profile()
        );
    } else {
        eprintln!("Profile '{}' had no stored credential.", ctx.profile());
    }
    Ok(exit::OK)
}
