//! `kimi-vault status`: what is stored and where, never a secret.

use serde_json::json;

use crate::cli::{Ctx, output};
use crate::diag::{now_unix, rfc3339};
use crate::error::{Result, exit};
use crate::store::BackendKind;

/// Prints the status; exit 0 when logged in, 3 otherwise.
pub fn run(ctx: &Ctx) -> Result<u8> {
    let vault = &ctx.vault;
    let loaded = vault.load(&ctx.profile)?;
    let (target, target_reason) = vault.write_target(&ctx.profile);
    let (backend, reason) = match &loaded {
        Some(l) if l.backend == target => (l.backend, target_reason),
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
        None => (target, target_reason),
    };
    let now = now_unix();
    let cred = loaded.as_ref().map(|l| &l.cred);
    let needs_login = cred.is_some_and(|c| c.needs_login);
    let logged_in = cred.is_some() && !needs_login;
    let paths = vault.paths();
    if ctx.json {
        output::json_line(&json!({
            "profile": ctx.profile,
            "logged_in": logged_in,
            "needs_login": needs_login,
            "backend": backend.as_str(),
            "backend_reason": reason,
            "expires_at": cred.map(|c| rfc3339(c.expires_at)),
            "expires_in_seconds": cred.map(|c| c.expires_in(now)),
            "scope": cred.map(|c| c.scope.clone()),
            "region": cred.map(|c| if c.region.is_empty() { "cn".to_owned() } else { c.region.clone() }),
            "vault_home": paths.home(),
            "vault_file": paths.vault(),
            "key_file": paths.key(),
            "lock_file": paths.lock(),
        }));
    } else {
        let state = if logged_in {
            "yes"
        } else if needs_login {
            "no: the refresh token was rejected, run `kimi-vault login`"
        } else {
            "no: run `kimi-vault login`"
        };
        println!("profile:    {}", ctx.profile);
        println!("logged in:  {state}");
        println!("backend:    {} ({reason})", backend.as_str());
        if let Some(c) = cred {
            println!(
                "expires:    {} ({})",
                rfc3339(c.expires_at),
                output::human_duration(c.expires_in(now))
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
