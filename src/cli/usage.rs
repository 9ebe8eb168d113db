//! `kimi-vault usage`: the weekly quota and the 5-hour window as bars, with the reset time in
//! local time; `--json` with a stable schema (README).

use kimi_vault::api::{LimitWindow, Quota, Usage};
use serde_json::{Value, json};

use crate::cli::failure::{CmdResult, exit};
use crate::cli::output::outln;
use crate::cli::{Ctx, output};

/// The 5-hour window, in seconds.
const FIVE_HOURS: u64 = 5 * 3600;
const BAR_WIDTH: usize = 24;
const LABEL_WIDTH: usize = 15;

/// "Intermediate" from "LEVEL_INTERMEDIATE".
fn plan_name(level: &str) -> String {
    let l = level.strip_prefix("LEVEL_").unwrap_or(level);
    l.split('_')
        .filter(|w| !w.is_empty())
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut c = lower.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// "5-hour window", "1-day window", or what was sent.
fn window_label(w: &LimitWindow) -> String {
    match w.seconds {
        Some(s) if s % 86_400 == 0 => format!("{}-day window", s / 86_400),
        Some(s) if s % 3600 == 0 => format!("{}-hour window", s / 3600),
        Some(s) if s % 60 == 0 => format!("{}-minute window", s / 60),
        Some(s) => format!("{s}-second window"),
        None => format!(
            "window ({} {})",
            w.duration
                .map(output::quantity)
                .unwrap_or_else(|| "?".into()),
            w.unit.as_deref().unwrap_or("?")
        ),
    }
}

fn quota_json(q: &Quota, now: i64) -> Value {
    json!({
        "used": output::json_number(q.used),
        "limit": output::json_number(q.limit),
        "remaining": output::json_number(q.remaining),
        "used_percent": q.used_fraction().map(|f| (f * 1000.0).round() / 10.0),
        "resets_at": q.resets_at.map(kimi_vault::rfc3339),
        "resets_in_seconds": q.resets_at.map(|t| t - now),
    })
}

fn window_json(w: &LimitWindow, now: i64) -> Value {
    let mut v = quota_json(&w.quota, now);
    v["window_seconds"] = json!(w.seconds);
    v["duration"] = output::json_number(w.duration);
    v["time_unit"] = json!(w.unit);
    v
}

fn print_quota(label: &str, q: Option<&Quota>, now: i64, offset: time::UtcOffset) {
    let label = output::pad(label, LABEL_WIDTH);
    let Some(q) = q else {
        outln!("{label}not reported by Kimi");
        return;
    };
    let amounts = match (q.used, q.limit, q.remaining) {
        (Some(u), Some(l), Some(r)) => format!(
            "{} of {} used, {} left",
            output::quantity(u),
            output::quantity(l),
            output::quantity(r)
        ),
        (Some(u), Some(l), None) => {
            format!("{} of {} used", output::quantity(u), output::quantity(l))
        }
        (_, _, Some(r)) => format!("{} left", output::quantity(r)),
        (Some(u), None, None) => format!("{} used", output::quantity(u)),
        _ => "amounts not reported".to_owned(),
    };
    match q.used_fraction() {
        Some(f) => outln!(
            "{label}{} {:>3.0}% used  {amounts}",
            output::bar(f, BAR_WIDTH),
            f * 100.0
        ),
        None => outln!("{label}{amounts}"),
    }
    let indent = " ".repeat(LABEL_WIDTH);
    match q.resets_at {
        Some(t) if t > now => outln!(
            "{indent}resets in {} ({})",
            output::words((t - now) as u64),
            output::local_time(t, offset)
        ),
        Some(t) => outln!(
            "{indent}reset time passed {} ago ({})",
            output::words((now - t) as u64),
            output::local_time(t, offset)
        ),
        None => outln!("{indent}reset time not reported"),
    }
}

/// Prints the account's quota.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    // Read the local time zone now: no thread has been started yet.
    let offset = output::local_offset();
    let usage: Usage = ctx.session.usage()?;
    let now = kimi_vault::now_unix();
    let five = usage.window(FIVE_HOURS);
    if ctx.json {
        output::json_line(&json!({
            "profile": ctx.profile(),
            "plan": usage.plan,
            "weekly": usage.weekly.as_ref().map(|q| quota_json(q, now)),
            "five_hour": five.map(|w| quota_json(&w.quota, now)),
            "windows": usage.limits.iter().map(|w| window_json(w, now)).collect::<Vec<_>>(),
        }));
        return Ok(exit::OK);
    }
    let plan = usage
        .plan
        .as_deref()
        .map(|p| format!(", plan: {}", plan_name(p)))
        .unwrap_or_default();
    outln!("Kimi Code usage (profile '{}'{plan})", ctx.profile());
    outln!();
    print_quota("weekly", usage.weekly.as_ref(), now, offset);
    print_quota("5-hour window", five.map(|w| &w.quota), now, offset);
    for w in usage
        .limits
        .iter()
        .filter(|w| w.seconds != Some(FIVE_HOURS))
    {
        print_quota(&window_label(w), Some(&w.quota), now, offset);
    }
    Ok(exit::OK)
}
