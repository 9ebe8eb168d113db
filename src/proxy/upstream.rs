//! The proxy's upstream client: hyper-util's pooled HTTP/1.1 client (the one reqwest is built
//! on) with the same TLS as every other request of this crate (rustls with ring, the OS trust
//! store through rustls-platform-verifier, loaded at the first handshake: `http::tls_config`)
//! and the system resolver (`getaddrinfo` on a blocking thread: hyper-util's `GaiResolver`).
//!
//! Why not reqwest, as for OAuth and the API: measured against each other as the upstream
//! client alone (`examples/bench_upstream_clients.rs`, 64 requests at a time on loopback),
//! reqwest costs more CPU per request than the client it wraps (README, "The proxy"): it
//! re-parses the `Url` into a `Uri`, merges its default headers into each request, and boxes
//! the body and the response future once more. The proxy needs none of what it adds
//! (redirects, cookies, decompression, a URL type), so it talks to hyper directly and builds
//! the request itself: the URI from the base parsed once, the headers in one pass.
//!
//! What reqwest did here and is done here instead: the connect timeout and `TCP_NODELAY` (on
//! the connector), idle connections kept 90 s and up to 256 per host, no redirects (hyper
//! follows none), the device headers and `User-Agent` on every request (added by
//! `forward`), and the read timeout between two chunks of a response (`body::downstream`).

use std::time::Duration;

use hyper::header::{HeaderMap, HeaderValue, USER_AGENT};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use crate::http::{CONNECT_TIMEOUT, VERSION, device_headers, tls_config};
use crate::proxy::body::UpBody;

/// How long idle upstream connections are kept for reuse.
const POOL_IDLE: Duration = Duration::from_secs(90);
/// Most idle upstream connections kept (per host: there is one, the API base's).
const POOL_MAX_IDLE: usize = 256;

/// The pooled client and the headers every upstream request carries.
pub(crate) struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, UpBody>,
    /// The device headers of SPEC §2 and `User-Agent`.
    fixed: HeaderMap,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Upstream")
    }
}

impl Upstream {
    /// A client that sends the device headers with `device_id`. Call inside a tokio runtime
    /// (connections are driven by tasks spawned on it).
    pub(crate) fn new(device_id: &str) -> Self {
        let mut http = HttpConnector::new();
        // The scheme is the TLS layer's business (https_or_http below).
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        http.set_nodelay(true);
        let mut tls = tls_config();
        // hyper-rustls sets the ALPN list itself (http/1.1 only, from enable_http1 below) and
        // refuses a config that has one already.
        tls.alpn_protocols.clear();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            // Plain http only where the endpoint rule allows it (loopback): the API base was
            // checked before it got here.
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        let mut fixed = device_headers(device_id);
        fixed.insert(
            USER_AGENT,
            HeaderValue::from_str(&format!("kimi-vault/{VERSION}"))
                .unwrap_or(HeaderValue::from_static("kimi-vault")),
        );
        Upstream { client, fixed }
    }

    /// The headers every request carries (added after the client's, replacing any of the same
    /// name; `User-Agent` only where the client sent none).
    pub(crate) fn fixed_headers(&self) -> &HeaderMap {
        &self.fixed
    }

    /// Sends `request`; the response's headers, its body streaming.
    pub(crate) fn send(
        &self,
        request: hyper::Request<UpBody>,
    ) -> hyper_util::client::legacy::ResponseFuture {
        self.client.request(request)
    }
}
