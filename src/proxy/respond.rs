//! Answers the proxy makes itself, in Anthropic's error shape
//! (`{"type":"error","error":{"type":…,"message":…}}`), which OpenAI-style clients also show.

use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use crate::error::Error;
use crate::proxy::body::{ProxyBody, full};

/// A JSON answer.
pub(crate) fn json(status: u16, value: &serde_json::Value) -> Response<ProxyBody> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// An error answer; `message` is scrubbed of every secret this process holds.
pub(crate) fn error(status: u16, kind: &str, message: &str) -> Response<ProxyBody> {
    json(
        status,
        &serde_json::json!({
            "type": "error",
            "error": {"type": kind, "message": crate::redact::scrub(message)},
        }),
    )
}

/// The error shape a client understands, from the path after `/v1/`: OpenAI-style paths
/// (`chat/…`, `completions`) get OpenAI's, everything else Anthropic's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Anthropic,
    OpenAi,
}

impl Dialect {
    pub(crate) fn of(rest: &str) -> Dialect {
        if rest.starts_with("chat/") || rest == "completions" {
            Dialect::OpenAi
        } else {
            Dialect::Anthropic
        }
    }
}

/// An error answer in `dialect`'s shape; `message` is scrubbed of every secret this process
/// holds.
pub(crate) fn error_in(
    dialect: Dialect,
    status: u16,
    kind: &str,
    message: &str,
) -> Response<ProxyBody> {
    match dialect {
        Dialect::Anthropic => error(status, kind, message),
        Dialect::OpenAi => json(
            status,
            &serde_json::json!({
                "error": {"type": kind, "message": crate::redact::scrub(message)},
            }),
        ),
    }
}

/// What the proxy says when the profile needs a login (logged out, refresh token rejected):
/// the one text for it, naming the command that fixes it.
pub(crate) fn login_required_message(e: &Error) -> String {
    let profile = match e {
        Error::NotLoggedIn { profile, .. } | Error::LoginRequired { profile, .. } => {
            profile.as_str()
        }
        _ => crate::store::DEFAULT_PROFILE,
    };
    // The profile is always named: a bare `kimi-vault login` logs in the persisted default
    // profile (`profiles use`), which need not be the one this proxy serves.
    format!("kimi-vault proxy: {e}: run `kimi-vault login --profile {profile}`")
}

/// True when `e` means no token can be had until the user logs in again.
pub(crate) fn is_login_problem(e: &Error) -> bool {
    matches!(e, Error::NotLoggedIn { .. } | Error::LoginRequired { .. })
}

/// No token can be had. The profile needs a login: 403 `permission_error` at once, in the
/// client's dialect (so that it stops retrying); anything else is transient: 503.
pub(crate) fn no_token(e: &Error, rest: &str) -> Response<ProxyBody> {
    if is_login_problem(e) {
        return error_in(
            Dialect::of(rest),
            403,
            "permission_error",
            &login_required_message(e),
        );
    }
    error_in(
        Dialect::of(rest),
        503,
        "api_error",
        &format!("kimi-vault proxy: no Kimi access token can be had: {e}"),
    )
}
