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
    /// The Kimi account this credential belongs to, as `GET /me` said at login (`None`: not
    /// known, e.g. a record from before accounts were stored, or a migrated credential).
    /// Not secret, but personal: shown to the user, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<Account>,
}

/// Which Kimi account a credential belongs to (from `GET {base}/me`): non-secret metadata
/// stored beside the tokens. Personal: shown to the user (`login`, `status`, `profiles`), never
/// written to a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `user_id`: what tells two accounts apart.
    pub user_id: String,
    /// `nickname`, when Kimi sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// `user_level_name` (the membership level's name), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level_name: Option<String>,
    /// `region` as Kimi names it (`REGION_CN`, …), when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl std::fmt::Debug for Account {
    /// Personal: `Debug` (which may reach a log) shows that there is an account, not whose.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Account(..)")
    }
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
            account: None,
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

/// `Credential::to_secret_json` for the wipe tests (`internals`).
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

    #[test]
    fn records_with_and_without_an_account_read() {
        // A record written before accounts were stored.
        let old = r#"{"access_token":"a","refresh_token":"r","expires_at":1,"scope":"s","token_type":"Bearer","region":"cn","needs_login":false,"updated_at_ms":5}"#;
        let cred: Credential = serde_json::from_str(old).unwrap();
        assert!(cred.account.is_none());
        let json = cred.to_secret_json();
        assert!(!json.contains("account"), "none: not written");
        let mut cred = cred;
        cred.account = Some(Account {
            user_id: "u-1".into(),
            nickname: Some("moon".into()),
            level_name: None,
            region: Some("REGION_CN".into()),
        });
        let back: Credential = serde_json::from_str(&cred.to_secret_json()).unwrap();
        assert_eq!(back.account, cred.account);
        assert_eq!(format!("{:?}", back.account), "Some(Account(..))");
    }
}
