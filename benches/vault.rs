//! In-process figures: envelope seal/open, a file-backend read from disk (what `token` does on
//! its fast path), and redaction of an HTTP body.

use criterion::{Criterion, criterion_group, criterion_main};
use kimi_vault::internals::redact_body;
use kimi_vault::internals::{VaultKey, open, seal};
use kimi_vault::secret::SecretString;
use kimi_vault::store::{BackendMode, Credential, Vault, VaultPaths};

fn credential() -> Credential {
    Credential::new(
        SecretString::from("a".repeat(900).as_str()),
        SecretString::from("r".repeat(900).as_str()),
        kimi_vault::now_unix() + 900,
    )
}

fn benches(c: &mut Criterion) {
    let key = VaultKey::from_bytes([3u8; 32]);
    let plain = serde_json::to_vec(&credential()).unwrap();
    let sealed = seal(&key, &plain).unwrap();
    c.bench_function("envelope_seal_2k", |b| b.iter(|| seal(&key, &plain)));
    c.bench_function("envelope_open_2k", |b| {
        b.iter(|| open(&key, &sealed).unwrap())
    });

    let dir = tempfile::tempdir().unwrap();
    let vault = Vault::new(VaultPaths::at(dir.path().join("v")), BackendMode::File);
    {
        let lock = vault.lock().unwrap();
        vault.save("default", &credential(), &lock, false).unwrap();
    }
    c.bench_function("file_backend_load", |b| {
        b.iter(|| vault.load("default").unwrap().unwrap())
    });
    c.bench_function("file_backend_locked_write", |b| {
        b.iter(|| {
            let lock = vault.lock().unwrap();
            vault.save("default", &credential(), &lock, false).unwrap()
        })
    });

    let body = r#"{"error":"invalid_grant","error_description":"refresh token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl was revoked","access_token":"x"}"#;
    c.bench_function("redact_body", |b| b.iter(|| redact_body(body)));
}

criterion_group!(group, benches);
criterion_main!(group);
