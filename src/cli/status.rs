//! `kimi-vault status`: what is stored and where, never a secret.

use kimi_vault::Error;
use kimi_vault::store::{BackendKind, Loaded};
use serde_json::json;

use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::{Ctx, output};

/// Prints the status; exit 0 when logged in, 3 otherwise, 4 when the vault cannot be read (with
/// `--json`, the object is printed then too, with `error`).
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let vault = ctx.session.vault();
    let profile = ctx.profile();
    let read = vault.check_home().and_then(|_| ctx.session.stored());
    let (loaded, error) = match read {
        Ok(loaded) => (loaded, None),
        Err(e @ Error::VaultUnreadable { .. }) => {
            let failure = Failure::Lib(e);
            let message = kimi_vault::scrub(&failure.message(profile));
            (None, Some((failure.exit_code(), message)))
        }
        Err(e) => return Err(e.into()),
    };
    let (backend, reason) = backend_of(ctx, loaded.as_ref());
    let now = kimi_vault::now_unix();
    let cred = loaded.as_ref().map(|l| &l.cred);
    let needs_login = cred.is_some_and(|c| c.needs_login);
    let logged_in = cred.is_some() && !needs_login;
    let key_exposed = error.is_none() && vault.key_exposed();
    let paths = vault.paths();
    if ctx.json {
        let mut object = json!({
            "profile": profile,
            "logged_in": logged_in,
            "needs_login": needs_login,
            "backend": backend.as_str(),
            "backend_reason": reason,
            "expires_at": cred.map(|c| kimi_vault::rfc3339(c.expires_at)),
            "expires_in_seconds": cred.map(|c| c.expires_in(now)),
            "scope": cred.map(|c| c.scope.clone()),
            "region": cred.map(|c| if c.region.is_empty() { "cn".to_owned() } else { c.region.clone() }),
            "key_exposed": key_exposed,
            "vault_home": paths.home(),
            "vault_file": paths.vault(),
            "key_file": paths.key(),
            "lock_file": paths.lock(),
        });
        if let Some((_, message)) = &error {
            object["error"] = json!(message);
        }
        output::json_line(&object);
    }
    if let Some((code, message)) = error {
        eprintln!("kimi-vault: error: {message}");
        return Ok(code);
    }
    if !ctx.json {
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
        if key_exposed {
            println!(
                "key:        EXPOSED: vault.key was readable by others; a fresh key replaces it at the next write (`{login}`, or the next token refresh)"
            );
        }
    }
    Ok(if logged_in {
        exit::OK
    } else {
        exit::LOGIN_REQUIRED
    })
}

/// The backend that holds the credential (or would take it), and why.
fn backend_of(ctx: &Ctx, loaded: Option<&Loaded>) -> (BackendKind, String) {
    let (target, target_reason) = ctx.session.vault().write_target(ctx.profile());
    match loaded {
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
    }
}
