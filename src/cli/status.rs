//! `kimi-vault status`: what is stored and where, never a secret. It prints its report even
//! when the vault cannot be read (then with the error and what to do, exit 4).

use std::path::{Path, PathBuf};
use std::time::Instant;

use kimi_vault::oauth::Region;
use kimi_vault::store::{BackendKind, Credential};
use serde::Serialize;

use crate::cli::failure::{CmdResult, Failure, exit, profile_flag};
use crate::cli::output::outln;
use crate::cli::{Ctx, output};

fn region_of(c: &Credential) -> &str {
    if c.region.is_empty() { "cn" } else { &c.region }
}

/// `status --json`: the same keys in every state (SPEC §3); a value that is not known is null,
/// never absent.
#[derive(Serialize)]
struct StatusJson<'a> {
    profile: &'a str,
    /// The persisted default profile (`profiles use`), `default` when none is set.
    default_profile: &'a str,
    logged_in: bool,
    needs_login: bool,
    access_token_valid: Option<bool>,
    backend: Option<&'a str>,
    backend_reason: Option<String>,
    expires_at: Option<String>,
    expires_in_seconds: Option<i64>,
    scope: Option<String>,
    region: Option<&'a str>,
    /// `{"id","name","level"}` or null.
    account: serde_json::Value,
    api_base: Option<String>,
    key_exposed: Option<bool>,
    /// Why the vault cannot be read; null when it can.
    error: Option<String>,
    vault_home: &'a Path,
    vault_file: PathBuf,
    key_file: PathBuf,
    lock_file: PathBuf,
}

fn to_json(status: StatusJson<'_>) -> serde_json::Value {
    serde_json::to_value(status).expect("the status serializes")
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
    let default_profile = crate::cli::profiles::default_profile(ctx);
    // Said only when `profiles use` set a default, so a plain setup reads as before.
    let profile_line = if default_profile == kimi_vault::store::DEFAULT_PROFILE {
        profile.to_owned()
    } else if default_profile == profile {
        format!("{profile} (the default, set by `kimi-vault profiles use`)")
    } else {
        format!("{profile} (the default is '{default_profile}', set by `kimi-vault profiles use`)")
    };

    let loaded = match loaded {
        Ok(l) => l,
        Err(e) => {
            // Still say who, where and what to do; the error replaces the login state.
            let failure = Failure::Lib(e);
            let message = kimi_vault::scrub(&failure.message(profile));
            if ctx.json {
                output::json_line(&to_json(StatusJson {
                    profile,
                    default_profile: &default_profile,
                    logged_in: false,
                    needs_login: false,
                    access_token_valid: None,
                    backend: Some(target.as_str()),
                    backend_reason: Some(target_reason.to_string()),
                    expires_at: None,
                    expires_in_seconds: None,
                    scope: None,
                    region: None,
                    account: serde_json::Value::Null,
                    api_base: None,
                    key_exposed: Some(vault.key_exposed()),
                    error: Some(message.clone()),
                    vault_home: paths.home(),
                    vault_file: paths.vault(),
                    key_file: paths.key(),
                    lock_file: paths.lock(),
                }));
            } else {
                outln!("profile:    {profile_line}");
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
    let account = cred.and_then(|c| c.account.as_ref());
    if ctx.json {
        output::json_line(&to_json(StatusJson {
            profile,
            default_profile: &default_profile,
            logged_in,
            needs_login,
            access_token_valid: Some(access_valid),
            backend: Some(backend.as_str()),
            backend_reason: Some(reason),
            expires_at: cred.map(|c| kimi_vault::rfc3339(c.expires_at)),
            expires_in_seconds: left,
            scope: cred.map(|c| c.scope.clone()),
            region: cred.map(region_of),
            account: output::account_json(account),
            api_base: endpoints
                .as_ref()
                .and_then(|e| e.as_ref().ok())
                .map(|e| e.api_base.to_string()),
            key_exposed: Some(key_exposed),
            error: None,
            vault_home: paths.home(),
            vault_file: paths.vault(),
            key_file: paths.key(),
            lock_file: paths.lock(),
        }));
    } else {
        let state = match (cred, left) {
            (Some(_), _) if logged_in => {
                output::paint("yes", output::GOOD_STYLE, output::stdout_colour())
            }
            (Some(_), _) => format!(
                "no: Kimi rejected the refresh token, so the stored tokens are no longer used; run `{login}`"
            ),
            (None, _) => match vault.keyring_trouble() {
                Some(k) => format!(
                    "no credential found here (the OS keyring could not be read: {k}); if you logged in with it, fix that and retry, or run `{login}`"
                ),
                None => format!("no: run `{login}`"),
            },
        };
        outln!("profile:    {profile_line}");
        outln!("logged in:  {state}");
        outln!("backend:    {} ({reason})", backend.as_str());
        if let (Some(c), Some(e)) = (cred, &endpoints) {
            match e {
                Ok(e) => outln!("region:     {} (API {})", region_of(c), e.api_base),
                Err(err) => outln!("region:     {} ({err})", region_of(c)),
            }
            match account {
                Some(a) => outln!("account:    {}", output::account_words(a)),
                None => outln!("account:    not known (it is read at login)"),
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
