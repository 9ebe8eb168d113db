//! The HTTP client for Kimi's servers: blocking (no async runtime), built only when a request is
//! actually made, with the device headers of SPEC §2, no redirects, and bounded bodies.

use std::time::Duration;

use url::Url;

use crate::redact::redact_text;

/// Version sent in `User-Agent` and `X-Msh-Version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Largest response body read.
const MAX_BODY: u64 = 1024 * 1024;

/// A response: status, `Retry-After`, and the body (which may hold secrets: never print it
/// without [`crate::redact::redact_body`]).
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, as a delay.
    pub retry_after: Option<Duration>,
    /// The body, as text, wiped on drop.
    pub body: zeroize::Zeroizing<String>,
}

/// The client.
pub struct Http {
    agent: ureq::Agent,
    headers: Vec<(&'static str, String)>,
}

fn ascii_header(value: &str) -> String {
    let v: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(128)
        .collect();
    if v.trim().is_empty() {
        "unknown".into()
    } else {
        v.trim().to_owned()
    }
}

fn os_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| std::env::consts::OS.to_owned())
}

impl Http {
    /// A client that sends the device headers with `device_id`.
    pub fn new(device_id: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(30)))
            .timeout_connect(Some(Duration::from_secs(10)))
            .user_agent(format!("kimi-vault/{VERSION}"))
            .build()
            .into();
        let host = gethostname::gethostname().to_string_lossy().into_owned();
        let headers = vec![
            ("X-Msh-Platform", "kimi-vault".to_owned()),
            ("X-Msh-Version", VERSION.to_owned()),
            ("X-Msh-Device-Name", ascii_header(&host)),
            (
                "X-Msh-Device-Model",
                ascii_header(&format!(
                    "{} {}",
                    std::env::consts::OS,
                    std::env::consts::ARCH
                )),
            ),
            ("X-Msh-Os-Version", ascii_header(&os_version())),
            ("X-Msh-Device-Id", ascii_header(device_id)),
        ];
        Http { agent, headers }
    }

    /// POSTs a form. `Err` holds a redacted description of a network failure.
    pub fn post_form(&self, url: &Url, form: &[(&str, &str)]) -> Result<Reply, String> {
        let mut req = self.agent.post(url.as_str());
        for (k, v) in &self.headers {
            req = req.header(*k, v.as_str());
        }
        let resp = req
            .header("Accept", "application/json")
            .send_form(form.iter().copied());
        read_reply(resp)
    }
}

fn read_reply(
    resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Reply, String> {
    let mut resp = resp.map_err(|e| redact_text(&e.to_string()))?;
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_BODY)
        .read_to_string()
        .map_err(|e| redact_text(&format!("reading the response failed: {e}")))?;
    Ok(Reply {
        status,
        retry_after,
        body: zeroize::Zeroizing::new(body),
    })
}

/// Parses `Retry-After`: delay seconds or an HTTP date.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}
