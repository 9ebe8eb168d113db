//! A running proxy follows what other processes do to its profile (SPEC §7): a `logout` (403
//! at once, never the token held in memory), a new `login` (another account or region: its
//! token and API base), a refresh made elsewhere, and a client key rotated elsewhere.
//!
//! How: a background task reads the profile's stored credential every [`Limits::watch`] (2 s;
//! one Secret Service lookup or one read and decryption of `vault.enc`, on a blocking thread)
//! and swaps what requests read. Requests never wait for it and never touch the vault: a warm
//! request costs one relaxed atomic load more than before. A file-system generation check
//! (mtime and size of `vault.enc`) would miss the keyring backend, where a logout changes no
//! file; an inotify watch likewise, and is not portable.
//!
//! [`Limits::watch`]: crate::proxy::Limits::watch

use std::sync::Arc;

use crate::proxy::auth::ClientAuth;
use crate::proxy::{Shared, write};
use crate::session::Found;

/// What was last reported, so that each change is logged once.
#[derive(PartialEq, Eq)]
enum Seen {
    Usable,
    LoggedOut,
    NeedsLogin,
    Failed(String),
}

/// Runs until the task is dropped.
pub(crate) async fn run(shared: Arc<Shared>) {
    let mut seen = Seen::Usable;
    loop {
        tokio::time::sleep(shared.limits.watch).await;
        let now = match shared.session.resync().await {
            Ok(Found::Usable(cred)) => {
                follow_region(&shared, &cred);
                if shared.key_in_vault
                    && let Some(key) = cred.proxy_client_key
                {
                    let mut auth = write(&shared.auth);
                    let same = matches!(&*auth, ClientAuth::Key(k) if k.ct_eq(&key));
                    if !same {
                        tracing::warn!(
                            "the proxy client key of profile '{}' was changed by another process: the new key is required from now on",
                            shared.session.profile()
                        );
                        *auth = ClientAuth::Key(key);
                    }
                }
                Seen::Usable
            }
            Ok(Found::LoggedOut) => Seen::LoggedOut,
            Ok(Found::NeedsLogin) => Seen::NeedsLogin,
            Err(e) => Seen::Failed(e.to_string()),
        };
        if now != seen {
            let profile = shared.session.profile();
            let hint = shared
                .login_hint
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            match &now {
                Seen::Usable => {
                    tracing::warn!("profile '{profile}' is logged in again: serving its token")
                }
                Seen::LoggedOut => tracing::warn!(
                    "profile '{profile}' was logged out: answering 403 until it is logged in again{hint}"
                ),
                Seen::NeedsLogin => tracing::warn!(
                    "profile '{profile}' needs a login (its refresh token was rejected): answering 403 until it is logged in again{hint}"
                ),
                Seen::Failed(why) => {
                    tracing::warn!("cannot read the vault to follow changes to it: {why}")
                }
            }
            seen = now;
        }
    }
}

/// A login to another region moves the API base with it.
fn follow_region(shared: &Shared, cred: &crate::store::Credential) {
    if crate::proxy::read(&shared.base).region == cred.region {
        return;
    }
    let base = shared
        .session
        .endpoints_for(cred)
        .and_then(|endpoints| crate::proxy::Base::new(&cred.region, &endpoints.api_base));
    match base {
        Ok(base) => {
            tracing::warn!(
                "profile '{}' is now logged in to region '{}': forwarding to {}",
                shared.session.profile(),
                cred.region,
                base.url
            );
            *write(&shared.base) = Arc::new(base);
        }
        Err(e) => tracing::warn!("the new region's endpoints are refused: {e}"),
    }
}
