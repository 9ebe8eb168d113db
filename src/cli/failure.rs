//! Why a command failed, as the command line sees it: the library's typed errors plus the
//! command line's own (usage, running a program), each with its exit code (SPEC §3) and a
//! message that says what to do next.

use kimi_vault::{Error, KeyringError, LoginFailure, VaultProblem};

/// Exit codes (SPEC §3).
pub(crate) mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other failure.
    pub const FAILURE: u8 = 1;
    /// Usage error.
    pub const USAGE: u8 = 2;
    /// Login required: no credential, or the refresh token was rejected.
    pub const LOGIN_REQUIRED: u8 = 3;
    /// Vault unreadable: corrupt, tampered, other machine/user, unsafe permissions.
    pub const VAULT_UNREADABLE: u8 = 4;
    /// Kimi's service unreachable or failing after retries.
    pub const SERVICE: u8 = 5;
    /// `exec`: the program cannot be executed (as shells do).
    pub const CANNOT_EXECUTE: u8 = 126;
    /// `exec`: the program was not found (as shells do).
    pub const NOT_FOUND: u8 = 127;
    /// `login` cancelled with Ctrl-C (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: u8 = 130;
}

/// A command's failure.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The library's error.
    Lib(Error),
    /// Bad usage that clap could not catch.
    Usage(String),
    /// `exec` could not start the program.
    Exec {
        /// The program as given.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// Writing the result failed (a closed stdout).
    Output(std::io::Error),
    /// Anything else, said in words (exit 1).
    Other(String),
    /// The user pressed Ctrl-C while `login` waited for approval; nothing was stored.
    Cancelled,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Lib(e)
    }
}

/// Result of a command: its exit code.
pub(crate) type CmdResult = Result<u8, Failure>;

/// The vault whose `default-profile` file (`profiles use`) says which profile a command
/// without `--profile` uses; set once the configuration is resolved.
static VAULT_PATHS: std::sync::OnceLock<kimi_vault::store::VaultPaths> = std::sync::OnceLock::new();

/// Tells [`profile_flag`] which vault's default profile the hints are for.
pub(crate) fn set_vault_paths(paths: &kimi_vault::store::VaultPaths) {
    let _ = VAULT_PATHS.set(paths.clone());
}

/// The profile a command without `--profile` uses (as far as the vault says: `profiles use`'s
/// file, else `default`). Read only when a hint is written, never on a command's fast path.
fn persisted_default_profile() -> String {
    VAULT_PATHS
        .get()
        .and_then(|paths| {
            kimi_vault::store::read_default_profile(paths)
                .ok()
                .flatten()
        })
        .unwrap_or_else(|| kimi_vault::store::DEFAULT_PROFILE.to_owned())
}

/// ` --profile NAME` for hints, empty when a command without `--profile` would use that profile
/// anyway (the default profile, or the one `profiles use` made the default).
pub(crate) fn profile_flag(profile: &str) -> String {
    if profile == persisted_default_profile() {
        String::new()
    } else {
        format!(" --profile {profile}")
    }
}

/// After a keyring that is not asked again for a while (a recent timeout): which command still
/// asks it. Empty for every other keyring error.
pub(crate) fn asked_by_doctor(k: &KeyringError) -> &'static str {
    match k {
        KeyringError::RecentlyTimedOut { .. } => " (`kimi-vault doctor` asks it)",
        _ => "",
    }
}

impl Failure {
    /// The process exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Lib(e) => match e {
                Error::NotLoggedIn { .. }
                | Error::LoginRequired { .. }
                | Error::ApiUnauthorized { .. } => exit::LOGIN_REQUIRED,
                Error::VaultUnreadable { .. } => exit::VAULT_UNREADABLE,
                Error::Service(_) => exit::SERVICE,
                Error::InvalidProfile { .. }
                | Error::Config(_)
                | Error::DefaultProfileUnusable { .. } => exit::USAGE,
                _ => exit::FAILURE,
            },
            Failure::Usage(_) => exit::USAGE,
            Failure::Exec { source, .. } => match source.kind() {
                std::io::ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::CANNOT_EXECUTE,
            },
            Failure::Output(_) | Failure::Other(_) => exit::FAILURE,
            Failure::Cancelled => exit::INTERRUPTED,
        }
    }

    /// The message for people: what happened and what to do next (never a secret: the
    /// caller scrubs it once more).
    pub(crate) fn message(&self, profile: &str) -> String {
        let login = format!("kimi-vault login{}", profile_flag(profile));
        match self {
            Failure::Lib(e) => match e {
                Error::NotLoggedIn {
                    keyring_unreadable: Some(KeyringError::RecentlyTimedOut { .. }),
                    ..
                } => format!("{e}: run `{login}`; `kimi-vault doctor` still asks the keyring"),
                Error::NotLoggedIn { .. }
                | Error::LoginRequired { .. }
                | Error::ApiUnauthorized { .. } => {
                    format!("{e}: run `{login}`")
                }
                Error::MembershipInactive { .. } => format!(
                    "{e}. Your login is fine and was kept: check or renew your Kimi Code membership on kimi.com, then try again"
                ),
                Error::VaultUnreadable { problem, .. } => {
                    let logout = format!("kimi-vault logout{}", profile_flag(profile));
                    let next = match problem {
                        VaultProblem::Unsafe(_) => "Fix or remove it, then try again".to_owned(),
                        VaultProblem::Directory(_) => "Use a directory of your own that only you can write: point KIMI_VAULT_HOME (or --vault-home) at one, or unset it for the default (created with mode 700); or fix this one (yours, not sticky, chmod 700)".to_owned(),
                        VaultProblem::KeyringEntry(_) => {
                            format!("Run `{logout}` to delete the entry, then `{login}`")
                        }
                        VaultProblem::WrongKey => format!(
                            "Its key is bound to the machine and user that made it, so no vault.key opens it here (on that machine it still opens). Start a new vault here with `{login}` (or reset it with `{logout}`): the unreadable file will be kept aside as vault.enc.unreadable-<time>, not deleted"
                        ),
                        VaultProblem::KeyMissing => format!(
                            "Restore vault.key; or start a new vault with `{login}` (or reset it with `{logout}`): the unreadable vault will be kept aside as vault.enc.unreadable-<time>, not deleted"
                        ),
                        _ => format!(
                            "Restore it from a backup; or start a new vault with `{login}` (or reset it with `{logout}`): the unreadable file will be kept aside as vault.enc.unreadable-<time>, not deleted"
                        ),
                    };
                    format!("{e}. {next}")
                }
                Error::Keyring(k)
                    if k.is_unavailable() || matches!(k, KeyringError::TooLong { .. }) =>
                {
                    let fix = match k {
                        KeyringError::NoSessionBus { .. } => {
                            "start a D-Bus session with a Secret Service (log in to a desktop session, or run under `dbus-run-session` with gnome-keyring or KeePassXC)"
                        }
                        KeyringError::NoService { .. } => {
                            "start a Secret Service on the session bus (gnome-keyring, KeePassXC)"
                        }
                        KeyringError::Locked { .. }
                        | KeyringError::TimedOut { .. }
                        | KeyringError::RecentlyTimedOut { .. } => {
                            "unlock the keyring (log in to the desktop session, or `gnome-keyring-daemon --unlock`)"
                        }
                        _ => "use a keyring that accepts the entry",
                    };
                    format!(
                        "{e}{}. KIMI_VAULT_BACKEND=keyring requires a working keyring: {fix}; or set KIMI_VAULT_BACKEND=auto (falls back to the encrypted file) or KIMI_VAULT_BACKEND=file. `kimi-vault doctor` shows what works here",
                        asked_by_doctor(k)
                    )
                }
                Error::LoginFailed(LoginFailure::Expired) => format!("{e}: run `{login}` again"),
                Error::LockTimeout { .. } => {
                    format!("{e}; try again, or look for a stuck kimi-vault process")
                }
                Error::ReadBackMismatch { .. } => format!("{e}; migrate it again with --force"),
                Error::DefaultProfileUnusable { .. } => format!(
                    "{e}: set the default with `kimi-vault profiles use NAME`, or delete the file"
                ),
                Error::VaultDirNotWritable { blocked, .. } => format!(
                    "{e}. Point KIMI_VAULT_HOME (or --vault-home) at a directory you can write (the vault directory is created there, mode 700), or make {} writable; `kimi-vault doctor` checks it",
                    blocked.display()
                ),
                _ => e.to_string(),
            },
            Failure::Usage(m) => m.clone(),
            Failure::Exec { program, source } => match source.kind() {
                std::io::ErrorKind::NotFound => format!("{program}: command not found"),
                _ => format!("cannot run {program}: {source}"),
            },
            Failure::Output(e) => format!("cannot write to stdout: {e}"),
            Failure::Other(m) => m.clone(),
            Failure::Cancelled => "login cancelled (Ctrl-C): nothing was stored".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreadable_keyring_entry_is_told_by_its_problem_not_its_path() {
        // The path names the entry; the hint follows the typed problem, whatever the path says.
        for path in ["keyring entry kimi-vault/work", "/somewhere/else"] {
            let e = Error::VaultUnreadable {
                path: path.into(),
                problem: VaultProblem::KeyringEntry("the stored entry is not valid UTF-8".into()),
            };
            let message = Failure::Lib(e).message("work");
            assert!(
                message.contains("to delete the entry, then `kimi-vault login"),
                "{message}"
            );
        }
        let corrupt = Error::VaultUnreadable {
            path: "keyring entry kimi-vault/work".into(),
            problem: VaultProblem::Corrupt("cut short".into()),
        };
        assert!(
            !Failure::Lib(corrupt)
                .message("work")
                .contains("delete the entry")
        );
    }

    #[test]
    fn the_command_line_names_the_commands_the_library_does_not() {
        let recent = KeyringError::RecentlyTimedOut {
            seconds_ago: 3,
            again_in: 57,
        };
        assert!(!recent.to_string().contains("kimi-vault"), "{recent}");
        let message = Failure::Lib(Error::Keyring(recent.clone())).message("default");
        assert!(
            message.contains("(`kimi-vault doctor` asks it)"),
            "{message}"
        );
        let not_in = Error::NotLoggedIn {
            profile: "default".into(),
            keyring_unreadable: Some(recent),
        };
        let message = Failure::Lib(not_in).message("default");
        assert!(
            message.contains("`kimi-vault doctor` still asks"),
            "{message}"
        );

        let e = Error::DefaultProfileUnusable {
            path: "/v/default-profile".into(),
        };
        assert!(!e.to_string().contains("kimi-vault"), "{e}");
        let failure = Failure::Lib(e);
        assert_eq!(failure.exit_code(), exit::USAGE);
        assert!(
            failure
                .message("default")
                .ends_with("does not hold a profile name: set the default with `kimi-vault profiles use NAME`, or delete the file"),
            "{}",
            failure.message("default")
        );
    }
}
