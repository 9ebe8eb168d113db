//! `kimi-vault exec --proxy [--for claude|kimi|openai] -- CMD`: a private proxy on a random
//! loopback port with a one-time client key, for the lifetime of CMD.

// Environment reads belong to the edge, and this is the edge: CMD's environment is built from this process's.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;

use kimi_vault::proxy::{Proxy, ProxyOptions};

use crate::cli::Ctx;
use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::proxy::runtime;

/// Which client CMD is: which variables it reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ForClient {
    /// Claude Code and Anthropic SDKs: ANTHROPIC_BASE_URL, ANTHROPIC_AUTH_TOKEN (and no
    /// ANTHROPIC_API_KEY).
    Claude,
    /// Both Kimi CLIs: kimi-cli (KIMI_BASE_URL, KIMI_CODE_BASE_URL, KIMI_API_KEY) and kimi-code
    /// (KIMI_MODEL_NAME, KIMI_MODEL_API_KEY, KIMI_MODEL_BASE_URL, KIMI_MODEL_PROVIDER_TYPE,
    /// KIMI_MODEL_MAX_CONTEXT_SIZE).
    Kimi,
    /// OpenAI SDKs and most other tools: OPENAI_BASE_URL (with /v1), OPENAI_API_KEY.
    Openai,
}

/// The loopback names every `--for` adds to `NO_PROXY` and `no_proxy`, so that an HTTP proxy
/// in the environment is not asked for the private proxy's URL.
const LOOPBACK_NO_PROXY: &str = "127.0.0.1,localhost,::1";

/// The model `--for kimi` names to kimi-code (and kimi-cli): its id and context length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KimiModel {
    pub(crate) id: String,
    pub(crate) context_length: Option<u64>,
}

/// What CMD's environment gets: variables to set (name, value) and variables to remove.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct ClientEnv {
    pub(crate) set: Vec<(&'static str, String)>,
    pub(crate) remove: Vec<&'static str>,
}

impl ForClient {
    /// The variables for a proxy at `url` (no trailing slash) with client key `key`;
    /// `previous` reads this process's environment (for NO_PROXY and no_proxy).
    pub(crate) fn env(
        self,
        url: &str,
        key: &str,
        model: Option<&KimiModel>,
        previous: impl Fn(&str) -> Option<String>,
    ) -> ClientEnv {
        let v1 = format!("{url}/v1");
        let mut env = ClientEnv::default();
        match self {
            ForClient::Claude => {
                env.set.push(("ANTHROPIC_BASE_URL", url.to_owned()));
                env.set.push(("ANTHROPIC_AUTH_TOKEN", key.to_owned()));
                // With ANTHROPIC_API_KEY set, interactive Claude Code asks whether to use "a
                // custom API key" and defaults to no; it would also send that key.
                env.remove.push("ANTHROPIC_API_KEY");
            }
            ForClient::Kimi => {
                // kimi-cli.
                env.set.push(("KIMI_BASE_URL", v1.clone()));
                env.set.push(("KIMI_CODE_BASE_URL", v1.clone()));
                // kimi-vault reads KIMI_CODE_BASE_URL too (its API base override): a kimi-vault
                // run inside CMD ignores the value this marker names (see config.rs).
                env.set.push((EXEC_PROXY_URL_VAR, v1.clone()));
                env.set.push(("KIMI_API_KEY", key.to_owned()));
                // kimi-code (kimi-cli reads KIMI_MODEL_NAME too).
                if let Some(m) = model {
                    env.set.push(("KIMI_MODEL_NAME", m.id.clone()));
                }
                env.set.push(("KIMI_MODEL_API_KEY", key.to_owned()));
                env.set.push(("KIMI_MODEL_BASE_URL", v1));
                env.set
                    .push(("KIMI_MODEL_PROVIDER_TYPE", "kimi".to_owned()));
                match model.and_then(|m| m.context_length) {
                    Some(n) => env.set.push(("KIMI_MODEL_MAX_CONTEXT_SIZE", n.to_string())),
                    None => env.remove.push("KIMI_MODEL_MAX_CONTEXT_SIZE"),
                }
            }
            ForClient::Openai => {
                env.set.push(("OPENAI_BASE_URL", v1));
                env.set.push(("OPENAI_API_KEY", key.to_owned()));
            }
        }
        for name in ["NO_PROXY", "no_proxy"] {
            let before = previous(name).unwrap_or_default();
            let value = if before.trim().is_empty() {
                LOOPBACK_NO_PROXY.to_owned()
            } else {
                format!("{},{LOOPBACK_NO_PROXY}", before.trim_end_matches(','))
            };
            env.set.push((name, value));
        }
        env
    }
}

/// The model for `--for kimi`: `--model ID` (its context length from `/models` when listed), or
/// the first model `/models` lists; none (with a warning) when the list cannot be had for a
/// reason other than the login. Blocking: call before the proxy's runtime starts.
fn kimi_model(ctx: &Ctx, wanted: Option<&str>) -> Result<Option<KimiModel>, Failure> {
    let listed = ctx.session.models();
    match (wanted, listed) {
        (Some(id), Ok(models)) => {
            let found = models.iter().find(|m| m.id == id);
            if found.is_none() {
                tracing::warn!(
                    "--model {}: Kimi does not list this model for profile '{}'; KIMI_MODEL_MAX_CONTEXT_SIZE is not set",
                    kimi_vault::sanitize::for_terminal(id),
                    ctx.profile()
                );
            }
            Ok(Some(KimiModel {
                id: id.to_owned(),
                context_length: found.and_then(|m| m.context_length),
            }))
        }
        (Some(id), Err(e)) => {
            tracing::warn!(
                "cannot list the models ({}); KIMI_MODEL_MAX_CONTEXT_SIZE is not set",
                kimi_vault::scrub(&e.to_string())
            );
            Ok(Some(KimiModel {
                id: id.to_owned(),
                context_length: None,
            }))
        }
        (None, Ok(models)) => models
            .first()
            .map(|m| {
                Some(KimiModel {
                    id: m.id.clone(),
                    context_length: m.context_length,
                })
            })
            .ok_or_else(|| {
                Failure::Other(format!(
                    "Kimi lists no model for profile '{}': kimi-code needs one in KIMI_MODEL_NAME; name it with --model ID",
                    ctx.profile()
                ))
            }),
        (None, Err(e)) => {
            let failure = Failure::from(e);
            if matches!(
                failure.exit_code(),
                exit::LOGIN_REQUIRED | exit::VAULT_UNREADABLE
            ) {
                return Err(failure);
            }
            tracing::warn!(
                "cannot list the models ({}); KIMI_MODEL_NAME is not set (kimi-code then says \"LLM not set\"): name the model with --model ID",
                kimi_vault::scrub(&failure.message(ctx.profile()))
            );
            Ok(None)
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

/// Set in CMD's environment by `--for kimi`: the private proxy's URL, which it also puts in
/// `KIMI_CODE_BASE_URL` for kimi-cli. A kimi-vault started inside CMD does not take that value
/// as its own API base (it would send the Kimi token to the proxy, which wants its client key).
pub(crate) const EXEC_PROXY_URL_VAR: &str = "KIMI_VAULT_EXEC_PROXY_URL";

/// Runs CMD with a private proxy; CMD's exit code becomes ours.
pub(crate) fn run(
    ctx: &Ctx,
    client: ForClient,
    model: Option<&str>,
    cmd: &[OsString],
) -> CmdResult {
    let (program, args) = crate::cli::token::program_or_shell(cmd);
    let program = program.as_os_str();
    if model.is_some() && client != ForClient::Kimi {
        return Err(Failure::Usage(
            "--model names the model for the Kimi CLIs: use it with --for kimi".into(),
        ));
    }
    let model = match client {
        ForClient::Kimi => kimi_model(ctx, model)?,
        _ => None,
    };
    if client == ForClient::Claude {
        crate::cli::setup::warn_settings_override(&[
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_AUTH_TOKEN",
            "ANTHROPIC_API_KEY",
        ]);
    }
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
            login_hint: Some(crate::cli::proxy::login_hint(session.profile())),
            ..ProxyOptions::default()
        };
        Proxy::bind(session.clone(), loopback, options).await
    })?;
    let url = format!("http://{}", proxy.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = runtime.spawn(proxy.serve(async {
        let _ = stopped.await;
    }));
    let client_env = client.env(&url, key.expose(), model.as_ref(), |name| {
        std::env::var(name).ok()
    });
    let mut command = Command::new(program);
    command.args(args);
    crate::cli::token::mark_child(&mut command, ctx.profile());
    for name in &client_env.remove {
        command.env_remove(name);
    }
    for (name, value) in &client_env.set {
        command.env(name, value);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn value<'a>(env: &'a ClientEnv, name: &str) -> Option<&'a str> {
        env.set
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn no_proxy_keeps_each_previous_value_and_adds_loopback() {
        let previous = |name: &str| match name {
            "NO_PROXY" => Some("corp.example,".to_owned()),
            "no_proxy" => Some("  ".to_owned()),
            _ => None,
        };
        for client in [ForClient::Claude, ForClient::Kimi, ForClient::Openai] {
            let env = client.env("http://127.0.0.1:1", "k", None, previous);
            assert_eq!(
                value(&env, "NO_PROXY"),
                Some("corp.example,127.0.0.1,localhost,::1")
            );
            assert_eq!(value(&env, "no_proxy"), Some("127.0.0.1,localhost,::1"));
        }
    }

    #[test]
    fn kimi_without_a_model_sets_no_model_name_and_removes_a_stale_context_size() {
        let env = ForClient::Kimi.env("http://127.0.0.1:1", "k", None, |_| None);
        assert_eq!(value(&env, "KIMI_MODEL_NAME"), None);
        assert!(env.remove.contains(&"KIMI_MODEL_MAX_CONTEXT_SIZE"));
        assert_eq!(
            value(&env, "KIMI_CODE_BASE_URL"),
            Some("http://127.0.0.1:1/v1")
        );
    }
}
