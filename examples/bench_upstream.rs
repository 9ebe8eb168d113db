//! A fast local stand-in for Kimi's API, for `scripts/bench-proxy.sh` (loopback only):
//! `bench_upstream PORT` serves `/coding/v1/ping[?delay=MS]` (a small JSON answer, at once or
//! after MS milliseconds) and
//! `/coding/v1/sse?n=N&gap=MS` (N events, MS apart, each carrying the CLOCK_MONOTONIC
//! nanoseconds at which it was sent, so a client on the same machine can tell how long the
//! event took to reach it).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::Frame;
use hyper::{Request, Response};

type Body = UnsyncBoxBody<Bytes, Infallible>;

fn now_ns() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

fn query(uri: &hyper::Uri, name: &str) -> u64 {
    uri.query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn handle(req: Request<hyper::body::Incoming>) -> Result<Response<Body>, Infallible> {
    let uri = req.uri().clone();
    let _ = req.into_body().collect().await;
    if uri.path() == "/coding/v1/sse" {
        let (n, gap) = (query(&uri, "n"), Duration::from_millis(query(&uri, "gap")));
        let stream = futures_util::stream::unfold(0u64, move |i| async move {
            if i == n {
                return None;
            }
            if i > 0 {
                tokio::time::sleep(gap).await;
            }
            let event = format!("event: message\ndata: {{\"i\":{i},\"t\":{}}}\n\n", now_ns());
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(event))), i + 1))
        });
        let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
        r.headers_mut()
            .insert("content-type", "text/event-stream".parse().unwrap());
        return Ok(r);
    }
    // `?delay=MS`: answer after MS milliseconds, like a real model API (which takes far longer).
    let delay = query(&uri, "delay");
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    let mut r = Response::new(
        Full::new(Bytes::from_static(br#"{"id":"msg_bench","ok":true}"#)).boxed_unsync(),
    );
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    Ok(r)
}

fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: bench_upstream PORT");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(stream),
                        hyper::service::service_fn(handle),
                    )
                    .await;
            });
        }
    });
}
