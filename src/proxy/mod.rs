//! The local token-injecting reverse proxy (SPEC §7), for long sessions of Anthropic- and
//! OpenAI-compatible clients.
//!
//! - `/v1/<rest>` goes to `{API base}/<rest>` (query kept) with the client's credential
//!   replaced by a fresh Kimi access token; anything else is a 404 and nothing goes upstream.
//! - Clients present the proxy's own client key; a wrong or missing key is a 401 and nothing
//!   goes upstream.
//! - Tokens come from the session layer: served from memory, renewed in the background before
//!   they expire, single flight across every process using the vault; an upstream 401 forces
//!   one refresh and one retry.
//! - hyper (HTTP/1.1, keep-alive) on tokio; the upstream through hyper-util's pooled client
//!   (`upstream`); bodies stream both ways.

pub(crate) mod auth;
mod body;
pub(crate) mod forward;
pub(crate) mod headers;
mod health;
pub(crate) mod reflect;
mod refresher;
mod respond;
mod upstream;
mod watch;
mod workers;

use std::convert::Infallible;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::error::{Error, Result};
use crate::secret::SecretString;
use crate::session::Session;
use crate::store::device_id;
use auth::ClientAuth;
use body::{ProxyBody, RequestLog};
use reflect::TokenForms;
use respond::Dialect;
use upstream::Upstream;

/// The port of the `kimi-proxy` this replaces.
pub const DEFAULT_PORT: u16 = 18462;
/// How long in-flight responses may run on after a shutdown is asked.
pub const DRAIN: Duration = Duration::from_secs(10);
/// After [`DRAIN`], how long event streams have to write their final error event.
const CUTOFF_GRACE: Duration = Duration::from_secs(2);
/// How long a refresh already sent may take to store its answer before the proxy exits anyway
/// (the refresh budget is 30 s).
pub const REFRESH_WAIT: Duration = Duration::from_secs(40);

/// Default cap on open client connections (SPEC §7).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// How the proxy is set up.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The key clients must present; `None` lets anyone who can connect in.
    pub client_key: Option<SecretString>,
    /// True when `client_key` is the profile's stored key: a key rotated by another process is
    /// then followed (a one-time key of `exec --proxy` is not).
    pub key_in_vault: bool,
    /// At most this many client connections are open at once; past it a new connection is
    /// accepted and closed at once (upstream connections do not count).
    pub max_connections: usize,
    /// The timeouts.
    pub limits: Limits,
    /// What to tell a client when the profile needs a login, after the reason (the command
    /// line supplies it: the library names no command). `None` gives the reason alone.
    pub login_hint: Option<String>,
    /// Threads serving client connections, each a single-threaded runtime with its own
    /// upstream connections (default: one per core). 0 serves them on the runtime `serve` is
    /// called on.
    pub workers: usize,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        ProxyOptions {
            client_key: None,
            key_in_vault: false,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            limits: Limits::default(),
            login_hint: None,
            workers: workers::default_count(),
        }
    }
}

/// The proxy's timeouts (SPEC §7).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection idle, or still sending a request's headers, this long is closed.
    pub idle: Duration,
    /// A request body that sends nothing for this long is dropped.
    pub body_stall: Duration,
    /// Kimi must send a response's headers within this long after the request was sent.
    pub upstream_headers: Duration,
    /// How often the stored credential is looked at (a logout, a new login, a rotated client
    /// key made by another process).
    pub watch: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        let limits = Limits {
            idle: Duration::from_secs(30),
            body_stall: Duration::from_secs(60),
            upstream_headers: Duration::from_secs(300),
            watch: Duration::from_secs(2),
        };
        test_limits(limits)
    }
}

/// Test builds only (the `testing` feature): `KIMI_VAULT_TEST_PROXY_LIMITS_MS=idle,body,upstream`
/// shortens the timeouts so that tests of them take seconds.
#[cfg(feature = "testing")]
#[allow(clippy::disallowed_methods)] // a test-only hook, compiled only with `testing`
fn test_limits(mut limits: Limits) -> Limits {
    if let Ok(v) = std::env::var("KIMI_VAULT_TEST_PROXY_LIMITS_MS") {
        let ms: Vec<u64> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
        if let [idle, body, upstream] = ms[..] {
            limits.idle = Duration::from_millis(idle);
            limits.body_stall = Duration::from_millis(body);
            limits.upstream_headers = Duration::from_millis(upstream);
        }
    }
    limits
}

#[cfg(not(feature = "testing"))]
fn test_limits(limits: Limits) -> Limits {
    limits
}

/// The API base, taken apart once per region: every request only appends its path and query.
#[derive(Debug)]
pub(crate) struct Base {
    /// The region it belongs to.
    pub(crate) region: String,
    /// The whole base, for messages.
    pub(crate) url: reqwest::Url,
    pub(crate) scheme: hyper::http::uri::Scheme,
    pub(crate) authority: hyper::http::uri::Authority,
    /// The base's path without a trailing `/`.
    pub(crate) path: String,
}

impl Base {
    fn new(region: &str, url: &reqwest::Url) -> Result<Base> {
        let uri: hyper::Uri = url
            .as_str()
            .parse()
            .map_err(|_| Error::Config(format!("the API base {url} is not a usable URI")))?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            return Err(Error::Config(format!(
                "the API base {url} names no scheme and host"
            )));
        };
        Ok(Base {
            region: region.to_owned(),
            url: url.clone(),
            scheme: scheme.clone(),
            authority: authority.clone(),
            path: url.path().trim_end_matches('/').to_owned(),
        })
    }
}

/// What every request handler shares.
pub(crate) struct Shared {
    session: Session,
    /// The runtime `serve` runs on: token refreshes run there, never on a worker.
    main: tokio::runtime::Handle,
    /// The device id, for the upstream clients.
    device: String,
    /// The API base; replaced when another process logs the profile in to another region.
    base: RwLock<Arc<Base>>,
    /// Appended to the 403 a client gets when the profile needs a login ([`ProxyOptions`]).
    login_hint: Option<String>,
    auth: RwLock<ClientAuth>,
    /// The client key is the profile's stored one: follow a rotation made by another process.
    key_in_vault: bool,
    /// Listening on loopback only: the `Host` of a request must name loopback too.
    loopback: bool,
    limits: Limits,
    started: Instant,
    requests: AtomicU64,
    /// The encoded forms of the token last injected (computed once per token).
    forms: std::sync::Mutex<Option<Arc<TokenForms>>>,
    /// Set when in-flight responses had their time after a shutdown: event streams then end
    /// with a final error event.
    cutoff: tokio::sync::watch::Sender<bool>,
    cutoff_rx: tokio::sync::watch::Receiver<bool>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Runs `f(session)` on the runtime `serve` runs on (a refresh must not depend on a worker
    /// thread, and a refresh under way at shutdown must be able to store its answer).
    pub(crate) async fn on_main<T, F>(&self, f: impl FnOnce(Session) -> F) -> Result<T>
    where
        T: Send + 'static,
        F: Future<Output = Result<T>> + Send + 'static,
    {
        self.main
            .spawn(f(self.session.clone()))
            .await
            .map_err(|e| Error::io("the token task failed", std::io::Error::other(e)))?
    }

    /// The API base of the region the profile is logged in to.
    pub(crate) fn base(&self) -> Arc<Base> {
        read(&self.base).clone()
    }

    /// The forms of `token` a response header must not carry: made when the token changes,
    /// shared by every request meanwhile.
    pub(crate) fn forms_for(&self, token: &SecretString) -> Arc<TokenForms> {
        let mut cached = self.forms.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(forms) = cached.as_ref()
            && forms.is_for(token)
        {
            return forms.clone();
        }
        let forms = Arc::new(TokenForms::new(token));
        *cached = Some(forms.clone());
        forms
    }
}

/// A bound proxy, ready to serve.
pub struct Proxy {
    /// 127.0.0.1 and [::1] on the same port (or the one address asked for).
    listeners: Vec<TcpListener>,
    shared: Arc<Shared>,
    max_connections: usize,
    workers: usize,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field(
                "addrs",
                &self
                    .listeners
                    .iter()
                    .map(|l| l.local_addr().ok())
                    .collect::<Vec<_>>(),
            )
            .field("base", &self.shared.base().url.as_str())
            .finish()
    }
}

/// Binds `addr`; for 127.0.0.1 or ::1, the other loopback address too, on the same port (so no
/// other process can take `localhost`'s other address). A machine without IPv6 (or IPv4)
/// loopback skips it; an address taken by another process refuses the start.
async fn bind_loopback_pair(addr: SocketAddr) -> Result<Vec<TcpListener>> {
    let bind = |a: SocketAddr| async move {
        TcpListener::bind(a)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {a}"), e))
    };
    let twin = |ip: IpAddr| -> Option<IpAddr> {
        match ip {
            IpAddr::V4(v4) if v4 == Ipv4Addr::LOCALHOST => Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            IpAddr::V6(v6) if v6 == Ipv6Addr::LOCALHOST => Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            _ => None,
        }
    };
    let Some(other) = twin(addr.ip()) else {
        return Ok(vec![bind(addr).await?]);
    };
    // With port 0 the first address picks the port; the other may have it taken already by
    // someone else: try a few ports.
    let attempts = if addr.port() == 0 { 5 } else { 1 };
    let mut last = None;
    for _ in 0..attempts {
        let first = bind(addr).await?;
        let port = first
            .local_addr()
            .map_err(|e| Error::io("cannot read the proxy's address", e))?
            .port();
        let second_addr = SocketAddr::new(other, port);
        match TcpListener::bind(second_addr).await {
            Ok(second) => return Ok(vec![first, second]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::Unsupported
                ) || e.raw_os_error() == Some(libc::EAFNOSUPPORT) =>
            {
                tracing::info!(
                    "{other} is not available on this machine: listening on {addr} only"
                );
                return Ok(vec![first]);
            }
            Err(e) => {
                last = Some(Error::io(
                    format!(
                        "cannot listen on {second_addr} beside {}: another process holds it (it would receive what clients send to localhost)",
                        SocketAddr::new(addr.ip(), port)
                    ),
                    e,
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| Error::Config("cannot listen".into())))
}

impl Proxy {
    /// Binds `addr` for `session`'s profile, whose stored credential (its region) names the
    /// API base, and reads the profile's token once (so that the proxy is ready when this
    /// returns: a `/health` right after never sees a start-up state). Call inside a tokio
    /// runtime.
    pub async fn bind(session: Session, addr: SocketAddr, options: ProxyOptions) -> Result<Proxy> {
        let cred = session
            .stored()?
            .ok_or_else(|| session.not_logged_in())?
            .cred;
        let endpoints = session.endpoints_for(&cred)?;
        let device = device_id::load_or_create(session.vault().paths(), None)?;
        if let Some(key) = &options.client_key
            && key.expose().len() < 16
        {
            return Err(Error::Config(
                "a proxy client key must be at least 16 characters".into(),
            ));
        }
        if options.max_connections == 0 {
            return Err(Error::Config(
                "the proxy needs room for at least one connection".into(),
            ));
        }
        let listeners = bind_loopback_pair(addr).await?;
        // The first read (a refresh when the stored token has run out): its outcome is what
        // /health and the first request see, never a read still under way.
        if let Err(e) = session.token_async(forward::MIN_VALID).await {
            tracing::warn!("no token yet: {e}");
        }
        let (cutoff, cutoff_rx) = tokio::sync::watch::channel(false);
        let shared = Shared {
            main: tokio::runtime::Handle::current(),
            device,
            base: RwLock::new(Arc::new(Base::new(&cred.region, &endpoints.api_base)?)),
            login_hint: options.login_hint,
            auth: RwLock::new(match options.client_key {
                Some(k) => ClientAuth::Key(k),
                None => ClientAuth::Open,
            }),
            key_in_vault: options.key_in_vault,
            loopback: addr.ip().is_loopback(),
            limits: options.limits,
            session,
            started: Instant::now(),
            requests: AtomicU64::new(0),
            forms: std::sync::Mutex::new(None),
            cutoff,
            cutoff_rx,
        };
        Ok(Proxy {
            listeners,
            shared: Arc::new(shared),
            max_connections: options.max_connections,
            workers: options.workers,
        })
    }

    /// The address actually bound (the port, when 0 was asked); the first when there are two.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listeners
            .first()
            .ok_or_else(|| Error::Config("the proxy listens nowhere".into()))?
            .local_addr()
            .map_err(|e| Error::io("cannot read the proxy's address", e))
    }

    /// Every address bound (127.0.0.1 and [::1] when both were taken).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight responses finish
    /// for up to [`DRAIN`], and lets a token refresh already sent store its answer (up to
    /// [`REFRESH_WAIT`]): Kimi rotates the refresh token as it answers, so leaving before it is
    /// stored would log the user out.
    ///
    /// At most `max_connections` client connections are served at once (a semaphore permit
    /// per connection); past it a new connection is accepted and closed at once, so that the
    /// backlog does not fill and the connections already open keep being answered. A
    /// connection idle, or sending its headers, for [`Limits::idle`] is closed (hyper's header
    /// read timeout, which also runs between keep-alive requests).
    ///
    /// Connections are served by [`ProxyOptions::workers`] threads (taken in turn), started
    /// here and stopped when this returns.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let workers = workers::start(self.workers, &self.shared.device).await?;
        // Without workers: the connections on this runtime, with one upstream client.
        let here = Arc::new(Upstream::new(&self.shared.device));
        let mut turn = 0usize;
        let refresher = tokio::spawn(refresher::run(self.shared.session.clone()));
        let watcher = tokio::spawn(watch::run(self.shared.clone()));
        let graceful = GracefulShutdown::new();
        let permits = Arc::new(Semaphore::new(self.max_connections));
        let mut shutdown = std::pin::pin!(shutdown);
        let mut refused_since_warning = 0u64;
        let mut last_warning: Option<Instant> = None;
        // One connection builder for all (its settings are copied into each connection).
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .keep_alive(true)
            .header_read_timeout(self.shared.limits.idle);
        let second = async |l: Option<&TcpListener>| match l {
            Some(l) => l.accept().await,
            None => std::future::pending().await,
        };
        loop {
            let accepted = tokio::select! {
                a = self.listeners[0].accept() => a,
                a = second(self.listeners.get(1)) => a,
                () = &mut shutdown => break,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, a connection reset before accept: the
                    // proxy stays up and tries again shortly.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                // Full: closed at once, so the descriptor is back now.
                drop(stream);
                refused_since_warning += 1;
                if last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                    tracing::warn!(
                        "{} client connections are open (--max-connections): refused {refused_since_warning} new one(s)",
                        self.max_connections
                    );
                    refused_since_warning = 0;
                    last_warning = Some(Instant::now());
                }
                continue;
            };
            let _ = stream.set_nodelay(true);
            let shared = self.shared.clone();
            let watcher = graceful.watcher();
            let builder = builder.clone();
            let serve_it = move |stream: tokio::net::TcpStream, upstream: Arc<Upstream>| async move {
                let service = service_fn(move |req| {
                    let (shared, upstream) = (shared.clone(), upstream.clone());
                    async move { Ok::<_, Infallible>(handle(&shared, &upstream, req).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                if let Err(e) = watcher.watch(connection).await {
                    tracing::debug!("a client connection ended with an error: {e}");
                }
                drop(permit);
            };
            if workers.is_empty() {
                tokio::spawn(serve_it(stream, here.clone()));
                continue;
            }
            // The next worker takes the connection: off this runtime's reactor, onto its own.
            let worker = &workers[turn % workers.len()];
            turn = turn.wrapping_add(1);
            let Ok(std_stream) = stream.into_std() else {
                continue;
            };
            let upstream = worker.upstream.clone();
            worker.handle.spawn(async move {
                match tokio::net::TcpStream::from_std(std_stream) {
                    Ok(stream) => serve_it(stream, upstream).await,
                    Err(e) => tracing::warn!("cannot serve a connection: {e}"),
                }
            });
        }
        drop(self.listeners);
        refresher.abort();
        watcher.abort();
        tracing::info!("stopped accepting; letting in-flight responses finish");
        let mut drained = std::pin::pin!(graceful.shutdown());
        if tokio::time::timeout(DRAIN, &mut drained).await.is_err() {
            // Event streams still running end with a final SSE error event (the client learns
            // the stream was cut); a second to write it, then the rest is cut.
            let _ = self.shared.cutoff.send(true);
            if tokio::time::timeout(CUTOFF_GRACE, &mut drained)
                .await
                .is_err()
            {
                tracing::warn!(
                    "in-flight responses did not finish within {} s; stopping anyway",
                    DRAIN.as_secs()
                );
            } else {
                tracing::warn!(
                    "event streams still running after {} s were ended with an error event",
                    DRAIN.as_secs()
                );
            }
        }
        self.shared.session.stop_refreshing();
        let waited = tokio::task::spawn_blocking(|| {
            crate::session::wait_for_critical_sections(REFRESH_WAIT)
        })
        .await
        .unwrap_or(false);
        if !waited {
            tracing::warn!(
                "a token refresh did not store its answer within {} s; stopping anyway",
                REFRESH_WAIT.as_secs()
            );
        }
        // Last: a refresh that was sent has stored its answer; the workers' connections go.
        drop(workers);
        Ok(())
    }
}

async fn handle(
    shared: &Shared,
    upstream: &Upstream,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let mut log = RequestLog::new(&parts.method, path);
    if path == "/health" {
        // No client key, so only for local programs: a DNS-rebinding page names its own Host.
        if !auth::names_loopback_host(&parts.headers) {
            log.status = 403;
            log.finished = true;
            return respond::error(
                403,
                "permission_error",
                "kimi-vault proxy: /health answers only a loopback Host (127.0.0.1, localhost, [::1])",
            );
        }
        let response = health::respond(shared).await;
        log.status = response.status().as_u16();
        log.finished = true;
        return response;
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        log.status = 404;
        log.finished = true;
        return respond::error_in(
            Dialect::of_path(path),
            404,
            "not_found_error",
            "kimi-vault proxy: only /v1/… is forwarded (and /health answered)",
        );
    };
    // Every answer from here on is in the client's dialect (OpenAI's shape on its paths).
    let dialect = Dialect::of(rest);
    if let Some(why) = auth::from_another_site(&parts.headers, shared.loopback) {
        log.status = 403;
        log.finished = true;
        return respond::error_in(
            dialect,
            403,
            "permission_error",
            &format!("kimi-vault proxy: {why}"),
        );
    }
    if !read(&shared.auth).allows(&parts.headers) {
        log.status = 401;
        log.finished = true;
        return respond::error_in(
            dialect,
            401,
            "authentication_error",
            "kimi-vault proxy: missing or wrong client key (send the key kimi-vault proxy printed, as x-api-key or Authorization: Bearer)",
        );
    }
    // SPEC §7: the key first (401), then the method; nothing else goes upstream (TRACE would
    // reflect the injected token, others have no use here).
    if !matches!(
        parts.method,
        hyper::Method::GET | hyper::Method::POST | hyper::Method::HEAD
    ) {
        log.status = 405;
        log.finished = true;
        let mut response = respond::error_in(
            dialect,
            405,
            "invalid_request_error",
            "kimi-vault proxy: only GET, POST and HEAD are forwarded",
        );
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, POST, HEAD"),
        );
        return response;
    }
    forward::forward(shared, upstream, &parts, body, rest, log).await
}

/// What a running proxy's `/health` said.
#[derive(Debug, Clone)]
pub struct Health {
    /// The HTTP status (200 healthy, 503 no token).
    pub status: u16,
    /// The JSON body.
    pub body: serde_json::Value,
}

/// Asks the proxy at `addr` for its `/health` (plain HTTP on a local address).
pub async fn check_health(addr: SocketAddr) -> Result<Health> {
    let client = crate::http::local_client(Duration::from_secs(10));
    let url = format!("http://{addr}/health");
    let response = client.get(&url).send().await.map_err(|e| {
        Error::Service(format!(
            "no kimi-vault proxy answers at {addr}: {}",
            crate::http::describe_error(&e)
        ))
    })?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|e| Error::Service(crate::http::describe_error(&e)))?;
    let body = serde_json::from_str(&text).map_err(|_| Error::NotAProxy {
        addr: addr.to_string(),
        status,
    })?;
    Ok(Health { status, body })
}
