//! kimi-vault keeps Kimi Code OAuth credentials safe on a developer's machine and hands them to
//! the tools that need them.
//!
//! Layers, bottom to top (imports point down only):
//! - [`secret`], `redact`, [`sanitize`], [`error`], `clock`, `http`: secret types, keeping
//!   secrets out of text, outside text made safe for a terminal, typed errors, time, the one HTTP client (reqwest on tokio, rustls with ring);
//! - [`store`]: OS keyring and encrypted-file backends, crypto, atomic writes and the lock;
//! - [`oauth`], beside it: protocol only (endpoints and their rule, device flow, refresh
//!   exchange, response parsing);
//! - [`api`], beside it: Kimi's Coding API, protocol only (`/usages`, `/models`: requests,
//!   status meanings, tolerant parsers);
//! - [`session`], on both: a usable access token for a profile (single-flight refresh, forced
//!   refresh after a 401, a shared back-off, an in-memory cache; API calls with one forced
//!   refresh after a 401);
//! - [`migrate`]: moving other Kimi tools' credentials in;
//! - [`clients`], apart: what local clients' configuration says (Claude Code's settings, its
//!   helper command, which Kimi CLI is installed), from text and bytes only.
//!
//! The library never prints: it returns typed errors and reports warnings (`WARN`), notes
//! (`INFO`) and detail (`DEBUG`) through `tracing`, never with a secret. The command line
//! (the `kimi-vault` binary) sits on top: arguments, environment, exit codes, hints and output.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
// The library never prints (it returns errors and reports through `tracing`): the command line
// owns stdout and stderr. The binary (src/main.rs, src/cli/) allows both, as clippy does by default.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod api;
pub mod clients;
pub(crate) mod clock;
pub mod error;
pub(crate) mod fault;
pub(crate) mod http;
pub mod migrate;
pub mod oauth;
pub mod proxy;
pub(crate) mod redact;
pub mod sanitize;
pub mod secret;
pub mod session;
pub mod store;

#[cfg(any(fuzzing, feature = "testing"))]
pub mod internals;

pub use error::{Error, KeyringError, LoginFailure, Result, VaultProblem};
pub use http::VERSION;
pub use secret::SecretString;
pub use session::Session;

/// Text safe to show: every secret this process holds is replaced with `[REDACTED]`.
pub fn scrub(text: &str) -> String {
    redact::scrub(text)
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    clock::now_unix()
}

/// Formats Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(unix: i64) -> String {
    clock::rfc3339(unix)
}
