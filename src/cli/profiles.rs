//! `kimi-vault profiles`: every stored profile in either backend, never a secret.

use kimi_vault::store::{BackendMode, DEFAULT_PROFILE, KeyringListing, StoredProfile};
use serde_json::{Value, json};

use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::output::outln;
use crate::cli::{Ctx, output};

/// The default profile: the one `profiles use` recorded, else `default`.
pub(crate) fn default_profile(ctx: &Ctx) -> String {
    kimi_vault::store::read_default_profile(ctx.session.vault().paths())
        .ok()
        .flatten()
        .unwrap_or_else(|| kimi_vault::store::DEFAULT_PROFILE.to_owned())
}

/// `kimi-vault profiles use NAME`: makes NAME the default profile.
pub(crate) fn use_profile(ctx: &Ctx, name: &str) -> CmdResult {
    let paths = ctx.session.vault().paths();
    kimi_vault::store::write_default_profile(paths, name)?;
    let stored = ctx
        .session
        .vault()
        .profiles()
        .profiles
        .iter()
        .any(|p| p.profile == name);
    if ctx.json {
        output::json_line(&json!({
            "default_profile": name,
            "stored": stored,
            "file": paths.default_profile(),
        }));
    } else {
        outln!(
            "'{name}' is now the default profile (kept in {}); --profile and KIMI_VAULT_PROFILE still win.",
            paths.default_profile().display()
        );
    }
    if !stored {
        eprintln!(
            "kimi-vault: note: profile '{name}' holds no credential yet: `kimi-vault login` logs it in."
        );
    }
    Ok(exit::OK)
}

fn row_json(p: &StoredProfile, now: i64, default: &str) -> Value {
    let mut row = row_json_inner(p, now);
    row["default"] = Value::Bool(p.profile == default);
    row
}

fn row_json_inner(p: &StoredProfile, now: i64) -> Value {
    match &p.cred {
        Ok(c) => json!({
            "profile": p.profile,
            "backend": p.backend.as_str(),
            "logged_in": !c.needs_login,
            "needs_login": c.needs_login,
            "expires_at": kimi_vault::rfc3339(c.expires_at),
            "expires_in_seconds": c.expires_in(now),
            "region": if c.region.is_empty() { "cn" } else { &c.region },
            "account": output::account_json(c.account.as_ref()),
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
            "account": null,
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
    let default = default_profile(ctx);
    if ctx.json {
        output::json_line(&Value::Array(
            listing
                .profiles
                .iter()
                .map(|p| row_json(p, now, &default))
                .collect(),
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
            "ACCOUNT",
        ];
        let rows: Vec<[String; 6]> = listing
            .profiles
            .iter()
            .map(|p| {
                let mark = if p.profile == ctx.profile() { " *" } else { "" };
                let default = if p.profile == default && default != DEFAULT_PROFILE {
                    " (default)"
                } else {
                    ""
                };
                let name = format!("{}{default}{mark}", p.profile);
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
                        c.account
                            .as_ref()
                            .map(output::account_words)
                            .unwrap_or_else(|| "-".into()),
                    ],
                    Err(_) => [
                        name,
                        p.backend.as_str().to_owned(),
                        "unreadable".into(),
                        "-".into(),
                        "-".into(),
                        "-".into(),
                    ],
                }
            })
            .collect();
        output::table(header, &rows);
        outln!("(* the selected profile, '{}')", ctx.profile());
        if default != DEFAULT_PROFILE {
            outln!("(default: the profile `kimi-vault profiles use` set, '{default}')");
        }
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
