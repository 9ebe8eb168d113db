//! Parsing Kimi's OAuth responses (pure functions: fuzzed, never panic, never echo a secret).

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::redact::redact_body;
use crate::secret::SecretString;

/// A successful token response.
#[derive(Debug)]
pub struct TokenGrant {
    /// The new access token.
    pub access_token: SecretString,
    /// The new refresh token; `None` when the server omitted it (keep the old one).
    pub refresh_token: Option<SecretString>,
    /// Lifetime of the access token in seconds.
    pub expires_in: i64,
    /// Granted scope.
    pub scope: Option<String>,
    /// Token type.
    pub token_type: Option<String>,
}

/// A device authorization response (RFC 8628 §3.2).
#[derive(Debug)]
pub struct DeviceAuthorization {
    /// The device code (a secret: it can be exchanged for tokens).
    pub device_code: SecretString,
    /// The code the user types.
    pub user_code: String,
    /// Where the user goes.
    pub verification_uri: String,
    /// The same with the code filled in, when the server gives it.
    pub verification_uri_complete: Option<String>,
    /// Lifetime of the device code, seconds.
    pub expires_in: u64,
    /// Polling interval, seconds (5 when absent or 0).
    pub interval: u64,
}

/// What a token-endpoint answer means.
#[derive(Debug)]
pub enum TokenOutcome {
    /// Tokens.
    Granted(TokenGrant),
    /// `authorization_pending`.
    Pending,
    /// `slow_down`.
    SlowDown,
    /// `expired_token`.
    Expired,
    /// `access_denied`.
    Denied,
    /// 401/403 or `invalid_grant`: the grant is permanently refused. Holds redacted detail.
    Rejected(String),
    /// 429, 5xx: try again later. Holds redacted detail and `Retry-After`.
    Transient(String, Option<Duration>),
    /// Anything else: malformed or unexpected. Holds redacted detail.
    Malformed(String),
}

/// A number, or a string holding a number (Kimi sends both).
fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .ok()
            .or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64)),
        _ => None,
    }
}

fn as_string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_owned)
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
}

/// The OAuth `error` code of a body, if any.
pub(crate) fn error_code(body: &str) -> Option<String> {
    serde_json::from_str::<ErrorBody>(body).ok()?.error
}

/// A token response, parsed straight into secret-typed fields: no JSON tree ever holds a token
/// (the other fields carry nothing secret).
#[derive(Deserialize)]
struct GrantBody {
    access_token: Option<SecretString>,
    refresh_token: Option<SecretString>,
    expires_in: Option<Value>,
    scope: Option<Value>,
    token_type: Option<Value>,
}

/// A device authorization response, the device code straight into a secret-typed field.
#[derive(Deserialize)]
struct DeviceBody {
    device_code: Option<SecretString>,
    user_code: Option<Value>,
    verification_uri: Option<Value>,
    verification_uri_complete: Option<Value>,
    expires_in: Option<Value>,
    interval: Option<Value>,
}

/// Parses a body that must be a JSON object into `T`, or a redacted reason. serde_json's own
/// messages can quote a value, so only its category and position are used.
fn json_object<T: serde::de::DeserializeOwned>(body: &str) -> Result<T, String> {
    if !body.trim_start().starts_with('{') {
        return Err(
            if serde_json::from_str::<serde::de::IgnoredAny>(body).is_ok() {
                "the response is not a JSON object".to_owned()
            } else {
                format!("the response is not JSON: {}", redact_body(body))
            },
        );
    }
    serde_json::from_str::<T>(body).map_err(|e| {
        if e.is_data() {
            format!(
                "the response has an unexpected shape (line {}, column {}): {}",
                e.line(),
                e.column(),
                redact_body(body)
            )
        } else {
            format!("the response is not JSON: {}", redact_body(body))
        }
    })
}

/// Parses a token response body with status 2xx.
pub fn parse_grant(body: &str) -> Result<TokenGrant, String> {
    let grant: GrantBody = json_object(body)?;
    let access_token = grant
        .access_token
        .filter(|s| !s.is_empty())
        .ok_or_else(|| format!("the response has no access_token: {}", redact_body(body)))?;
    let refresh_token = grant.refresh_token.filter(|s| !s.is_empty());
    let expires_in = grant.expires_in.as_ref().and_then(as_i64).unwrap_or(900);
    if !(1..=400 * 24 * 3600).contains(&expires_in) {
        return Err(format!(
            "the response has an absurd expires_in ({expires_in})"
        ));
    }
    Ok(TokenGrant {
        access_token,
        refresh_token,
        expires_in,
        scope: as_string(grant.scope.as_ref()),
        token_type: as_string(grant.token_type.as_ref()),
    })
}

/// Classifies a token-endpoint answer.
pub fn classify_token(status: u16, body: &str, retry_after: Option<Duration>) -> TokenOutcome {
    let code = error_code(body);
    match code.as_deref() {
        Some("authorization_pending") => return TokenOutcome::Pending,
        Some("slow_down") => return TokenOutcome::SlowDown,
        Some("expired_token") => return TokenOutcome::Expired,
        Some("access_denied") => return TokenOutcome::Denied,
        Some("invalid_grant") => {
            return TokenOutcome::Rejected(format!("HTTP {status}: {}", redact_body(body)));
        }
        _ => {}
    }
    match status {
        200..=299 => match parse_grant(body) {
            Ok(g) => TokenOutcome::Granted(g),
            Err(e) => TokenOutcome::Malformed(e),
        },
        401 | 403 => TokenOutcome::Rejected(format!("HTTP {status}: {}", redact_body(body))),
        408 | 429 | 500..=599 => {
            TokenOutcome::Transient(format!("HTTP {status}: {}", redact_body(body)), retry_after)
        }
        _ => TokenOutcome::Malformed(format!("HTTP {status}: {}", redact_body(body))),
    }
}

/// Parses a device authorization response body.
pub fn parse_device_authorization(body: &str) -> Result<DeviceAuthorization, String> {
    let device: DeviceBody = json_object(body)?;
    let missing = |name: &str| format!("the response has no {name}: {}", redact_body(body));
    let text = |v: &Option<Value>| as_string(v.as_ref()).filter(|s| !s.is_empty());
    let device_code = device
        .device_code
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("device_code"))?;
    let user_code = text(&device.user_code).ok_or_else(|| missing("user_code"))?;
    let verification_uri =
        text(&device.verification_uri).ok_or_else(|| missing("verification_uri"))?;
    let expires_in = device
        .expires_in
        .as_ref()
        .and_then(as_i64)
        .filter(|n| *n > 0)
        .unwrap_or(600)
        .min(3600) as u64;
    let interval = device
        .interval
        .as_ref()
        .and_then(as_i64)
        .filter(|n| *n > 0)
        .unwrap_or(5)
        .min(60) as u64;
    Ok(DeviceAuthorization {
        device_code,
        user_code,
        verification_uri,
        verification_uri_complete: text(&device.verification_uri_complete),
        expires_in,
        interval,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_parsing() {
        let g = parse_grant(r#"{"access_token":"a-token-value","expires_in":"900","scope":"x"}"#)
            .unwrap();
        assert_eq!(g.expires_in, 900);
        assert!(g.refresh_token.is_none());
        assert!(parse_grant(r#"{"access_token":""}"#).is_err());
        assert!(parse_grant("nope").is_err());
        assert!(parse_grant(r#"["a-token-value"]"#).is_err());
        let e = parse_grant(r#"{"access_token":5,"refresh_token":"leaky-canary-1234567"}"#)
            .unwrap_err();
        assert!(
            e.contains("unexpected shape") && !e.contains("leaky"),
            "{e}"
        );
    }

    #[test]
    fn classification() {
        assert!(matches!(
            classify_token(400, r#"{"error":"authorization_pending"}"#, None),
            TokenOutcome::Pending
        ));
        assert!(matches!(
            classify_token(200, r#"{"error":"authorization_pending"}"#, None),
            TokenOutcome::Pending
        ));
        assert!(matches!(
            classify_token(400, r#"{"error":"invalid_grant"}"#, None),
            TokenOutcome::Rejected(_)
        ));
        assert!(matches!(
            classify_token(503, "", None),
            TokenOutcome::Transient(_, _)
        ));
        assert!(matches!(
            classify_token(200, r#"{"refresh_token":"leaky-canary-123456789012345"}"#, None),
            TokenOutcome::Malformed(m) if !m.contains("leaky")
        ));
    }
}
