//! Kimi's Coding API beside OAuth, protocol only (SPEC §2): `GET {base}/usages` (account
//! quota) and `GET {base}/models` (the model list), what an answer's status means, and parsing
//! the bodies.
//!
//! The parsers are pure and fuzzed: numbers may arrive as decimal strings, unknown fields are
//! ignored, a missing or malformed window is reported as missing (never a crash), and a reason
//! never quotes a token-like value. Which token to send, the forced refresh after a 401 and the
//! retries are the session layer's business.

pub(crate) mod reply;

use serde_json::{Map, Value};

use crate::clock::parse_rfc3339;
use crate::redact::redact_body;

/// Path of the quota endpoint under the API base.
pub const USAGES_PATH: &str = "usages";
/// Path of the model list under the API base.
pub const MODELS_PATH: &str = "models";

/// One quota: used, limit, remaining and when it resets. Any part may be missing; `used` and
/// `remaining` are derived from the other two when only one of them is sent.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Quota {
    /// Used so far.
    pub used: Option<f64>,
    /// The limit.
    pub limit: Option<f64>,
    /// What remains.
    pub remaining: Option<f64>,
    /// When the quota resets, Unix seconds.
    pub resets_at: Option<i64>,
}

impl Quota {
    /// The used fraction, 0 to 1, when it can be told.
    pub fn used_fraction(&self) -> Option<f64> {
        let (used, limit) = (self.used?, self.limit?);
        (limit > 0.0).then(|| (used / limit).clamp(0.0, 1.0))
    }
}

/// A rate-limit window of `limits[]` (Kimi sends the 5-hour window there).
#[derive(Debug, Clone, PartialEq)]
pub struct LimitWindow {
    /// The window's length in seconds, when its duration and unit are understood.
    pub seconds: Option<u64>,
    /// The duration as sent.
    pub duration: Option<f64>,
    /// The unit as sent (`TIME_UNIT_MINUTE`, …).
    pub unit: Option<String>,
    /// The quota of this window (`detail`).
    pub quota: Quota,
}

/// The answer of `GET /usages`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Usage {
    /// The membership level (`user.membership.level`, e.g. `LEVEL_INTERMEDIATE`), when sent.
    pub plan: Option<String>,
    /// The weekly quota (`usage`), when sent.
    pub weekly: Option<Quota>,
    /// The windows of `limits[]`, in the order sent.
    pub limits: Vec<LimitWindow>,
}

impl Usage {
    /// The window that lasts exactly `seconds` (18 000 for the 5-hour window).
    pub fn window(&self, seconds: u64) -> Option<&LimitWindow> {
        self.limits.iter().find(|w| w.seconds == Some(seconds))
    }
}

/// One entry of `GET /models`.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The model id (what clients send).
    pub id: String,
    /// The name for people, when sent.
    pub display_name: Option<String>,
    /// The context length in tokens, when sent.
    pub context_length: Option<u64>,
    /// `supports_reasoning`, when sent.
    pub supports_reasoning: Option<bool>,
    /// `supports_image_in`, when sent.
    pub supports_image_in: Option<bool>,
    /// `supports_video_in`, when sent.
    pub supports_video_in: Option<bool>,
}

/// A number, or a string holding a decimal number; finite only.
fn number(v: &Value) -> Option<f64> {
    let n = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    n.is_finite().then_some(n)
}

fn boolean(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.trim() {
            "true" | "True" | "TRUE" => Some(true),
            "false" | "False" | "FALSE" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn text(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect())
}

/// A reset time: RFC 3339, or Unix seconds / milliseconds as a number or a string.
fn reset_time(v: &Value) -> Option<i64> {
    if let Value::String(s) = v
        && let Some(t) = parse_rfc3339(s)
    {
        return Some(t);
    }
    let n = number(v)?;
    let secs = if n.abs() >= 1e11 { n / 1000.0 } else { n };
    (secs.abs() < 1e13).then_some(secs as i64)
}

fn first<'a>(obj: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| obj.get(*n))
}

/// A quota object; `None` when it is not an object or holds none of the known fields.
fn quota(v: Option<&Value>) -> Option<Quota> {
    let obj = v?.as_object()?;
    let used = first(obj, &["used"]).and_then(number);
    let limit = first(obj, &["limit"]).and_then(number);
    let remaining = first(obj, &["remaining"]).and_then(number);
    let resets_at =
        first(obj, &["resetTime", "reset_time", "resetAt", "reset_at"]).and_then(reset_time);
    if used.is_none() && limit.is_none() && remaining.is_none() && resets_at.is_none() {
        return None;
    }
    Some(Quota {
        used: used.or_else(|| Some(limit? - remaining?)),
        limit,
        remaining: remaining.or_else(|| Some(limit? - used?)),
        resets_at,
    })
}

fn unit_seconds(unit: &str) -> Option<u64> {
    let u = unit.trim().to_ascii_uppercase();
    let u = u.strip_prefix("TIME_UNIT_").unwrap_or(&u);
    match u.trim_end_matches('S') {
        "SECOND" => Some(1),
        "MINUTE" => Some(60),
        "HOUR" => Some(3600),
        "DAY" => Some(86_400),
        "WEEK" => Some(604_800),
        _ => None,
    }
}

fn limit_window(v: &Value) -> Option<LimitWindow> {
    let obj = v.as_object()?;
    let quota = quota(obj.get("detail"))?;
    let window = obj.get("window").and_then(Value::as_object);
    let duration = window.and_then(|w| w.get("duration")).and_then(number);
    let unit = text(window.and_then(|w| w.get("timeUnit")));
    let seconds = match (duration, unit.as_deref().and_then(unit_seconds)) {
        (Some(d), Some(factor)) if d > 0.0 && d < 1e9 && d.fract() == 0.0 => {
            (d as u64).checked_mul(factor)
        }
        _ => None,
    };
    Some(LimitWindow {
        seconds,
        duration,
        unit,
        quota,
    })
}

/// The body as a JSON object, or a redacted reason.
fn json_object(body: &str) -> Result<Map<String, Value>, String> {
    match serde_json::from_str(body) {
        Ok(Value::Object(obj)) => Ok(obj),
        Ok(_) => Err("the answer is not a JSON object".to_owned()),
        Err(e) => Err(format!(
            "the answer is not JSON (line {}, column {}): {}",
            e.line(),
            e.column(),
            redact_body(body)
        )),
    }
}

/// Parses the body of `GET /usages` (status 2xx). Only a body that is not a JSON object is an
/// error; missing or malformed parts are reported as missing.
pub fn parse_usages(body: &str) -> Result<Usage, String> {
    let obj = json_object(body)?;
    let plan = text(
        obj.get("user")
            .and_then(|u| u.get("membership"))
            .and_then(|m| m.get("level")),
    );
    let limits = obj
        .get("limits")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(limit_window).collect())
        .unwrap_or_default();
    Ok(Usage {
        plan,
        weekly: quota(obj.get("usage")),
        limits,
    })
}

/// Parses the body of `GET /models` (status 2xx): `{"data":[…]}`. Entries without an `id` are
/// skipped; unknown fields are ignored.
pub fn parse_models(body: &str) -> Result<Vec<Model>, String> {
    let obj = json_object(body)?;
    let data = obj
        .get("data")
        .and_then(Value::as_array)
        .ok_or_else(|| "the answer has no \"data\" list".to_owned())?;
    Ok(data
        .iter()
        .filter_map(Value::as_object)
        .filter_map(|m| {
            let id = text(m.get("id"))?;
            let context_length = m
                .get("context_length")
                .and_then(number)
                .filter(|n| *n >= 0.0 && *n < 1e15)
                .map(|n| n as u64);
            Some(Model {
                id,
                display_name: text(m.get("display_name")),
                context_length,
                supports_reasoning: m.get("supports_reasoning").and_then(boolean),
                supports_image_in: m.get("supports_image_in").and_then(boolean),
                supports_video_in: m.get("supports_video_in").and_then(boolean),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::reply::{ApiReply, classify};
    use super::*;

    #[test]
    fn usages_with_strings_extras_and_missing_parts() {
        let u = parse_usages(
            r#"{"usage":{"limit":"100","remaining":"74","resetTime":"2026-02-11T17:32:50.757941Z","extra":1},
                "limits":[{"window":{"duration":300,"timeUnit":"TIME_UNIT_MINUTE"},
                           "detail":{"limit":"100","used":"15.5","resetTime":"2026-02-07T12:32:50Z"}},
                          {"window":{"duration":"x"},"detail":{}}],
                "user":{"membership":{"level":"LEVEL_INTERMEDIATE"}},"surprise":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(u.plan.as_deref(), Some("LEVEL_INTERMEDIATE"));
        let w = u.weekly.unwrap();
        assert_eq!(
            (w.used, w.limit, w.remaining),
            (Some(26.0), Some(100.0), Some(74.0))
        );
        assert_eq!(w.resets_at, Some(1_770_831_170));
        assert_eq!(u.limits.len(), 1, "an empty detail is no window");
        let five = &u.limits[0];
        assert_eq!(five.seconds, Some(18_000));
        assert_eq!(five.quota.remaining, Some(84.5));
        let empty = parse_usages("{}").unwrap();
        assert!(empty.weekly.is_none() && empty.limits.is_empty() && empty.plan.is_none());
        assert!(parse_usages("[]").is_err());
        assert!(parse_usages("<html>").is_err());
        assert_eq!(
            parse_usages(r#"{"usage":{"limit":"NaN","used":"inf","remaining":"1e400"}}"#)
                .unwrap()
                .weekly,
            None
        );
    }

    #[test]
    fn models() {
        let m = parse_models(
            r#"{"data":[{"id":"kimi-for-coding","display_name":"Kimi For Coding","context_length":"262144",
                         "supports_reasoning":true,"supports_image_in":"false","new_field":{}},
                        {"display_name":"no id"}, 7]}"#,
        )
        .unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].context_length, Some(262_144));
        assert_eq!(m[0].supports_image_in, Some(false));
        assert_eq!(m[0].supports_video_in, None);
        assert!(parse_models(r#"{"object":"list"}"#).is_err());
    }

    #[test]
    fn statuses() {
        assert!(matches!(classify(200, "{}", None), ApiReply::Ok(_)));
        assert!(matches!(classify(401, "", None), ApiReply::Unauthorized(_)));
        assert!(matches!(
            classify(402, "", None),
            ApiReply::PaymentRequired(_)
        ));
        assert!(matches!(classify(503, "", None), ApiReply::Transient(_, _)));
        assert!(matches!(classify(404, "", None), ApiReply::Failed(_)));
        match classify(
            500,
            r#"{"access_token":"leaky-canary-0123456789abcdef"}"#,
            None,
        ) {
            ApiReply::Transient(d, _) => assert!(!d.contains("leaky")),
            other => panic!("{other:?}"),
        }
    }
}
