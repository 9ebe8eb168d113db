//! Bodies in both directions, streamed as they arrive: the request body goes up while a copy of
//! at most [`REPLAY_LIMIT`] bytes is kept for the one retry after an upstream 401; the response
//! body comes down chunk by chunk (each SSE event as soon as it arrives), counted for the log
//! line, and an upstream that breaks off an event stream becomes a final SSE `error` event the
//! client can read.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use futures_util::Stream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};

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

/// Streams `body` upstream, keeping a copy in the returned [`Replay`]. A request without a
/// body (most GETs) goes up without one, not as an empty stream. A body that sends nothing for
/// `stall` is dropped: the upstream request fails and the client gets a 408.
pub(crate) fn tee(body: Incoming, stall: std::time::Duration) -> (reqwest::Body, Arc<Replay>) {
    let replay = Arc::new(Replay::default());
    if hyper::body::Body::is_end_stream(&body) {
        replay.finish(false);
        return (reqwest::Body::from(Bytes::new()), replay);
    }
    let copy = replay.clone();
    let stream = futures_util::stream::unfold(
        (body, copy, false),
        move |(mut body, copy, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let Ok(frame) = tokio::time::timeout(stall, body.frame()).await else {
                    copy.state.lock().unwrap_or_else(|p| p.into_inner()).stalled = true;
                    copy.finish(true);
                    let e = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "the request body stalled",
                    );
                    return Some((Err(e), (body, copy, true)));
                };
                match frame {
                    None => {
                        copy.finish(false);
                        return None;
                    }
                    Some(Err(e)) => {
                        copy.finish(true);
                        return Some((Err(std::io::Error::other(e)), (body, copy, true)));
                    }
                    Some(Ok(frame)) => {
                        // Trailers are not forwarded.
                        if let Ok(data) = frame.into_data() {
                            copy.push(&data);
                            // With a Content-Length, the reader may never ask past the last
                            // byte: the body is complete as soon as it says so.
                            let ended = hyper::body::Body::is_end_stream(&body);
                            if ended {
                                copy.finish(false);
                            }
                            return Some((Ok(data), (body, copy, ended)));
                        }
                    }
                }
            }
        },
    );
    (reqwest::Body::wrap_stream(stream), replay)
}

/// One request's log line, written when its response is over (or the client went away):
/// method, path, status, upstream latency, bytes. Never a header, a body or a query string.
#[derive(Debug)]
pub(crate) struct RequestLog {
    pub(crate) method: hyper::Method,
    pub(crate) path: String,
    pub(crate) status: u16,
    pub(crate) started: Instant,
    pub(crate) upstream_ms: Option<u128>,
    pub(crate) bytes: u64,
    pub(crate) finished: bool,
    pub(crate) failure: Option<String>,
}

impl RequestLog {
    pub(crate) fn new(method: &hyper::Method, path: &str) -> Self {
        RequestLog {
            method: method.clone(),
            path: path.chars().take(200).collect(),
            status: 0,
            started: Instant::now(),
            upstream_ms: None,
            bytes: 0,
            finished: false,
            failure: None,
        }
    }
}

impl Drop for RequestLog {
    fn drop(&mut self) {
        // Nothing is formatted unless the line is wanted (-v): this runs for every request.
        if !tracing::enabled!(tracing::Level::INFO) {
            return;
        }
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
            self.method,
            crate::sanitize::for_terminal(&self.path),
            self.status,
            self.bytes,
            self.started.elapsed().as_millis()
        );
    }
}

type Upstream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The response body on its way down.
struct Downstream {
    inner: Upstream,
    /// The upstream's Content-Length: the body is complete when that much went by (hyper may
    /// not ask for more once it has written that many bytes).
    expected: Option<u64>,
    event_stream: bool,
    done: bool,
    log: RequestLog,
    /// Event streams only: completes when the proxy stops and in-flight responses had their
    /// few seconds; the stream then ends with a final SSE `error` event, not a silent cut.
    cutoff: Option<Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
}

/// The SSE event sent when the upstream breaks off an event stream (Anthropic's error shape).
fn sse_error(message: &str) -> Bytes {
    let data = serde_json::json!({
        "type": "error",
        "error": {"type": "api_error", "message": message},
    });
    Bytes::from(format!("event: error\ndata: {data}\n\n"))
}

impl Stream for Downstream {
    type Item = Result<Frame<Bytes>, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if let Some(cutoff) = self.cutoff.as_mut()
            && cutoff.as_mut().poll(cx).is_ready()
        {
            self.done = true;
            self.log.failure = Some("the proxy is stopping".into());
            return Poll::Ready(Some(Ok(Frame::data(sse_error(
                "kimi-vault proxy: the proxy is stopping; this stream was ended before Kimi finished it",
            )))));
        }
        match self.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(data))) => {
                self.log.bytes += data.len() as u64;
                if self.expected.is_some_and(|n| self.log.bytes >= n) {
                    self.log.finished = true;
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Poll::Ready(None) => {
                self.done = true;
                self.log.finished = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                let why = crate::http::describe_error(&e);
                self.log.failure = Some(why.clone());
                if self.event_stream {
                    let message = format!("kimi-vault proxy: Kimi's stream broke off ({why})");
                    Poll::Ready(Some(Ok(Frame::data(sse_error(&message)))))
                } else {
                    Poll::Ready(Some(Err(std::io::Error::other(why))))
                }
            }
        }
    }
}

/// The body of an upstream response, streamed down; `log` is written when it is over.
pub(crate) fn downstream(
    response: reqwest::Response,
    event_stream: bool,
    log: RequestLog,
    cutoff: &tokio::sync::watch::Receiver<bool>,
) -> ProxyBody {
    let cutoff = event_stream.then(|| {
        let mut cutoff = cutoff.clone();
        Box::pin(async move {
            let _ = cutoff.wait_for(|cut| *cut).await;
        }) as Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    });
    StreamBody::new(Downstream {
        expected: response.content_length(),
        inner: Box::pin(response.bytes_stream()),
        event_stream,
        done: false,
        log,
        cutoff,
    })
    .boxed_unsync()
}
