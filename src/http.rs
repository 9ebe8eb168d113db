//! The HTTP client for what talks to Kimi's OAuth and API: reqwest on tokio, rustls with the
//! ring crypto provider chosen explicitly (no process-wide default is installed), the OS trust
//! store, no redirects, connect and request timeouts, bounded bodies, and the device headers of
//! SPEC §2 on every request. The proxy's upstream client (`proxy::upstream`, hyper-util's)
//! shares the TLS configuration, the device headers and the typed errors.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use url::Url;
use zeroize::Zeroizing;

use crate::redact::redact_text;
use crate::secret::SecretString;

/// Version sent in `User-Agent` and `X-Msh-Version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Largest response body read into memory (OAuth and API answers are a few KiB).
pub(crate) const MAX_BODY: usize = 1024 * 1024;
/// How long establishing a connection may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A response read whole: status, `Retry-After`, and the body (which may hold secrets: never
/// print it without the redactor).
pub(crate) struct Reply {
    /// HTTP status.
    pub status: u16,
    /// `Retry-After`, as a delay.
    pub retry_after: Option<Duration>,
    /// The body, as text, wiped on drop.
    pub body: Zeroizing<String>,
}

/// Why a request got no usable answer. The texts are redacted descriptions (never a secret:
/// a foreign error's root cause goes through the redactor before it is kept here).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HttpError {
    /// The request (or reading its answer) took longer than its timeout.
    #[error("the request timed out")]
    Timeout,
    /// No connection could be made: the root cause, redacted.
    #[error("cannot connect ({0})")]
    Connect(String),
    /// The request failed in another way: the root cause, redacted.
    #[error("the request failed ({0})")]
    Failed(String),
    /// The answer's headers came, its body broke off.
    #[error("reading the response failed: {0}")]
    Reading(Box<HttpError>),
    /// The body is larger than [`MAX_BODY`].
    #[error("the response is larger than {MAX_BODY} bytes")]
    TooLarge,
    /// The access token holds bytes a header cannot carry; nothing was sent.
    #[error("the stored access token cannot be sent in a header")]
    TokenNotAHeader,
}

impl From<&reqwest::Error> for HttpError {
    fn from(e: &reqwest::Error) -> Self {
        if e.is_timeout() {
            return HttpError::Timeout;
        }
        let mut root: &dyn std::error::Error = e;
        while let Some(s) = root.source() {
            root = s;
        }
        let root = redact_text(&root.to_string());
        if e.is_connect() {
            HttpError::Connect(root)
        } else {
            HttpError::Failed(root)
        }
    }
}

/// The deepest cause of `e`, redacted.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut root = e;
    while let Some(s) = root.source() {
        root = s;
    }
    redact_text(&root.to_string())
}

impl HttpError {
    /// A request of hyper-util's client (the proxy's upstream) that got no response.
    pub(crate) fn from_client(e: &hyper_util::client::legacy::Error) -> Self {
        if e.is_connect() {
            HttpError::Connect(root_cause(e))
        } else {
            HttpError::Failed(root_cause(e))
        }
    }

    /// A response body (hyper's) that broke off.
    pub(crate) fn from_body(e: &hyper::Error) -> Self {
        if e.is_timeout() {
            HttpError::Timeout
        } else {
            HttpError::Failed(root_cause(e))
        }
    }

    /// True when the answer did not come in time (a gateway timeout, not a bad gateway).
    pub(crate) fn is_timeout(&self) -> bool {
        match self {
            HttpError::Timeout => true,
            HttpError::Reading(inner) => inner.is_timeout(),
            _ => false,
        }
    }
}

/// The client, with the device headers. Cheap to clone (the connection pool is shared).
#[derive(Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
}

impl std::fmt::Debug for Http {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Http")
    }
}

/// Keeps printable ASCII only (header values must be ASCII), at most 128 characters.
fn ascii_header(value: &str) -> HeaderValue {
    let v: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(128)
        .collect();
    let v = v.trim();
    HeaderValue::from_str(if v.is_empty() { "unknown" } else { v })
        .unwrap_or(HeaderValue::from_static("unknown"))
}

fn os_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| std::env::consts::OS.to_owned())
}

/// The device headers of SPEC §2.
pub(crate) fn device_headers(device_id: &str) -> HeaderMap {
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    let model = format!("{} {}", std::env::consts::OS, std::env::consts::ARCH);
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-msh-platform", ascii_header("kimi-vault")),
        ("x-msh-version", ascii_header(VERSION)),
        ("x-msh-device-name", ascii_header(&host)),
        ("x-msh-device-model", ascii_header(&model)),
        ("x-msh-os-version", ascii_header(&os_version())),
        ("x-msh-device-id", ascii_header(device_id)),
    ] {
        headers.insert(HeaderName::from_static(name), value);
    }
    headers
}

/// The OS trust store's verifier (rustls-platform-verifier), built at the first TLS handshake:
/// loading the system's CA certificates costs milliseconds that a process which never opens
/// an https connection (a loopback endpoint) need not pay. Signatures are checked with the
/// provider's algorithms, as the platform verifier itself does.
///
/// Why this wrapper and not the crate alone (checked against rustls-platform-verifier 0.7.1,
/// `src/verification/others.rs`, the Linux/BSD verifier): `Verifier::new` reads the trust
/// store at once (`rustls_native_certs::load_native_certs` in `new_inner`), and so does
/// `BuilderVerifierExt::with_platform_verifier`, which calls it; the crate has no lazy
/// constructor. The verifier must be in the `rustls::ClientConfig` when the reqwest client is
/// built, and the client is built before anyone knows whether it will speak https, so
/// "build the crate's verifier lazily at the first TLS use" is exactly this `OnceLock`. The
/// `.dangerous()` call below is the same one `with_platform_verifier` makes: a custom
/// verifier is installed through it in rustls 0.23 whoever writes it.
#[derive(Debug)]
struct LazyPlatformVerifier {
    provider: Arc<CryptoProvider>,
    inner: OnceLock<Result<rustls_platform_verifier::Verifier, rustls::Error>>,
}

impl LazyPlatformVerifier {
    fn verifier(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.inner
            .get_or_init(|| {
                tracing::debug!("loading the OS trust store for a TLS handshake");
                let v = rustls_platform_verifier::Verifier::new(self.provider.clone());
                if let Err(e) = &v {
                    tracing::warn!(
                        "no CA certificate could be loaded from the system ({e}); https connections fail until ca-certificates is installed"
                    );
                }
                v
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl ServerCertVerifier for LazyPlatformVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verifier()?.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// rustls with the ring provider (chosen here, not installed process-wide) and the OS trust
/// store; HTTP/1.1. Also the proxy's upstream client's (`proxy::upstream`).
pub(crate) fn tls_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = LazyPlatformVerifier {
        provider: provider.clone(),
        inner: OnceLock::new(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

/// What a client is for. (The proxy's upstream has its own client: `proxy::upstream`.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// OAuth and API calls: short answers read whole.
    Calls,
}

/// How long idle connections are kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(90);

impl Http {
    /// A client that sends the device headers with `device_id`.
    pub(crate) fn new(device_id: &str, purpose: Purpose) -> Self {
        let Purpose::Calls = purpose;
        let builder = builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true)
            .user_agent(format!("kimi-vault/{VERSION}"))
            .default_headers(device_headers(device_id));
        let client = builder
            .build()
            .expect("the HTTP client configuration is valid");
        Http { client }
    }

    /// POSTs a form and reads the answer. `Err` is a network failure (never a secret: the
    /// form's values are remembered secrets, and scrubbed).
    pub(crate) async fn post_form(
        &self,
        url: &Url,
        form: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Reply, HttpError> {
        let size: usize = form.iter().map(|(k, v)| k.len() + v.len() * 3 + 2).sum();
        let mut body = Zeroizing::new(String::with_capacity(size));
        {
            let mut ser = url::form_urlencoded::Serializer::new(&mut *body);
            for (k, v) in form {
                ser.append_pair(k, v);
            }
        }
        let request = self
            .client
            .post(url.as_str())
            .timeout(timeout)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.as_bytes().to_vec());
        read_reply(request.send().await).await
    }

    /// GETs `url` with `Authorization: Bearer <token>` (marked sensitive, built in a buffer
    /// wiped on drop) and reads the answer. `Err` is a network failure.
    pub(crate) async fn get_bearer(
        &self,
        url: &Url,
        token: &SecretString,
        timeout: Duration,
    ) -> Result<Reply, HttpError> {
        let mut bearer = Zeroizing::new(String::with_capacity(7 + token.expose().len()));
        bearer.push_str("Bearer ");
        bearer.push_str(token.expose());
        let mut auth = HeaderValue::from_str(&bearer).map_err(|_| HttpError::TokenNotAHeader)?;
        auth.set_sensitive(true);
        let request = self
            .client
            .get(url.as_str())
            .timeout(timeout)
            .header("accept", "application/json")
            .header(reqwest::header::AUTHORIZATION, auth);
        read_reply(request.send().await).await
    }
}

/// What every client of this crate has: rustls with ring (reqwest carries no crypto provider
/// of its own, so every reqwest client must start here), no redirects, no proxy from the
/// environment.
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config())
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
}

/// A bare client (no device headers) for a local endpoint such as a running proxy's `/health`.
pub(crate) fn local_client(timeout: Duration) -> reqwest::Client {
    builder()
        .timeout(timeout)
        .build()
        .expect("the HTTP client configuration is valid")
}

/// A network failure in words, with its root cause, redacted.
pub(crate) fn describe_error(e: &reqwest::Error) -> String {
    HttpError::from(e).to_string()
}

async fn read_reply(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<Reply, HttpError> {
    let mut response = response.map_err(|e| HttpError::from(&e))?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = Zeroizing::new(Vec::with_capacity(
        response
            .content_length()
            .map_or(4096, |n| n as usize)
            .min(MAX_BODY),
    ));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| HttpError::Reading(Box::new(HttpError::from(&e))))?
    {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(HttpError::TooLarge);
        }
        append_wiped(&mut body, &chunk);
    }
    let text = into_text(body);
    Ok(Reply {
        status,
        retry_after,
        body: text,
    })
}

/// Appends `data`; when the buffer must grow, the old one is wiped (not left behind by a
/// reallocation).
fn append_wiped(buf: &mut Zeroizing<Vec<u8>>, data: &[u8]) {
    if buf.capacity() - buf.len() < data.len() {
        let wanted = (buf.len() + data.len())
            .max(buf.capacity() * 2)
            .min(MAX_BODY);
        let mut bigger = Zeroizing::new(Vec::with_capacity(wanted));
        bigger.extend_from_slice(buf);
        *buf = bigger;
    }
    buf.extend_from_slice(data);
}

/// The body as text, without a copy when it is UTF-8 (the usual case); otherwise with the
/// invalid bytes replaced, into a buffer sized first.
fn into_text(mut body: Zeroizing<Vec<u8>>) -> Zeroizing<String> {
    match String::from_utf8(std::mem::take(&mut *body)) {
        Ok(text) => Zeroizing::new(text),
        Err(e) => {
            let raw = Zeroizing::new(e.into_bytes());
            let mut text = Zeroizing::new(String::with_capacity(raw.len() * 3));
            for chunk in raw.utf8_chunks() {
                text.push_str(chunk.valid());
                if !chunk.invalid().is_empty() {
                    text.push(char::REPLACEMENT_CHARACTER);
                }
            }
            text
        }
    }
}

/// Parses `Retry-After`: delay seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_ascii() {
        let h = device_headers("dev-id-\u{e9}\u{1F600}-1");
        assert_eq!(h["x-msh-device-id"], "dev-id--1");
        assert_eq!(h["x-msh-platform"], "kimi-vault");
        assert_eq!(ascii_header("\u{e9}\u{e9}"), "unknown");
    }

    #[test]
    fn the_trust_store_is_loaded_at_the_first_handshake_only() {
        let started = std::time::Instant::now();
        let _ = Http::new("x", Purpose::Calls);
        // Building the client reads no certificate; a handshake would.
        assert!(started.elapsed() < Duration::from_secs(5));
        let v = LazyPlatformVerifier {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            inner: OnceLock::new(),
        };
        assert!(v.inner.get().is_none());
        assert!(!v.supported_verify_schemes().is_empty());
        assert!(v.inner.get().is_none());
    }

    #[test]
    fn a_refused_connection_is_a_typed_error() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = Url::parse("http://127.0.0.1:1/api/oauth/token").unwrap();
        let http = Http::new("x", Purpose::Calls);
        let err = runtime
            .block_on(http.post_form(&url, &[("a", "b")], Duration::from_secs(5)))
            .err()
            .expect("nothing listens on port 1");
        assert!(matches!(err, HttpError::Connect(_)), "{err}");
        assert!(err.to_string().starts_with("cannot connect ("));
    }

    #[test]
    fn bodies_grow_and_convert_without_losing_bytes() {
        let mut body = Zeroizing::new(Vec::with_capacity(2));
        for chunk in [&b"ab"[..], b"cdef", b"\xff!"] {
            append_wiped(&mut body, chunk);
        }
        assert_eq!(&*into_text(body), "abcdef\u{fffd}!");
        let text = into_text(Zeroizing::new(b"plain".to_vec()));
        assert_eq!(&*text, "plain");
    }

    #[test]
    fn retry_after() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }
}
