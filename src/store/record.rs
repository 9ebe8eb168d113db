//! What is stored for a profile, and the plaintext layout of the encrypted file.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::SecretString;

/// One profile's OAuth credential and its state. `Debug` never shows a token.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Credential {
    /// The access token (about 900 s).
    pub access_token: SecretString,
    /// The refresh token (rotates on every refresh).
    pub refresh_token: SecretString,
    /// When the access token expires, Unix seconds.
    pub expires_at: i64,
    /// OAuth scope, as granted.
    #[serde(default)]
    pub scope: String,
    /// Token type, normally `Bearer`.
    #[serde(default)]
    pub token_type: String,
    /// Region the login was made in (`cn` or `global`); refreshes go to the same host.
    #[serde(default)]
    pub region: String,
    /// Set when the refresh token was rejected: the user must log in again.
    #[serde(default)]
    pub needs_login: bool,
    /// When this record was written, Unix milliseconds: between two backends the newer wins.
    #[serde(default)]
    pub updated_at_ms: i64,
    /// The local proxy's client key (stable across restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_client_key: Option<SecretString>,
}

impl Credential {
    /// A fresh credential: the given tokens, expiring at `expires_at` (Unix seconds), type
    /// `Bearer`, no scope, default region.
    pub fn new(access_token: SecretString, refresh_token: SecretString, expires_at: i64) -> Self {
        Credential {
            access_token,
            refresh_token,
            expires_at,
            scope: String::new(),
            token_type: "Bearer".into(),
            region: String::new(),
            needs_login: false,
            updated_at_ms: 0,
            proxy_client_key: None,
        }
    }

    /// Seconds until the access token expires (negative once expired).
    pub fn expires_in(&self, now: i64) -> i64 {
        self.expires_at - now
    }

    /// Serializes for storage (the keyring entry) into a buffer sized before it is written, so
    /// that no reallocation leaves a copy of the tokens behind; the buffer is wiped on drop.
    pub(crate) fn to_secret_json(&self) -> zeroize::Zeroizing<String> {
        let mut bytes = crate::secret::json_zeroizing(self);
        let bytes = std::mem::take(&mut *bytes);
        zeroize::Zeroizing::new(String::from_utf8(bytes).expect("serde_json writes UTF-8"))
    }
}

/// Current plaintext version inside `vault.enc`.
pub const CONTENTS_VERSION: u32 = 1;

/// The decrypted content of `vault.enc`: every profile of the file backend.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct VaultContents {
    /// Layout version of this plaintext.
    pub version: u32,
    /// Profile name to credential.
    pub profiles: BTreeMap<String, Credential>,
}

/// [`Credential::to_secret_json`] for the wipe tests (`internals`).
#[cfg(any(fuzzing, feature = "testing"))]
pub fn credential_json(cred: &Credential) -> zeroize::Zeroizing<String> {
    cred.to_secret_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyring_json_is_sized_once() {
        let cred = Credential::new(
            SecretString::from("a".repeat(3000).as_str()),
            SecretString::from("r".repeat(3000).as_str()),
            0,
        );
        let json = cred.to_secret_json();
        assert_eq!(json.capacity(), json.len(), "sized once, never grown");
        let back: Credential = serde_json::from_str(&json).unwrap();
        assert!(back.access_token.ct_eq(&cred.access_token));
    }
}
