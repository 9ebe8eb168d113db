//! `kimi-vault logout`: local state only (Kimi has no revoke endpoint).

use crate::cli::{Ctx, output};
use crate::error::{Result, exit};

/// Removes the profile from every backend; succeeds when there was nothing.
pub fn run(ctx: &Ctx) -> Result<u8> {
    let lock = ctx.vault.lock()?;
    crate::diag::note(&format!(
        "waited {} ms for the vault lock",
        lock.waited().as_millis()
    ));
    let removed = ctx.vault.delete(&ctx.profile, &lock)?;
    if ctx.json {
        output::json_line(&serde_json::json!({"profile": ctx.profile, "removed": removed}));
    }
    if removed {
        eprintln!(
            "Logged out of profile '{}'. Kimi has no revoke endpoint: the tokens were deleted locally only.",
            ctx.profile
        );
    } else {
        eprintln!("Profile '{}' had no stored credential.", ctx.profile);
    }
    Ok(exit::OK)
}
