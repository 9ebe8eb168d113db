//! The configuration layer: every environment variable the command line acts on is read once,
//! here, and resolved against the flags (a flag wins over its variable, the variable over the
//! default). clap is not told about the variables: it would read each of them once per
//! subcommand on every run, report a bad value as a flag the user never typed, and list an
//! option set through the environment in usage lines as if it were required.
//!
//! An empty variable counts as unset (`KIMI_VAULT_HOME=` is the default directory). A value that
//! cannot be used is a usage error (exit 2) that names the variable.

// Environment reads belong to the edge, and this is the edge: the configuration layer: where the command line reads its environment.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::path::PathBuf;

use kimi_vault::store::{DEFAULT_PROFILE, VaultPaths};

use crate::cli::failure::Failure;
use crate::cli::{BackendArg, Config};

/// `KIMI_VAULT_PROFILE`.
pub(crate) const PROFILE_VAR: &str = "KIMI_VAULT_PROFILE";
/// `KIMI_VAULT_HOME`.
pub(crate) const HOME_VAR: &str = "KIMI_VAULT_HOME";
/// `KIMI_VAULT_BACKEND`.
pub(crate) const BACKEND_VAR: &str = "KIMI_VAULT_BACKEND";
/// `KIMI_CODE_OAUTH_HOST`.
pub(crate) const OAUTH_HOST_VAR: &str = "KIMI_CODE_OAUTH_HOST";
/// `KIMI_OAUTH_HOST` (the other name of the OAuth host override).
pub(crate) const KIMI_OAUTH_HOST_VAR: &str = "KIMI_OAUTH_HOST";
/// `KIMI_CODE_BASE_URL`.
pub(crate) const API_BASE_VAR: &str = "KIMI_CODE_BASE_URL";
/// `KIMI_CLIENT_ID`.
pub(crate) const CLIENT_ID_VAR: &str = "KIMI_CLIENT_ID";

/// A variable's value; `None` when unset or empty.
fn var(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

/// A variable that must be text.
fn text_var(name: &'static str) -> Result<Option<String>, Failure> {
    var(name)
        .map(|v| {
            v.into_string().map_err(|v| {
                Failure::Usage(format!(
                    "{name} is not valid UTF-8 ('{}'); set it to text or unset it",
                    v.to_string_lossy().escape_default()
                ))
            })
        })
        .transpose()
}

/// Parses a `KIMI_VAULT_BACKEND` value.
pub(crate) fn parse_backend(value: &str) -> Result<BackendArg, Failure> {
    match value {
        "auto" => Ok(BackendArg::Auto),
        "keyring" => Ok(BackendArg::Keyring),
        "file" => Ok(BackendArg::File),
        other => Err(Failure::Usage(format!(
            "{BACKEND_VAR}='{}' is not a backend: use auto (the OS keyring, the encrypted file where no keyring is usable), keyring or file, or unset it",
            other.escape_default()
        ))),
    }
}

impl Config {
    /// Fills every option the command line did not give from its environment variable.
    pub(crate) fn fill_from_env(&mut self) -> Result<(), Failure> {
        if self.vault_home.is_none() {
            self.vault_home = var(HOME_VAR).map(PathBuf::from);
        }
        if self.backend.is_none() {
            self.backend = text_var(BACKEND_VAR)?
                .map(|v| parse_backend(&v))
                .transpose()?;
        }
        if self.oauth_host.is_none() {
            self.oauth_host = text_var(OAUTH_HOST_VAR)?;
        }
        if self.kimi_oauth_host.is_none() {
            self.kimi_oauth_host = text_var(KIMI_OAUTH_HOST_VAR)?;
        }
        if self.api_base.is_none() {
            self.api_base = text_var(API_BASE_VAR)?;
            // Inside `exec --proxy --for kimi`, KIMI_CODE_BASE_URL is the private proxy's URL,
            // meant for kimi-cli, not an override of ours.
            let exec_proxy = var(crate::cli::exec_proxy::EXEC_PROXY_URL_VAR);
            if self.api_base.is_some()
                && exec_proxy.is_some_and(|p| {
                    Some(p.as_os_str()) == self.api_base.as_deref().map(std::ffi::OsStr::new)
                })
            {
                tracing::debug!(
                    "{API_BASE_VAR} is exec --proxy's URL for kimi-cli: not used as the API base"
                );
                self.api_base = None;
            }
        }
        if self.client_id.is_none() {
            self.client_id = text_var(CLIENT_ID_VAR)?;
        }
        Ok(())
    }
}

/// The profile: `--profile`, else `KIMI_VAULT_PROFILE`, else the persisted default profile of
/// the vault (`profiles use`), else `default`.
pub(crate) fn resolve_profile(flag: Option<String>, paths: &VaultPaths) -> Result<String, Failure> {
    if let Some(p) = flag {
        return Ok(p);
    }
    if let Some(p) = text_var(PROFILE_VAR)? {
        if let Err(e) = kimi_vault::store::check_profile_name(&p) {
            return Err(Failure::Usage(format!("{PROFILE_VAR}: {e}")));
        }
        return Ok(p);
    }
    Ok(kimi_vault::store::read_default_profile(paths)?.unwrap_or_else(|| DEFAULT_PROFILE.into()))
}
