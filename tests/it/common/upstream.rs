//! A fake Kimi API for the proxy and client tests: a real HTTP/1.1 server (hyper) on 127.0.0.1
//! that records what it is sent and answers under `/coding/v1/`: Anthropic Messages (JSON and
//! SSE `message_start` … `message_stop`), `/messages/count_tokens`, OpenAI chat completions
//! (`chat.completion` and SSE `chat.completion.chunk` … `data: [DONE]`), `/models`, echoes, big
//! bodies, SSE with gaps, streams that break off, chosen statuses, slow answers, 401 for rejected
//! tokens, and a token that expires mid-session.

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
    /// The body as text (empty past 64 KiB).
    pub body: String,
    /// The status answered.
    pub status: u16,
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

/// Called with the access token that the `at`-th model request (1-based) carried: that token
/// then "expires" (the callback makes the vault agree; the request and later ones with the token
/// get 401).
#[derive(Clone)]
pub struct ExpireAt {
    pub at: usize,
    pub then: Arc<dyn Fn(&str) + Send + Sync>,
}

impl std::fmt::Debug for ExpireAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ExpireAt({})", self.at)
    }
}

#[derive(Debug)]
pub struct UpState {
    pub seen: Vec<Seen>,
    pub reject: Reject,
    /// The assistant's answer to every model request.
    pub answer: String,
    /// Model requests (messages, chat/completions) seen so far.
    pub model_requests: usize,
    pub expire: Option<ExpireAt>,
    /// When set, `/models` answers this status (an error body) instead of the list.
    pub models_status: Option<u16>,
}

impl Default for UpState {
    fn default() -> Self {
        UpState {
            seen: Vec::new(),
            reject: Reject::None,
            answer: "hello from kimi".into(),
            model_requests: 0,
            expire: None,
            models_status: None,
        }
    }
}

/// The answer split in two deltas (a stream of more than one event).
fn halves(text: &str) -> (String, String) {
    let mid = text
        .char_indices()
        .map(|(i, _)| i)
        .find(|i| *i >= text.len() / 2)
        .unwrap_or(text.len());
    (text[..mid].to_owned(), text[mid..].to_owned())
}

/// A `text/event-stream` response from ready-made events, sent one by one with a short gap.
fn event_stream(events: Vec<String>) -> Response<Body> {
    let stream = futures_util::stream::unfold(events.into_iter(), |mut it| async move {
        let next = it.next()?;
        tokio::time::sleep(Duration::from_millis(5)).await;
        Some((Ok(Frame::data(Bytes::from(next))), it))
    });
    let mut r = Response::new(StreamBody::new(stream).boxed_unsync());
    r.headers_mut()
        .insert("content-type", "text/event-stream".parse().unwrap());
    r.headers_mut()
        .insert("cache-control", "no-cache".parse().unwrap());
    r
}

/// Anthropic Messages: `POST /v1/messages`, JSON or (with `"stream": true`) SSE.
fn anthropic_message(request: &serde_json::Value, answer: &str) -> Response<Body> {
    let model = request["model"].as_str().unwrap_or("kimi-for-coding");
    let id = "msg_01KimiVaultFake000000000";
    let usage_in = 12;
    let usage_out = answer.split_whitespace().count().max(1);
    if request["stream"].as_bool() != Some(true) {
        return json(
            200,
            serde_json::json!({
                "id": id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": answer}],
                "stop_reason": "end_turn", "stop_sequence": null,
                "usage": {"input_tokens": usage_in, "output_tokens": usage_out},
            }),
        );
    }
    let ev = |name: &str, data: serde_json::Value| format!("event: {name}\ndata: {data}\n\n");
    let (a, b) = halves(answer);
    event_stream(vec![
        ev(
            "message_start",
            serde_json::json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": usage_in, "output_tokens": 1}}}),
        ),
        ev(
            "content_block_start",
            serde_json::json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", serde_json::json!({"type": "ping"})),
        ev(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": a}}),
        ),
        ev(
            "content_block_delta",
            serde_json::json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": b}}),
        ),
        ev(
            "content_block_stop",
            serde_json::json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "message_delta",
            serde_json::json!({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": null},
                "usage": {"output_tokens": usage_out}}),
        ),
        ev("message_stop", serde_json::json!({"type": "message_stop"})),
    ])
}

/// OpenAI chat completions: `chat.completion`, or (with `"stream": true`) SSE
/// `chat.completion.chunk` events and `data: [DONE]`.
fn openai_chat(request: &serde_json::Value, answer: &str) -> Response<Body> {
    let model = request["model"].as_str().unwrap_or("kimi-for-coding");
    let id = "chatcmpl-kimivaultfake";
    let created = 1_700_000_000;
    if request["stream"].as_bool() != Some(true) {
        return json(
            200,
            serde_json::json!({
                "id": id, "object": "chat.completion", "created": created, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                    "finish_reason": "stop", "logprobs": null}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13},
            }),
        );
    }
    let chunk = |delta: serde_json::Value, finish: serde_json::Value| {
        let c = serde_json::json!({"id": id, "object": "chat.completion.chunk",
            "created": created, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]});
        format!("data: {c}\n\n")
    };
    let (a, b) = halves(answer);
    event_stream(vec![
        chunk(
            serde_json::json!({"role": "assistant", "content": ""}),
            serde_json::Value::Null,
        ),
        chunk(serde_json::json!({"content": a}), serde_json::Value::Null),
        chunk(serde_json::json!({"content": b}), serde_json::Value::Null),
        chunk(serde_json::json!({}), serde_json::json!("stop")),
        "data: [DONE]\n\n".to_owned(),
    ])
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
    let path = parts.uri.path().to_owned();
    let is_model_request = path.ends_with("/messages") || path.ends_with("/chat/completions");
    let (rejected, expire) = {
        let mut st = state.lock().unwrap();
        let mut expire = None;
        if is_model_request {
            st.model_requests += 1;
            if let Some(e) = &st.expire
                && e.at == st.model_requests
            {
                expire = Some(e.then.clone());
            }
        }
        if expire.is_some() {
            match &mut st.reject {
                Reject::Tokens(t) => {
                    t.insert(token.clone());
                }
                r => *r = Reject::Tokens(HashSet::from([token.clone()])),
            }
        }
        let rejected = match &st.reject {
            Reject::None => false,
            Reject::All => true,
            Reject::Tokens(t) => t.contains(&token),
        };
        st.seen.push(Seen {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            headers,
            body_len: body.len(),
            body: if body.len() <= 64 * 1024 {
                String::from_utf8_lossy(&body).into_owned()
            } else {
                String::new()
            },
            status: if rejected { 401 } else { 200 },
        });
        (rejected, expire)
    };
    if let Some(then) = expire {
        then(&token);
    }
    if rejected {
        return json(
            401,
            serde_json::json!({"error":{"type":"authentication_error","message":"invalid token"}}),
        );
    }
    let Some(rest) = path.strip_prefix("/coding/v1/") else {
        return json(404, serde_json::json!({"error": "not under the API base"}));
    };
    let request: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let (answer, models_status) = {
        let st = state.lock().unwrap();
        (st.answer.clone(), st.models_status)
    };
    match rest {
        "messages" => anthropic_message(&request, &answer),
        "messages/count_tokens" => json(
            200,
            serde_json::json!({"input_tokens": (body.len() / 4).max(1)}),
        ),
        "chat/completions" => openai_chat(&request, &answer),
        "models" if models_status.is_some() => {
            let code = models_status.unwrap_or(500);
            json(
                code,
                serde_json::json!({"error":{"type":"status","message":format!("status {code}")}}),
            )
        }
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

    /// The requests that got a model's answer (messages, chat/completions; not 401s).
    pub fn answered(&self) -> Vec<Seen> {
        self.seen()
            .into_iter()
            .filter(|s| {
                s.status == 200
                    && (s.uri.contains("/messages") && !s.uri.contains("count_tokens")
                        || s.uri.contains("/chat/completions"))
            })
            .collect()
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
