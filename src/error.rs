//! The library's errors. Each variant says what went wrong and carries the data a caller needs
//! to decide what to do; none holds a secret. Foreign errors that may carry secret bytes
//! (keyring-core's `BadEncoding`, HTTP bodies) are reduced to redacted text before they get
//! here. What to tell a person to do next (which command to run) is the caller's business: the
//! command line adds its hints and exit codes on top of these.

use std::path::PathBuf;

/// Why the vault (or one of its files) cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
    /// The vault directory cannot be used: not a directory, owned by someone else, writable by
    /// group or others, or sticky (a shared directory).
    Directory(String),
    /// A keyring entry of the vault cannot be read as a credential (not UTF-8, not a
    /// credential); the error's `path` then names the entry (`keyring entry kimi-vault/NAME`),
    /// not a file. Deleting the entry (a logout) is the way out; nothing is kept aside.
    KeyringEntry(String),
}

/// How the OS keyring failed. The `detail` strings are redacted descriptions of the platform's
/// own error, for people; code decides on the variant alone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyringError {
    /// There is no D-Bus session bus to reach a Secret Service through (Linux).
    #[error("no D-Bus session bus ({detail})")]
    NoSessionBus {
        /// Where the bus was looked for.
        detail: String,
    },
    /// No keyring service answers here (no Secret Service provider on the bus, no store for
    /// this platform).
    #[error("no keyring service is available ({detail})")]
    NoService {
        /// What the platform said.
        detail: String,
    },
    /// The keyring is locked, or refused access, and cannot prompt.
    #[error("the keyring is locked or refuses access ({detail})")]
    Locked {
        /// What the platform said.
        detail: String,
    },
    /// A keyring call did not answer in time (locked, waiting on a prompt nobody can see).
    #[error("the keyring did not answer within {seconds} s (locked, with no way to prompt?)")]
    TimedOut {
        /// The timeout.
        seconds: u64,
    },
    /// A keyring call timed out a short while ago (in this or another process), or one is
    /// waiting on it right now: it is not asked again until `again_in` seconds from now.
    #[error(
        "the keyring did not answer {seconds_ago} s ago; it is not asked again for {again_in} s"
    )]
    RecentlyTimedOut {
        /// Seconds since the timeout (or since the slow call began).
        seconds_ago: u64,
        /// Seconds until it is asked again.
        again_in: u64,
    },
    /// The entry is longer than the platform's keyring allows.
    #[error("the entry's {attribute} is longer than this keyring allows ({limit})")]
    TooLong {
        /// Which part of the entry.
        attribute: String,
        /// The platform's limit.
        limit: u32,
    },
    /// The stored entry cannot be read as a credential (not UTF-8, unexpected format).
    #[error("the stored entry {why}")]
    EntryUnreadable {
        /// What is wrong with it (never its content).
        why: String,
    },
    /// Several entries match one service and user.
    #[error("{count} keyring entries match service kimi-vault; remove the extra ones")]
    Ambiguous {
        /// How many.
        count: usize,
    },
    /// The keyring service failed in another way.
    #[error("the keyring service failed ({detail})")]
    Platform {
        /// What the platform said.
        detail: String,
    },
}

impl KeyringError {
    /// True when the keyring cannot be used here at all: `auto` mode then falls back to the
    /// encrypted file.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            KeyringError::NoSessionBus { .. }
                | KeyringError::NoService { .. }
                | KeyringError::Locked { .. }
                | KeyringError::TimedOut { .. }
                | KeyringError::RecentlyTimedOut { .. }
                | KeyringError::Platform { .. }
        )
    }
}

/// Why a device-flow login did not complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginFailure {
    /// The device code expired before it was approved.
    Expired,
    /// The user denied the request.
    Denied,
}

/// Everything that can go wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No credential is stored for the profile.
    #[error(
        "profile '{profile}' is not logged in{}",
        keyring_note(keyring_unreadable)
    )]
    NotLoggedIn {
        /// The profile asked for.
        profile: String,
        /// In `auto` mode, why the keyring could not be asked this time although a D-Bus
        /// session exists: a credential kept there was not seen.
        keyring_unreadable: Option<KeyringError>,
    },
    /// The stored refresh token was rejected; the record is kept and marked `needs_login`.
    #[error("the login of profile '{profile}' is no longer valid ({reason})")]
    LoginRequired {
        /// The profile.
        profile: String,
        /// What the server said, redacted.
        reason: String,
    },
    /// A vault file (or keyring entry) cannot be read or trusted.
    #[error("{}", vault_message(path, problem))]
    VaultUnreadable {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it.
        problem: VaultProblem,
    },
    /// The keyring failed where it was required (`keyring` mode) or in the middle of an
    /// operation.
    #[error("OS keyring: {0}")]
    Keyring(#[from] KeyringError),
    /// Kimi's service could not be reached, or kept failing after retries.
    #[error("{0}")]
    Service(String),
    /// Kimi's auth server refused to start a device login (a status that is neither success
    /// nor transient). Not transient: retrying gives the same answer.
    #[error("Kimi's auth server refused the login request (HTTP {status}: {detail})")]
    DeviceAuthorizationRefused {
        /// The HTTP status.
        status: u16,
        /// What the server said, redacted.
        detail: String,
    },
    /// Kimi's auth server refused a device login while it was being polled (neither pending,
    /// denied nor expired), or answered the poll with something unusable.
    #[error("Kimi's auth server refused the login ({detail})")]
    LoginRefused {
        /// What the server said or what was wrong with it, redacted.
        detail: String,
    },
    /// Kimi's auth server answered a refresh with a success this tool cannot use. The stored
    /// credential is unchanged.
    #[error(
        "Kimi's auth server sent an unusable refresh response ({why}); your credential is unchanged, try again later"
    )]
    RefreshUnusable {
        /// What is wrong with the answer (never a value from it).
        why: String,
    },
    /// Kimi's auth server answered a refresh with a device-flow answer (pending, slow down,
    /// expired, denied) that makes no sense there. The stored credential is unchanged.
    #[error("Kimi's auth server answered the refresh with {answer}; your credential is unchanged")]
    RefreshUnexpected {
        /// The kind of answer.
        answer: String,
    },
    /// A Kimi server answered with a success whose body this tool cannot use.
    #[error("{server} sent an unusable {what} ({why})")]
    UnusableAnswer {
        /// Which server: "Kimi's auth server" or "Kimi's API".
        server: &'static str,
        /// Which answer: "device authorization", "account", "usage answer", "model list".
        what: &'static str,
        /// What is wrong with it (never a value from it).
        why: String,
    },
    /// Kimi's API refused a request with a status that is neither an auth problem nor
    /// transient (HTTP 400, 404, ...).
    #[error("Kimi's API refused GET {url} ({detail})")]
    ApiRefused {
        /// The URL asked.
        url: String,
        /// What the API said, redacted.
        detail: String,
    },
    /// The access token that a forced refresh of this process produced a short while ago was
    /// rejected too: the 401 has another cause, and refreshing again so soon would not help
    /// (SPEC §5). Nothing was refreshed.
    #[error(
        "the access token a refresh produced {seconds_ago} s ago was rejected too: not refreshing again so soon"
    )]
    RejectedAgain {
        /// Seconds since that refresh.
        seconds_ago: u64,
    },
    /// `migrate`: the vault copy of a source did not read back identically after it was
    /// written, so the source was left in place.
    #[error(
        "the vault copy of {location} did not read back identically, so the source was left in place"
    )]
    ReadBackMismatch {
        /// The source (a path, or `keyring:kimi-code`).
        location: String,
    },
    /// What answered at an address asked for a proxy's `/health` is not a kimi-vault proxy.
    #[error(
        "{addr} answered /health with something that is not a kimi-vault proxy's JSON (HTTP {status})"
    )]
    NotAProxy {
        /// The address asked.
        addr: String,
        /// The HTTP status of its answer.
        status: u16,
    },
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
    /// The vault directory cannot be written or created: `blocked` (the directory itself, or
    /// the nearest existing ancestor it would be created in) does not let this user write.
    #[error("cannot use {} as the vault directory: cannot write in {}: {source}", home.display(), blocked.display())]
    VaultDirNotWritable {
        /// The vault directory.
        home: PathBuf,
        /// Where writing was refused.
        blocked: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The OS error (never carries file contents).
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the vault lock took too long: another process holds it.
    #[error("another kimi-vault process has held {path} for more than {seconds} s")]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        seconds: u64,
    },
    /// A profile name breaks the naming rule.
    #[error(
        "invalid profile name '{name}': a profile name is 1 to 64 letters, digits, '-', '_' or '.', and does not start with '.'"
    )]
    InvalidProfile {
        /// The name, with control characters escaped.
        name: String,
    },
    /// The persisted default profile (the file `default-profile` in the vault directory) holds
    /// something that is not a profile name. Nothing falls back to another profile; rewriting
    /// the file (or deleting it) is the way out.
    #[error("{} does not hold a profile name", path.display())]
    DefaultProfileUnusable {
        /// The file.
        path: PathBuf,
    },
    /// The configuration is unusable (a bad client id, no home directory).
    #[error("{0}")]
    Config(String),
    /// The device-flow login did not complete.
    #[error("{}", match .0 {
        LoginFailure::Expired => "the login code expired before it was approved",
        LoginFailure::Denied => "the login was denied; nothing was stored",
    })]
    LoginFailed(LoginFailure),
    /// The process is stopping (a long-running program asked its session to start no more
    /// refreshes): no request was sent.
    #[error("kimi-vault is stopping: no token refresh was started")]
    Stopping,
    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed")]
    Randomness,
    /// Kimi's API answered HTTP 402: the Kimi membership is not active (SPEC §5). The login
    /// itself is fine: the profile is never marked `needs_login` for this, and no refresh is
    /// attempted.
    #[error(
        "your Kimi membership is not active (Kimi's API answered HTTP 402{})",
        paren_detail(detail)
    )]
    MembershipInactive {
        /// What the API said, redacted (may be empty).
        detail: String,
    },
    /// Kimi's API rejected the access token (HTTP 401) again after one forced refresh: the
    /// refresh worked, but the new token is refused too. The record is not marked
    /// `needs_login` (the refresh token was accepted); a new login is the way out.
    #[error(
        "Kimi's API rejected the access token of profile '{profile}' even after a refresh ({detail})"
    )]
    ApiUnauthorized {
        /// The profile.
        profile: String,
        /// What the API said, redacted.
        detail: String,
    },
    /// Kimi's coding API answered `403 access_terminated_error`: it accepts only the coding
    /// agents it knows, and did not take this request's client for one. The login is fine.
    #[error(
        "Kimi's coding endpoint refused the request with HTTP 403 access_terminated_error{}: it accepts only the coding agents it knows (such as Claude Code, kimi-cli or kimi-code), and did not take this client for one. Your login is fine and was kept",
        paren_detail(detail)
    )]
    ClientNotAccepted {
        /// What the API said, redacted (may be empty).
        detail: String,
    },
}

fn paren_detail(detail: &str) -> String {
    if detail.trim().is_empty() {
        String::new()
    } else {
        format!(": {detail}")
    }
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// A vault-unreadable error for `path`.
    pub(crate) fn vault(path: impl Into<PathBuf>, problem: VaultProblem) -> Self {
        Error::VaultUnreadable {
            path: path.into(),
            problem,
        }
    }
}

fn keyring_note(trouble: &Option<KeyringError>) -> String {
    match trouble {
        Some(k) => format!(
            " here (the OS keyring could not be read: {k}; if you logged in with it, fix that and retry)"
        ),
        None => String::new(),
    }
}

fn vault_message(path: &std::path::Path, problem: &VaultProblem) -> String {
    let p = path.display();
    match problem {
        VaultProblem::WrongKey => format!(
            "{p} was encrypted with a different key: it was made on another machine or by another user, or vault.key was replaced"
        ),
        VaultProblem::Tampered => {
            format!("{p} failed authentication: it was modified or damaged")
        }
        VaultProblem::Corrupt(why) | VaultProblem::KeyringEntry(why) => {
            format!("{p} is not a readable kimi-vault file ({why})")
        }
        VaultProblem::Unsafe(why) => format!("{p} is unsafe to use: {why}"),
        VaultProblem::KeyMissing => {
            format!("{p} is missing, so the encrypted vault beside it cannot be opened")
        }
        VaultProblem::Directory(why) => {
            format!("{p} cannot be used as the vault directory: {why}")
        }
    }
}

/// Fills `buf` from the OS random number generator.
pub(crate) fn random_fill(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|_| Error::Randomness)
}

/// Shorthand result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
