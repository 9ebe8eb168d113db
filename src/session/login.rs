//! Device-flow login for a session's profile: ask for a code, wait for the user, store the
//! tokens (keeping the profile's proxy client key, and an unreadable vault aside).

use crate::clock::now_unix;
use crate::error::Result;
use crate::http::Http;
use crate::oauth::device::{self, LoginEvent};
use crate::oauth::endpoints::{Endpoints, Region};
use crate::oauth::response::{DeviceAuthorization, TokenGrant};
use crate::session::Session;
use crate::store::{BackendKind, Credential};

/// A login waiting for the user to approve the code.
#[derive(Debug)]
pub struct PendingLogin {
    auth: DeviceAuthorization,
    endpoints: Endpoints,
    http: Http,
    region: Region,
}

/// What a stored login replaced, and where it went.
#[derive(Debug, Clone)]
pub struct LoginStored {
    /// The backend the credential went to.
    pub backend: BackendKind,
    /// When the new access token expires, Unix seconds.
    pub expires_at: i64,
    /// The credential this login replaced: its access-token expiry and whether it needed a
    /// login.
    pub replaced: Option<(i64, bool)>,
}

impl Session {
    /// Asks Kimi's auth server of `region` for a device code, after checking (creating
    /// nothing) that the tokens could be stored: a login that could not store them fails here,
    /// before any request ([`crate::store::Vault::check_writable`]).
    pub async fn begin_login(&self, region: Region) -> Result<PendingLogin> {
        let endpoints = self.endpoints(region)?;
        self.vault().check_writable(self.profile())?;
        let http = self.http(None)?.clone();
        let auth = device::start(&http, &endpoints).await?;
        Ok(PendingLogin {
            auth,
            endpoints,
            http,
            region,
        })
    }

    /// Stores the tokens of a completed login for this profile. An unreadable file vault is
    /// kept aside (`vault.enc.unreadable-<timestamp>`) rather than refused; the proxy client
    /// key of an earlier login is kept, so that running proxies' clients keep working.
    pub fn store_login(&self, grant: TokenGrant, region: Region) -> Result<LoginStored> {
        let vault = self.vault();
        let lock = vault.lock()?;
        let previous = vault.load(self.profile()).ok().flatten().map(|l| l.cred);
        let mut cred = Credential::new(
            grant.access_token,
            grant.refresh_token.unwrap_or_default(),
            now_unix() + grant.expires_in,
        );
        cred.scope = grant.scope.unwrap_or_default();
        if let Some(t) = grant.token_type {
            cred.token_type = t;
        }
        cred.region = region.as_str().to_owned();
        cred.proxy_client_key = previous.as_ref().and_then(|p| p.proxy_client_key.clone());
        if cred.refresh_token.is_empty() {
            tracing::warn!(
                "Kimi sent no refresh token: a new login will be needed when the access token expires"
            );
        }
        let backend = vault.save(self.profile(), &cred, &lock, true)?;
        drop(lock);
        self.remember(&cred);
        Ok(LoginStored {
            backend,
            expires_at: cred.expires_at,
            replaced: previous.map(|p| (p.expires_at, p.needs_login)),
        })
    }
}

impl PendingLogin {
    /// What to show the user: the code and where to enter it.
    pub fn authorization(&self) -> &DeviceAuthorization {
        &self.auth
    }

    /// The region the login is made in.
    pub fn region(&self) -> Region {
        self.region
    }

    /// Polls until the user approves (the tokens), denies, or the code expires.
    pub async fn wait(&self, on_event: &mut (dyn FnMut(LoginEvent) + Send)) -> Result<TokenGrant> {
        device::poll(&self.http, &self.endpoints, &self.auth, on_event).await
    }
}
