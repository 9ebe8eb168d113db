//! Copies of secrets left in freed memory (issue 10, item 9): an allocator that, while armed,
//! looks into every block handed back to it (and every block a reallocation leaves) for a canary
//! and counts the blocks that still hold it. A secret-typed value wipes its memory before it is
//! freed, so parsing a token grant, serializing a credential for the keyring, saving and loading
//! the vault, and forgetting remembered secrets must leave no such block.
//!
//! This test binary needs `unsafe` for its allocator (reading a block before freeing it); the
//! library and the binary themselves forbid unsafe code.
//!
//! It is a test binary of its own, not a module of tests/it/: a `#[global_allocator]` is
//! process-wide, so in the shared binary it would watch (and slow down) every other test's
//! allocations, and their secrets would count against this one. It needs the `testing` feature
//! (`kimi_vault::internals`), which Cargo.toml's `[[test]] wipe` requires, so a plain
//! `cargo test` does not build it and `cargo test --test wipe` without the feature says why.

// The shared test parts read the harness's environment (see tests/it/main.rs).
#![allow(clippy::disallowed_methods)]

#[path = "it/common/mod.rs"]
mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kimi_vault::internals::{credential_json, parse_device_authorization, parse_grant};
use kimi_vault::secret::SecretString;
use kimi_vault::store::{BackendMode, Credential, Vault, VaultPaths};
use zeroize::Zeroizing;

/// Sixteen bytes that appear nowhere but in the secrets of this test.
const CANARY: &[u8; 16] = b"WiPeCaNaRy7f3a9Q";

static ARMED: AtomicBool = AtomicBool::new(false);
static LEFT_BEHIND: AtomicUsize = AtomicUsize::new(0);

struct Watching;

fn holds_canary(ptr: *const u8, len: usize) -> bool {
    // SAFETY: the block is live (it is being freed or reallocated by its owner right now) and
    // `len` is its size.
    let block = unsafe { std::slice::from_raw_parts(ptr, len) };
    block.windows(CANARY.len()).any(|w| w == CANARY)
}

// SAFETY: every call is forwarded to the system allocator with the same layout; the only extra
// is reading a block before it is given back.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.load(Ordering::Relaxed) && holds_canary(ptr, layout.size()) {
            LEFT_BEHIND.fetch_add(1, Ordering::Relaxed);
        }
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // Always move, as a reallocation may: the old block is freed with its content.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        let new = unsafe { System.alloc(new_layout) };
        if !new.is_null() {
            unsafe {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
        }
        new
    }
}

#[global_allocator]
static GLOBAL: Watching = Watching;

/// Runs `f` armed and returns how many freed blocks still held the canary.
fn left_behind(f: impl FnOnce()) -> usize {
    LEFT_BEHIND.store(0, Ordering::SeqCst);
    ARMED.store(true, Ordering::SeqCst);
    f();
    ARMED.store(false, Ordering::SeqCst);
    LEFT_BEHIND.load(Ordering::SeqCst)
}

/// A secret holding the canary, built into a buffer of its final size (no reallocation).
fn canary_secret(tag: &str) -> Zeroizing<String> {
    let mut s = Zeroizing::new(String::with_capacity(64));
    s.push_str(tag);
    s.push('-');
    s.push_str(std::str::from_utf8(CANARY).unwrap());
    s.push_str("-0123456789");
    s
}

/// A JSON body with the given fields, built without reallocation.
fn body(fields: &[(&str, &str)]) -> Zeroizing<String> {
    let mut b = Zeroizing::new(String::with_capacity(512));
    b.push('{');
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            b.push(',');
        }
        b.push('"');
        b.push_str(k);
        b.push_str("\":");
        b.push_str(v);
    }
    b.push('}');
    b
}

fn quoted(s: &str) -> Zeroizing<String> {
    let mut q = Zeroizing::new(String::with_capacity(s.len() + 2));
    q.push('"');
    q.push_str(s);
    q.push('"');
    q
}

#[test]
fn secrets_leave_no_copy_in_freed_memory() {
    let mut figures = Vec::new();

    // 1. Parsing a token grant and a device authorization.
    let access = canary_secret("at");
    let refresh = canary_secret("rt");
    let (qa, qr) = (quoted(&access), quoted(&refresh));
    let grant_body = body(&[
        ("access_token", &qa),
        ("refresh_token", &qr),
        ("expires_in", "900"),
        ("scope", "\"kimi-code\""),
        ("token_type", "\"Bearer\""),
    ]);
    let device = canary_secret("dc");
    let qd = quoted(&device);
    let device_body = body(&[
        ("device_code", &qd),
        ("user_code", "\"ABCD-1234\""),
        (
            "verification_uri",
            "\"https://www.kimi.com/code/authorize_device\"",
        ),
        ("expires_in", "600"),
    ]);
    let n = left_behind(|| {
        let grant = parse_grant(&grant_body).expect("a valid grant");
        assert!(grant.access_token.expose().contains("WiPe"));
        drop(grant);
        let auth = parse_device_authorization(&device_body).expect("a valid device code");
        drop(auth);
    });
    figures.push(format!("token grant and device code parsing: {n}"));
    assert_eq!(n, 0, "parsing left {n} freed blocks holding a token");

    // 2. Serializing a credential for the keyring.
    let cred = Credential::new(
        SecretString::new(access.to_string()),
        SecretString::new(refresh.to_string()),
        1_900_000_000,
    );
    let n = left_behind(|| {
        let json = credential_json(&cred);
        assert!(json.contains("WiPe"));
    });
    figures.push(format!("keyring serialization: {n}"));
    assert_eq!(n, 0, "serializing left {n} freed blocks holding a token");

    // 3. Saving and loading the encrypted file.
    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(VaultPaths::at(dir.path().join("v")), BackendMode::File);
    let n = left_behind(|| {
        let lock = vault.lock().unwrap();
        vault.save("default", &cred, &lock, false).unwrap();
        vault.save("other", &cred, &lock, false).unwrap();
        drop(lock);
        let loaded = vault.load("default").unwrap().unwrap();
        assert!(loaded.cred.access_token.ct_eq(&cred.access_token));
    });
    figures.push(format!("vault save and load: {n}"));
    assert_eq!(n, 0, "the vault left {n} freed blocks holding a token");

    // 4. The redactor forgets (and wipes) the oldest secrets beyond its bound.
    let n = left_behind(|| {
        for i in 0..300 {
            let mut s = canary_secret("evict");
            s.push_str(&format!("{i:04}"));
            drop(SecretString::new(s.to_string()));
        }
    });
    figures.push(format!("redactor eviction: {n}"));
    assert_eq!(n, 0, "eviction left {n} freed blocks holding a secret");

    common::report(&format!(
        "wipe: freed blocks still holding a secret after {}",
        figures.join(", ")
    ));
}
