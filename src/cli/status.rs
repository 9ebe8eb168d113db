//! `kimi-vault status`: what is stored and where, never a secret.

use kimi_vault::store::BackendKind;
use serde_json::json;

use crate::cli::failure::{CmdResult, exit};
use crate::cli::{Ctx, output};

/// Prints the status; exit 0 when logged in, 3 otherwise.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let vault = ctx.session.vault();
    let profile = ctx.profile();
    let loaded = ctx.session.stored()?;
    let (target, target_reason) = vault.write_target(profile);
    let (backend, reason) = match &loaded {
        Some(l) if l.backend == target => (l.backend, target_reason.to_string()),
        Some(l) => (
            l.backend,
            match l.backend {
                BackendKind::File => {
                    "stored in the encrypted file (written when the keyring could not take it)"
                        .to_owned()
                }
                BackendKind::Keyring => "stored in the OS keyring".to_owned(),
            },
        ),
        None => (target, target_reason.to_string()),
    };
    let now = kimi_vault::now_unix();
    let cred = loaded.as_ref().map(|l| &l.cred);
    let needs_login = cred.is_some_and(|c| c.needs_login);
    let logged_in = cred.is_some() && !needs_login;
    let paths = vault.paths();
    if ctx.json {
        output::json_line(&json!({
            "profile": profile,
            "logged_in": logged_in,
            "needs_login": needs_login,
            "backend": backend.as_str(),
            "backend_reason": reason,
            "expires_at": cred.map(|c| kimi_vault::rfc3339(c.expires_at)),
            "expires_in_seconds": cred.map(|c| c.expires_in(now)),
            "scope": cred.map(|c| c.scope.clone()),
            "region": cred.map(|c| if c.region.is_empty() { "cn".to_owned() } else { c.region.clone() }),
            "vault_home": paths.home(),
            "vault_file": paths.vault(),
            "key_file": paths.key(),
            "lock_file": paths.lock(),
        }));
    } else {
        let login = format!(
            "kimi-vault login{}",
            crate::cli::failure::profile_flag(profile)
        );
        let state = if logged_in {
            "yes".to_owned()
        } else if needs_login {
            format!("no: the refresh token was rejected, run `{login}`")
        } else {
            format!("no: run `{login}`")
        };
        println!("profile:    {profile}");
        println!("logged in:  {state}");
        println!("backend:    {} ({reason})", backend.as_str());
        if let Some(c) = cred {
            println!(
                "expires:    {} ({})",
                kimi_vault::rfc3339(c.expires_at),
                output::relative(c.expires_in(now))
            );
            println!(
                "scope:      {}",
                if c.scope.is_empty() { "-" } else { &c.scope }
            );
        }
        println!("vault dir:  {}", paths.home().display());
        println!("vault file: {}", paths.vault().display());
        println!("key file:   {}", paths.key().display());
    }
    Ok(if logged_in {
        exit::OK
    } else {
        exit::LOGIN_REQUIRED
    })
}
