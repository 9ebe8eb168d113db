//! The one integration-test binary: every suite that used to be a file of its own under tests/
//! is a module here, so the library, the dev-dependencies and the shared parts (`common`: the
//! fake Kimi servers and the helpers that run the real binary) are compiled and linked once.
//! `cargo test --test it -- proxy::` runs one module, `cargo test --test it -- NAME` one test.
//!
//! Tests that need more than Rust are `#[ignore = "why, and what runs it"]`, never skipped in
//! silence: scripts/test.sh passes `--include-ignored` where a Secret Service (and root) are
//! there. The only other test binary is tests/wipe.rs (a global allocator; see its top).
//!
//! A new suite is a new file here plus a `mod` line below; its top says `use crate::common::*;`.

// The tests read the environment of the harness (the D-Bus session, `KIMI_VAULT_TEST_*`, PATH)
// to hand it to the binary under test; the rule against environment reads is for `src/`.
#![allow(clippy::disallowed_methods)]

mod common;

mod adversarial;
mod api;
mod cli;
mod cli_snapshots;
mod clients;
mod completions;
mod configuration;
mod daily_use;
mod doctor;
mod exec;
mod hardening;
#[cfg(all(target_os = "linux", feature = "testing"))]
mod kernel_cache;
mod keyring;
mod login;
mod migrate;
#[cfg(feature = "testing")]
mod properties;
mod proxy;
mod refresh;
mod setup;
mod signals;
mod snapshots;
mod vault_file;

/// The property tests use the `testing` feature's `kimi_vault::internals`: without the feature
/// the module is not compiled, and this stand-in says so in the ignored count.
#[cfg(not(feature = "testing"))]
#[test]
#[ignore = "the property tests (tests/it/properties.rs) need `--features testing`; scripts/test.sh turns it on"]
fn properties_need_the_testing_feature() {}
