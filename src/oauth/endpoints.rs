//! Kimi's endpoints, their overrides, and the endpoint rule (SPEC §3): https on kimi.com /
//! kimi.ai (or a subdomain), or loopback over http or https. Checked before anything is sent.

use std::net::IpAddr;

use url::{Host, Url};

use crate::error::{Error, Result};

/// The default (cn) OAuth host.
pub(crate) const OAUTH_HOST_CN: &str = "https://auth.kimi.com";
/// The global OAuth host.
pub(crate) const OAUTH_HOST_GLOBAL: &str = "https://auth.kimi.ai";
/// The default (cn) API base.
pub(crate) const API_BASE_CN: &str = "https://api.kimi.com/coding/v1";
/// The global API base.
pub(crate) const API_BASE_GLOBAL: &str = "https://api.kimi.ai/coding/v1";
/// Kimi Code's public OAuth client id.
pub(crate) const CLIENT_ID: &str = "17e5f671-d194-4dfb-9706-5516cb48c098";

/// Kimi's two regions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Region {
    /// auth.kimi.com / api.kimi.com.
    #[default]
    Cn,
    /// auth.kimi.ai / api.kimi.ai.
    Global,
}

impl Region {
    /// `cn` or `global`.
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Cn => "cn",
            Region::Global => "global",
        }
    }

    /// Parses a stored region; anything unknown (or empty, from before regions were stored) is
    /// `cn`.
    pub fn from_stored(s: &str) -> Self {
        if s == "global" {
            Region::Global
        } else {
            Region::Cn
        }
    }
}

/// Overrides of the default endpoints (on the command line: `KIMI_CODE_OAUTH_HOST` or
/// `KIMI_OAUTH_HOST`, `KIMI_CODE_BASE_URL`, `KIMI_CLIENT_ID`). Empty strings count as unset.
#[derive(Debug, Clone, Default)]
pub struct EndpointOverrides {
    /// The OAuth host.
    pub oauth_host: Option<String>,
    /// The API base.
    pub api_base: Option<String>,
    /// The OAuth client id.
    pub client_id: Option<String>,
}

/// The resolved endpoints for one region and its overrides.
#[derive(Debug, Clone)]
pub struct Endpoints {
    /// The OAuth host (scheme and authority, maybe a path prefix).
    pub oauth_host: Url,
    /// The API base, e.g. `https://api.kimi.com/coding/v1`.
    pub api_base: Url,
    /// The OAuth client id.
    pub client_id: String,
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl Endpoints {
    /// Resolves the endpoints of `region` with `overrides` applied; both URLs are checked
    /// against the endpoint rule before anything is sent.
    pub(crate) fn resolve(region: Region, overrides: &EndpointOverrides) -> Result<Self> {
        let (host, base) = match region {
            Region::Cn => (OAUTH_HOST_CN, API_BASE_CN),
            Region::Global => (OAUTH_HOST_GLOBAL, API_BASE_GLOBAL),
        };
        let host = nonempty(&overrides.oauth_host).unwrap_or(host);
        let base = nonempty(&overrides.api_base).unwrap_or(base);
        let client_id = nonempty(&overrides.client_id).unwrap_or(CLIENT_ID);
        if !client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(Error::Config(
                "KIMI_CLIENT_ID may hold only letters, digits, '-', '_' and '.'".into(),
            ));
        }
        Ok(Endpoints {
            oauth_host: checked_url(host)?,
            api_base: checked_url(base)?,
            client_id: client_id.to_owned(),
        })
    }

    fn oauth_url(&self, path: &str) -> Url {
        let mut s = self.oauth_host.as_str().trim_end_matches('/').to_owned();
        s.push_str(path);
        Url::parse(&s).expect("a checked host joined with a constant path parses")
    }

    /// `POST {host}/api/oauth/device_authorization`.
    pub(crate) fn device_authorization_url(&self) -> Url {
        self.oauth_url("/api/oauth/device_authorization")
    }

    /// `POST {host}/api/oauth/token`.
    pub(crate) fn token_url(&self) -> Url {
        self.oauth_url("/api/oauth/token")
    }

    /// `{API base}/PATH` (`usages`, `models`).
    pub(crate) fn api_url(&self, path: &str) -> Url {
        let mut s = self.api_base.as_str().trim_end_matches('/').to_owned();
        s.push('/');
        s.push_str(path.trim_start_matches('/'));
        Url::parse(&s).expect("a checked base joined with a path parses")
    }

    /// The API base without a trailing `/v1`: Kimi's Anthropic-compatible endpoint.
    pub fn anthropic_base_url(&self) -> String {
        let base = self.api_base.as_str().trim_end_matches('/');
        base.strip_suffix("/v1").unwrap_or(base).to_owned()
    }
}

/// Parses `raw` and applies the endpoint rule.
pub fn checked_url(raw: &str) -> Result<Url> {
    let url = Url::parse(raw.trim()).map_err(|e| Error::EndpointRefused {
        url: raw.chars().filter(|c| !c.is_control()).take(200).collect(),
        why: format!("it is not a valid URL ({e})"),
    })?;
    check_endpoint(&url)?;
    Ok(url)
}

/// The endpoint rule.
pub(crate) fn check_endpoint(url: &Url) -> Result<()> {
    let shown = {
        let mut u = url.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.set_query(None);
        u.set_fragment(None);
        u.to_string()
    };
    let refuse = |why: &str| {
        Err(Error::EndpointRefused {
            url: shown.clone(),
            why: why.to_owned(),
        })
    };
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("it carries a user name or password");
    }
    let scheme = url.scheme();
    if scheme != "https" && scheme != "http" {
        return refuse("only http and https are allowed");
    }
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return refuse("it has no host"),
    };
    if loopback {
        return Ok(());
    }
    let kimi = match url.host() {
        Some(Host::Domain(d)) => {
            let d = d.to_ascii_lowercase();
            let d = d.trim_end_matches('.');
            ["kimi.com", "kimi.ai"]
                .iter()
                .any(|k| d == *k || d.ends_with(&format!(".{k}")))
        }
        _ => false,
    };
    if !kimi {
        return refuse("the host is neither Kimi's nor loopback");
    }
    if scheme != "https" {
        return refuse("Kimi's hosts must be reached over https");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule() {
        for ok in [
            "https://auth.kimi.com",
            "https://kimi.ai/x",
            "https://a.b.kimi.com",
            "http://127.0.0.1:8080",
            "http://127.3.4.5",
            "https://localhost",
            "http://[::1]:9",
        ] {
            assert!(checked_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://auth.kimi.com",
            "https://evilkimi.com",
            "https://kimi.com.evil.org",
            "https://10.0.0.1",
            "ftp://127.0.0.1",
            "https://user:pw@auth.kimi.com",
            "not a url",
            "https://0.0.0.0",
        ] {
            assert!(checked_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn anthropic_base() {
        let e = Endpoints {
            oauth_host: checked_url(OAUTH_HOST_CN).unwrap(),
            api_base: checked_url(API_BASE_CN).unwrap(),
            client_id: CLIENT_ID.into(),
        };
        assert_eq!(e.anthropic_base_url(), "https://api.kimi.com/coding");
        assert_eq!(
            e.token_url().as_str(),
            "https://auth.kimi.com/api/oauth/token"
        );
    }
}
