//! What `doctor` found, before it is shown: the checks' results (`Checks`, gathered by
//! doctor.rs) and the words both doctor.rs and the report (doctor_report.rs) use.

use kimi_vault::KeyringError;
use kimi_vault::oauth::Region;
use kimi_vault::store::inspect::{FileProbe, PathCheck};
use kimi_vault::store::{BackendKind, KeyringProbe, LockState};

/// The platform's keyring, by name.
pub(crate) fn store_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "Keychain"
    } else if cfg!(windows) {
        "Credential Manager"
    } else {
        "Secret Service over D-Bus"
    }
}

/// What fixes an encrypted-file backend that cannot write.
pub(crate) const FILE_FIX: &str = "point KIMI_VAULT_HOME (or --vault-home) at a directory you own and can write (the vault directory is created there, mode 700), or make the directory named above writable; with a working keyring, KIMI_VAULT_BACKEND=auto keeps credentials there instead";

/// Why the keyring failed, in words, and what fixes it.
pub(crate) fn keyring_fix(e: &KeyringError) -> &'static str {
    match e {
        KeyringError::NoSessionBus { .. } => {
            "there is no D-Bus session here (a server, a container, ssh without a desktop session). Run kimi-vault inside a desktop session or under `dbus-run-session` with a Secret Service (gnome-keyring, KeePassXC); or keep KIMI_VAULT_BACKEND=auto, which uses the encrypted file"
        }
        KeyringError::NoService { .. } => {
            "no Secret Service answers on the session bus: install and start one (gnome-keyring: `gnome-keyring-daemon --start --components=secrets`; or KeePassXC with Secret Service integration); or keep KIMI_VAULT_BACKEND=auto, which uses the encrypted file"
        }
        KeyringError::Locked { .. } => {
            "the collection is locked and no unlock prompt can be shown: unlock it (log in to the desktop session, or `gnome-keyring-daemon --unlock`); meanwhile auto mode uses the encrypted file"
        }
        KeyringError::TimedOut { .. } | KeyringError::RecentlyTimedOut { .. } => {
            "the keyring did not answer: it is probably waiting on an unlock prompt nobody can see; unlock it; meanwhile auto mode uses the encrypted file"
        }
        KeyringError::TooLong { .. } => {
            "this platform's keyring cannot hold an entry of a credential's size; auto mode uses the encrypted file"
        }
        _ => {
            "see the detail above; auto mode uses the encrypted file when the keyring is unavailable"
        }
    }
}

pub(crate) struct Overrides<'a> {
    pub(crate) list: Vec<(&'static str, &'a str)>,
}

/// A URL for display: no user info, query or fragment (an override may carry a password).
pub(crate) fn shown_url(raw: &str) -> Option<String> {
    let mut u = url::Url::parse(raw.trim()).ok()?;
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

/// What the key check found; an unreadable vault's error is worded at once (the words are
/// all `doctor` shows of it).
pub(crate) enum Key {
    /// No `vault.enc` yet.
    NoVault,
    /// The key opens the vault here, with this many profiles.
    Opens(usize),
    /// The vault cannot be read: the message, with what to do.
    Unreadable(String),
}

/// What every check found (nothing here is printed yet).
pub(crate) struct Checks<'a> {
    pub(crate) mode_name: &'static str,
    pub(crate) keyring: Option<Result<KeyringProbe, (&'static str, KeyringError)>>,
    pub(crate) file: FileProbe,
    pub(crate) files: Vec<PathCheck>,
    pub(crate) key: Key,
    pub(crate) binding: kimi_vault::store::inspect::Binding,
    pub(crate) lock: Result<LockState, kimi_vault::Error>,
    pub(crate) clock: Vec<String>,
    pub(crate) regions: Vec<(
        Region,
        Result<kimi_vault::oauth::Endpoints, kimi_vault::Error>,
    )>,
    pub(crate) overrides: Overrides<'a>,
    pub(crate) sources: Vec<(std::path::PathBuf, kimi_vault::migrate::Tool)>,
    pub(crate) clients: Vec<crate::cli::doctor_clients::Finding>,
    /// The backend credentials would go to, if the configured one works.
    pub(crate) backend: Option<BackendKind>,
    pub(crate) code: u8,
}
