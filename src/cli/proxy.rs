//! `kimi-vault proxy`: the local token-injecting reverse proxy, and `proxy --check`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use kimi_vault::proxy::{Proxy, ProxyOptions, check_health};
use kimi_vault::sanitize::for_terminal;

use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::output::resln;
use crate::cli::{Ctx, output};

/// `proxy`'s options.
#[derive(Debug, clap::Args)]
pub(crate) struct ProxyArgs {
    /// Address to listen on (a loopback address unless --allow-remote).
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: String,
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = kimi_vault::proxy::DEFAULT_PORT, value_name = "PORT")]
    port: u16,
    /// Let clients in without the proxy's client key (loopback only; a warning is printed).
    #[arg(long)]
    no_client_key: bool,
    /// Allow a non-loopback --bind (anyone who reaches it and has the client key uses your
    /// Kimi account).
    #[arg(long)]
    allow_remote: bool,
    /// Ask a running proxy's /health instead of starting one; exit 0 when it is healthy.
    #[arg(long)]
    check: bool,
    /// At most this many open client connections; past it a new one is closed at once.
    #[arg(long, default_value_t = kimi_vault::proxy::DEFAULT_MAX_CONNECTIONS as u32, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    max_connections: u32,
}

fn parse_bind(bind: &str) -> Result<IpAddr, Failure> {
    if bind.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    bind.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|_| {
            Failure::Usage(format!(
                "--bind takes an IP address (such as 127.0.0.1 or ::1), not '{}'",
                bind.escape_default()
            ))
        })
}

/// What a proxy's client reads when the profile needs a login. The profile is always named:
/// a bare `kimi-vault login` logs in the persisted default profile (`profiles use`), which need
/// not be the one the proxy serves.
pub(crate) fn login_hint(profile: &str) -> String {
    format!("run `kimi-vault login --profile {profile}`")
}

/// A multi-thread runtime with two workers: the proxy's I/O.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("proxy")
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the async runtime: {e}")))
}

/// Raises the soft limit of open files to the hard limit: every client connection is a file
/// descriptor, and 1,024 idle clients must not lock the next one out.
pub(crate) fn raise_open_files_limit() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        if limit.current < limit.maximum {
            let raised = rustix::process::Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_err() {
                tracing::debug!("could not raise the open-files limit");
            }
        }
    }
}

/// Registers for SIGINT, SIGTERM and SIGHUP now (so that one arriving right after the ready line is
/// caught, not fatal) and returns a future that completes at the first of them. Call inside
/// the runtime.
pub(crate) fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let streams = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        );
        async move {
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = streams else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = int.recv() => {}
                _ = term.recv() => {}
                _ = hup.recv() => {}
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs `proxy` (or `proxy --check`).
pub(crate) fn run(ctx: &Ctx, args: &ProxyArgs) -> CmdResult {
    let ip = parse_bind(&args.bind)?;
    if args.check {
        return check(ctx, ip, args.port);
    }
    if !ip.is_loopback() && !args.allow_remote {
        return Err(Failure::Usage(format!(
            "refusing to listen on {ip}: it is not a loopback address, and anyone who can reach it could use your Kimi account. Add --allow-remote if you mean it"
        )));
    }
    if args.allow_remote && args.no_client_key {
        return Err(Failure::Usage(
            "--allow-remote cannot be combined with --no-client-key: a proxy reachable from other machines must check the client key".into(),
        ));
    }
    let key = if args.no_client_key {
        tracing::warn!(
            "--no-client-key: every local user and every local program can use your Kimi account through this proxy"
        );
        None
    } else {
        Some(ctx.session.proxy_client_key()?)
    };
    if !ip.is_loopback() {
        tracing::warn!(
            "listening on {ip}, which is NOT a loopback address: every machine that can reach it and knows the client key can use your Kimi account, and the key crosses the network in plain HTTP (no TLS)"
        );
    }
    raise_open_files_limit();
    let runtime = runtime()?;
    let served = runtime.block_on(async {
        let stop = stop_signal();
        let options = ProxyOptions {
            key_in_vault: key.is_some(),
            client_key: key.clone(),
            max_connections: args.max_connections as usize,
            login_hint: Some(login_hint(ctx.profile())),
            ..ProxyOptions::default()
        };
        let proxy = Proxy::bind(ctx.session.clone(), SocketAddr::new(ip, args.port), options).await?;
        let url = format!("http://{}", proxy.local_addr()?);
        if ctx.json {
            print_ready(&url, key.as_ref());
        }
        eprintln!(
            "kimi-vault proxy for profile '{}' listening on {url} (Ctrl-C to stop). For Anthropic-compatible clients:",
            ctx.profile()
        );
        eprintln!("export ANTHROPIC_BASE_URL={url}");
        // ANTHROPIC_AUTH_TOKEN, not ANTHROPIC_API_KEY: with it, Claude Code asks no question
        // about "a custom API key" (SPEC §7).
        match &key {
            Some(k) => eprintln!("export ANTHROPIC_AUTH_TOKEN={}", k.expose()),
            None => eprintln!("export ANTHROPIC_AUTH_TOKEN=any-value"),
        }
        proxy.serve(stop).await
    });
    // Blocking threads still waiting for the vault lock send nothing any more (the session
    // stopped refreshing): they need not be waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served.map_err(|e| busy_port_hint(e, args.port))?;
    eprintln!("kimi-vault proxy stopped.");
    Ok(exit::OK)
}

/// A port already taken gets the next steps: ask what listens there, or take another port.
fn busy_port_hint(e: kimi_vault::Error, port: u16) -> Failure {
    match &e {
        kimi_vault::Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse => {
            Failure::Other(format!(
                "{e}. Another program listens there: `kimi-vault proxy --check --port {port}` tells whether it is a kimi-vault proxy and which profile it serves (then use it, or stop it); or start this one on another port with `--port N` (`--port 0` picks a free one)"
            ))
        }
        _ => Failure::Lib(e),
    }
}

/// `proxy --check`: exit 0 when the proxy answers and has a token, 3 when it needs a login,
/// 1 otherwise.
fn check(ctx: &Ctx, ip: IpAddr, port: u16) -> CmdResult {
    let ip = if ip.is_unspecified() {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        ip
    };
    let addr = SocketAddr::new(ip, port);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Other(format!("cannot start the async runtime: {e}")))?;
    // Nothing answering is this command's "unhealthy" (exit 1), not Kimi's service failing.
    let health = runtime
        .block_on(check_health(addr))
        .map_err(|e| Failure::Other(e.to_string()))?;
    if ctx.json {
        output::json_line(&health.body);
    }
    let state = health.body["status"].as_str().unwrap_or("unknown");
    let expires = health.body["token_expires_in"]
        .as_i64()
        .map(|s| format!(", token expires {}", output::relative(s)))
        .unwrap_or_default();
    let uptime = health.body["uptime"]
        .as_u64()
        .map(|s| format!(", up {}", output::span(s)))
        .unwrap_or_default();
    let requests = health.body["requests"].as_u64().unwrap_or(0);
    let error = health.body["error"]
        .as_str()
        .map(|e| format!(": {}", kimi_vault::sanitize::for_terminal(e)))
        .unwrap_or_default();
    let served = health.body["profile"].as_str();
    let served_text = served
        .map(|p| format!(" (profile '{}')", kimi_vault::sanitize::for_terminal(p)))
        .unwrap_or_default();
    let requests = match requests {
        1 => "1 request".to_owned(),
        n => format!("{n} requests"),
    };
    resln!(
        ctx.json,
        "proxy at {addr}{served_text}: {}{expires}{uptime}, {requests}{error}",
        for_terminal(state)
    );
    // A healthy proxy of another profile is not the one asked for (SPEC §3).
    if let Some(served) = served
        && served != ctx.profile()
    {
        eprintln!(
            "kimi-vault: error: the proxy at {addr} serves profile '{}', not '{}': stop it and start `kimi-vault{} proxy`, or check another port with `--port N`",
            kimi_vault::sanitize::for_terminal(served),
            ctx.profile(),
            crate::cli::failure::profile_flag(ctx.profile())
        );
        return Ok(exit::FAILURE);
    }
    Ok(match (health.status, state) {
        (200, "ok") => exit::OK,
        (_, "login_required") => exit::LOGIN_REQUIRED,
        _ => exit::FAILURE,
    })
}

/// `proxy --json`'s line once it listens (SPEC §7). `api_key` is borrowed from the vault's
/// `SecretString` (null with `--no-client-key`).
#[derive(serde::Serialize)]
struct ReadyJson<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
    api_key: Option<&'a str>,
}

/// Prints the ready line: the client key serialized into a buffer wiped on drop, one write (a
/// failed write is remembered, as for every JSON line).
fn print_ready(url: &str, key: Option<&kimi_vault::SecretString>) {
    let api_key = key.map(|k| k.expose());
    let ready = ReadyJson {
        kind: "ready",
        url,
        api_key,
    };
    // The worst case: every character escaped as \uXXXX (6 bytes), and the keys.
    let room = (url.len() + api_key.map_or(0, str::len)) * 6 + 64;
    let line = output::wiped_json_line(&ready, room).expect("a command's output serializes");
    output::write_stdout_or_remember(&line);
}
