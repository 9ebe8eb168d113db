//! Kimi's Coding API beside OAuth, protocol only (SPEC §2): `GET {base}/usages` (account
//! quota and extra-usage balance), `GET {base}/models` (the model list) and `GET {base}/me` (the
//! account), what an answer's status means, and parsing the bodies.
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
pub(crate) const USAGES_PATH: &str = "usages";
/// Path of the model list under the API base.
pub(crate) const MODELS_PATH: &str = "models";
/// Path of the account under the API base.
pub(crate) const ME_PATH: &str = "me";

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

/// The extra-usage balance (`boosterWallet` of `GET /usages`). Amounts are in cents of
/// `currency` (Kimi sends the balance in millionths of a cent, the monthly figures in cents);
/// any part may be missing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExtraUsage {
    /// `balance.type` (e.g. `BOOSTER`), when sent.
    pub balance_type: Option<String>,
    /// `balance.amount`: what was bought, in cents.
    pub amount_cents: Option<f64>,
    /// `balance.amountLeft`: what is left, in cents.
    pub amount_left_cents: Option<f64>,
    /// `monthlyChargeLimitEnabled`, when sent.
    pub monthly_limit_enabled: Option<bool>,
    /// `monthlyChargeLimit.priceInCents`: the monthly cap, in cents.
    pub monthly_limit_cents: Option<f64>,
    /// `monthlyUsed.priceInCents`: spent this month, in cents.
    pub monthly_used_cents: Option<f64>,
    /// The currency of the monthly figures (`USD`, `CNY`, …), when sent.
    pub currency: Option<String>,
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
    /// The extra-usage balance (`boosterWallet`), when sent.
    pub extra: Option<ExtraUsage>,
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
    /// `supports_tool_use`, when sent.
    pub supports_tool_use: Option<bool>,
    /// `supports_thinking_type`: `only`, `no` or `both` (as sent), when sent.
    pub thinking: Option<String>,
    /// `think_efforts`, when sent.
    pub efforts: Option<ThinkEfforts>,
    /// `protocol` (`anthropic` when served on the Messages API), when sent.
    pub protocol: Option<String>,
}

/// A model's reasoning-effort levels (`think_efforts`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ThinkEfforts {
    /// `support`, when sent.
    pub support: Option<bool>,
    /// `valid_efforts`, in the order sent (strings only).
    pub valid: Vec<String>,
    /// `default_effort`, when sent.
    pub default: Option<String>,
}

/// The account (`GET /me`). Personal: never logged.
#[derive(Clone, PartialEq, Default)]
pub struct Me {
    /// `user_id` (a string, or a number written as one).
    pub user_id: String,
    /// `nickname`, when sent.
    pub nickname: Option<String>,
    /// `user_level_name`, when sent.
    pub level_name: Option<String>,
    /// `region` (`REGION_CN`, …), when sent.
    pub region: Option<String>,
}

impl std::fmt::Debug for Me {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Me(..)")
    }
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

/// A string field, trimmed, bounded in length, without control characters (C0, DEL, C1: they
/// have no place in an id or a name, and an id becomes an environment value for kimi-code);
/// blank counts as absent. Bidi and zero-width characters are kept as sent (`--json` shows them
/// exactly; human output escapes them with `sanitize`).
fn text(v: Option<&Value>) -> Option<String> {
    // Controls out first, then trimmed: what is left is never empty (`"\u0001"` is absent).
    let kept: String = v?
        .as_str()?
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_owned())
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

/// The extra-usage balance: `None` unless `boosterWallet` is an object with a known part.
fn extra_usage(v: Option<&Value>) -> Option<ExtraUsage> {
    let obj = v?.as_object()?;
    let balance = obj.get("balance").and_then(Value::as_object);
    let millionths = |key: &str| {
        balance
            .and_then(|b| b.get(key))
            .and_then(number)
            .map(|n| n / 1_000_000.0)
    };
    let money = |key: &str| obj.get(key).and_then(Value::as_object);
    let cents = |key: &str| {
        money(key)
            .and_then(|m| m.get("priceInCents"))
            .and_then(number)
    };
    let currency = text(money("monthlyChargeLimit").and_then(|m| m.get("currency")))
        .or_else(|| text(money("monthlyUsed").and_then(|m| m.get("currency"))));
    let extra = ExtraUsage {
        balance_type: text(balance.and_then(|b| b.get("type"))),
        amount_cents: millionths("amount"),
        amount_left_cents: millionths("amountLeft"),
        monthly_limit_enabled: obj.get("monthlyChargeLimitEnabled").and_then(boolean),
        monthly_limit_cents: cents("monthlyChargeLimit"),
        monthly_used_cents: cents("monthlyUsed"),
        currency,
    };
    (extra != ExtraUsage::default()).then_some(extra)
}

/// True when `body` is the coding API's `{"error":{"type":"access_terminated_error",…}}`: it
/// accepts only the coding agents it knows.
pub fn is_access_terminated(body: &str) -> bool {
    serde_json::from_str::<Value>(body).is_ok_and(|v| {
        v.get("error")
            .and_then(|e| e.get("type"))
            .and_then(Value::as_str)
            == Some("access_terminated_error")
    })
}

/// `error.message` of an API error body, redacted and made safe for a terminal or a log, when
/// there is one.
pub(crate) fn error_message(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    let message = text(v.get("error")?.get("message"))?;
    let redacted = crate::redact::redact_text(&message);
    Some(crate::sanitize::for_terminal(&redacted).into_owned())
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
        extra: extra_usage(obj.get("boosterWallet")),
    })
}

/// Parses the body of `GET /me` (status 2xx). Only `user_id` is needed (a non-empty string,
/// or a number); every other field is optional and any wrong type counts as missing.
pub fn parse_me(body: &str) -> Result<Me, String> {
    let obj = json_object(body)?;
    let user_id = match obj.get("user_id") {
        Some(Value::Number(n)) => Some(n.to_string()),
        other => text(other),
    }
    .ok_or_else(|| "the answer has no \"user_id\"".to_owned())?;
    Ok(Me {
        user_id,
        nickname: text(obj.get("nickname")),
        level_name: text(obj.get("user_level_name")),
        region: text(obj.get("region")),
    })
}

fn think_efforts(v: Option<&Value>) -> Option<ThinkEfforts> {
    let obj = v?.as_object()?;
    let efforts = ThinkEfforts {
        support: obj.get("support").and_then(boolean),
        valid: obj
            .get("valid_efforts")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|e| text(Some(e))).take(32).collect())
            .unwrap_or_default(),
        default: text(obj.get("default_effort")),
    };
    (efforts != ThinkEfforts::default()).then_some(efforts)
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
                supports_tool_use: m.get("supports_tool_use").and_then(boolean),
                thinking: text(m.get("supports_thinking_type")),
                efforts: think_efforts(m.get("think_efforts")),
                protocol: text(m.get("protocol")),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::reply::{ApiReply, classify};
    use super::*;

    #[test]
    fn a_text_field_is_never_empty_and_never_holds_a_control() {
        let v = |s: &str| Value::String(s.into());
        // A value made only of controls (and spaces) is absent, not an empty name (a fuzz find).
        assert_eq!(text(Some(&v("\u{1}"))), None);
        assert_eq!(text(Some(&v(" \u{1b} "))), None);
        assert_eq!(
            text(Some(&v(" kimi\u{1b}[31m-k2 "))).as_deref(),
            Some("kimi[31m-k2")
        );
        // Bidi and zero-width characters are kept (human output escapes them).
        assert_eq!(text(Some(&v("a\u{202e}b"))).as_deref(), Some("a\u{202e}b"));
        assert_eq!(text(Some(&Value::Null)), None);
    }

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
    fn extra_usage_and_its_missing_parts() {
        let u = parse_usages(
            r#"{"boosterWallet":{"balance":{"type":"BOOSTER","amount":"2000000000","amountLeft":1234500000},
                "monthlyChargeLimitEnabled":true,"monthlyChargeLimit":{"priceInCents":"5000","currency":"USD"},
                "monthlyUsed":{"priceInCents":766,"currency":"USD"}}}"#,
        )
        .unwrap();
        let e = u.extra.unwrap();
        assert_eq!(e.balance_type.as_deref(), Some("BOOSTER"));
        assert_eq!(e.amount_cents, Some(2000.0));
        assert_eq!(e.amount_left_cents, Some(1234.5));
        assert_eq!(e.monthly_limit_enabled, Some(true));
        assert_eq!(e.monthly_limit_cents, Some(5000.0));
        assert_eq!(e.monthly_used_cents, Some(766.0));
        assert_eq!(e.currency.as_deref(), Some("USD"));
        // Wrong types are missing parts; nothing known is no balance at all.
        let e = parse_usages(r#"{"boosterWallet":{"balance":{"amountLeft":"x"},"monthlyChargeLimitEnabled":"true","monthlyUsed":7}}"#)
            .unwrap()
            .extra
            .unwrap();
        assert_eq!(e.amount_left_cents, None);
        assert_eq!(e.monthly_limit_enabled, Some(true));
        assert_eq!(e.monthly_used_cents, None);
        for none in [
            r#"{"boosterWallet":null}"#,
            r#"{"boosterWallet":{}}"#,
            r#"{"boosterWallet":[1]}"#,
            "{}",
        ] {
            assert_eq!(parse_usages(none).unwrap().extra, None, "{none}");
        }
    }

    #[test]
    fn models_thinking_efforts_tools_protocol() {
        let m = parse_models(
            r#"{"data":[{"id":"k2","supports_tool_use":true,"supports_thinking_type":"both",
                "think_efforts":{"support":true,"valid_efforts":["low","medium",7,"high"],"default_effort":"medium"},
                "protocol":"anthropic"},
                {"id":"bad","supports_tool_use":"maybe","supports_thinking_type":3,"think_efforts":"x","protocol":{}}]}"#,
        )
        .unwrap();
        assert_eq!(m[0].supports_tool_use, Some(true));
        assert_eq!(m[0].thinking.as_deref(), Some("both"));
        let e = m[0].efforts.as_ref().unwrap();
        assert_eq!(e.valid, ["low", "medium", "high"]);
        assert_eq!(
            (e.support, e.default.as_deref()),
            (Some(true), Some("medium"))
        );
        assert_eq!(m[0].protocol.as_deref(), Some("anthropic"));
        assert_eq!(
            (
                &m[1].supports_tool_use,
                &m[1].thinking,
                &m[1].efforts,
                &m[1].protocol
            ),
            (&None, &None, &None, &None)
        );
    }

    #[test]
    fn me() {
        let me = parse_me(
            r#"{"user_id":"u_123","nickname":"moonwalker","status":"USER_STATUS_NORMAL","region":"REGION_CN",
                "user_level":30,"user_level_name":"Vivace","phone":{"country_code":"86","number":"176****0000"}}"#,
        )
        .unwrap();
        assert_eq!(me.user_id, "u_123");
        assert_eq!(me.nickname.as_deref(), Some("moonwalker"));
        assert_eq!(me.level_name.as_deref(), Some("Vivace"));
        assert_eq!(me.region.as_deref(), Some("REGION_CN"));
        assert_eq!(format!("{me:?}"), "Me(..)", "personal: never in Debug");
        assert_eq!(parse_me(r#"{"user_id":42}"#).unwrap().user_id, "42");
        let bare = parse_me(r#"{"user_id":"u","nickname":7,"user_level_name":null}"#).unwrap();
        assert_eq!((bare.nickname, bare.level_name), (None, None));
        for bad in [
            r#"{"nickname":"x"}"#,
            r#"{"user_id":""}"#,
            r#"{"user_id":{}}"#,
            "[]",
            "<html>",
        ] {
            assert!(parse_me(bad).is_err(), "{bad}");
        }
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
        assert!(matches!(classify(403, "{}", None), ApiReply::Failed(_)));
        match classify(
            403,
            r#"{"error":{"type":"access_terminated_error","message":"only coding agents"}}"#,
            None,
        ) {
            ApiReply::AccessTerminated(m) => assert_eq!(m, "only coding agents"),
            other => panic!("{other:?}"),
        }
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
