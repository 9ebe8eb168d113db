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

    /// Serializes for storage; the buffer is wiped on drop.
    pub(crate) fn to_secret_json(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(serde_json::to_string(self).expect("a credential serializes"))
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
