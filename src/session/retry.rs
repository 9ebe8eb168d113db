//! Retrying a request on transient failures (network, timeouts, 429, 5xx) with exponential
//! backoff and jitter, honouring `Retry-After`, all within a total time budget. Used by the
//! refresh exchange and by the API calls.

use std::time::Duration;

use tokio::time::Instant;

/// How hard to try.
pub(crate) struct Policy {
    /// Everything the attempts and the waits between them may take.
    pub(crate) budget: Duration,
    /// Attempts at most (the first try and the retries).
    pub(crate) attempts: u32,
    /// Longest a single attempt may take (a hung server still leaves room for a retry).
    pub(crate) attempt_timeout: Duration,
    /// First backoff delay; doubles each retry, with ±50 % jitter.
    pub(crate) backoff: Duration,
}

/// What one attempt came to.
pub(crate) enum Attempt<T> {
    /// An answer that is not retried (good or bad).
    Done(T),
    /// A transient failure, with the server's `Retry-After`.
    Transient(String, Option<Duration>),
}

/// Why the attempts ended without an answer: the last transient failure.
pub(crate) struct GaveUp {
    /// What happened last, redacted.
    pub(crate) detail: String,
    /// The server's last `Retry-After`.
    pub(crate) retry_after: Option<Duration>,
    /// True when the retries ended because that `Retry-After` did not fit in the budget.
    pub(crate) retry_after_too_long: bool,
}

/// Shortest time worth starting another attempt in.
const MIN_ATTEMPT: Duration = Duration::from_secs(1);

/// `d` spread by ±50 %.
pub(crate) fn jitter(d: Duration) -> Duration {
    let mut b = [0u8; 2];
    // Jitter is not a secret: a failed random source only makes it less spread.
    let _ = crate::error::random_fill(&mut b);
    let frac = u16::from_le_bytes(b) as f64 / u16::MAX as f64; // 0..1
    d.mul_f64(0.5 + frac)
}

/// Runs `attempt` (given its timeout) until it is done, the attempts or the budget run out.
/// Each failed attempt is noted at `-v` as "`label` attempt N failed: …".
pub(crate) async fn run<T>(
    policy: &Policy,
    label: &str,
    mut attempt: impl AsyncFnMut(Duration) -> Attempt<T>,
) -> Result<T, GaveUp> {
    let deadline = Instant::now() + policy.budget;
    let mut gave_up = GaveUp {
        detail: "no attempt could be made within the time budget".into(),
        retry_after: None,
        retry_after_too_long: false,
    };
    for n in 0..policy.attempts {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining < MIN_ATTEMPT {
            break;
        }
        let (detail, retry_after) = match attempt(remaining.min(policy.attempt_timeout)).await {
            Attempt::Done(answer) => return Ok(answer),
            Attempt::Transient(detail, retry_after) => (detail, retry_after),
        };
        tracing::info!("{label} attempt {} failed: {detail}", n + 1);
        gave_up.detail = detail;
        gave_up.retry_after = retry_after;
        if n + 1 == policy.attempts {
            break;
        }
        let wait = retry_after.unwrap_or_else(|| jitter(policy.backoff * 2u32.pow(n)));
        if wait + MIN_ATTEMPT > deadline.saturating_duration_since(Instant::now()) {
            gave_up.retry_after_too_long = retry_after.is_some();
            break;
        }
        tokio::time::sleep(wait).await;
    }
    Err(gave_up)
}
