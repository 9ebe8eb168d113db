//! `GET /health`: `status`, `profile` (the profile served), `token_expires_in`, `uptime`,
//! `requests`; 503 when no token can be
//! had. Never a secret. It asks no client key, and makes a request to Kimi only when the
//! cached token has run out (a single-flight refresh, as any request would); it never waits
//! long for one: a refresh under way is reported as `refreshing`.

use hyper::Response;

use crate::clock::now_unix;
use crate::error::Error;
use crate::proxy::Shared;
use crate::proxy::body::ProxyBody;
use crate::proxy::respond;

/// Longest `/health` waits for a token before it says `refreshing`.
const WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn refreshing(profile: &str, uptime: u64, requests: u64) -> Response<ProxyBody> {
    respond::json(
        503,
        &serde_json::json!({
            "status": "refreshing",
            "profile": profile,
            "token_expires_in": null,
            "uptime": uptime,
            "requests": requests,
            "error": "the token ran out and a refresh is under way",
        }),
    )
}

pub(crate) async fn respond(shared: &Shared) -> Response<ProxyBody> {
    let uptime = shared.started.elapsed().as_secs();
    let requests = shared.requests();
    // The profile served (a name, not a secret): `proxy --check` compares it with its own.
    let profile = shared.session.profile();
    let token = match shared.session.cached_token(0) {
        Some(c) => Ok(c),
        None if shared.session.refresh_in_progress() => {
            return refreshing(profile, uptime, requests);
        }
        None => match tokio::time::timeout(
            WAIT,
            shared.on_main(|session| async move { session.token_async(0).await }),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => return refreshing(profile, uptime, requests),
        },
    };
    match token {
        Ok(cred) => respond::json(
            200,
            &serde_json::json!({
                "status": "ok",
                "profile": profile,
                "token_expires_in": cred.expires_in(now_unix()),
                "uptime": uptime,
                "requests": requests,
            }),
        ),
        Err(e) => {
            let status = match e {
                Error::NotLoggedIn { .. } | Error::LoginRequired { .. } => "login_required",
                _ => "unavailable",
            };
            respond::json(
                503,
                &serde_json::json!({
                    "status": status,
                    "profile": profile,
                    "token_expires_in": null,
                    "uptime": uptime,
                    "requests": requests,
                    "error": crate::redact::scrub(&e.to_string()),
                }),
            )
        }
    }
}
