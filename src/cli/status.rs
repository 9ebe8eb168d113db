//! `kimi-vault status`: what is stored and where, never a secret. It prints its report even
//! when the vault cannot be read (then with the error and what to do, exit 4).

use std::time::Instant;

use kimi_vault::oauth::Region;
use kimi_vault::store::{BackendKind, Credential};
use serde_json::json;

use crate::cli::failure::{CmdResult, Failure, exit, profile_flag};
use crate::cli::output::outln;
use crate::cli::{Ctx, output};

fn region_of(c: &Credential) -> &str {
    if c.region.is_empty() { "cn" } else { &c.region }
}

/// Prints the status; exit 0 when logged in, 3 otherwise, 4 when the vault cannot be read.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let vault = ctx.session.vault();
    let profile = ctx.profile();
    let started = Instant::now();
    // The vault directory is checked as every command checks it (issue 10): a shared or
    // writable one is refused here too.
    let loaded = vault.check_home().and_then(|_| ctx.session.stored());
    let took = started.elapsed();
    let (target, target_reason) = vault.write_target(profile);
    let paths = vault.paths();
    let login = format!("kimi-vault login{}", profile_flag(profile));

    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            // Still say who, where and what to do; the error replaces the login state.
            let failure = Failure::Lib(e);
            let message = kimi_vault::scrub(&failure.message(profile));
            if ctx.json {
                output::json_line(&json!({
                    "profile": profile,
                    "logged_in": false,
                    "needs_login": false,
                    "backend": target.as_str(),
                    "backend_reason": target_reason.to_string(),
                    "expires_at": null,
                    "expires_in_seconds": null,
                    "scope": null,
                    "region": null,
                    "error": message,
                    "vault_home": paths.home(),
                    "vault_file": paths.vault(),
                    "key_file": paths.key(),
                    "lock_file": paths.lock(),
                }));
            } else {
                outln!("profile:    {profile}");
                outln!("logged in:  unknown: the vault cannot be read (below)");
                outln!("backend:    {} ({target_reason})", target.as_str());
                outln!("vault dir:  {}", paths.home().display());
                outln!("vault file: {}", paths.vault().display());
                outln!("key file:   {}", paths.key().display());
                outln!("lock file:  {}", paths.lock().display());
            }
            eprintln!(
                "kimi-vault: error: {}",
                kimi_vault::sanitize::for_terminal_multiline(&message)
            );
            return Ok(failure.exit_code());
        }
    };

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
    let left = cred.map(|c| c.expires_in(now));
    let key_exposed = vault.key_exposed();
    let access_valid = left.is_some_and(|l| l > 0);
    let endpoints = cred.map(|c| ctx.session.endpoints(Region::from_stored(&c.region)));
    if ctx.json {
        output::json_line(&json!({
            "profile": profile,
            "logged_in": logged_in,
            "needs_login": needs_login,
            "access_token_valid": access_valid,
            "backend": backend.as_str(),
            "backend_reason": reason,
            "expires_at": cred.map(|c| kimi_vault::rfc3339(c.expires_at)),
            "expires_in_seconds": left,
            "scope": cred.map(|c| c.scope.clone()),
            "region": cred.map(region_of),
            "api_base": endpoints.as_ref().and_then(|e| e.as_ref().ok()).map(|e| e.api_base.as_str()),
            "key_exposed": key_exposed,
            "vault_home": paths.home(),
            "vault_file": paths.vault(),
            "key_file": paths.key(),
            "lock_file": paths.lock(),
        }));
    } else {
        let state = match (cred, left) {
            (Some(_), _) if logged_in => "yes".to_owned(),
            (Some(_), Some(l)) if l > 0 => format!(
                "no: the refresh token was rejected. The access token may still work for {}, then run `{login}` (now is fine)",
                output::span(l.unsigned_abs())
            ),
            (Some(_), _) => format!("no: the refresh token was rejected; run `{login}`"),
            (None, _) => match vault.keyring_trouble() {
                Some(k) => format!(
                    "no credential found here (the OS keyring could not be read: {k}); if you logged in with it, fix that and retry, or run `{login}`"
                ),
                None => format!("no: run `{login}`"),
            },
        };
        outln!("profile:    {profile}");
        outln!("logged in:  {state}");
        outln!("backend:    {} ({reason})", backend.as_str());
        if let (Some(c), Some(e)) = (cred, &endpoints) {
            match e {
                Ok(e) => outln!("region:     {} (API {})", region_of(c), e.api_base),
                Err(err) => outln!("region:     {} ({err})", region_of(c)),
            }
        }
        if let (Some(c), Some(l)) = (cred, left) {
            let renewal = if needs_login {
                "; it cannot be renewed"
            } else if l > 0 {
                "; renewed automatically when needed"
            } else {
                "; renewed at the next use"
            };
            outln!(
                "expires:    {} ({}{renewal})",
                kimi_vault::rfc3339(c.expires_at),
                output::relative(l)
            );
            outln!(
                "scope:      {}",
                if c.scope.is_empty() { "-" } else { &c.scope }
            );
        }
        outln!("vault dir:  {}", paths.home().display());
        outln!("vault file: {}", paths.vault().display());
        outln!("key file:   {}", paths.key().display());
        if key_exposed {
            outln!(
                "key:        EXPOSED: vault.key was readable by others; a fresh key replaces it at the next write (`{login}`, or the next token refresh)"
            );
        }
        outln!("lock file:  {}", paths.lock().display());
        if ctx.verbose > 0 {
            outln!(
                "looked up:  in {} ms (KIMI_VAULT_BACKEND={}; what was asked is listed on stderr)",
                took.as_millis(),
                match vault.mode() {
                    kimi_vault::store::BackendMode::Auto => "auto",
                    kimi_vault::store::BackendMode::Keyring => "keyring",
                    kimi_vault::store::BackendMode::File => "file",
                }
            );
        }
    }
    Ok(if logged_in {
        exit::OK
    } else {
        exit::LOGIN_REQUIRED
    })
}
