//! `kimi-vault profiles`: every stored profile in either backend, never a secret.

use kimi_vault::store::{BackendMode, KeyringListing, StoredProfile};
use serde_json::{Value, json};

use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::output::outln;
use crate::cli::{Ctx, output};

fn row_json(p: &StoredProfile, now: i64) -> Value {
    match &p.cred {
        Ok(c) => json!({
            "profile": p.profile,
            "backend": p.backend.as_str(),
            "logged_in": !c.needs_login,
            "needs_login": c.needs_login,
            "expires_at": kimi_vault::rfc3339(c.expires_at),
            "expires_in_seconds": c.expires_in(now),
            "region": if c.region.is_empty() { "cn" } else { &c.region },
            "scope": c.scope,
            "error": null,
        }),
        Err(e) => json!({
            "profile": p.profile,
            "backend": p.backend.as_str(),
            "logged_in": false,
            "needs_login": false,
            "expires_at": null,
            "expires_in_seconds": null,
            "region": null,
            "scope": null,
            "error": kimi_vault::scrub(&e.to_string()),
        }),
    }
}

/// Lists the stored profiles; exit 4 when the encrypted file cannot be read, 1 when the keyring
/// is required (`keyring` mode) but cannot be listed.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let vault = ctx.session.vault();
    let listing = vault.profiles();
    let now = kimi_vault::now_unix();
    if ctx.json {
        output::json_line(&Value::Array(
            listing.profiles.iter().map(|p| row_json(p, now)).collect(),
        ));
    } else if listing.profiles.is_empty() {
        outln!(
            "No stored profile. Log in with `kimi-vault login` (or `kimi-vault --profile NAME login`)."
        );
    } else {
        let header = [
            "PROFILE",
            "BACKEND",
            "STATE",
            "REGION",
            "ACCESS TOKEN EXPIRES",
        ];
        let rows: Vec<[String; 5]> = listing
            .profiles
            .iter()
            .map(|p| {
                let mark = if p.profile == ctx.profile() { " *" } else { "" };
                let name = format!("{}{mark}", p.profile);
                match &p.cred {
                    Ok(c) => [
                        name,
                        p.backend.as_str().to_owned(),
                        if c.needs_login {
                            "needs login"
                        } else {
                            "logged in"
                        }
                        .to_owned(),
                        if c.region.is_empty() {
                            "cn".into()
                        } else {
                            c.region.clone()
                        },
                        format!(
                            "{} ({})",
                            kimi_vault::rfc3339(c.expires_at),
                            output::relative(c.expires_in(now))
                        ),
                    ],
                    Err(_) => [
                        name,
                        p.backend.as_str().to_owned(),
                        "unreadable".into(),
                        "-".into(),
                        "-".into(),
                    ],
                }
            })
            .collect();
        output::table(header, &rows);
        outln!("(* the selected profile, '{}')", ctx.profile());
        for p in &listing.profiles {
            if let Err(e) = &p.cred {
                eprintln!(
                    "kimi-vault: warning: profile '{}' ({}): {}",
                    p.profile,
                    p.backend.as_str(),
                    kimi_vault::sanitize::for_terminal(&kimi_vault::scrub(&e.to_string()))
                );
            }
        }
    }
    match &listing.keyring {
        KeyringListing::Listed => {}
        KeyringListing::NotConsulted => eprintln!(
            "Note: the OS keyring was not consulted (KIMI_VAULT_BACKEND=file); profiles kept there are not listed."
        ),
        KeyringListing::Unavailable(why) => eprintln!(
            "Note: the OS keyring could not be listed ({why}); profiles kept there are not listed. `kimi-vault doctor` explains."
        ),
        _ => {}
    }
    if let Some(e) = listing.file_error {
        let failure = Failure::Lib(e);
        let message = kimi_vault::scrub(&failure.message(ctx.profile()));
        eprintln!(
            "kimi-vault: error: the encrypted file's profiles are not listed: {}",
            kimi_vault::sanitize::for_terminal_multiline(&message)
        );
        return Ok(failure.exit_code());
    }
    if vault.mode() == BackendMode::Keyring
        && let KeyringListing::Unavailable(why) = listing.keyring
    {
        let failure = Failure::Lib(kimi_vault::Error::Keyring(why));
        eprintln!(
            "kimi-vault: error: {}",
            kimi_vault::sanitize::for_terminal_multiline(&kimi_vault::scrub(
                &failure.message(ctx.profile())
            ))
        );
        return Ok(failure.exit_code());
    }
    Ok(exit::OK)
}
