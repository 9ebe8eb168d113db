//! Background refresh: the token is renewed before it expires, so that no request waits on a
//! refresh. Single flight across every process using the vault, as always (the session layer).

use std::time::Duration;

use crate::clock::now_unix;
use crate::session::Session;

/// Refresh when fewer than this many seconds are left.
pub(crate) const AHEAD: i64 = 180;
/// Wait after a failed attempt.
const RETRY: Duration = Duration::from_secs(30);
/// Longest sleep (a changed clock or a new login is noticed within this).
const MAX_SLEEP: Duration = Duration::from_secs(600);

/// Runs until the task is dropped. A failure is warned about once, until it changes.
pub(crate) async fn run(session: Session) {
    let mut last_failure = String::new();
    loop {
        let wait = match session.token_async(AHEAD).await {
            Ok(cred) => {
                last_failure.clear();
                match cred.expires_in(now_unix()) - AHEAD {
                    // A token handed out after a failed refresh: try again later, not at once.
                    left if left <= 0 => RETRY,
                    left => Duration::from_secs(left.max(5) as u64).min(MAX_SLEEP),
                }
            }
            Err(e) => {
                let failure = e.to_string();
                if failure != last_failure {
                    tracing::warn!("background refresh failed: {failure}");
                    last_failure = failure;
                }
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
}
