//! The proxy's upstream client, measured on its own (issue 15): reqwest (what the proxy used
//! until round three) against hyper-util's legacy client (what reqwest is built on, and what the
//! proxy uses now, built the same way), each sending the same GETs to
//! a local upstream over kept-alive connections, 64 at a time, on a two-worker runtime like the
//! proxy's. Prints requests per second and CPU per request (this process's user + system time).
//! `bench_upstream_clients URL [REQUESTS, default 40000]` (loopback only).

use std::sync::Arc;
use std::time::Instant;

use http_body_util::{BodyExt, Empty};

/// This process's CPU time so far, in clock ticks (/proc/self/stat: utime + stime).
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15; after the ')' they are the 12th and 13th.
    field(11) + field(12)
}

async fn measure<F, Fut>(name: &str, requests: usize, one: F)
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let one = Arc::new(one);
    let started = Instant::now();
    let cpu = cpu_ticks();
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let one = one.clone();
            tokio::spawn(async move {
                let mut ok = 0usize;
                for _ in 0..requests / 64 {
                    ok += usize::from(one().await);
                }
                ok
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        ok += t.await.unwrap_or(0);
    }
    let wall = started.elapsed().as_secs_f64();
    let ticks = (cpu_ticks() - cpu) as f64;
    println!(
        "{name:<22} {ok} ok, {:.0} req/s, {:.1} µs CPU per request (client side)",
        ok as f64 / wall,
        ticks * 10_000.0 / ok.max(1) as f64
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .expect("usage: bench_upstream_clients URL [REQUESTS]");
    let requests: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(40_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let reqwest_client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .no_proxy()
            .build()
            .expect("reqwest client");
        let u = reqwest::Url::parse(&url).expect("URL");
        measure("reqwest", requests, move || {
            let (c, u) = (reqwest_client.clone(), u.clone());
            async move {
                match c.get(u).send().await {
                    Ok(r) => r.bytes().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
        // As the proxy builds it (src/proxy/upstream.rs): the rustls connector in front of the
        // plain one (http passes through it), nodelay, a pool timer.
        let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let hyper_client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_max_idle_per_host(256)
                .build::<_, Empty<bytes::Bytes>>(https);
        let uri: hyper::Uri = url.parse().expect("URI");
        measure("hyper-util legacy", requests, move || {
            let (c, uri) = (hyper_client.clone(), uri.clone());
            async move {
                match c.get(uri).await {
                    Ok(r) => r.into_body().collect().await.is_ok(),
                    Err(_) => false,
                }
            }
        })
        .await;
    });
}
