//! The local proxy's client key: random, kept with the profile's credential in the vault, so
//! that it is stable across restarts of the proxy (clients configured once keep working). It is
//! never the Kimi token.

use base64::Engine;

use crate::error::{Result, random_fill};
use crate::secret::SecretString;
use crate::session::Session;

/// Prefix of every client key, so that one is recognisable in a client's configuration.
const PREFIX: &str = "kvp-";

/// A fresh random client key: `kvp-` and 32 random bytes in URL-safe base64.
pub fn new_client_key() -> Result<SecretString> {
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    random_fill(raw.as_mut_slice())?;
    let mut key = String::with_capacity(PREFIX.len() + 43);
    key.push_str(PREFIX);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(raw.as_slice(), &mut key);
    Ok(SecretString::new(key))
}

impl Session {
    /// The profile's proxy client key, created (under the vault lock) and stored with the
    /// credential the first time. Fails when the profile has no stored credential.
    pub fn proxy_client_key(&self) -> Result<SecretString> {
        let vault = self.vault();
        if let Some(loaded) = self.stored()?
            && let Some(key) = loaded.cred.proxy_client_key
        {
            return Ok(key);
        }
        let lock = vault.lock()?;
        let Some(loaded) = vault.load(self.profile())? else {
            return Err(self.not_logged_in());
        };
        if let Some(key) = loaded.cred.proxy_client_key {
            return Ok(key);
        }
        let key = new_client_key()?;
        let mut cred = loaded.cred;
        cred.proxy_client_key = Some(key.clone());
        vault.save(self.profile(), &cred, &lock, false)?;
        tracing::info!(
            "created the proxy client key of profile '{}'",
            self.profile()
        );
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_random_and_shaped() {
        let a = super::new_client_key().unwrap();
        let b = super::new_client_key().unwrap();
        assert!(!a.ct_eq(&b));
        assert!(a.expose().starts_with("kvp-"));
        assert_eq!(a.expose().len(), 4 + 43);
    }
}
