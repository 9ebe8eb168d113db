//! `GET /health`: `status`, `token_expires_in`, `uptime`, `requests`; 503 when no token can be
//! had. Never a secret. It asks no client key, and makes a request to Kimi only when the
//! cached token has run out (a single-flight refresh, as any request would).

use hyper::Response;

use crate::clock::now_unix;
use crate::error::Error;
use crate::proxy::Shared;
use crate::proxy::body::ProxyBody;
use crate::proxy::respond;

pub(crate) async fn respond(shared: &Shared) -> Response<ProxyBody> {
    let uptime = shared.started.elapsed().as_secs();
    let requests = shared.requests();
    let token = match shared.session.cached_token(0) {
        Some(c) => Ok(c),
        None => shared.session.token_async(0).await,
    };
    match token {
        Ok(cred) => respond::json(
            200,
            &serde_json::json!({
                "status": "ok",
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
                    "token_expires_in": null,
                    "uptime": uptime,
                    "requests": requests,
                    "error": crate::redact::scrub(&e.to_string()),
                }),
            )
        }
    }
}
