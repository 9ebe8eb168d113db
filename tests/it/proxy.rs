//! `kimi-vault proxy` and `exec --proxy` through the real binary, against a fake Kimi API
//! (hyper, on loopback) and the fake Kimi auth server: auth, token injection, header
//! filtering, 401 healing, 402, SSE timing, concurrency, big bodies, health, graceful shutdown,
//! stand-in clients for every recipe, and bad input.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::upstream::{Reject, Upstream};
use crate::common::*;

const SEED_ACCESS: &str = "at-seed-0123456789abcdef0123";
const SEED_REFRESH: &str = "rt-seed-0123456789abcdef0123";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A running `kimi-vault proxy`.
struct Running {
    child: Child,
    url: String,
    key: Option<String>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    fn addr(&self) -> String {
        self.url.trim_start_matches("http://").to_owned()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// SIGTERM, then the exit status and everything it wrote on stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        self.signal(rustix::process::Signal::TERM);
        let status = wait_within(&mut self.child, Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(100));
        (status, self.stderr())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_within(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            start.elapsed() < limit,
            "the process did not exit within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn proxy_cmd(env: &TestEnv, up: &Upstream) -> std::process::Command {
    let mut cmd = env.std_cmd();
    if let Some(bin) = std::env::var_os("KIMI_VAULT_MEASURE_BIN") {
        // The proxy of another build (the one before a fix), for before/after figures.
        let mut other = std::process::Command::new(bin);
        other.env_clear();
        for (name, value) in cmd.get_envs() {
            if let Some(value) = value {
                other.env(name, value);
            }
        }
        cmd = other;
    }
    cmd.env("KIMI_CODE_BASE_URL", up.base());
    START_ENV.with(|vars| {
        for (name, value) in vars.borrow().iter() {
            cmd.env(name, value);
        }
    });
    cmd
}

fn start(env: &TestEnv, up: &Upstream, extra: &[&str]) -> Running {
    let mut child = proxy_cmd(env, up)
        .args(["-v", "proxy", "--port", "0", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = Arc::new(Mutex::new(String::new()));
    let mut err = child.stderr.take().unwrap();
    let sink = stderr.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = err.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no ready line; stderr: {}", stderr.lock().unwrap()));
    let ready: serde_json::Value = serde_json::from_str(&line)
        .unwrap_or_else(|_| panic!("ready line {line:?}; stderr: {}", stderr.lock().unwrap()));
    assert_eq!(ready["type"], "ready");
    Running {
        child,
        url: ready["url"].as_str().unwrap().to_owned(),
        key: ready["api_key"].as_str().map(str::to_owned),
        stderr,
    }
}

fn seeded(expires_in: i64) -> (TestEnv, Upstream) {
    let env = TestEnv::new();
    env.seed("default", SEED_ACCESS, SEED_REFRESH, expires_in);
    (env, Upstream::start())
}

/// POSTs JSON to `path` with `x-api-key: key`; the status and the body.
fn post(url: &str, path: &str, key: Option<&str>, body: &str) -> (u16, String) {
    runtime().block_on(async {
        let mut req = client()
            .post(format!("{url}{path}"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(k) = key {
            req = req.header("x-api-key", k);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    })
}

#[test]
fn auth_is_enforced_and_nothing_goes_upstream_without_it() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    assert!(key.starts_with("kvp-"));
    for bad in [None, Some("kvp-wrong"), Some(SEED_ACCESS)] {
        let (status, body) = post(&p.url, "/v1/messages", bad, "{}");
        assert_eq!(status, 401, "{bad:?}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "authentication_error");
    }
    // Bearer works as well as x-api-key.
    let status = runtime().block_on(async {
        client()
            .get(format!("{}/v1/models", p.url))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    assert_eq!(status, 200);
    // Other paths: 404, nothing upstream.
    for path in ["/", "/v2/messages", "/v1", "/admin", "/v1/../admin"] {
        let (status, _) = post(&p.url, path, Some(&key), "{}");
        assert_eq!(status, 404, "{path}");
    }
    assert_eq!(
        up.seen().len(),
        1,
        "only the authenticated /v1 request went up"
    );
    let (status, err) = p.stop();
    assert!(status.success(), "{err}");
    assert!(
        !err.contains(SEED_ACCESS) && !err.contains(SEED_REFRESH),
        "{err}"
    );
}

#[test]
fn token_injected_in_both_headers_client_credentials_and_hop_by_hop_dropped() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let mut s = TcpStream::connect(p.addr()).unwrap();
    let body = r#"{"model":"kimi","messages":[]}"#;
    write!(
        s,
        "POST /v1/messages?beta=true&x=1 HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nX-Msh-Device-Id: spoofed\r\nCookie: session=abc\r\nProxy-Authorization: Basic Zm9v\r\nConnection: keep-alive, X-Private-Hop\r\nX-Private-Hop: secret-hop\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nanthropic-version: 2023-06-01\r\nanthropic-beta: tools-2024-04-04\r\nUser-Agent: claude-cli/2.1.197 (external, cli)\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        p.addr(),
        body.len()
    )
    .unwrap();
    let mut reader = BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    assert!(status_line.contains("200"), "{status_line}");
    let seen = up.seen();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(
        r.uri, "/coding/v1/messages?beta=true&x=1",
        "path and query kept"
    );
    assert_eq!(
        r.header("authorization"),
        Some(&*format!("Bearer {SEED_ACCESS}"))
    );
    assert_eq!(r.header("x-api-key"), Some(SEED_ACCESS));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("anthropic-beta"), Some("tools-2024-04-04"));
    assert_eq!(
        r.header("user-agent"),
        Some("claude-cli/2.1.197 (external, cli)"),
        "the client's User-Agent is forwarded, not replaced by the proxy's"
    );
    assert_eq!(
        r.header("x-msh-platform"),
        Some("kimi-vault"),
        "device headers"
    );
    assert_eq!(r.body_len, body.len());
    for dropped in [
        "cookie",
        "proxy-authorization",
        "x-private-hop",
        "keep-alive",
        "te",
    ] {
        assert!(r.header(dropped).is_none(), "{dropped} was forwarded");
    }
    for (name, value) in &r.headers {
        assert!(
            !value.contains(&key),
            "the client key went upstream in {name}"
        );
    }
    drop(p);
}

#[test]
fn upstream_401_is_healed_once_and_a_second_401_passes_through() {
    let (env, up) = seeded(3600);
    up.with(|s| s.reject = Reject::Tokens([SEED_ACCESS.to_owned()].into()));
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let (status, body) = post(&p.url, "/v1/messages", Some(&key), r#"{"a":1}"#);
    assert_eq!(status, 200, "{body}");
    assert_eq!(env.server.refresh_requests(), 1, "one forced refresh");
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "the request and its one retry");
    assert_eq!(seen[1].body_len, 7, "the body was sent again");
    assert!(seen[1].header("authorization").unwrap().contains("at-gen1"));
    // The token that forced refresh produced is rejected too, within 30 s: the 401 has another
    // cause, so it goes to the client at once, with no second rotation of the refresh token.
    up.with(|s| s.reject = Reject::All);
    let (status, _) = post(&p.url, "/v1/messages", Some(&key), "{}");
    assert_eq!(status, 401);
    assert_eq!(env.server.refresh_requests(), 1, "no refresh churn");
    assert_eq!(up.seen().len(), 3);
    let (_, err) = p.stop();
    for secret in [
        SEED_ACCESS,
        SEED_REFRESH,
        "at-gen1",
        "rt-gen1",
        "at-gen2",
        "rt-gen2",
    ] {
        assert!(
            !err.contains(secret),
            "{secret} in the proxy's output: {err}"
        );
    }
    assert!(
        env.stored("default")
            .unwrap()
            .access_token
            .expose()
            .starts_with("at-gen")
    );
}

#[test]
fn a_second_401_after_the_one_refresh_and_retry_goes_to_the_client() {
    let (env, up) = seeded(3600);
    up.with(|s| s.reject = Reject::All);
    let p = start(&env, &up, &[]);
    let (status, body) = post(&p.url, "/v1/messages", p.key.as_deref(), r#"{"a":1}"#);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("invalid token"), "Kimi's own answer: {body}");
    assert_eq!(env.server.refresh_requests(), 1, "one forced refresh");
    let seen = up.seen();
    assert_eq!(seen.len(), 2, "the request and its one retry");
    assert!(seen[1].header("authorization").unwrap().contains("at-gen1"));
}

#[test]
fn paths_that_would_leave_the_api_base_are_refused() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    for path in [
        "/v1/a\\..\\..\\..\\secret-area?x=1",
        "/v1/x\\.%2e\\..\\oauth",
        "/v1/a%2f..%2f..%2fb",
        "/v1/..;/x",
        "/v1/%2e%2e/%2e%2e/x",
        "/v1/models/../../../x",
    ] {
        let mut s = TcpStream::connect(p.addr()).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(
            answer.starts_with("HTTP/1.1 404") || answer.starts_with("HTTP/1.1 400"),
            "{path}: {answer:.60}"
        );
    }
    assert!(
        up.seen().is_empty(),
        "nothing went upstream: {:?}",
        up.seen()
    );
}

#[test]
fn web_pages_of_other_sites_are_refused_whatever_key_they_carry() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let status_with = |extra: &str| {
        let mut s = TcpStream::connect(p.addr()).unwrap();
        write!(
            s,
            "GET /v1/models HTTP/1.1\r\nx-api-key: {key}\r\nConnection: close\r\n{extra}\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        answer[9..12].to_owned()
    };
    assert_eq!(status_with("Host: 127.0.0.1\r\n"), "200");
    assert_eq!(
        status_with("Host: 127.0.0.1\r\nOrigin: http://localhost:5173\r\n"),
        "200"
    );
    // A DNS-rebinding page (its own host name), a cross-site fetch or form.
    assert_eq!(status_with("Host: attacker.example:18462\r\n"), "403");
    assert_eq!(
        status_with("Host: 127.0.0.1\r\nOrigin: https://attacker.example\r\n"),
        "403"
    );
    assert_eq!(
        status_with("Host: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\n"),
        "403"
    );
    assert_eq!(up.seen().len(), 2, "only the two local requests went up");
}

#[test]
fn an_unusable_refresh_answer_keeps_the_held_token_and_does_not_hammer() {
    // 50 s left: below the 60 s a request wants, and below the refresher's 3 minutes.
    let (env, up) = seeded(50);
    env.server.with(|s| {
        for _ in 0..20 {
            s.canned.push_back(Canned {
                status: 200,
                body: format!("<html>captive portal {CANARY_REFRESH}</html>"),
                headers: vec![],
            });
        }
    });
    let p = start(&env, &up, &[]);
    for _ in 0..5 {
        let (status, body) = post(&p.url, "/v1/messages", p.key.as_deref(), "{}");
        assert_eq!(status, 200, "the held token still works: {body}");
    }
    assert!(
        env.server.refresh_requests() <= 2,
        "{} refresh requests for 5 proxy requests",
        env.server.refresh_requests()
    );
    let (_, err) = p.stop();
    assert!(
        !err.contains(CANARY_REFRESH) && !err.contains(SEED_REFRESH),
        "{err}"
    );
}

#[test]
fn upstream_402_429_5xx_pass_through_and_402_triggers_no_refresh() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    for code in [402, 429, 500, 503] {
        let (status, body) = post(&p.url, &format!("/v1/status?code={code}"), Some(&key), "{}");
        assert_eq!(status, code);
        assert!(
            body.contains(&format!("status {code}")),
            "the upstream body: {body}"
        );
    }
    assert_eq!(env.server.refresh_requests(), 0);
    assert!(!env.stored("default").unwrap().needs_login);
    let (_, err) = p.stop();
    assert!(
        err.contains("membership"),
        "402 is explained in the log: {err}"
    );
}

#[test]
fn sse_events_arrive_as_they_are_sent() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let gap = Duration::from_millis(300);
    let arrivals = runtime().block_on(async {
        let resp = client()
            .post(format!("{}/v1/sse?n=5&gap={}", p.url, gap.as_millis()))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        let start = Instant::now();
        let mut arrivals = Vec::new();
        let mut stream = resp.bytes_stream();
        use futures_util::StreamExt;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.unwrap();
            let text = String::from_utf8_lossy(&chunk);
            for _ in text.matches("data:") {
                arrivals.push(start.elapsed());
            }
        }
        arrivals
    });
    assert_eq!(arrivals.len(), 5, "every event");
    let spacings: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    for s in &spacings {
        assert!(
            *s >= gap * 2 / 3,
            "events were held back and delivered together: spacings {spacings:?}"
        );
    }
    report(&format!(
        "proxy SSE: 5 events sent {} ms apart arrived {:?} apart (first at {:?})",
        gap.as_millis(),
        spacings,
        arrivals[0]
    ));
}

#[test]
fn sixty_four_concurrent_streams() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let started = Instant::now();
    let counts = runtime().block_on(async {
        let c = client();
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (c, url, key) = (c.clone(), p.url.clone(), key.clone());
                tokio::spawn(async move {
                    let text = c
                        .post(format!("{url}/v1/sse?n=5&gap=100"))
                        .header("x-api-key", key)
                        .send()
                        .await
                        .unwrap()
                        .text()
                        .await
                        .unwrap();
                    text.matches("data:").count()
                })
            })
            .collect();
        let mut counts = Vec::new();
        for t in tasks {
            counts.push(t.await.unwrap());
        }
        counts
    });
    assert!(counts.iter().all(|&c| c == 5), "{counts:?}");
    report(&format!(
        "proxy: 64 concurrent SSE streams of 5 events 100 ms apart finished in {:.2} s",
        started.elapsed().as_secs_f64()
    ));
}

#[test]
fn large_bodies_both_ways() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let sent: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i * 7 % 256) as u8).collect();
    let (echoed, big) = runtime().block_on(async {
        let c = client();
        let echoed = c
            .post(format!("{}/v1/echo", p.url))
            .header("x-api-key", &key)
            .body(sent.clone())
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let big = c
            .get(format!("{}/v1/big?bytes={}", p.url, 8 * 1024 * 1024))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        (echoed, big)
    });
    assert_eq!(echoed.len(), sent.len());
    assert!(echoed == sent, "the 5 MiB body came back intact");
    assert_eq!(big.len(), 8 * 1024 * 1024);
    assert!(big.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));
}

#[test]
fn a_large_body_rejected_with_401_is_not_replayed_but_the_token_is_refreshed() {
    let (env, up) = seeded(3600);
    up.with(|s| s.reject = Reject::Tokens([SEED_ACCESS.to_owned()].into()));
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let body = "x".repeat(2 * 1024 * 1024);
    let (status, _) = post(&p.url, "/v1/messages", Some(&key), &body);
    assert_eq!(status, 401, "over 1 MiB: the 401 goes to the client");
    assert_eq!(
        env.server.refresh_requests(),
        1,
        "the token was refreshed anyway"
    );
    let (status, _) = post(&p.url, "/v1/messages", Some(&key), &body);
    assert_eq!(status, 200, "the client's own retry works");
}

fn health(url: &str) -> (u16, serde_json::Value) {
    runtime().block_on(async {
        let r = client().get(format!("{url}/health")).send().await.unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.text().await.unwrap()).unwrap(),
        )
    })
}

#[test]
fn health_has_no_secret_and_is_503_when_login_is_required() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let (status, v) = health(&p.url);
    assert_eq!(status, 200);
    assert_eq!(v["status"], "ok");
    assert!(v["token_expires_in"].as_i64().unwrap() > 3500);
    assert!(v["uptime"].as_u64().is_some() && v["requests"].as_u64().is_some());
    let text = v.to_string();
    assert!(!text.contains(SEED_ACCESS) && !text.contains(p.key.as_deref().unwrap()));
    // `proxy --check` agrees.
    let port = p.addr().rsplit(':').next().unwrap().to_owned();
    env.cmd()
        .args(["proxy", "--check", "--port", &port])
        .assert()
        .code(0);
    drop(p);
    env.cmd()
        .args(["proxy", "--check", "--port", &port])
        .assert()
        .code(1);

    // A profile whose refresh token was rejected: /health 503; requests get a 403 at once in
    // the client's dialect (so that clients stop retrying), naming the fix.
    let env = TestEnv::new();
    let mut cred = credential(SEED_ACCESS, SEED_REFRESH, -10);
    cred.needs_login = true;
    env.store("default", &cred);
    let p = start(&env, &up, &[]);
    let (status, v) = health(&p.url);
    assert_eq!(status, 503);
    assert_eq!(v["status"], "login_required");
    let (status, body) = post(&p.url, "/v1/messages", p.key.as_deref(), "{}");
    assert_eq!(status, 403);
    assert!(body.contains("kimi-vault login"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "permission_error");
    let (status, body) = post(&p.url, "/v1/chat/completions", p.key.as_deref(), "{}");
    assert_eq!(status, 403);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["error"]["type"], "permission_error", "{body}");
    assert!(v.get("type").is_none(), "OpenAI's shape: {body}");
    let port = p.addr().rsplit(':').next().unwrap().to_owned();
    env.cmd()
        .args(["proxy", "--check", "--port", &port])
        .assert()
        .code(3);
}

#[test]
fn graceful_shutdown_finishes_an_in_flight_stream() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let url = p.url.clone();
    let (events_tx, events_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        runtime().block_on(async {
            use futures_util::StreamExt;
            let resp = client()
                .post(format!("{url}/v1/sse?n=8&gap=250"))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap();
            let mut stream = resp.bytes_stream();
            let mut n = 0;
            while let Some(chunk) = stream.next().await {
                n += String::from_utf8_lossy(&chunk.unwrap())
                    .matches("data:")
                    .count();
                let _ = events_tx.send(n);
            }
            n
        })
    });
    // After the first event, ask the proxy to stop.
    events_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let addr = p.addr();
    let (status, err) = p.stop();
    assert!(status.success(), "exit 0 after SIGTERM: {err}");
    assert_eq!(
        reader.join().unwrap(),
        8,
        "the in-flight stream finished: {err}"
    );
    assert!(TcpStream::connect(addr).is_err(), "no longer accepting");
}

#[test]
#[ignore = "needs python3 (the stand-in clients): scripts/test.sh runs it with --include-ignored"]
fn ready_output_key_is_stable_and_the_export_lines_work() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let first = p.key.clone().unwrap();
    let (_, err) = p.stop();
    let exports: Vec<&str> = err.lines().filter(|l| l.starts_with("export ")).collect();
    assert_eq!(exports.len(), 2, "{err}");
    assert!(exports[0].starts_with("export ANTHROPIC_BASE_URL=http://127.0.0.1:"));
    assert_eq!(exports[1], format!("export ANTHROPIC_AUTH_TOKEN={first}"));
    let p = start(&env, &up, &[]);
    assert_eq!(
        p.key.as_deref(),
        Some(first.as_str()),
        "stable across restarts"
    );
    // The two lines, as a user would paste them, make a stand-in Claude client work.
    let out = standin(
        [
            ("ANTHROPIC_BASE_URL", p.url.as_str()),
            ("ANTHROPIC_AUTH_TOKEN", first.as_str()),
        ],
        STANDIN_ANTHROPIC,
    );
    assert_hello(&out, "the export lines");
}

/// Runs a stand-in client (Python) with exactly `vars` in its environment.
fn standin<'a>(
    vars: impl IntoIterator<Item = (&'a str, &'a str)>,
    script: &str,
) -> std::process::Output {
    std::process::Command::new("python3")
        .env_clear()
        .envs(vars)
        .args(["-c", script])
        .output()
        .unwrap()
}

/// The stand-in succeeded and printed the fake Kimi API's greeting.
fn assert_hello(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "hello from kimi",
        "{what}"
    );
}

/// A stand-in Claude Code: reads exactly ANTHROPIC_BASE_URL and ANTHROPIC_AUTH_TOKEN (SPEC §7;
/// with ANTHROPIC_API_KEY set too, Claude Code would send that as well) and calls
/// `{base}/v1/messages` with `Authorization: Bearer`, as Claude Code does with a bearer token.
const STANDIN_ANTHROPIC: &str = r#"
import json, os, urllib.request
assert "ANTHROPIC_API_KEY" not in os.environ
req = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
    data=b'{"model":"kimi-for-coding","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}',
    headers={"authorization": "Bearer " + os.environ["ANTHROPIC_AUTH_TOKEN"],
             "anthropic-version": "2023-06-01", "content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["content"][0]["text"])
"#;

/// A stand-in kimi-cli (1.51): its `kimi` provider reads KIMI_BASE_URL and KIMI_API_KEY, the
/// model from KIMI_MODEL_NAME (else "LLM not set"), and refreshes its model list from
/// KIMI_CODE_BASE_URL with the same key; it calls `{base}/chat/completions`.
const STANDIN_KIMI_CLI: &str = r#"
import json, os, urllib.request
key = os.environ["KIMI_API_KEY"]
models = urllib.request.Request(os.environ["KIMI_CODE_BASE_URL"] + "/models",
    headers={"authorization": "Bearer " + key})
assert json.load(urllib.request.urlopen(models))["data"], "no model listed"
body = json.dumps({"model": os.environ["KIMI_MODEL_NAME"],
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
req = urllib.request.Request(os.environ["KIMI_BASE_URL"] + "/chat/completions", data=body,
    headers={"authorization": "Bearer " + key, "content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["choices"][0]["message"]["content"])
"#;

/// A stand-in kimi-code: takes a key from the environment only through KIMI_MODEL_* (it reads no
/// KIMI_API_KEY or KIMI_BASE_URL), needs the provider type `kimi` and a context size, and calls
/// `{KIMI_MODEL_BASE_URL}/chat/completions` with KIMI_MODEL_NAME.
const STANDIN_KIMI_CODE: &str = r#"
import json, os, urllib.request
env = {k: v for k, v in os.environ.items() if k.startswith("KIMI_MODEL_")}
assert env["KIMI_MODEL_PROVIDER_TYPE"] == "kimi", env
assert int(env["KIMI_MODEL_MAX_CONTEXT_SIZE"]) > 0, env
body = json.dumps({"model": env["KIMI_MODEL_NAME"],
                   "messages": [{"role": "user", "content": "hi"}]}).encode()
req = urllib.request.Request(env["KIMI_MODEL_BASE_URL"] + "/chat/completions", data=body,
    headers={"authorization": "Bearer " + env["KIMI_MODEL_API_KEY"],
             "content-type": "application/json"})
print(json.load(urllib.request.urlopen(req))["choices"][0]["message"]["content"])
"#;

/// A stand-in OpenAI-style client (kimi-cli's `kimi` provider, OpenAI SDKs): reads exactly
/// `{PREFIX}_BASE_URL` (with /v1) and `{PREFIX}_API_KEY` and calls `{base}/chat/completions`.
fn standin_openai(prefix: &str) -> String {
    format!(
        r#"
import json, os, urllib.request
req = urllib.request.Request(os.environ["{prefix}_BASE_URL"] + "/chat/completions",
    data=b'{{"model":"kimi-for-coding","messages":[{{"role":"user","content":"hi"}}]}}',
    headers={{"authorization": "Bearer " + os.environ["{prefix}_API_KEY"],
             "content-type": "application/json"}})
print(json.load(urllib.request.urlopen(req))["choices"][0]["message"]["content"])
"#
    )
}

#[test]
#[ignore = "needs python3 (the stand-in clients): scripts/test.sh runs it with --include-ignored"]
fn exec_proxy_recipes_work_for_each_client() {
    let (env, up) = seeded(3600);
    for (client, script) in [
        ("claude", STANDIN_ANTHROPIC.to_owned()),
        ("kimi", STANDIN_KIMI_CLI.to_owned()),
        ("kimi", STANDIN_KIMI_CODE.to_owned()),
        ("openai", standin_openai("OPENAI")),
    ] {
        let out = proxy_cmd(&env, &up)
            .env("ANTHROPIC_AUTH_TOKEN", "stale-token-from-the-environment")
            .env("ANTHROPIC_API_KEY", "stale-key-from-the-environment")
            .args([
                "exec", "--proxy", "--for", client, "--", "python3", "-c", &script,
            ])
            .output()
            .unwrap();
        assert_hello(&out, client);
        assert_no_secret(&out, &[SEED_ACCESS, SEED_REFRESH]);
    }
    let seen: Vec<_> = up
        .seen()
        .into_iter()
        .filter(|s| !s.uri.ends_with("/models"))
        .collect();
    assert_eq!(seen.len(), 4);
    assert!(seen[0].uri.ends_with("/coding/v1/messages"));
    for s in &seen[1..] {
        assert!(s.uri.ends_with("/coding/v1/chat/completions"), "{}", s.uri);
    }
    // Both Kimi CLIs asked for the first model Kimi lists.
    for s in &seen[1..3] {
        assert!(
            s.body.contains(r#""model": "kimi-for-coding""#),
            "{}",
            s.body
        );
    }
    for s in up.seen() {
        assert_eq!(
            s.header("authorization"),
            Some(&*format!("Bearer {SEED_ACCESS}"))
        );
    }
}

/// A stand-in for Claude Code's `apiKeyHelper`: runs the helper command for its key, then calls
/// `{ANTHROPIC_BASE_URL}/v1/messages` directly (no proxy), as the README's settings.json does.
const STANDIN_API_KEY_HELPER: &str = r#"
import json, os, subprocess, urllib.request
key = subprocess.run(["kimi-vault", "token"], capture_output=True, text=True, check=True).stdout.strip()
req = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages",
    data=b'{"model":"kimi-for-coding","max_tokens":8,"messages":[]}',
    headers={"x-api-key": key, "authorization": "Bearer " + key, "anthropic-version": "2023-06-01"})
print(json.load(urllib.request.urlopen(req))["content"][0]["text"])
"#;

#[test]
#[ignore = "needs python3 (the stand-in clients): scripts/test.sh runs it with --include-ignored"]
fn readme_recipes_api_key_helper_and_a_running_proxy_for_openai_clients() {
    let (env, up) = seeded(3600);
    // apiKeyHelper: ANTHROPIC_BASE_URL is the API base without /v1.
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_kimi-vault"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // The helper runs with the test's vault and fake auth server in its environment.
    let mut helper = env.std_cmd();
    helper.env("PATH", &path);
    let base = up.base().trim_end_matches("/v1").to_owned();
    let mut vars: Vec<(String, String)> = helper
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_str()?.to_owned(), v?.to_str()?.to_owned())))
        .collect();
    vars.push(("ANTHROPIC_BASE_URL".into(), base));
    let out = standin(
        vars.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        STANDIN_API_KEY_HELPER,
    );
    assert_hello(&out, "apiKeyHelper");
    assert_eq!(
        up.seen()[0].header("authorization"),
        Some(&*format!("Bearer {SEED_ACCESS}"))
    );
    // A running proxy, an OpenAI-style client given its URL (with /v1) and key.
    let p = start(&env, &up, &[]);
    let base = format!("{}/v1", p.url);
    let out = standin(
        [
            ("OPENAI_BASE_URL", base.as_str()),
            ("OPENAI_API_KEY", p.key.as_deref().unwrap()),
        ],
        &standin_openai("OPENAI"),
    );
    assert_hello(&out, "OpenAI client against a running proxy");
}

#[test]
fn exec_proxy_exit_codes() {
    let (env, up) = seeded(3600);
    let code = |args: &[&str]| {
        proxy_cmd(&env, &up)
            .args(["exec", "--proxy", "--"])
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(code(&["sh", "-c", "exit 7"]), Some(7));
    assert_eq!(code(&["sh", "-c", "kill -TERM $$"]), Some(128 + 15));
    assert_eq!(code(&["/nonexistent/program"]), Some(127));
    // --for needs --proxy; --env and --proxy do not mix.
    env.cmd()
        .args(["exec", "--for", "kimi", "--", "true"])
        .assert()
        .code(2);
    env.cmd()
        .args(["exec", "--proxy", "--env", "X", "--", "true"])
        .assert()
        .code(2);
    // Not logged in: exit 3 before CMD starts.
    let other = TestEnv::new();
    let marker = other.dir.path().join("ran");
    let out = other
        .cmd()
        .args(["exec", "--proxy", "--", "touch"])
        .arg(&marker)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(!marker.exists());
}

#[test]
fn two_proxies_and_a_token_process_make_one_refresh_request() {
    let (env, up) = seeded(100);
    let a = start(&env, &up, &[]);
    let b = start(&env, &up, &[]);
    env.cmd()
        .args(["token", "--min-valid", "600"])
        .assert()
        .success();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        env.server.refresh_requests(),
        1,
        "exactly one refresh request"
    );
    for p in [&a, &b] {
        let (status, v) = health(&p.url);
        assert_eq!(status, 200);
        assert!(v["token_expires_in"].as_i64().unwrap() > 800, "{v}");
    }
}

#[test]
fn bind_rules() {
    let (env, up) = seeded(3600);
    for args in [
        vec!["proxy", "--bind", "0.0.0.0", "--port", "0"],
        vec![
            "proxy",
            "--bind",
            "0.0.0.0",
            "--allow-remote",
            "--no-client-key",
        ],
        vec!["proxy", "--bind", "not-an-ip"],
    ] {
        proxy_cmd(&env, &up)
            .args(&args)
            .output()
            .map(|o| assert_eq!(o.status.code(), Some(2), "{args:?}"))
            .unwrap();
    }
    // --no-client-key on loopback: allowed, with a warning.
    let p = start(&env, &up, &["--no-client-key"]);
    assert!(p.key.is_none());
    let (status, _) = post(&p.url, "/v1/messages", None, "{}");
    assert_eq!(status, 200);
    let (_, err) = p.stop();
    assert!(err.contains("--no-client-key"), "{err}");
    // Not logged in: exit 3.
    let other = TestEnv::new();
    other.cmd().args(["proxy", "--port", "0"]).assert().code(3);
}

#[test]
fn bad_input_leaves_the_proxy_up_and_other_clients_unaffected() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let addr = p.addr();

    // 1. A body shorter than its Content-Length, then the client hangs up.
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /v1/echo HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nContent-Length: 1000\r\n\r\nonly-a-little"
    )
    .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 4"),
        "{answer}"
    );

    // 2. A client that goes away in the middle of a stream.
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "GET /v1/sse?n=50&gap=50 HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 64];
    let _ = s.read(&mut first).unwrap();
    drop(s);

    // 3. An upstream that breaks off an event stream: the client reads an error event.
    let text = runtime().block_on(async {
        client()
            .get(format!("{}/v1/sse-drop?n=2&gap=50", p.url))
            .header("x-api-key", &key)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap_or_default()
    });
    assert_eq!(text.matches("event: message").count(), 2, "{text}");
    assert!(
        text.contains("event: error") && text.contains("broke off"),
        "{text}"
    );

    // 4. A huge header.
    let mut s = TcpStream::connect(&addr).unwrap();
    let huge = "a".repeat(2 * 1024 * 1024);
    let _ = write!(
        s,
        "GET /v1/models HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nx-huge: {huge}\r\n\r\n"
    );
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer:.80}"
    );

    // 5. A thousand idle connections.
    raise_open_files_limit();
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();

    // The proxy is up and serves others.
    let (status, body) = post(&p.url, "/v1/messages", Some(&key), "{}");
    assert_eq!(status, 200, "{body}");
    let (status, _) = health(&p.url);
    assert_eq!(status, 200);
    drop(idle);
    let (status, err) = p.stop();
    assert!(status.success(), "{err}");
    assert!(!err.contains(SEED_ACCESS), "{err}");
    assert_eq!(
        err.matches(&key).count(),
        1,
        "the key only in its export line: {err}"
    );
}

fn raise_open_files_limit() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let l = getrlimit(Resource::Nofile);
    let _ = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: l.maximum,
            maximum: l.maximum,
        },
    );
}

#[test]
fn one_log_line_per_request_at_v_and_never_a_secret() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let (status, _) = post(
        &p.url,
        "/v1/messages?secret-query=abc",
        Some(&key),
        "{\"q\":1}",
    );
    assert_eq!(status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let (_, err) = p.stop();
    let line = err
        .lines()
        .find(|l| l.contains("POST /v1/messages"))
        .unwrap_or_else(|| panic!("no request line: {err}"));
    assert!(
        line.contains("-> 200") && line.contains("upstream") && line.contains("bytes"),
        "{line}"
    );
    assert!(!err.contains("secret-query"), "no query string in the log");
    assert_eq!(
        err.matches(&key).count(),
        1,
        "the key only in its export line"
    );
    assert!(!line.contains("went away"), "{line}");
    assert!(!err.contains(SEED_ACCESS));
}

#[test]
fn a_refresh_in_flight_at_shutdown_stores_its_answer_before_the_proxy_exits() {
    // 100 s left: the background refresher starts a refresh at once; the server answers it
    // after 2 s, and the proxy is asked to stop as soon as the request has arrived.
    let (env, up) = seeded(100);
    env.server
        .with(|s| s.delay_refresh = Some(Duration::from_secs(2)));
    let p = start(&env, &up, &[]);
    let started = Instant::now();
    while env.server.refresh_requests() == 0 {
        assert!(started.elapsed() < Duration::from_secs(30), "no refresh");
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, err) = p.stop();
    assert!(status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let stored = env.stored("default").unwrap();
    assert!(
        stored.refresh_token.expose().starts_with("rt-gen1-"),
        "the rotation was stored before the proxy exited: {err}"
    );
    // The next refresh uses the rotated token: no new login needed.
    env.cmd()
        .args(["token", "--min-valid", "99999"])
        .assert()
        .success();
    assert_eq!(env.server.refresh_requests(), 2);
}

// ---- Issue 14: hardening, round three ----

/// Sends `request` as raw bytes and returns what came back before the proxy closed the
/// connection (or 5 s passed).
fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn status_of(response: &str) -> u16 {
    response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn only_get_post_and_head_are_forwarded_after_the_key() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    for method in [
        "TRACE", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECTX", "PROPFIND",
    ] {
        let with_key = raw(
            &p.addr(),
            format!("{method} /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&with_key), 405, "{method}: {with_key}");
        assert!(
            with_key
                .to_ascii_lowercase()
                .contains("allow: get, post, head"),
            "{with_key}"
        );
        let without = raw(
            &p.addr(),
            format!("{method} /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(
            status_of(&without),
            401,
            "{method}: the key first: {without}"
        );
    }
    assert!(
        up.seen().is_empty(),
        "nothing went upstream: {:?}",
        up.seen()
    );
    for method in ["GET", "HEAD", "POST"] {
        let r = raw(
            &p.addr(),
            format!("{method} /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&r), 200, "{method}: {r}");
    }
    assert_eq!(up.seen().len(), 3);
}

#[test]
fn a_reflecting_upstream_does_not_hand_the_token_to_the_client() {
    use base64::Engine as _;
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let r = raw(
        &p.addr(),
        format!("GET /v1/reflect HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&r), 302, "{r}");
    let lower = r.to_ascii_lowercase();
    for gone in ["location:", "x-echo-auth:", "x-pct:", "x-b64:", "x-b64url:"] {
        assert!(!lower.contains(gone), "{gone} was passed: {r}");
    }
    assert!(lower.contains("x-request-id: req-kept-0123"), "{r}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(SEED_ACCESS);
    assert!(
        !r.contains(SEED_ACCESS) && !r.contains(&b64[4..b64.len() - 4]),
        "{r}"
    );
    assert!(
        up.seen()[0]
            .header("authorization")
            .unwrap()
            .contains(SEED_ACCESS)
    );
    let (_, err) = p.stop();
    assert!(err.contains("carried the access token"), "{err}");
    assert!(!err.contains(SEED_ACCESS));
}

#[test]
fn doubled_or_oddly_cased_cross_site_headers_are_refused() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    for extra in [
        "Host: 127.0.0.1\r\nOrigin: NULL\r\n",
        "Host: 127.0.0.1\r\nOrigin: HTTPS://EVIL.EXAMPLE\r\n",
        "Host: 127.0.0.1\r\nOrigin: http://localhost\r\nOrigin: https://evil.example\r\n",
        "Host: 127.0.0.1\r\nHost: evil.example\r\n",
        "Host: [::1]evil\r\n",
        "Host: 127.0.0.1\r\nSec-Fetch-Site: same-origin\r\nSec-Fetch-Site: cross-site\r\n",
        "Host: 127.0.0.1\r\nSec-Fetch-Site: CROSS-SITE\r\n",
    ] {
        let r = raw(
            &p.addr(),
            format!("POST /v1/messages HTTP/1.1\r\n{extra}x-api-key: {key}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}").as_bytes(),
        );
        // hyper itself may refuse some shapes (400); never forwarded.
        let status = status_of(&r);
        assert!(status == 403 || status == 400, "{extra:?}: {r}");
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    // /health: loopback Host only.
    let port = p.addr().rsplit(':').next().unwrap().to_owned();
    for (host, want) in [
        ("evil.example".to_owned(), 403),
        (format!("evil.example:{port}"), 403),
        ("[::1]evil".to_owned(), 403),
        ("127.0.0.1".to_owned(), 200),
        (format!("localhost:{port}"), 200),
        (format!("[::1]:{port}"), 200),
    ] {
        let r = raw(
            &p.addr(),
            format!("GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(status_of(&r), want, "{host}: {r}");
    }
}

fn ipv6_loopback() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

#[test]
fn the_proxy_holds_both_loopback_addresses_and_refuses_a_squatter() {
    let (env, up) = seeded(3600);
    if !ipv6_loopback() {
        // SPEC §7: [::1] too "where the machine has it". Here it has not: the proxy still
        // starts, on 127.0.0.1 alone, and serves.
        let p = start(&env, &up, &[]);
        let (status, _) = health(&p.url);
        assert_eq!(status, 200);
        return;
    }
    let p = start(&env, &up, &[]);
    let port: u16 = p.addr().rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::TcpListener::bind(("::1", port)).is_err(),
        "[::1]:{port} is the proxy's too"
    );
    let r = raw(
        &format!("[::1]:{port}"),
        b"GET /health HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&r), 200, "{r}");
    drop(p);
    // A squatter on [::1]:PORT: the proxy refuses to start on PORT.
    let squatter = std::net::TcpListener::bind("[::1]:0").unwrap();
    let port = squatter.local_addr().unwrap().port().to_string();
    let out = proxy_cmd(&env, &up)
        .args(["proxy", "--port", &port])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("[::1]") && err.contains("another process"),
        "{err}"
    );
    assert!(!err.contains("export "), "never announced: {err}");
}

/// `--max-connections`: past the cap a new connection is closed at once, the ones open are
/// still answered, and once they go a new one is answered at once.
#[test]
fn connections_past_the_cap_are_closed_and_the_open_ones_still_answered() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &["--max-connections", "8"]);
    let addr = p.addr();
    let held: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut extra = TcpStream::connect(&addr).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let started = Instant::now();
    let _ = extra.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let mut buf = [0u8; 64];
    let n = extra.read(&mut buf).unwrap_or(0);
    assert_eq!(
        n,
        0,
        "closed without an answer: {:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    assert!(started.elapsed() < Duration::from_secs(2), "closed at once");
    // One of the held connections is answered.
    let mut first = held.into_iter().next().unwrap();
    first
        .write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    first
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = first.read_to_string(&mut answer);
    assert_eq!(status_of(&answer), 200, "{answer}");
    drop(first);
    // The rest close: a new request is answered at once.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let (status, _) = health(&p.url);
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    let (_, err) = p.stop();
    assert!(err.contains("--max-connections"), "{err}");
}

#[test]
fn idle_connections_stalled_bodies_and_a_silent_upstream_are_timed_out() {
    let (env, up) = seeded(3600);
    let p = start_with_env(
        &env,
        &up,
        &[],
        &[("KIMI_VAULT_TEST_PROXY_LIMITS_MS", "1500,1500,3000")],
    );
    let key = p.key.clone().unwrap();
    // Idle, and sending headers slowly: closed.
    for partial in [&b""[..], b"POST /v1/messages HTTP/1.1\r\nHost: 127"] {
        let mut s = TcpStream::connect(p.addr()).unwrap();
        s.write_all(partial).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let started = Instant::now();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_secs(6),
            "{partial:?}: closed after {took:?}"
        );
    }
    // Idle between keep-alive requests: closed too.
    let mut s = TcpStream::connect(p.addr()).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let took = started.elapsed();
    assert_eq!(status_of(&String::from_utf8_lossy(&out)), 200);
    assert!(
        took >= Duration::from_millis(1000) && took < Duration::from_secs(6),
        "keep-alive idle closed after {took:?}"
    );
    // A body that stalls: 408, and the connection goes.
    let mut s = TcpStream::connect(p.addr()).unwrap();
    s.write_all(format!("POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nContent-Length: 100\r\n\r\n{{\"a\":").as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert_eq!(status_of(&out), 408, "{out}");
    // An upstream that sends no headers in time: 504.
    let (status, body) = post(&p.url, "/v1/slow?ms=6000", Some(&key), "{}");
    assert_eq!(status, 504, "{body}");
}

fn start_with_env(env: &TestEnv, up: &Upstream, extra: &[&str], vars: &[(&str, &str)]) -> Running {
    START_ENV.with(|v| {
        *v.borrow_mut() = vars
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    });
    let p = start(env, up, extra);
    START_ENV.with(|v| v.borrow_mut().clear());
    p
}

thread_local! {
    static START_ENV: std::cell::RefCell<Vec<(String, String)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Polls `f` every 100 ms until it returns true or `limit` passes; how long it took.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if f() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

#[test]
fn a_running_proxy_follows_logout_login_and_a_rotated_client_key_within_5_s() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    assert_eq!(post(&p.url, "/v1/messages", Some(&key), "{}").0, 200);

    // Logout in another process: 403 permission_error naming the fix, in each dialect, never
    // the token held in memory, never 503.
    env.cmd().arg("logout").assert().success();
    let took = within(Duration::from_secs(5), || {
        post(&p.url, "/v1/messages", Some(&key), "{}").0 == 403
    });
    assert!(took.is_some(), "still served after a logout");
    let before = up.seen().len();
    for _ in 0..5 {
        let (status, body) = post(&p.url, "/v1/messages", Some(&key), "{}");
        assert_eq!(status, 403, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "permission_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("kimi-vault login")
        );
        let (status, body) = post(&p.url, "/v1/chat/completions", Some(&key), "{}");
        assert_eq!(status, 403, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"]["type"], "permission_error");
        assert!(
            v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("kimi-vault login")
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        up.seen().len(),
        before,
        "nothing went upstream after the logout"
    );

    // A new login (another token; here also another client key, as a rotation by another
    // process would make): served within 5 s, with the new token and the new key only.
    let new_key = "kvp-rotated-by-another-process-0123456789abcdef";
    let mut cred = credential(
        "at-after-login-0123456789abcdef",
        "rt-after-login-0123456789",
        3600,
    );
    cred.proxy_client_key = Some(kimi_vault::SecretString::from(new_key));
    env.store("default", &cred);
    let took = within(Duration::from_secs(5), || {
        post(&p.url, "/v1/messages", Some(new_key), "{}").0 == 200
    });
    assert!(took.is_some(), "the new login and key were not followed");
    assert_eq!(
        post(&p.url, "/v1/messages", Some(&key), "{}").0,
        401,
        "the old key is refused"
    );
    let last = up.seen().pop().unwrap();
    assert_eq!(
        last.header("authorization"),
        Some("Bearer at-after-login-0123456789abcdef")
    );
    let (_, err) = p.stop();
    assert!(
        err.contains("logged out") && err.contains("changed by another process"),
        "{err}"
    );
    assert!(!err.contains(new_key) && !err.contains(SEED_ACCESS));
}

#[test]
fn shutdown_ends_a_long_event_stream_with_a_final_error_event() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let url = p.url.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        runtime().block_on(async {
            use futures_util::StreamExt;
            let resp = client()
                .post(format!("{url}/v1/sse?n=200&gap=200"))
                .header("x-api-key", key)
                .send()
                .await
                .unwrap();
            let mut stream = resp.bytes_stream();
            let mut all = String::new();
            while let Some(Ok(chunk)) = stream.next().await {
                all.push_str(&String::from_utf8_lossy(&chunk));
                let _ = tx.send(());
            }
            all
        })
    });
    rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let started = Instant::now();
    let (status, err) = p.stop();
    assert!(status.success(), "{err}");
    let all = reader.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(16));
    let last = all.trim_end().rsplit("\n\n").next().unwrap_or_default();
    assert!(
        last.starts_with("event: error"),
        "ends with an error event: {last:?}"
    );
    assert!(last.contains("stopping"), "{last}");
    assert!(
        all.matches("data: {\"i\"").count() > 10,
        "it ran for a few seconds first"
    );
}

#[test]
fn a_request_path_is_escaped_in_the_log() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let mut request =
        b"GET /v1/models\xe2\x80\xaetxt.exe\x1b[2J HTTP/1.1\r\nHost: 127.0.0.1\r\n".to_vec();
    request.extend_from_slice(format!("x-api-key: {key}\r\nConnection: close\r\n\r\n").as_bytes());
    let _ = raw(&p.addr(), &request);
    let _ = raw(
        &p.addr(),
        b"GET /nope\xe2\x80\xae HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    let (_, err) = p.stop();
    assert!(
        !err.contains('\u{202e}') && !err.contains('\u{1b}'),
        "{err:?}"
    );
    assert!(
        err.contains("\\u{202e}"),
        "the line is there, escaped: {err}"
    );
}

#[test]
fn ready_is_announced_only_after_the_first_token_read() {
    // The stored token has run out and the refresh is slow: `ready` waits for it, so a
    // `proxy --check` right after never sees a start-up state.
    let (env, up) = seeded(-10);
    env.server
        .with(|s| s.delay_refresh = Some(Duration::from_millis(1500)));
    let started = Instant::now();
    let p = start(&env, &up, &[]);
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "ready before the token"
    );
    let port = p.addr().rsplit(':').next().unwrap().to_owned();
    let out = env
        .cmd()
        .args(["proxy", "--check", "--json", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(env.server.refresh_requests(), 1);
}

#[test]
fn proxy_check_escapes_what_the_port_holder_wrote() {
    // Anyone holding the port can answer /health: its fields reach the terminal escaped.
    let env = TestEnv::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 2048];
        let _ = s.read(&mut buf);
        let body = r#"{"status":"ok\u001b]52;c;aGVsbG8=\u0007","error":"x\u009b31m\u202eevil\u007f","requests":1}"#;
        let _ = s.write_all(
            format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).as_bytes(),
        );
    });
    let out = env
        .cmd()
        .args(["proxy", "--check", "--port", &port])
        .output()
        .unwrap();
    server.join().unwrap();
    // The result line is on stdout (SPEC §3 streams), diagnostics on stderr: neither raw.
    let err = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for bad in ['\u{1b}', '\u{7}', '\u{9b}', '\u{202e}', '\u{7f}'] {
        assert!(!err.contains(bad), "{bad:?} reached the terminal: {err:?}");
    }
    assert!(err.contains("\\x1b]52"), "{err}");
}

/// The open descriptors and resident memory (KiB) of process `pid`.
fn fds_and_rss(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

/// Issue 14 item 1, measured (figures printed, nothing timed asserted):
/// `cargo test --features testing --test proxy -- --ignored --nocapture measure_3000_idle`.
/// With `KIMI_VAULT_MEASURE_BIN=/path/to/kimi-vault` it measures that build instead (the one
/// before the fix, for the before/after figures).
#[test]
#[ignore]
fn measure_3000_idle_connections() {
    raise_open_files_limit();
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let pid = p.child.id();
    let (fds0, rss0) = fds_and_rss(pid);
    let started = Instant::now();
    let held: Vec<TcpStream> = (0..3000)
        .filter_map(|_| TcpStream::connect(p.addr()).ok())
        .collect();
    let opened = started.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let (fds1, rss1) = fds_and_rss(pid);
    // A request on a new connection while they are held.
    let started = Instant::now();
    let during = runtime().block_on(async {
        tokio::time::timeout(
            Duration::from_secs(10),
            client().get(format!("{}/health", p.url)).send(),
        )
        .await
    });
    let during = match during {
        Ok(Ok(r)) => format!("HTTP {}", r.status().as_u16()),
        Ok(Err(_)) => "connection closed".to_owned(),
        Err(_) => "no answer in 10 s".to_owned(),
    };
    let during_ms = started.elapsed().as_millis();
    let n = held.len();
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let (status, _) = health(&p.url);
    let after_ms = started.elapsed().as_millis();
    let (fds2, rss2) = fds_and_rss(pid);
    println!(
        "MEASURE {n} idle connections opened in {} ms: proxy fds {fds0} -> {fds1} (held) -> {fds2} (closed); RSS {} MB -> {} MB -> {} MB; a new request while held: {during} after {during_ms} ms; after they closed: HTTP {status} in {after_ms} ms",
        opened.as_millis(),
        rss0 / 1024,
        rss1 / 1024,
        rss2 / 1024,
    );
}

#[test]
fn upstream_403_passes_through_with_a_log_line_that_explains_it() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let (status, body) = post(&p.url, "/v1/status?code=403", Some(&key), "{}");
    assert_eq!(status, 403);
    assert!(body.contains("status 403"), "the upstream body: {body}");
    assert_eq!(env.server.refresh_requests(), 0);
    let (_, err) = p.stop();
    assert!(
        err.contains("access_terminated_error") && err.contains("coding agent"),
        "403 is explained in the log: {err}"
    );
}

/// The environment `exec --proxy --for X` gives CMD (SPEC §7), as JSON.
fn exec_proxy_env(
    env: &TestEnv,
    up: &Upstream,
    args: &[&str],
    extra: &[(&str, &str)],
) -> (std::process::Output, serde_json::Value) {
    let mut cmd = proxy_cmd(env, up);
    cmd.envs(extra.iter().copied())
        .args(["exec", "--proxy"])
        .args(args)
        .args([
            "--",
            "python3",
            "-c",
            "import json, os; print(json.dumps(dict(os.environ)))",
        ]);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = serde_json::from_slice(&out.stdout).unwrap();
    (out, v)
}

#[test]
fn exec_proxy_sets_exactly_the_variables_each_client_reads() {
    let (env, up) = seeded(3600);
    let stale = [
        ("ANTHROPIC_API_KEY", "stale-api-key"),
        ("ANTHROPIC_AUTH_TOKEN", "stale-auth-token"),
        ("NO_PROXY", "corp.example"),
        ("KIMI_MODEL_MAX_CONTEXT_SIZE", "1"),
    ];
    // claude: ANTHROPIC_BASE_URL without /v1, ANTHROPIC_AUTH_TOKEN = the one-time key, no
    // ANTHROPIC_API_KEY; NO_PROXY keeps its value and gains loopback, no_proxy gets loopback.
    let (_, v) = exec_proxy_env(&env, &up, &[], &stale);
    let url = v["ANTHROPIC_BASE_URL"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with("/v1"),
        "{url}"
    );
    let key = v["ANTHROPIC_AUTH_TOKEN"].as_str().unwrap().to_owned();
    assert!(
        key.starts_with("kvp-") || key.len() >= 32,
        "a client key: {key}"
    );
    assert_ne!(key, "stale-auth-token");
    assert!(v.get("ANTHROPIC_API_KEY").is_none(), "{v}");
    assert_eq!(v["NO_PROXY"], "corp.example,127.0.0.1,localhost,::1");
    assert_eq!(v["no_proxy"], "127.0.0.1,localhost,::1");
    // kimi: kimi-cli's and kimi-code's variables, the model from /models.
    let (_, v) = exec_proxy_env(&env, &up, &["--for", "kimi"], &stale);
    // kimi-vault reads KIMI_CODE_BASE_URL as its own API base override: the marker tells a
    // kimi-vault inside CMD that this value is the proxy's URL for kimi-cli, not an override.
    assert_eq!(v["KIMI_VAULT_EXEC_PROXY_URL"], v["KIMI_CODE_BASE_URL"]);
    let url = v["KIMI_BASE_URL"].as_str().unwrap().to_owned();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/v1"),
        "{url}"
    );
    assert_eq!(v["KIMI_CODE_BASE_URL"], url.as_str());
    assert_eq!(v["KIMI_MODEL_BASE_URL"], url.as_str());
    let key = v["KIMI_API_KEY"].as_str().unwrap().to_owned();
    assert_eq!(v["KIMI_MODEL_API_KEY"], key.as_str());
    assert_eq!(v["KIMI_MODEL_NAME"], "kimi-for-coding");
    assert_eq!(v["KIMI_MODEL_PROVIDER_TYPE"], "kimi");
    assert_eq!(v["KIMI_MODEL_MAX_CONTEXT_SIZE"], "262144");
    assert_eq!(v["NO_PROXY"], "corp.example,127.0.0.1,localhost,::1");
    // The Anthropic variables are left as they were for other clients.
    assert_eq!(v["ANTHROPIC_API_KEY"], "stale-api-key");
    // --model: that model; one Kimi does not list gets no context size.
    let (out, v) = exec_proxy_env(
        &env,
        &up,
        &["--for", "kimi", "--model", "kimi-k2-unlisted"],
        &stale,
    );
    assert_eq!(v["KIMI_MODEL_NAME"], "kimi-k2-unlisted");
    assert!(v.get("KIMI_MODEL_MAX_CONTEXT_SIZE").is_none(), "{v}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("kimi-k2-unlisted"));
    let (_, v) = exec_proxy_env(
        &env,
        &up,
        &["--for", "kimi", "--model", "kimi-for-coding"],
        &[],
    );
    assert_eq!(v["KIMI_MODEL_MAX_CONTEXT_SIZE"], "262144");
    // The model list cannot be had (Kimi answers 400): CMD still runs, without a model name.
    up.with(|s| s.models_status = Some(400));
    let (out, v) = exec_proxy_env(&env, &up, &["--for", "kimi"], &[]);
    assert!(v.get("KIMI_MODEL_NAME").is_none(), "{v}");
    assert!(v["KIMI_API_KEY"].as_str().is_some());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--model"));
    up.with(|s| s.models_status = None);
    // openai.
    let (_, v) = exec_proxy_env(&env, &up, &["--for", "openai"], &[]);
    assert!(v["OPENAI_BASE_URL"].as_str().unwrap().ends_with("/v1"));
    assert!(v["OPENAI_API_KEY"].as_str().is_some());
    assert_eq!(v["NO_PROXY"], "127.0.0.1,localhost,::1");
    assert_eq!(v["no_proxy"], "127.0.0.1,localhost,::1");
    // --model is for --for kimi.
    proxy_cmd(&env, &up)
        .args(["exec", "--proxy", "--model", "x", "--", "true"])
        .output()
        .map(|o| assert_eq!(o.status.code(), Some(2)))
        .unwrap();
}

#[test]
fn exec_proxy_for_claude_warns_when_claude_settings_would_bypass_it() {
    let (env, up) = seeded(3600);
    let dir = env.dir.path().join("claude-config");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("settings.json"),
        r#"{"env":{"ANTHROPIC_BASE_URL":"https://api.kimi.com/coding"}}"#,
    )
    .unwrap();
    let out = proxy_cmd(&env, &up)
        .env("CLAUDE_CONFIG_DIR", &dir)
        .args(["exec", "--proxy", "--", "true"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("settings.json")
            && err.contains("ANTHROPIC_BASE_URL")
            && err.contains("bypass"),
        "{err}"
    );
    // Without such settings: no warning.
    std::fs::write(dir.join("settings.json"), r#"{"model":"opus"}"#).unwrap();
    let out = proxy_cmd(&env, &up)
        .env("CLAUDE_CONFIG_DIR", &dir)
        .args(["exec", "--proxy", "--", "true"])
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stderr).contains("bypass"));
}

/// Issue 14 item 5, measured: what a warm request costs (sequential requests on one keep-alive
/// connection, p50 and mean), to compare builds with `KIMI_VAULT_MEASURE_BIN` (figures only).
#[test]
#[ignore]
fn measure_warm_requests() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let url = p.url.clone();
    let mut times: Vec<u128> = runtime().block_on(async {
        let c = client();
        let mut times = Vec::new();
        for i in 0..2200 {
            let started = Instant::now();
            let r = c
                .get(format!("{url}/v1/models"))
                .header("x-api-key", &key)
                .send()
                .await
                .unwrap();
            let _ = r.bytes().await.unwrap();
            if i >= 200 {
                times.push(started.elapsed().as_micros());
            }
        }
        times
    });
    times.sort_unstable();
    let mean = times.iter().sum::<u128>() / times.len() as u128;
    println!(
        "MEASURE warm GET /v1/models through the proxy, 2,000 sequential requests: p50 {} us, p90 {} us, mean {mean} us",
        times[times.len() / 2],
        times[times.len() * 9 / 10]
    );
}

#[test]
fn a_login_to_another_region_moves_the_running_proxy_with_it() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    assert_eq!(post(&p.url, "/v1/messages", Some(&key), "{}").0, 200);
    let mut cred = credential("at-global-0123456789abcdef", "rt-global-0123456789", 3600);
    cred.region = "global".into();
    cred.proxy_client_key = Some(kimi_vault::SecretString::from(key.as_str()));
    env.store("default", &cred);
    let took = within(Duration::from_secs(5), || {
        post(&p.url, "/v1/messages", Some(&key), "{}");
        up.seen()
            .last()
            .and_then(|s| s.header("authorization").map(str::to_owned))
            == Some("Bearer at-global-0123456789abcdef".to_owned())
    });
    assert!(took.is_some(), "the new login was not followed");
    let (_, err) = p.stop();
    // The API base override applies to every region here, so the base is the same one; the
    // proxy says which region it now serves.
    assert!(err.contains("region 'global'"), "{err}");
}

/// The body of a raw response, as JSON.
fn json_body(response: &str) -> serde_json::Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {response}"))
}

/// Asserts `v` is the error shape of `openai` (OpenAI's) or Anthropic's, of `kind`.
fn assert_shape(v: &serde_json::Value, openai: bool, kind: &str) {
    assert_eq!(v["error"]["type"], kind, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    if openai {
        assert!(v.get("type").is_none(), "OpenAI's shape: {v}");
    } else {
        assert_eq!(v["type"], "error", "Anthropic's shape: {v}");
    }
}

#[test]
fn the_proxys_own_answers_speak_the_clients_dialect_and_an_unreachable_kimi_is_a_502() {
    let (env, up) = seeded(3600);
    let p = start(&env, &up, &[]);
    let key = p.key.clone().unwrap();
    let ask = |method: &str, path: &str, key: Option<&str>| {
        let key = key
            .map(|k| format!("x-api-key: {k}\r\n"))
            .unwrap_or_default();
        raw(
            &p.addr(),
            format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{key}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    };
    for (path, openai) in [("/v1/chat/completions", true), ("/v1/messages", false)] {
        let r = ask("POST", path, None);
        assert_eq!(status_of(&r), 401, "{r}");
        assert_shape(&json_body(&r), openai, "authentication_error");
        let r = ask("PUT", path, Some(&key));
        assert_eq!(status_of(&r), 405, "{r}");
        assert_shape(&json_body(&r), openai, "invalid_request_error");
    }
    // A base URL without /v1: a 404 in the dialect of the path asked.
    for (path, openai) in [("/chat/completions", true), ("/messages", false)] {
        let r = ask("POST", path, Some(&key));
        assert_eq!(status_of(&r), 404, "{r}");
        assert_shape(&json_body(&r), openai, "not_found_error");
    }
    assert!(up.seen().is_empty(), "{:?}", up.seen());
    drop(p);

    // Nothing listens at the API base: 502 (not 504), in the client's dialect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}/coding/v1");
    let p = start_with_env(&env, &up, &[], &[("KIMI_CODE_BASE_URL", &dead)]);
    let key = p.key.clone().unwrap();
    for (path, openai) in [("/v1/chat/completions", true), ("/v1/messages", false)] {
        let (status, body) = post(&p.url, path, Some(&key), "{}");
        assert_eq!(status, 502, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_shape(&v, openai, "api_error");
        assert!(body.contains("cannot reach Kimi"), "{body}");
        assert!(!body.contains(SEED_ACCESS), "{body}");
    }
}

/// A loopback https server for `localhost` with a certificate of the test CA
/// (tests/it/fixtures/tls, made for tests only, valid for 100 years) that answers every request
/// with the `Authorization` it got; its port.
fn https_upstream() -> u16 {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/tls");
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(dir.join("localhost.pem"))
            .unwrap()
            .map(Result::unwrap)
            .collect();
    let key = PrivateKeyDer::from_pem_file(dir.join("localhost.key")).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(|req: hyper::Request<_>| async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_owned();
                        let body = serde_json::json!({"authorization": auth}).to_string();
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
    });
    port
}

#[test]
fn an_https_upstream_is_verified_against_the_os_trust_store() {
    // The test CA is trusted through the OS trust store's own override (SSL_CERT_FILE, read by
    // rustls-platform-verifier's loader on Linux); the name `localhost` goes through the system
    // resolver.
    let (env, up) = seeded(3600);
    let port = https_upstream();
    let base = format!("https://localhost:{port}/coding/v1");
    let ca = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures/tls/ca.pem");
    let ca = ca.to_str().unwrap();
    let p = start_with_env(
        &env,
        &up,
        &[],
        &[("KIMI_CODE_BASE_URL", &base), ("SSL_CERT_FILE", ca)],
    );
    let key = p.key.clone().unwrap();
    for path in ["/v1/messages", "/v1/chat/completions"] {
        let (status, body) = post(&p.url, path, Some(&key), "{}");
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            v["authorization"],
            format!("Bearer {SEED_ACCESS}"),
            "{body}"
        );
    }
    drop(p);
    // Without the CA in the trust store: refused (502), nothing accepted.
    let p = start_with_env(&env, &up, &[], &[("KIMI_CODE_BASE_URL", &base)]);
    let (status, body) = post(&p.url, "/v1/messages", p.key.as_deref(), "{}");
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("cannot reach Kimi"), "{body}");
    assert!(!body.contains(SEED_ACCESS), "{body}");
}
