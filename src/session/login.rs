//! Device-flow login for a session's profile: ask for a code, wait for the user, store the
//! tokens (keeping the profile's proxy client key, and an unreadable vault aside).

use crate::api::reply::ApiReply;
use crate::clock::now_unix;
use crate::error::{Error, Result};
use crate::http::Http;
use crate::oauth::device::{self, LoginEvent};
use crate::oauth::endpoints::{Endpoints, Region};
use crate::oauth::response::{DeviceAuthorization, TokenGrant};
use crate::secret::SecretString;
use crate::session::Session;
use crate::store::{Account, BackendKind, Credential};

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
    /// The account stored with the credential (`None` when `/me` could not be read).
    pub account: Option<Account>,
}

impl Session {
    /// Asks Kimi's auth server of `region` for a device code, after checking (creating
    /// nothing) that the tokens could be stored: a login that could not store them fails here,
    /// before any request (`Vault::check_writable`).
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
    /// `account` ([`PendingLogin::account`]) is stored with it, as non-secret metadata.
    pub fn store_login(
        &self,
        grant: TokenGrant,
        region: Region,
        account: Option<Account>,
    ) -> Result<LoginStored> {
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
        cred.account = account;
        cred.proxy_client_key = previous.as_ref().and_then(|p| p.proxy_client_key.clone());
        if cred.refresh_token.is_empty() {
            tracing::warn!(
                "Kimi sent no refresh token: a new login will be needed when the access token expires"
            );
        }
        let backend = vault.save(self.profile(), &cred, &lock, true)?;
        super::backoff::forget(vault.paths(), self.profile(), &lock);
        drop(lock);
        self.remember(&cred);
        Ok(LoginStored {
            backend,
            expires_at: cred.expires_at,
            replaced: previous.map(|p| (p.expires_at, p.needs_login)),
            account: cred.account.clone(),
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

    /// Which account `access_token` (of the grant this login got) belongs to: `GET {base}/me`
    /// in the login's region. Personal data: the caller shows it, nothing logs it.
    pub async fn account(&self, access_token: &SecretString) -> Result<Account> {
        let url = self.endpoints.api_url(crate::api::ME_PATH);
        let reply = super::api::get_with_retries(&self.http, &url, access_token).await;
        let body = match reply {
            ApiReply::Ok(body) => body,
            ApiReply::AccessTerminated(detail) => {
                return Err(Error::ClientNotAccepted { detail });
            }
            ApiReply::Transient(detail, _) => {
                return Err(Error::Service(format!(
                    "Kimi's API at {url} is unreachable or failing ({detail})"
                )));
            }
            ApiReply::Unauthorized(detail)
            | ApiReply::PaymentRequired(detail)
            | ApiReply::Failed(detail) => {
                return Err(Error::ApiRefused {
                    url: url.to_string(),
                    detail,
                });
            }
        };
        let me = crate::api::parse_me(&body).map_err(|why| Error::UnusableAnswer {
            server: "Kimi's API",
            what: "account",
            why,
        })?;
        Ok(Account {
            user_id: me.user_id,
            nickname: me.nickname,
            level_name: me.level_name,
            region: me.region,
        })
    }

    /// Polls until the user approves (the tokens), denies, or the code expires.
    pub async fn wait(&self, on_event: &mut (dyn FnMut(LoginEvent) + Send)) -> Result<TokenGrant> {
        device::poll(&self.http, &self.endpoints, &self.auth, on_event).await
    }
}
