//! Answers the proxy makes itself, and every text a client reads from the proxy: in the
//! client's dialect, Anthropic's error shape (`{"type":"error","error":{"type":…,"message":…}}`)
//! or, on OpenAI's paths, OpenAI's (`{"error":{"type":…,"message":…}}`). The library names no
//! command: the hint for a profile that needs a login is the command line's
//! ([`ProxyOptions::login_hint`](crate::proxy::ProxyOptions::login_hint)).

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
    /// From the path after `/v1/`.
    pub(crate) fn of(rest: &str) -> Dialect {
        if rest.starts_with("chat/") || rest == "completions" {
            Dialect::OpenAi
        } else {
            Dialect::Anthropic
        }
    }

    /// From a whole path that is not under `/v1/` (a client whose base URL lacks the `/v1`
    /// asks for `/chat/completions`).
    pub(crate) fn of_path(path: &str) -> Dialect {
        Dialect::of(path.trim_start_matches('/'))
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
/// the one text for it, the reason and then `hint` (the command line's: what fixes it).
pub(crate) fn login_required_message(e: &Error, hint: Option<&str>) -> String {
    match hint {
        Some(hint) => format!("kimi-vault proxy: {e}: {hint}"),
        None => format!("kimi-vault proxy: {e}"),
    }
}

/// True when `e` means no token can be had until the user logs in again.
pub(crate) fn is_login_problem(e: &Error) -> bool {
    matches!(e, Error::NotLoggedIn { .. } | Error::LoginRequired { .. })
}

/// No token can be had. The profile needs a login: 403 `permission_error` at once, in the
/// client's dialect (so that it stops retrying), with `login_hint`; anything else is
/// transient: 503.
pub(crate) fn no_token(
    e: &Error,
    dialect: Dialect,
    login_hint: Option<&str>,
) -> Response<ProxyBody> {
    if is_login_problem(e) {
        return error_in(
            dialect,
            403,
            "permission_error",
            &login_required_message(e, login_hint),
        );
    }
    error_in(
        dialect,
        503,
        "api_error",
        &format!("kimi-vault proxy: no Kimi access token can be had: {e}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialects_and_the_login_hint_from_the_command_line() {
        assert_eq!(Dialect::of("chat/completions"), Dialect::OpenAi);
        assert_eq!(Dialect::of("completions"), Dialect::OpenAi);
        assert_eq!(Dialect::of("messages"), Dialect::Anthropic);
        assert_eq!(Dialect::of_path("/chat/completions"), Dialect::OpenAi);
        assert_eq!(Dialect::of_path("/messages"), Dialect::Anthropic);
        assert_eq!(Dialect::of_path("/"), Dialect::Anthropic);
        let e = Error::LoginRequired {
            profile: "work".into(),
            reason: "rejected".into(),
        };
        let with = login_required_message(&e, Some("do this"));
        assert!(with.starts_with("kimi-vault proxy: "), "{with}");
        assert!(with.ends_with(": do this"), "{with}");
        // The library names no command of its own.
        let without = login_required_message(&e, None);
        assert!(!without.contains("kimi-vault login"), "{without}");
        assert!(with.contains(&e.to_string()) && without.contains(&e.to_string()));
    }
}
