//! Bodies in both directions, streamed as they arrive: the request body goes up while a copy of
//! at most [`REPLAY_LIMIT`] bytes is kept for the one retry after an upstream 401; the response
//! body comes down chunk by chunk (each SSE event as soon as it arrives), counted for the log
//! line, and an upstream that breaks off an event stream becomes a final SSE `error` event the
//! client can read.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Frame, Incoming};
use tokio::time::Sleep;

use crate::http::HttpError;

/// The proxy's response body type.
pub(crate) type ProxyBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// Largest request body kept in memory for a retry after an upstream 401.
pub(crate) const REPLAY_LIMIT: usize = 1024 * 1024;

/// A whole body from bytes.
pub(crate) fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// What was kept of a request body for a retry.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    state: Mutex<ReplayState>,
}

#[derive(Debug, Default)]
struct ReplayState {
    /// A copy (not references to hyper's buffers: a body sent in tiny chunks would pin many
    /// times its size), growing up to the limit.
    copy: bytes::BytesMut,
    /// More than the limit went by: no retry possible.
    overflow: bool,
    /// The client's body ended normally.
    complete: bool,
    /// Reading the client's body failed (it was not what it claimed, or the client left).
    failed: bool,
    /// The client sent nothing of its body for the stall limit.
    stalled: bool,
}

impl Replay {
    fn push(&self, data: &Bytes) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.overflow {
            return;
        }
        if s.copy.len() + data.len() > REPLAY_LIMIT {
            s.overflow = true;
            s.copy = bytes::BytesMut::new();
            return;
        }
        s.copy.extend_from_slice(data);
    }

    fn finish(&self, failed: bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if failed {
            s.failed = true;
        } else {
            s.complete = true;
        }
    }

    /// The whole body, when it ended normally within the limit.
    pub(crate) fn body(&self) -> Option<Bytes> {
        let s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if !s.complete || s.overflow || s.failed {
            return None;
        }
        Some(Bytes::copy_from_slice(&s.copy))
    }

    /// True when more than [`REPLAY_LIMIT`] bytes went by.
    pub(crate) fn overflowed(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .overflow
    }

    /// True when the client's body stalled (and was dropped).
    pub(crate) fn stalled(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).stalled
    }

    /// True when reading the client's body failed.
    pub(crate) fn client_failed(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).failed
    }
}

/// The body of an upstream request.
pub(crate) enum UpBody {
    /// No body (most GETs): sent without one, not as an empty stream.
    Empty,
    /// A whole body: the copy sent again after an upstream 401.
    Full(Option<Bytes>),
    /// The client's body, streamed as it arrives, with a copy kept for a retry.
    Tee(Tee),
}

/// The client's body on its way up (see [`tee`]).
pub(crate) struct Tee {
    body: Incoming,
    replay: Arc<Replay>,
    stall: Duration,
    /// Armed when the client's body has nothing to give, reset when it gives something: made
    /// at the first wait only (a body that is all there costs no timer).
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
    done: bool,
}

impl hyper::body::Body for UpBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        match self.get_mut() {
            UpBody::Empty => Poll::Ready(None),
            UpBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            UpBody::Tee(tee) => tee.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Empty => true,
            UpBody::Full(bytes) => bytes.is_none(),
            UpBody::Tee(tee) => tee.done,
        }
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match self {
            UpBody::Empty => hyper::body::SizeHint::with_exact(0),
            UpBody::Full(bytes) => {
                hyper::body::SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            UpBody::Tee(tee) => hyper::body::Body::size_hint(&tee.body),
        }
    }
}

impl Tee {
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.done {
            return Poll::Ready(None);
        }
        loop {
            match Pin::new(&mut self.body).poll_frame(cx) {
                Poll::Ready(None) => {
                    self.done = true;
                    self.replay.finish(false);
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    self.replay.finish(true);
                    return Poll::Ready(Some(Err(std::io::Error::other(e))));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    self.armed = false;
                    // Trailers are not forwarded.
                    if let Ok(data) = frame.into_data() {
                        self.replay.push(&data);
                        // With a Content-Length, the reader may never ask past the last byte:
                        // the body is complete as soon as it says so.
                        if hyper::body::Body::is_end_stream(&self.body) {
                            self.done = true;
                            self.replay.finish(false);
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                }
                Poll::Pending => {
                    let timer = arm(&mut self.timer, &mut self.armed, self.stall);
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    self.done = true;
                    self.replay
                        .state
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .stalled = true;
                    self.replay.finish(true);
                    return Poll::Ready(Some(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body stalled",
                    ))));
                }
            }
        }
    }
}

/// A silence timer: made at the first wait, set to `limit` from now when it was not running
/// (`armed` false: something came since it was last set), left as it is otherwise.
fn arm<'a>(
    timer: &'a mut Option<Pin<Box<Sleep>>>,
    armed: &mut bool,
    limit: Duration,
) -> &'a mut Pin<Box<Sleep>> {
    let was_armed = std::mem::replace(armed, true);
    let fresh = timer.is_none();
    let t = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    if !fresh && !was_armed {
        t.as_mut().reset(tokio::time::Instant::now() + limit);
    }
    t
}

/// Streams `body` upstream, keeping a copy in the returned [`Replay`]. A request without a
/// body (most GETs) goes up without one, not as an empty stream. A body that sends nothing for
/// `stall` is dropped: the upstream request fails and the client gets a 408.
pub(crate) fn tee(body: Incoming, stall: Duration) -> (UpBody, Arc<Replay>) {
    let replay = Arc::new(Replay::default());
    if hyper::body::Body::is_end_stream(&body) {
        replay.finish(false);
        return (UpBody::Empty, replay);
    }
    let up = Tee {
        body,
        replay: replay.clone(),
        stall,
        timer: None,
        armed: false,
        done: false,
    };
    (UpBody::Tee(up), replay)
}

/// One request's log line, written when its response is over (or the client went away):
/// method, path, status, upstream latency, bytes. Never a header, a body or a query string.
/// Nothing is copied or formatted unless the line is wanted (-v): this runs for every request.
#[derive(Debug)]
pub(crate) struct RequestLog {
    /// The method and path, when the line is wanted.
    what: Option<(hyper::Method, String)>,
    pub(crate) status: u16,
    pub(crate) started: Instant,
    pub(crate) upstream_ms: Option<u128>,
    pub(crate) bytes: u64,
    pub(crate) finished: bool,
    pub(crate) failure: Option<String>,
}

impl RequestLog {
    pub(crate) fn new(method: &hyper::Method, path: &str) -> Self {
        let what = tracing::enabled!(tracing::Level::INFO)
            .then(|| (method.clone(), path.chars().take(200).collect()));
        RequestLog {
            what,
            status: 0,
            started: Instant::now(),
            upstream_ms: None,
            bytes: 0,
            finished: false,
            failure: None,
        }
    }

    /// True when the line will be written (so that a failure's words are worth making).
    pub(crate) fn wanted(&self) -> bool {
        self.what.is_some()
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        let Some((method, path)) = &self.what else {
            return;
        };
        let upstream = self
            .upstream_ms
            .map(|ms| format!(", upstream {ms} ms"))
            .unwrap_or_default();
        let end = match (&self.failure, self.finished) {
            (Some(f), _) => format!(" (broken off: {f})"),
            (None, false) => " (the client went away)".to_owned(),
            (None, true) => String::new(),
        };
        // The path is the client's text: escaped (a U+202E or an ESC must not reach a terminal).
        tracing::info!(
            "{} {} -> {}{upstream}, {} bytes in {} ms{end}",
            method,
            crate::sanitize::for_terminal(path),
            self.status,
            self.bytes,
            self.started.elapsed().as_millis()
        );
    }
}

/// The response body on its way down.
struct Downstream {
    inner: Incoming,
    /// The upstream's Content-Length: the body is complete when that much went by (hyper may
    /// not ask for more once it has written that many bytes).
    expected: Option<u64>,
    event_stream: bool,
    done: bool,
    log: RequestLog,
    /// Event streams only: completes when the proxy stops and in-flight responses had their
    /// few seconds; the stream then ends with a final SSE `error` event, not a silent cut.
    cutoff: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
    /// The longest silence between two chunks from Kimi.
    read_timeout: Duration,
    /// Armed when Kimi has nothing to give, reset when it gives something: made at the first
    /// wait only (a body that is all there costs no timer).
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

/// The SSE event sent when the upstream breaks off an event stream (Anthropic's error shape).
fn sse_error(message: &str) -> Bytes {
    let data = serde_json::json!({
        "type": "error",
        "error": {"type": "api_error", "message": message},
    });
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

impl Downstream {
    /// Kimi's body broke off (or went silent): an event stream ends with an SSE `error` event,
    /// anything else with an error (hyper then cuts the connection: the client sees a body
    /// shorter than announced).
    fn broken(&mut self, why: HttpError) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.done = true;
        let why = why.to_string();
        self.log.failure = Some(why.clone());
        if self.event_stream {
            let message = format!("kimi-vault proxy: Kimi's stream broke off ({why})");
            Poll::Ready(Some(Ok(Frame::data(sse_error(&message)))))
        } else {
            Poll::Ready(Some(Err(std::io::Error::other(why))))
        }
    }
}

impl hyper::body::Body for Downstream {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        if let Some(cutoff) = this.cutoff.as_mut()
            && cutoff.as_mut().poll(cx).is_ready()
        {
            this.done = true;
            this.log.failure = Some("the proxy is stopping".into());
            return Poll::Ready(Some(Ok(Frame::data(sse_error(
                "kimi-vault proxy: the proxy is stopping; this stream was ended before Kimi finished it",
            )))));
        }
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    this.armed = false;
                    // Trailers are not forwarded.
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    this.log.bytes += data.len() as u64;
                    if this.expected.is_some_and(|n| this.log.bytes >= n) {
                        this.log.finished = true;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Poll::Ready(None) => {
                    this.done = true;
                    this.log.finished = true;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => return this.broken(HttpError::from_body(&e)),
                Poll::Pending => {
                    let timer = arm(&mut this.timer, &mut this.armed, this.read_timeout);
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    return this.broken(HttpError::Timeout);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    // No size hint: the response's Content-Length header (Kimi's, passed on) says it when
    // there is one; an event stream may end with an error event of its own.
}

/// The body of an upstream response, streamed down; `log` is written when it is over. A
/// silence of `read_timeout` between two chunks breaks it off.
pub(crate) fn downstream(
    body: Incoming,
    expected: Option<u64>,
    event_stream: bool,
    log: RequestLog,
    cutoff: &tokio::sync::watch::Receiver<bool>,
    read_timeout: Duration,
) -> ProxyBody {
    let cutoff = event_stream.then(|| {
        let mut cutoff = cutoff.clone();
        Box::pin(async move {
            let _ = cutoff.wait_for(|cut| *cut).await;
        }) as Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    });
    UnsyncBoxBody::new(Downstream {
        expected,
        inner: body,
        event_stream,
        done: false,
        log,
        cutoff,
        read_timeout,
        timer: None,
        armed: false,
    })
}
