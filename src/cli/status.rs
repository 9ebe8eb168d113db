//! `kimi-vault status`: what is stored and where, never a secret. It prints its report even
//! when the vault cannot be read (then with the error and what to do, exit 4).

use std::path::{Path, PathBuf};
use std::time::Instant;

use kimi_vault::oauth::Region;
use kimi_vault::store::{BackendKind, BackendReason, Credential};
use serde::Serialize;

use crate::cli::failure::{CmdResult, exit, profile_flag};
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
    account: Option<output::AccountJson<'a>>,
    api_base: Option<String>,
    key_exposed: Option<bool>,
    /// Why the vault cannot be read; null when it can.
    error: Option<String>,
    vault_home: &'a Path,
    vault_file: PathBuf,
    key_file: PathBuf,
    lock_file: PathBuf,
}

/// The profile line: said with the default only when `profiles use` set one, so a plain
/// setup reads as before.
fn profile_line(profile: &str, default_profile: &str) -> String {
    if default_profile == kimi_vault::store::DEFAULT_PROFILE {
        profile.to_owned()
    } else if default_profile == profile {
        format!("{profile} (the default, set by `kimi-vault profiles use`)")
    } else {
        format!("{profile} (the default is '{default_profile}', set by `kimi-vault profiles use`)")
    }
}

/// The lines about the vault's files (the key line only when the key was exposed).
fn print_paths(paths: &kimi_vault::store::VaultPaths, key_exposed: Option<&str>) {
    outln!("vault dir:  {}", paths.home().display());
    outln!("vault file: {}", paths.vault().display());
    outln!("key file:   {}", paths.key().display());
    if let Some(login) = key_exposed {
        outln!(
            "key:        EXPOSED: vault.key was readable by others; a fresh key replaces it at the next write (`{login}`, or the next token refresh)"
        );
    }
    outln!("lock file:  {}", paths.lock().display());
}

/// Prints the status; exit 0 when logged in, 3 otherwise, 4 when the vault cannot be read.
/// `unresolved`: why the profile to report could not be resolved (an unusable
/// `default-profile` file), reported as the vault's error.
pub(crate) fn run(ctx: &Ctx, unresolved: Option<kimi_vault::Error>) -> CmdResult {
    let vault = ctx.session.vault();
    let started = Instant::now();
    // The vault directory is checked as every command checks it (issue 10): a shared or
    // writable one is refused here too.
    let loaded = vault.check_home().and_then(|_| match unresolved {
        Some(e) => Err(e),
        None => ctx.session.stored(),
    });
    let took = started.elapsed();
    let default_profile = crate::cli::profiles::default_profile(ctx);
    match loaded {
        Ok(loaded) => Ok(report_stored(ctx, &default_profile, loaded.as_ref(), took)),
        Err(e) => Ok(report_unreadable(ctx, &default_profile, e)),
    }
}

/// The vault cannot be read: still say who, where and what to do; the error replaces the
/// login state. The exit code is the error's.
fn report_unreadable(ctx: &Ctx, default_profile: &str, e: kimi_vault::Error) -> u8 {
    let vault = ctx.session.vault();
    let profile = ctx.profile();
    let (target, target_reason) = vault.write_target(profile);
    let paths = vault.paths();
    let failure = crate::cli::vault_home_failure(e);
    let message = kimi_vault::scrub(&failure.message(profile));
    if ctx.json {
        output::json_line(&StatusJson {
            profile,
            default_profile,
            logged_in: false,
            needs_login: false,
            access_token_valid: None,
            backend: Some(target.as_str()),
            backend_reason: Some(reason_text(&target_reason)),
            expires_at: None,
            expires_in_seconds: None,
            scope: None,
            region: None,
            account: None,
            api_base: None,
            key_exposed: Some(vault.key_exposed()),
            error: Some(message.clone()),
            vault_home: paths.home(),
            vault_file: paths.vault(),
            key_file: paths.key(),
            lock_file: paths.lock(),
        });
    } else {
        outln!("profile:    {}", profile_line(profile, default_profile));
        outln!("logged in:  unknown: the vault cannot be read (below)");
        outln!(
            "backend:    {} ({})",
            target.as_str(),
            reason_text(&target_reason)
        );
        print_paths(paths, None);
    }
    eprintln!(
        "kimi-vault: error: {}",
        kimi_vault::sanitize::for_terminal_multiline(&message)
    );
    failure.exit_code()
}

/// Why the vault writes to its backend, in words, with the command that still asks a keyring
/// that is not asked again for a while.
fn reason_text(reason: &BackendReason) -> String {
    match reason {
        BackendReason::KeyringUnavailable(k) => {
            format!("{reason}{}", crate::cli::failure::asked_by_doctor(k))
        }
        _ => reason.to_string(),
    }
}

/// The backend that holds the profile (or would), and why.
fn backend_and_reason(
    ctx: &Ctx,
    loaded: Option<&kimi_vault::store::Loaded>,
) -> (BackendKind, String) {
    let (target, target_reason) = ctx.session.vault().write_target(ctx.profile());
    match loaded {
        Some(l) if l.backend == target => (l.backend, reason_text(&target_reason)),
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
        None => (target, reason_text(&target_reason)),
    }
}

/// What `status` found in a readable vault.
struct Found<'a> {
    cred: Option<&'a Credential>,
    backend: BackendKind,
    reason: String,
    logged_in: bool,
    needs_login: bool,
    /// Seconds the access token is still valid for (negative: expired).
    left: Option<i64>,
    key_exposed: bool,
    endpoints: Option<Result<kimi_vault::oauth::Endpoints, kimi_vault::Error>>,
}

/// The status of a readable vault; exit 0 when logged in, 3 otherwise.
fn report_stored(
    ctx: &Ctx,
    default_profile: &str,
    loaded: Option<&kimi_vault::store::Loaded>,
    took: std::time::Duration,
) -> u8 {
    let (backend, reason) = backend_and_reason(ctx, loaded);
    let cred = loaded.map(|l| &l.cred);
    let needs_login = cred.is_some_and(|c| c.needs_login);
    let found = Found {
        cred,
        backend,
        reason,
        logged_in: cred.is_some() && !needs_login,
        needs_login,
        left: cred.map(|c| c.expires_in(kimi_vault::now_unix())),
        key_exposed: ctx.session.vault().key_exposed(),
        endpoints: cred.map(|c| ctx.session.endpoints(Region::from_stored(&c.region))),
    };
    if ctx.json {
        print_json(ctx, default_profile, &found);
    } else {
        print_human(ctx, default_profile, &found, took);
    }
    if found.logged_in {
        exit::OK
    } else {
        exit::LOGIN_REQUIRED
    }
}

/// `status --json` of a readable vault.
fn print_json(ctx: &Ctx, default_profile: &str, found: &Found<'_>) {
    let paths = ctx.session.vault().paths();
    let cred = found.cred;
    output::json_line(&StatusJson {
        profile: ctx.profile(),
        default_profile,
        logged_in: found.logged_in,
        needs_login: found.needs_login,
        access_token_valid: Some(found.left.is_some_and(|l| l > 0)),
        backend: Some(found.backend.as_str()),
        backend_reason: Some(found.reason.clone()),
        expires_at: cred.map(|c| kimi_vault::rfc3339(c.expires_at)),
        expires_in_seconds: found.left,
        scope: cred.map(|c| c.scope.clone()),
        region: cred.map(region_of),
        account: output::AccountJson::of(cred.and_then(|c| c.account.as_ref())),
        api_base: found
            .endpoints
            .as_ref()
            .and_then(|e| e.as_ref().ok())
            .map(|e| e.api_base.to_string()),
        key_exposed: Some(found.key_exposed),
        error: None,
        vault_home: paths.home(),
        vault_file: paths.vault(),
        key_file: paths.key(),
        lock_file: paths.lock(),
    });
}

/// The "logged in" line's value.
fn login_state(ctx: &Ctx, found: &Found<'_>, login: &str) -> String {
    match found.cred {
        Some(_) if found.logged_in => {
            output::paint("yes", output::GOOD_STYLE, output::stdout_colour())
        }
        Some(_) => format!(
            "no: Kimi rejected the refresh token, so the stored tokens are no longer used; run `{login}`"
        ),
        None => match ctx.session.vault().keyring_trouble() {
            Some(k) => format!(
                "no credential found here (the OS keyring could not be read: {}); if you logged in with it, fix that and retry, or run `{login}`",
                kimi_vault::sanitize::for_terminal(&k.to_string())
            ),
            None => format!("no: run `{login}`"),
        },
    }
}

/// The region, account, expiry and scope lines of a stored credential.
fn print_credential(found: &Found<'_>) {
    if let (Some(c), Some(e)) = (found.cred, &found.endpoints) {
        match e {
            Ok(e) => outln!("region:     {} (API {})", region_of(c), e.api_base),
            Err(err) => outln!("region:     {} ({err})", region_of(c)),
        }
        match &c.account {
            Some(a) => outln!("account:    {}", output::account_words(a)),
            None => outln!("account:    not known (it is read at login)"),
        }
    }
    if let (Some(c), Some(l)) = (found.cred, found.left) {
        let renewal = if found.needs_login {
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
}

/// `status` for people, of a readable vault.
fn print_human(ctx: &Ctx, default_profile: &str, found: &Found<'_>, took: std::time::Duration) {
    let profile = ctx.profile();
    let vault = ctx.session.vault();
    let login = format!("kimi-vault login{}", profile_flag(profile));
    outln!("profile:    {}", profile_line(profile, default_profile));
    // The only line with colour of ours in it; its outside text is escaped in `login_state`.
    output::write_styled_line(&format!("logged in:  {}", login_state(ctx, found, &login)));
    outln!("backend:    {} ({})", found.backend.as_str(), found.reason);
    print_credential(found);
    print_paths(vault.paths(), found.key_exposed.then_some(login.as_str()));
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
