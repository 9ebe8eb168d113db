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
//! - hyper (HTTP/1.1, keep-alive) on tokio; the upstream through the one reqwest client with
//!   its connection pool; bodies stream both ways.

pub(crate) mod auth;
mod body;
pub(crate) mod forward;
pub(crate) mod headers;
mod health;
mod refresher;
mod respond;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::error::{Error, Result};
use crate::http::{Http, Purpose};
use crate::secret::SecretString;
use crate::session::Session;
use crate::store::device_id;
use auth::ClientAuth;
use body::{ProxyBody, RequestLog};

/// The port of the `kimi-proxy` this replaces.
pub const DEFAULT_PORT: u16 = 18462;
/// How long in-flight responses may run on after a shutdown is asked.
pub const DRAIN: Duration = Duration::from_secs(10);
/// How long a refresh already sent may take to store its answer before the proxy exits anyway
/// (the refresh budget is 30 s).
pub const REFRESH_WAIT: Duration = Duration::from_secs(40);

/// How the proxy is set up.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The key clients must present; `None` lets anyone who can connect in.
    pub client_key: Option<SecretString>,
}

/// What every request handler shares.
pub(crate) struct Shared {
    session: Session,
    upstream: Http,
    /// The API base (parsed once: every request only swaps its path and query).
    base: reqwest::Url,
    auth: ClientAuth,
    /// Listening on loopback only: the `Host` of a request must name loopback too.
    loopback: bool,
    started: Instant,
    requests: AtomicU64,
}

impl Shared {
    fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

/// A bound proxy, ready to serve.
pub struct Proxy {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("addr", &self.listener.local_addr().ok())
            .field("base", &self.shared.base.as_str())
            .finish()
    }
}

impl Proxy {
    /// Binds `addr` for `session`'s profile, whose stored credential (its region) names the
    /// API base. Call inside a tokio runtime.
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
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::io(format!("cannot listen on {addr}"), e))?;
        let shared = Shared {
            upstream: Http::new(&device, Purpose::Upstream),
            base: endpoints.api_base.clone(),
            auth: match options.client_key {
                Some(k) => ClientAuth::Key(k),
                None => ClientAuth::Open,
            },
            loopback: addr.ip().is_loopback(),
            session,
            started: Instant::now(),
            requests: AtomicU64::new(0),
        };
        Ok(Proxy {
            listener,
            shared: Arc::new(shared),
        })
    }

    /// The address actually bound (the port, when 0 was asked).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::io("cannot read the proxy's address", e))
    }

    /// Serves until `shutdown` completes; then stops accepting, lets in-flight responses finish
    /// for up to [`DRAIN`], and lets a token refresh already sent store its answer (up to
    /// [`REFRESH_WAIT`]): Kimi rotates the refresh token as it answers, so leaving before it is
    /// stored would log the user out.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> Result<()> {
        let refresher = tokio::spawn(refresher::run(self.shared.session.clone()));
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of file descriptors, a connection reset before accept: the
                            // proxy stays up and tries again shortly.
                            tracing::warn!("cannot accept a connection: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    let _ = stream.set_nodelay(true);
                    let shared = self.shared.clone();
                    let service = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
                    });
                    let connection = http1::Builder::new()
                        .timer(TokioTimer::new())
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service);
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!("a client connection ended with an error: {e}");
                        }
                    });
                }
                () = &mut shutdown => break,
            }
        }
        drop(self.listener);
        refresher.abort();
        tracing::info!("stopped accepting; letting in-flight responses finish");
        if tokio::time::timeout(DRAIN, graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!(
                "in-flight responses did not finish within {} s; stopping anyway",
                DRAIN.as_secs()
            );
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
        Ok(())
    }
}

async fn handle(shared: &Shared, request: Request<Incoming>) -> Response<ProxyBody> {
    shared.requests.fetch_add(1, Ordering::Relaxed);
    let path = request.uri().path().to_owned();
    let mut log = RequestLog::new(request.method(), &path);
    if path == "/health" {
        let response = health::respond(shared).await;
        log.status = response.status().as_u16();
        log.finished = true;
        return response;
    }
    let Some(rest) = path.strip_prefix("/v1/") else {
        log.status = 404;
        log.finished = true;
        return respond::error(
            404,
            "not_found_error",
            "kimi-vault proxy: only /v1/… is forwarded (and /health answered)",
        );
    };
    if let Some(why) = auth::from_another_site(request.headers(), shared.loopback) {
        log.status = 403;
        log.finished = true;
        return respond::error(403, "permission_error", &format!("kimi-vault proxy: {why}"));
    }
    if !shared.auth.allows(request.headers()) {
        log.status = 401;
        log.finished = true;
        return respond::error(
            401,
            "authentication_error",
            "kimi-vault proxy: missing or wrong client key (send the key kimi-vault proxy printed, as x-api-key or Authorization: Bearer)",
        );
    }
    let rest = rest.to_owned();
    forward::forward(shared, request, &rest, log).await
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
    let body = serde_json::from_str(&text).map_err(|_| {
        Error::Protocol(format!(
            "{addr} answered /health with something that is not a kimi-vault proxy's JSON (HTTP {status})"
        ))
    })?;
    Ok(Health { status, body })
}
