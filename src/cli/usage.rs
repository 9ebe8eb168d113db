//! `kimi-vault usage`: the weekly quota and the 5-hour window as bars, with the reset time in
//! local time, and the extra-usage balance with its monthly cap when Kimi sends them; `--json`
//! with a stable schema (README). Every string from the server is made safe for a terminal.

use kimi_vault::api::{ExtraUsage, LimitWindow, Quota, Usage};
use kimi_vault::sanitize::for_terminal;
use serde::Serialize;

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
fn window_label(w: &WindowJson<'_>) -> String {
    match w.window_seconds {
        Some(s) if s % 86_400 == 0 => format!("{}-day window", s / 86_400),
        Some(s) if s % 3600 == 0 => format!("{}-hour window", s / 3600),
        Some(s) if s % 60 == 0 => format!("{}-minute window", s / 60),
        Some(s) => format!("{s}-second window"),
        None => format!(
            "window ({} {})",
            w.duration
                .map(output::quantity)
                .unwrap_or_else(|| "?".into()),
            for_terminal(w.time_unit.unwrap_or("?"))
        ),
    }
}

/// A quota (the week's, a window's) in `usage --json`; people get its bar and reset time.
#[derive(Serialize)]
struct QuotaJson {
    #[serde(serialize_with = "output::number")]
    used: Option<f64>,
    #[serde(serialize_with = "output::number")]
    limit: Option<f64>,
    #[serde(serialize_with = "output::number")]
    remaining: Option<f64>,
    /// Rounded to a tenth.
    used_percent: Option<f64>,
    resets_at: Option<String>,
    resets_in_seconds: Option<i64>,
    /// The used fraction, unrounded (the bar).
    #[serde(skip)]
    fraction: Option<f64>,
    /// `resets_at` in Unix seconds (the local time people see).
    #[serde(skip)]
    resets_unix: Option<i64>,
}

impl QuotaJson {
    fn new(q: &Quota, now: i64) -> Self {
        QuotaJson {
            used: q.used,
            limit: q.limit,
            remaining: q.remaining,
            used_percent: q.used_fraction().map(|f| (f * 1000.0).round() / 10.0),
            resets_at: q.resets_at.map(kimi_vault::rfc3339),
            resets_in_seconds: q.resets_at.map(|t| t - now),
            fraction: q.used_fraction(),
            resets_unix: q.resets_at,
        }
    }
}

/// A `limits[]` window: its quota and its length as sent.
#[derive(Serialize)]
struct WindowJson<'a> {
    #[serde(flatten)]
    quota: QuotaJson,
    window_seconds: Option<u64>,
    #[serde(serialize_with = "output::number")]
    duration: Option<f64>,
    time_unit: Option<&'a str>,
}

impl<'a> WindowJson<'a> {
    fn new(w: &'a LimitWindow, now: i64) -> Self {
        WindowJson {
            quota: QuotaJson::new(&w.quota, now),
            window_seconds: w.seconds,
            duration: w.duration,
            time_unit: w.unit.as_deref(),
        }
    }
}

/// The extra usage (`boosterWallet`), every amount in cents.
#[derive(Serialize)]
struct ExtraJson<'a> {
    balance_type: Option<&'a str>,
    #[serde(serialize_with = "output::number")]
    amount_cents: Option<f64>,
    #[serde(serialize_with = "output::number")]
    amount_left_cents: Option<f64>,
    monthly_limit_enabled: Option<bool>,
    #[serde(serialize_with = "output::number")]
    monthly_limit_cents: Option<f64>,
    #[serde(serialize_with = "output::number")]
    monthly_used_cents: Option<f64>,
    currency: Option<&'a str>,
}

impl<'a> ExtraJson<'a> {
    fn new(e: &'a ExtraUsage) -> Self {
        ExtraJson {
            balance_type: e.balance_type.as_deref(),
            amount_cents: e.amount_cents,
            amount_left_cents: e.amount_left_cents,
            monthly_limit_enabled: e.monthly_limit_enabled,
            monthly_limit_cents: e.monthly_limit_cents,
            monthly_used_cents: e.monthly_used_cents,
            currency: e.currency.as_deref(),
        }
    }
}

/// `usage --json` (schema in README), and what people see ([`UsageJson::print`]).
#[derive(Serialize)]
struct UsageJson<'a> {
    profile: &'a str,
    plan: Option<&'a str>,
    weekly: Option<QuotaJson>,
    five_hour: Option<QuotaJson>,
    windows: Vec<WindowJson<'a>>,
    extra_usage: Option<ExtraJson<'a>>,
}

impl<'a> UsageJson<'a> {
    fn new(profile: &'a str, usage: &'a Usage, now: i64) -> Self {
        UsageJson {
            profile,
            plan: usage.plan.as_deref(),
            weekly: usage.weekly.as_ref().map(|q| QuotaJson::new(q, now)),
            five_hour: usage
                .window(FIVE_HOURS)
                .map(|w| QuotaJson::new(&w.quota, now)),
            windows: usage
                .limits
                .iter()
                .map(|w| WindowJson::new(w, now))
                .collect(),
            extra_usage: usage.extra.as_ref().map(ExtraJson::new),
        }
    }

    /// The report for people.
    fn print(&self, now: i64, offset: time::UtcOffset) {
        let plan = self
            .plan
            .map(|p| format!(", plan: {}", for_terminal(&plan_name(p))))
            .unwrap_or_default();
        outln!("Kimi Code usage (profile '{}'{plan})", self.profile);
        outln!();
        print_quota("weekly", self.weekly.as_ref(), now, offset);
        print_quota("5-hour window", self.five_hour.as_ref(), now, offset);
        for w in self
            .windows
            .iter()
            .filter(|w| w.window_seconds != Some(FIVE_HOURS))
        {
            print_quota(&window_label(w), Some(&w.quota), now, offset);
        }
        if let Some(extra) = &self.extra_usage {
            print_extra(extra);
        }
    }
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

fn print_extra(e: &ExtraJson<'_>) {
    let label = output::pad("extra usage", LABEL_WIDTH);
    let indent = " ".repeat(LABEL_WIDTH);
    let currency = for_terminal(e.currency.unwrap_or("")).into_owned();
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

fn print_quota(label: &str, q: Option<&QuotaJson>, now: i64, offset: time::UtcOffset) {
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
    match q.fraction {
        Some(f) => outln!(
            "{label}{} {:>3.0}% used  {amounts}",
            output::bar(f, BAR_WIDTH),
            f * 100.0
        ),
        None => outln!("{label}{amounts}"),
    }
    let indent = " ".repeat(LABEL_WIDTH);
    match q.resets_unix {
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

/// Prints the account's quota: `--json` [`UsageJson`], people its bars.
pub(crate) fn run(ctx: &Ctx) -> CmdResult {
    // Read the local time zone now: no thread has been started yet.
    let offset = output::local_offset();
    let usage: Usage = ctx.session.usage()?;
    let now = kimi_vault::now_unix();
    let report = UsageJson::new(ctx.profile(), &usage, now);
    if ctx.json {
        output::json_line(&report);
    } else {
        report.print(now, offset);
    }
    Ok(exit::OK)
}
