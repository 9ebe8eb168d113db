//! kimi-vault keeps Kimi Code OAuth credentials safe on a developer's machine and hands them to
//! the tools that need them.
//!
//! Layers, bottom to top (imports point down only):
//! - [`secret`], [`redact`], [`error`], [`diag`]: secret types, keeping secrets out of text;
//! - [`store`]: OS keyring and encrypted-file backends, crypto, atomic writes and the lock;
//! - [`oauth`]: endpoints, HTTP, device-flow login, single-flight refresh;
//! - [`cli`], [`migrate`]: the command line, and moving other tools' credentials in.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod cli;
pub mod diag;
pub mod error;
pub mod migrate;
pub mod oauth;
pub mod redact;
pub mod secret;
pub mod store;

pub use error::{Error, Result};
