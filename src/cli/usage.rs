//! `kimi-vault usage`: the weekly quota and the 5-hour window as bars, with the reset time in
//! local time, and the extra-usage balance with its monthly cap when Kimi sends them; `--json`
//! with a stable schema (README). Every string from the server is made safe for a terminal.

use kimi_vault::api::{ExtraUsage, LimitWindow, Quota, Usage};
use kimi_vault::sanitize::for_terminal;
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
            for_terminal(w.unit.as_deref().unwrap_or("?"))
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

fn extra_json(e: &ExtraUsage) -> Value {
    json!({
        "balance_type": e.balance_type,
        "amount_cents": output::json_number(e.amount_cents),
        "amount_left_cents": output::json_number(e.amount_left_cents),
        "monthly_limit_enabled": e.monthly_limit_enabled,
        "monthly_limit_cents": output::json_number(e.monthly_limit_cents),
        "monthly_used_cents": output::json_number(e.monthly_used_cents),
        "currency": e.currency,
    })
}

/// "12.35 USD" from cents.
fn money(cents: f64, currency: &str) -> String {
    let amount = format!("{:.2}", cents / 100.0);
    if currency.is_empty() {
        amount
    } else {
        format!("{amount} {currency}")
    }
}

fn print_extra(e: &ExtraUsage) {
    let label = output::pad("extra usage", LABEL_WIDTH);
    let indent = " ".repeat(LABEL_WIDTH);
    let currency = for_terminal(e.currency.as_deref().unwrap_or("")).into_owned();
    let balance = match (e.amount_left_cents, e.amount_cents) {
        (Some(left), Some(total)) => format!(
            "balance {} left of {}",
            money(left, &currency),
            money(total, &currency)
        ),
        (Some(left), None) => format!("balance {} left", money(left, &currency)),
        (None, Some(total)) => format!("balance of {}", money(total, &currency)),
        (None, None) => "balance not reported".to_owned(),
    };
    outln!("{label}{balance}");
    let used = e.monthly_used_cents.map(|u| money(u, &currency));
    // A cap of 0 means none (as Kimi's own CLI reads it).
    match (e.monthly_limit_enabled, e.monthly_limit_cents) {
        (enabled, Some(cap)) if cap > 0.0 && enabled != Some(false) => {
            let spent = e.monthly_used_cents.unwrap_or(0.0);
            let f = (spent / cap).clamp(0.0, 1.0);
            outln!(
                "{indent}{} {:>3.0}% of the monthly cap  {} of {} this month",
                output::bar(f, BAR_WIDTH),
                f * 100.0,
                money(spent, &currency),
                money(cap, &currency)
            );
        }
        (Some(true), None) => outln!(
            "{indent}a monthly cap is set (amount not reported){}",
            used.map(|u| format!("; {u} this month"))
                .unwrap_or_default()
        ),
        (Some(false), _) | (_, Some(_)) => outln!(
            "{indent}no monthly cap{}",
            used.map(|u| format!("; {u} this month"))
                .unwrap_or_default()
        ),
        _ => {
            if let Some(u) = used {
                outln!("{indent}{u} this month");
            }
        }
    }
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
            output::span((t - now) as u64),
            output::local_time(t, offset)
        ),
        Some(t) => outln!(
            "{indent}reset time passed {} ago ({})",
            output::span((now - t) as u64),
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
            "extra_usage": usage.extra.as_ref().map(extra_json),
        }));
        return Ok(exit::OK);
    }
    let plan = usage
        .plan
        .as_deref()
        .map(|p| format!(", plan: {}", for_terminal(&plan_name(p))))
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
    if let Some(extra) = &usage.extra {
        print_extra(extra);
    }
    Ok(exit::OK)
}
