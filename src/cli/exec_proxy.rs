//! `kimi-vault exec --proxy [--for claude|kimi|openai] -- CMD`: a private proxy on a random
//! loopback port with a one-time client key, for the lifetime of CMD.

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use kimi_vault::proxy::{Proxy, ProxyOptions};

use crate::cli::Ctx;
use crate::cli::failure::{CmdResult, Failure};
use crate::cli::proxy::runtime;

/// Which client CMD is: which variables it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ForClient {
    /// Claude Code and Anthropic SDKs: ANTHROPIC_BASE_URL, ANTHROPIC_API_KEY.
    Claude,
    /// kimi-cli: KIMI_BASE_URL (with /v1), KIMI_API_KEY.
    Kimi,
    /// OpenAI SDKs and most other tools: OPENAI_BASE_URL (with /v1), OPENAI_API_KEY.
    Openai,
}

impl ForClient {
    /// The (base URL, API key) variables, and the base for a proxy at `url`.
    pub(crate) fn variables(self, url: &str) -> (&'static str, &'static str, String) {
        match self {
            ForClient::Claude => ("ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY", url.to_owned()),
            ForClient::Kimi => ("KIMI_BASE_URL", "KIMI_API_KEY", format!("{url}/v1")),
            ForClient::Openai => ("OPENAI_BASE_URL", "OPENAI_API_KEY", format!("{url}/v1")),
        }
    }
}

/// The exit code of a finished child: its own, or 128 + the signal that killed it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    if let Some(code) = status.code() {
        return code as u8;
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return 128u8.wrapping_add(signal as u8);
        }
    }
    crate::cli::failure::exit::FAILURE
}

/// SIGTERM, SIGHUP and SIGINT, registered before CMD starts.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    /// Call inside the runtime.
    fn register() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Forwards SIGTERM and SIGHUP to the child; SIGINT is left to the terminal (which sends
    /// it to the child too), so kimi-vault waits for the child to decide.
    async fn forward_to(mut self, child: u32) {
        use rustix::process::{Pid, Signal, kill_process};
        let Some(pid) = Pid::from_raw(child as i32) else {
            return;
        };
        loop {
            let sig = tokio::select! {
                _ = self.term.recv() => Signal::TERM,
                _ = self.hup.recv() => Signal::HUP,
                _ = self.int.recv() => continue,
            };
            let _ = kill_process(pid, sig);
        }
    }
}

/// Runs CMD with a private proxy; CMD's exit code becomes ours.
pub(crate) fn run(ctx: &Ctx, client: ForClient, cmd: &[OsString]) -> CmdResult {
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| Failure::Usage("exec needs a command after --".into()))?;
    // The open-files limit is left as it is: this proxy serves one client, and CMD inherits
    // the limits of this process.
    let key = kimi_vault::session::new_client_key()?;
    let runtime = runtime()?;
    let session = ctx.session.clone();
    let proxy = runtime.block_on(async {
        // A token first: a missing login fails here, before CMD starts.
        session.token_async(60).await?;
        let loopback = SocketAddr::new(Ipv4Addr::LOCALHOST.into(), 0);
        let options = ProxyOptions {
            client_key: Some(key.clone()),
            ..ProxyOptions::default()
        };
        Proxy::bind(session.clone(), loopback, options).await
    })?;
    let url = format!("http://{}", proxy.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(proxy.serve(async {
        let _ = stopped.await;
    }));
    let (base_var, key_var, base) = client.variables(&url);
    let mut command = Command::new(program);
    command
        .args(args)
        .env(base_var, &base)
        .env(key_var, key.expose());
    if client == ForClient::Claude {
        // Claude Code prefers a bearer token it finds in its environment to the API key.
        command.env_remove("ANTHROPIC_AUTH_TOKEN");
    }
    tracing::info!("private proxy on {url} for {}", program.to_string_lossy());
    // From here on, kimi-vault waits for CMD whatever signal comes (CMD decides).
    #[cfg(unix)]
    let signals = runtime
        .block_on(async { Signals::register() })
        .map_err(|e| Failure::Other(format!("cannot listen for signals: {e}")))?;
    let mut child = command.spawn().map_err(|source| Failure::Exec {
        program: program.to_string_lossy().into_owned(),
        source,
    })?;
    #[cfg(unix)]
    let forwarder = runtime.spawn(signals.forward_to(child.id()));
    let status = child
        .wait()
        .map_err(|e| Failure::Other(format!("cannot wait for the command: {e}")))?;
    #[cfg(unix)]
    forwarder.abort();
    let _ = stop.send(());
    if let Ok(Err(e)) = runtime.block_on(server) {
        tracing::warn!("the private proxy stopped with an error: {e}");
    }
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    Ok(exit_code(status))
}
