//! The crate's error type. Every message is written by hand for the user, names what to do next,
//! and never holds a secret: foreign errors that may carry secret bytes (keyring-core's
//! `BadEncoding`, HTTP bodies) are reduced to redacted text before they get here.

use std::path::PathBuf;

/// Exit codes of the command line (SPEC §3).
pub mod exit {
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
}

/// Why the vault (or one of its files) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultProblem {
    /// The file was encrypted with another key: another machine, another user, or a replaced
    /// `vault.key`.
    WrongKey,
    /// The key matches but authentication failed: the file was changed or damaged.
    Tampered,
    /// The file is not a kimi-vault file, is cut short, or is of an unknown version.
    Corrupt(String),
    /// The file is a symlink, not a regular file, owned by someone else, or too open.
    Unsafe(String),
    /// `vault.key` is missing while `vault.enc` exists.
    KeyMissing,
}

/// Everything that can go wrong, each with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credential is stored for the profile.
    #[error("profile '{profile}' is not logged in{note}: run `kimi-vault login{flag}`")]
    NotLoggedIn {
        /// The profile asked for.
        profile: String,
        /// ` --profile NAME` when the profile is not `default`, for the hint.
        flag: String,
        /// Empty, or why the keyring could not be asked (the credential may be there).
        note: String,
    },
    /// The stored refresh token was rejected; the record is kept and marked `needs_login`.
    #[error(
        "the login of profile '{profile}' is no longer valid ({why}): run `kimi-vault login{flag}`"
    )]
    LoginRequired {
        /// The profile.
        profile: String,
        /// ` --profile NAME` when the profile is not `default`.
        flag: String,
        /// What the server said, redacted.
        why: String,
    },
    /// A vault file cannot be read or trusted.
    #[error("{}", vault_message(path, problem))]
    VaultUnreadable {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        problem: VaultProblem,
    },
    /// Kimi's service could not be reached, or kept failing after retries.
    #[error("{0}")]
    Service(String),
    /// The OAuth or API server answered something this tool cannot use (not transient).
    #[error("{0}")]
    Protocol(String),
    /// An endpoint violates the endpoint rule; nothing was sent.
    #[error(
        "refusing endpoint {url}: {why}. An OAuth host or API base must be https on kimi.com, kimi.ai or a subdomain, or a loopback address (127.0.0.0/8, ::1, localhost) over http or https"
    )]
    EndpointRefused {
        /// The endpoint, without userinfo, query or fragment.
        url: String,
        /// What exactly is wrong with it.
        why: String,
    },
    /// The keyring failed where it was required (`KIMI_VAULT_BACKEND=keyring`) or mid-operation.
    #[error("OS keyring: {0}")]
    Keyring(String),
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error (never carries file contents).
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the vault lock took too long.
    #[error(
        "another kimi-vault process has held {path} for more than {seconds} s; try again, or look for a stuck kimi-vault process"
    )]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        seconds: u64,
    },
    /// Bad command-line usage that clap could not catch.
    #[error("{0}")]
    Usage(String),
    /// The device-flow login did not complete (denied, expired).
    #[error("{0}")]
    LoginFailed(String),
    /// A child process could not be started.
    #[error("{0}")]
    Exec(String),
}

impl Error {
    /// The process exit code for this error (SPEC §3).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::NotLoggedIn { .. } | Error::LoginRequired { .. } => exit::LOGIN_REQUIRED,
            Error::VaultUnreadable { .. } => exit::VAULT_UNREADABLE,
            Error::Service(_) => exit::SERVICE,
            Error::Usage(_) => exit::USAGE,
            _ => exit::FAILURE,
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A vault-unreadable error for `path`.
    pub fn vault(path: impl Into<PathBuf>, problem: VaultProblem) -> Self {
        Error::VaultUnreadable {
            path: path.into(),
            problem,
        }
    }
}

/// The ` --profile NAME` suffix for hints, empty for the default profile.
pub fn profile_flag(profile: &str) -> String {
    if profile == "default" {
        String::new()
    } else {
        format!(" --profile {profile}")
    }
}

fn vault_message(path: &std::path::Path, problem: &VaultProblem) -> String {
    let p = path.display();
    match problem {
        VaultProblem::WrongKey => format!(
            "{p} was encrypted with a different key: it was made on another machine or by another user, or vault.key was replaced. Restore the matching vault.key, or run `kimi-vault login` (the unreadable file is kept aside)"
        ),
        VaultProblem::Tampered => format!(
            "{p} failed authentication: it was modified or damaged. Restore it from a backup, or run `kimi-vault login` (the unreadable file is kept aside)"
        ),
        VaultProblem::Corrupt(why) => format!(
            "{p} is not a readable kimi-vault file ({why}). Restore it from a backup, or run `kimi-vault login` (the unreadable file is kept aside)"
        ),
        VaultProblem::Unsafe(why) => {
            format!("{p} is unsafe to use: {why}. Fix or remove it, then try again")
        }
        VaultProblem::KeyMissing => format!(
            "{p} is missing, so the encrypted vault beside it cannot be opened. Restore vault.key, or run `kimi-vault login` (the unreadable vault is kept aside)"
        ),
    }
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
