//! A fake Kimi API for the proxy tests: a real HTTP/1.1 server (hyper) on 127.0.0.1 that
//! records what it is sent and answers under `/coding/v1/`: JSON, echoes, big bodies, SSE with
//! gaps, streams that break off, chosen statuses, slow answers, and 401 for rejected tokens.

#![allow(dead_code)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody, combinators::UnsyncBoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    /// Lower-case names, every value.
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Which bearer tokens get a 401.
#[derive(Debug, Clone, Default)]
pub enum Reject {
    #[default]
    None,
    Tokens(HashSet<String>),
    All,
}

#[derive(Debug, Default)]
pub struct UpState {
    pub seen: Vec<Seen>,
    pub reject: Reject,
}

pub struct Upstream {
    /// `http://127.0.0.1:PORT` (the API base is this plus `/coding/v1`).
    pub url: String,
    pub state: Arc<Mutex<UpState>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

fn full(status: u16, body: impl Into<Bytes>, content_type: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", content_type.parse().unwrap());
    r
}

fn json(status: u16, v: serde_json::Value) -> Response<Body> {
    full(status, v.to_string(), "application/json")
}

fn query(uri: &hyper::Uri, name: &str) -> Option<u64> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
}

fn sse(n: u64, gap: Duration, break_off: bool) -> Response<Body> {
    let stream = futures_util::stream::unfold(0u64, move |i| async move {
        if i > 0 {
            tokio::time::sleep(gap).await;
        }
        if i == n {
            return if break_off {
                Some((Err(std::io::Error::other("upstream broke off")), n + 1))
            } else {
                None
            };
        }
        if i > n {
            return None;
        }
        let event = format!("event: message\ndata: {{\"i\":{i}}}\n\n");
        Some((Ok(Frame::data(Bytes::from(event))), i + 1))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r
}

async fn handle(state: Arc<Mutex<UpState>>, req: Request<Incoming>) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("?").to_owned()))
        .collect();
    let token = parts
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .to_owned();
    let rejected = {
        let mut st = state.lock().unwrap();
        st.seen.push(Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers,
            body_len: body.len(),
        });
        match &st.reject {
            Reject::None => false,
            Reject::All => true,
            Reject::Tokens(t) => t.contains(&token),
        }
    };
    if rejected {
        return json(
            401,
            serde_json::json!({"error":{"type":"authentication_error","message":"invalid token"}}),
        );
    }
    let path = parts.uri.path();
    let Some(rest) = path.strip_prefix("/coding/v1/") else {
        return json(404, serde_json::json!({"error": "not under the API base"}));
    };
    match rest {
        "messages" => json(
            200,
            serde_json::json!({"id":"msg_1","type":"message","content":[{"type":"text","text":"hello from kimi"}],"body_len":body.len()}),
        ),
        "chat/completions" => json(
            200,
            serde_json::json!({"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hello from kimi"}}],"body_len":body.len()}),
        ),
        "models" => json(
            200,
            serde_json::json!({"data":[{"id":"kimi-for-coding","context_length":262144}]}),
        ),
        "echo" => full(200, body, "application/octet-stream"),
        // A reflecting server: the bearer token it was sent comes back in response headers,
        // raw, percent- and base64-encoded (a redirect included).
        "reflect" => {
            use base64::Engine as _;
            let mut r = json(302, serde_json::json!({"reflected": true}));
            let pct =
                percent_encoding::utf8_percent_encode(&token, percent_encoding::NON_ALPHANUMERIC)
                    .to_string();
            let b64 = base64::engine::general_purpose::STANDARD.encode(format!("u:{token}"));
            let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&token);
            for (name, value) in [
                ("location", format!("https://evil.example/cb?t={token}")),
                ("x-echo-auth", format!("Bearer {token}")),
                ("x-pct", format!("t={pct}")),
                ("x-b64", format!("Basic {b64}")),
                ("x-b64url", b64url),
                ("x-request-id", "req-kept-0123".to_owned()),
            ] {
                r.headers_mut().append(name, value.parse().unwrap());
            }
            r
        }
        "big" => {
            let n = query(&parts.uri, "bytes").unwrap_or(0) as usize;
            let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
            full(200, data, "application/octet-stream")
        }
        "sse" | "sse-drop" => {
            let n = query(&parts.uri, "n").unwrap_or(3);
            let gap = Duration::from_millis(query(&parts.uri, "gap").unwrap_or(100));
            sse(n, gap, rest == "sse-drop")
        }
        "status" => {
            let code = query(&parts.uri, "code").unwrap_or(500) as u16;
            json(
                code,
                serde_json::json!({"error":{"type":"status","message":format!("status {code}")}}),
            )
        }
        "slow" => {
            tokio::time::sleep(Duration::from_millis(
                query(&parts.uri, "ms").unwrap_or(1000),
            ))
            .await;
            json(200, serde_json::json!({"slow": true}))
        }
        _ => json(404, serde_json::json!({"error": "no such fake endpoint"})),
    }
}

impl Upstream {
    pub fn start() -> Self {
        let state = Arc::new(Mutex::new(UpState::default()));
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((stream, _)) = accepted else { continue };
                            let st = st.clone();
                            tokio::spawn(async move {
                                let service = hyper::service::service_fn(move |req| {
                                    let st = st.clone();
                                    async move { Ok::<_, Infallible>(handle(st, req).await) }
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                        _ = &mut stopped => break,
                    }
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        Upstream {
            url: format!("http://{addr}"),
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut UpState) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.with(|s| s.seen.clone())
    }

    /// The API base to give kimi-vault.
    pub fn base(&self) -> String {
        format!("{}/coding/v1", self.url)
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
