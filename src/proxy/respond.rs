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

/// No token can be had: 503, saying why and what to do.
pub(crate) fn no_token(e: &Error) -> Response<ProxyBody> {
    let what = match e {
        Error::NotLoggedIn { profile, .. } | Error::LoginRequired { profile, .. } => format!(
            "kimi-vault proxy: {e}: run `kimi-vault login{}`",
            if profile == crate::store::DEFAULT_PROFILE {
                String::new()
            } else {
                format!(" --profile {profile}")
            }
        ),
        _ => format!("kimi-vault proxy: no Kimi access token can be had: {e}"),
    };
    error(503, "api_error", &what)
}
