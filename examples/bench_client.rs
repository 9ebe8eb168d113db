//! Measuring clients for `scripts/bench-proxy.sh` (loopback only).
//!
//! - `bench_client sse-latency URL KEY ROUNDS`: ROUNDS event streams from `URL/sse`; for every
//!   event, how long it took from the moment the upstream sent it (CLOCK_MONOTONIC, stamped
//!   in the event) to its arrival here. Prints p50, p99 and max in microseconds.
//! - `bench_client streams HOST:PORT PATH KEY N`: opens N connections, leaves them idle for
//!   2 s, then asks for an event stream on every one at once; prints how many completed.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn now_ns() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

fn percentile(sorted: &[u128], p: f64) -> u128 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Reads one HTTP/1.1 response with a chunked event stream, until its last chunk; the
/// arrival time of every `"t":` stamp.
async fn read_events(stream: &mut tokio::net::TcpStream) -> Vec<u128> {
    let mut seen = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut text = String::new();
    loop {
        let n = stream.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        let arrived = now_ns();
        let chunk = String::from_utf8_lossy(&buf[..n]);
        for part in chunk.split("\"t\":").skip(1) {
            let digits: String = part.chars().take_while(|c| c.is_ascii_digit()).collect();
            if let Ok(sent) = digits.parse::<u128>() {
                seen.push(arrived.saturating_sub(sent));
            }
        }
        text.push_str(&chunk);
        if text.ends_with("\r\n0\r\n\r\n") {
            break;
        }
    }
    seen
}

async fn request(addr: &str, path: &str, key: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {key}\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    s
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match args.get(1).map(String::as_str) {
        Some("sse-latency") => {
            let (addr, path, key, rounds) = (
                &args[2],
                &args[3],
                &args[4],
                args[5].parse::<usize>().unwrap(),
            );
            let mut all = rt.block_on(async {
                let mut all = Vec::new();
                for _ in 0..rounds {
                    let mut s = request(addr, path, key).await;
                    all.extend(read_events(&mut s).await);
                }
                all
            });
            all.sort();
            println!(
                "events={} p50_us={:.1} p99_us={:.1} max_us={:.1}",
                all.len(),
                percentile(&all, 0.5) as f64 / 1000.0,
                percentile(&all, 0.99) as f64 / 1000.0,
                *all.last().unwrap() as f64 / 1000.0
            );
        }
        Some("streams") => {
            let (addr, path, key, n) = (
                args[2].clone(),
                args[3].clone(),
                args[4].clone(),
                args[5].parse::<usize>().unwrap(),
            );
            let started = Instant::now();
            let done = rt.block_on(async move {
                let mut conns = Vec::new();
                for _ in 0..n {
                    let s = tokio::net::TcpStream::connect(&addr).await.unwrap();
                    s.set_nodelay(true).unwrap();
                    conns.push(s);
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                let tasks: Vec<_> = conns
                    .into_iter()
                    .map(|mut s| {
                        let (addr, path, key) = (addr.clone(), path.clone(), key.clone());
                        tokio::spawn(async move {
                            let req = format!(
                                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nx-api-key: {key}\r\n\r\n"
                            );
                            s.write_all(req.as_bytes()).await.unwrap();
                            read_events(&mut s).await.len()
                        })
                    })
                    .collect();
                let mut events = Vec::new();
                for t in tasks {
                    events.push(t.await.unwrap());
                }
                events
            });
            let complete = done.iter().filter(|&&e| e > 0 && e == done[0]).count();
            println!(
                "streams={n} complete={complete} events_each={} seconds={:.2}",
                done[0],
                started.elapsed().as_secs_f64()
            );
        }
        _ => panic!("usage: bench_client sse-latency|streams …"),
    }
}
