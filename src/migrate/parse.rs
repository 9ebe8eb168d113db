//! Parsers for other Kimi tools' credential formats (pure functions: fuzzed; no panics; reasons
//! never quote a value).

use aes_gcm::aead::consts::U16;
use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::aes::Aes256;
use aes_gcm::{AesGcm, Nonce};
use base64::Engine;
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::secret::SecretString;

/// The tools whose credentials `migrate` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// kimi-cli: `~/.kimi/credentials/kimi-code.json`, `expires_at` in float seconds.
    KimiCli,
    /// kimi-cli's old keyring entry (service `kimi-code`, user `oauth/kimi-code`).
    KimiCliKeyring,
    /// kimi-code: `~/.kimi-code/credentials/kimi-code*.json`, integer seconds.
    KimiCode,
    /// Roder: `~/.roder/auth/kimi-code.json`, `access`/`refresh`/`expires` (ms).
    Roder,
    /// CLIProxyAPI: `~/.cli-proxy-api/kimi-*.json`, `expired` RFC 3339, `type: "kimi"`.
    CliProxyApi,
    /// opencode-kimi-auth: `~/.opencode-kimi-auth/oauth.json`, plaintext or encrypted.
    Opencode,
}

impl Tool {
    /// The name shown to users and in `--json`.
    pub fn name(self) -> &'static str {
        match self {
            Tool::KimiCli => "kimi-cli",
            Tool::KimiCliKeyring => "kimi-cli-keyring",
            Tool::KimiCode => "kimi-code",
            Tool::Roder => "roder",
            Tool::CliProxyApi => "cliproxyapi",
            Tool::Opencode => "opencode-kimi-auth",
        }
    }
}

/// A credential read from another tool.
#[derive(Debug)]
pub struct Parsed {
    /// Access token.
    pub access_token: SecretString,
    /// Refresh token.
    pub refresh_token: SecretString,
    /// Expiry of the access token, Unix seconds (0 when the source did not say).
    pub expires_at: i64,
    /// Scope, when given.
    pub scope: String,
    /// Token type, when given.
    pub token_type: String,
}

/// Why a source cannot be imported. Texts never hold a value from the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Empty access token: the credential was revoked (a tombstone).
    Revoked,
    /// Not a Kimi credential (e.g. CLIProxyAPI file of another type).
    NotKimi(String),
    /// Unparseable or missing fields.
    Invalid(String),
}

impl ParseError {
    /// The reason, for reports.
    pub fn reason(&self) -> String {
        match self {
            ParseError::Revoked => "revoked (empty access token): nothing to import".into(),
            ParseError::NotKimi(why) => format!("not a Kimi credential ({why})"),
            ParseError::Invalid(why) => format!("cannot be read: {why}"),
        }
    }
}

fn invalid(why: impl Into<String>) -> ParseError {
    ParseError::Invalid(why.into())
}

fn json_object(bytes: &[u8]) -> Result<Map<String, Value>, ParseError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(invalid("it is JSON, but not an object")),
        Err(e) => Err(invalid(format!(
            "not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))),
    }
}

/// A number or numeric string as f64.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|f: &f64| f.is_finite())
}

/// Seconds from a timestamp in `unit_ms` or seconds; values too large to be seconds are taken as
/// milliseconds whatever the format says.
fn unix_seconds(value: f64, unit_ms: bool) -> i64 {
    let secs = if unit_ms || value > 1e11 {
        value / 1000.0
    } else {
        value
    };
    secs.clamp(0.0, 1e12) as i64
}

fn string_field(map: &Map<String, Value>, key: &str) -> Result<Option<String>, ParseError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(format!("the {key} field is not a string"))),
    }
}

fn tokens(
    map: &Map<String, Value>,
    access_key: &str,
    refresh_key: &str,
) -> Result<(SecretString, SecretString), ParseError> {
    let access = string_field(map, access_key)?;
    let refresh = string_field(map, refresh_key)?;
    let (access, refresh) = (
        Zeroizing::new(access.unwrap_or_default()),
        Zeroizing::new(refresh.unwrap_or_default()),
    );
    if !map.contains_key(access_key) && !map.contains_key(refresh_key) {
        return Err(invalid(format!("no {access_key} or {refresh_key} field")));
    }
    if access.trim().is_empty() {
        return Err(ParseError::Revoked);
    }
    if refresh.trim().is_empty() {
        return Err(invalid(format!(
            "no {refresh_key}: it could not be refreshed"
        )));
    }
    Ok((
        SecretString::new(access.trim().to_owned()),
        SecretString::new(refresh.trim().to_owned()),
    ))
}

fn common(
    map: &Map<String, Value>,
    expires_at: i64,
    access: &str,
    refresh: &str,
) -> Result<Parsed, ParseError> {
    let (access_token, refresh_token) = tokens(map, access, refresh)?;
    Ok(Parsed {
        access_token,
        refresh_token,
        expires_at,
        scope: string_field(map, "scope")?.unwrap_or_default(),
        token_type: string_field(map, "token_type")?.unwrap_or_else(|| "Bearer".into()),
    })
}

fn token_json(map: &Map<String, Value>, unit_ms: bool) -> Result<Parsed, ParseError> {
    let expires_at = map
        .get("expires_at")
        .and_then(number)
        .map(|v| unix_seconds(v, unit_ms))
        .unwrap_or(0);
    common(map, expires_at, "access_token", "refresh_token")
}

/// Parses a source's bytes as `tool`'s format. `key` is opencode-kimi-auth's `.key` file.
pub fn parse(tool: Tool, bytes: &[u8], key: Option<&[u8]>) -> Result<Parsed, ParseError> {
    let map = json_object(bytes)?;
    match tool {
        Tool::KimiCli | Tool::KimiCliKeyring | Tool::KimiCode => token_json(&map, false),
        Tool::Roder => {
            let expires_at = map
                .get("expires")
                .and_then(number)
                .map(|v| unix_seconds(v, true))
                .unwrap_or(0);
            common(&map, expires_at, "access", "refresh")
        }
        Tool::CliProxyApi => {
            match string_field(&map, "type")?.as_deref() {
                Some("kimi") => {}
                Some(_) => return Err(ParseError::NotKimi("its type is not \"kimi\"".into())),
                None => return Err(ParseError::NotKimi("it has no type field".into())),
            }
            let expires_at = match string_field(&map, "expired")? {
                Some(s) if !s.is_empty() => time::OffsetDateTime::parse(
                    s.trim(),
                    &time::format_description::well_known::Rfc3339,
                )
                .map_err(|_| invalid("the expired field is not an RFC 3339 time"))?
                .unix_timestamp(),
                _ => 0,
            };
            common(&map, expires_at, "access_token", "refresh_token")
        }
        Tool::Opencode => match map.get("encrypted") {
            Some(Value::String(b64)) => {
                let key = key.ok_or_else(|| {
                    invalid("it is encrypted and the .key file beside it is missing")
                })?;
                let plain = decrypt_opencode(b64, key)?;
                token_json(&json_object(&plain)?, true)
            }
            Some(_) => Err(invalid("the encrypted field is not a string")),
            None => token_json(&map, true),
        },
    }
}

/// Decrypts opencode-kimi-auth's envelope: base64(iv 16 ‖ tag 16 ‖ ciphertext), AES-256-GCM
/// with a 16-byte nonce and no associated data.
pub(crate) fn decrypt_opencode(b64: &str, key: &[u8]) -> Result<Zeroizing<Vec<u8>>, ParseError> {
    let key: &[u8; 32] = key
        .try_into()
        .map_err(|_| invalid("the .key file beside it is not 32 bytes"))?;
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| invalid("the encrypted field is not base64"))?,
    );
    if raw.len() < 32 {
        return Err(invalid("the encrypted field is too short"));
    }
    let (iv, rest) = raw.split_at(16);
    let (tag, ct) = rest.split_at(16);
    let mut sealed = Zeroizing::new(Vec::with_capacity(ct.len() + 16));
    sealed.extend_from_slice(ct);
    sealed.extend_from_slice(tag);
    let cipher = AesGcm::<Aes256, U16>::new_from_slice(key).expect("32-byte key");
    cipher
        .decrypt(Nonce::<U16>::from_slice(iv), sealed.as_slice())
        .map(Zeroizing::new)
        .map_err(|_| invalid("it does not decrypt with the .key file beside it"))
}

/// Guesses the format of a file given with `--from` from its content.
pub fn sniff(bytes: &[u8]) -> Tool {
    let Ok(map) = json_object(bytes) else {
        return Tool::KimiCli;
    };
    if map.contains_key("encrypted") {
        Tool::Opencode
    } else if map.contains_key("access") || map.contains_key("refresh") {
        Tool::Roder
    } else if map.contains_key("expired") || map.get("type").and_then(Value::as_str) == Some("kimi")
    {
        Tool::CliProxyApi
    } else {
        match map.get("expires_at") {
            Some(v) if number(v).is_some_and(|n| n > 1e11) => Tool::Opencode,
            Some(Value::Number(n)) if n.is_f64() => Tool::KimiCli,
            _ => Tool::KimiCode,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        let p = parse(
            Tool::KimiCli,
            br#"{"access_token":"a1","refresh_token":"r1","expires_at":1700000000.5,"scope":"s","token_type":"Bearer","expires_in":900}"#,
            None,
        )
        .unwrap();
        assert_eq!(p.expires_at, 1_700_000_000);
        let p = parse(
            Tool::Roder,
            br#"{"type":"oauth","access":"a","refresh":"r","expires":1700000000000}"#,
            None,
        )
        .unwrap();
        assert_eq!(p.expires_at, 1_700_000_000);
        let p = parse(
            Tool::CliProxyApi,
            br#"{"type":"kimi","access_token":"a","refresh_token":"r","expired":"2023-11-14T22:13:20Z"}"#,
            None,
        )
        .unwrap();
        assert_eq!(p.expires_at, 1_700_000_000);
        assert!(matches!(
            parse(
                Tool::CliProxyApi,
                br#"{"type":"claude","access_token":"a","refresh_token":"r"}"#,
                None
            ),
            Err(ParseError::NotKimi(_))
        ));
        assert_eq!(
            parse(
                Tool::KimiCode,
                br#"{"access_token":"","refresh_token":""}"#,
                None
            )
            .unwrap_err(),
            ParseError::Revoked
        );
        assert!(parse(Tool::KimiCode, b"[1]", None).is_err());
    }

    #[test]
    fn opencode_encrypted() {
        let key = [5u8; 32];
        let iv = [9u8; 16];
        let plain = br#"{"access_token":"a","refresh_token":"r","expires_at":1700000000000}"#;
        let cipher = AesGcm::<Aes256, U16>::new_from_slice(&key).unwrap();
        let ct = cipher
            .encrypt(Nonce::<U16>::from_slice(&iv), &plain[..])
            .unwrap();
        let (body, tag) = ct.split_at(ct.len() - 16);
        let mut raw = iv.to_vec();
        raw.extend_from_slice(tag);
        raw.extend_from_slice(body);
        let file = format!(
            r#"{{"encrypted":"{}"}}"#,
            base64::engine::general_purpose::STANDARD.encode(&raw)
        );
        let p = parse(Tool::Opencode, file.as_bytes(), Some(&key)).unwrap();
        assert_eq!(p.expires_at, 1_700_000_000);
        assert!(parse(Tool::Opencode, file.as_bytes(), Some(&[6u8; 32])).is_err());
        assert!(parse(Tool::Opencode, file.as_bytes(), None).is_err());
    }
}
