//! Seeds a vault with a valid (fake) credential, for benchmarks: `seed DIR [file|keyring]`.

use kimi_vault::secret::SecretString;
use kimi_vault::store::{BackendMode, Credential, Vault, VaultPaths};

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args.next().expect("usage: seed DIR [file|keyring]");
    let mode = match args.next().as_deref() {
        Some("keyring") => BackendMode::Keyring,
        _ => BackendMode::File,
    };
    let vault = Vault::new(VaultPaths::at(dir.into()), mode);
    let cred = Credential::new(
        SecretString::from("bench-access-token-".repeat(40).as_str()),
        SecretString::from("bench-refresh-token-".repeat(40).as_str()),
        kimi_vault::now_unix() + 86_400,
    );
    let lock = vault.lock().expect("lock");
    let backend = vault.save("default", &cred, &lock, false).expect("save");
    println!("seeded {}", backend.as_str());
}
