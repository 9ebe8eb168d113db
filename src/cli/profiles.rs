//! `kimi-vault profiles`: every stored profile in either backend, never a secret.

use kimi_vault::store::{BackendMode, DEFAULT_PROFILE, KeyringListing, StoredProfile};
use serde::Serialize;

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
    let report = DefaultProfileJson {
        default_profile: name,
        stored,
        file: paths.default_profile(),
    };
    if ctx.json {
        output::json_line(&report);
    } else {
        outln!(
            "'{}' is now the default profile (kept in {}); --profile and KIMI_VAULT_PROFILE still win.",
            report.default_profile,
            report.file.display()
        );
    }
    if !stored {
        eprintln!(
            "kimi-vault: note: profile '{name}' holds no credential yet: `kimi-vault login` logs it in."
        );
    }
    Ok(exit::OK)
}

/// `profiles use NAME --json`, and the sentence people get.
#[derive(Serialize)]
struct DefaultProfileJson<'a> {
    default_profile: &'a str,
    /// Whether NAME holds a credential.
    stored: bool,
    file: std::path::PathBuf,
}

/// One stored copy of a profile: an entry of `profiles --json` (SPEC §3), and a row of the
/// table people get.
#[derive(Serialize)]
struct ProfileJson<'a> {
    profile: &'a str,
    backend: &'static str,
    logged_in: bool,
    needs_login: bool,
    expires_at: Option<String>,
    expires_in_seconds: Option<i64>,
    region: Option<&'a str>,
    account: Option<output::AccountJson<'a>>,
    scope: Option<&'a str>,
    /// Why the copy cannot be read, else null.
    error: Option<String>,
    /// The default profile (the one `profiles use` set, else `default`).
    default: bool,
}

impl<'a> ProfileJson<'a> {
    fn new(p: &'a StoredProfile, now: i64, default: &str) -> Self {
        let row = ProfileJson {
            profile: &p.profile,
            backend: p.backend.as_str(),
            logged_in: false,
            needs_login: false,
            expires_at: None,
            expires_in_seconds: None,
            region: None,
            account: None,
            scope: None,
            error: None,
            default: p.profile == default,
        };
        match &p.cred {
            Ok(c) => ProfileJson {
                logged_in: !c.needs_login,
                needs_login: c.needs_login,
                expires_at: Some(kimi_vault::rfc3339(c.expires_at)),
                expires_in_seconds: Some(c.expires_in(now)),
                region: Some(if c.region.is_empty() { "cn" } else { &c.region }),
                account: output::AccountJson::of(c.account.as_ref()),
                scope: Some(&c.scope),
                ..row
            },
            Err(e) => ProfileJson {
                error: Some(kimi_vault::scrub(&e.to_string())),
                ..row
            },
        }
    }

    /// The table's row; `selected`: the profile this command runs for.
    fn row(&self, selected: &str) -> [String; 6] {
        let mark = if self.profile == selected { " *" } else { "" };
        let default = if self.default && self.profile != DEFAULT_PROFILE {
            " (default)"
        } else {
            ""
        };
        let name = format!("{}{default}{mark}", self.profile);
        let backend = self.backend.to_owned();
        if self.error.is_some() {
            return [
                name,
                backend,
                "unreadable".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ];
        }
        [
            name,
            backend,
            if self.needs_login {
                "needs login"
            } else {
                "logged in"
            }
            .to_owned(),
            self.region.unwrap_or("cn").to_owned(),
            match (&self.expires_at, self.expires_in_seconds) {
                (Some(at), Some(left)) => format!("{at} ({})", output::relative(left)),
                _ => "-".into(),
            },
            self.account
                .as_ref()
                .map(output::AccountJson::words)
                .unwrap_or_else(|| "-".into()),
        ]
    }
}

/// `profiles` for people: the table, what the marks mean, and a warning per unreadable copy.
fn print_table(selected: &str, default: &str, rows: &[ProfileJson<'_>]) {
    if rows.is_empty() {
        outln!(
            "No stored profile. Log in with `kimi-vault login` (or `kimi-vault --profile NAME login`)."
        );
        return;
    }
    let header = [
        "PROFILE",
        "BACKEND",
        "STATE",
        "REGION",
        "ACCESS TOKEN EXPIRES",
        "ACCOUNT",
    ];
    let table: Vec<[String; 6]> = rows.iter().map(|r| r.row(selected)).collect();
    output::table(header, &table);
    outln!("(* the selected profile, '{selected}')");
    if default != DEFAULT_PROFILE {
        outln!("(default: the profile `kimi-vault profiles use` set, '{default}')");
    }
    for r in rows {
        if let Some(e) = &r.error {
            eprintln!(
                "kimi-vault: warning: profile '{}' ({}): {}",
                r.profile,
                r.backend,
                kimi_vault::sanitize::for_terminal(e)
            );
        }
    }
}

/// Lists the stored profiles; exit 4 when the encrypted file cannot be read, 1 when the keyring
/// is required (`keyring` mode) but cannot be listed.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    let vault = ctx.session.vault();
    let listing = vault.profiles();
    let now = kimi_vault::now_unix();
    let default = default_profile(ctx);
    let rows: Vec<ProfileJson<'_>> = listing
        .profiles
        .iter()
        .map(|p| ProfileJson::new(p, now, &default))
        .collect();
    if ctx.json {
        output::json_line(&rows);
    } else {
        print_table(ctx.profile(), &default, &rows);
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
