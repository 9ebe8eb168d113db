//! `kimi-vault token` and `kimi-vault exec`: a fresh access token for scripts and programs.

use std::ffi::OsString;
use std::io::Write;
use std::process::Command;

use crate::cli::Ctx;
use crate::cli::failure::{CmdResult, Failure, exit};

/// Default variable for `exec`.
pub(crate) const DEFAULT_TOKEN_VAR: &str = "ANTHROPIC_AUTH_TOKEN";
/// `exec` sets this to the Anthropic-compatible base unless it is already set.
pub(crate) const BASE_URL_VAR: &str = "ANTHROPIC_BASE_URL";
/// Threshold `exec` uses before handing a token to a program.
const EXEC_MIN_VALID: i64 = 300;

/// Prints a valid access token and a newline; with `--json`, one object holding the token, its
/// type and expiry (built in a buffer wiped on drop).
pub(crate) fn token(ctx: &Ctx, min_valid: u32) -> CmdResult {
    let cred = ctx.session.token(i64::from(min_valid))?;
    let line = if ctx.json {
        let value = serde_json::json!({
            "access_token": "",
            "token_type": cred.token_type,
            "expires_at": kimi_vault::rfc3339(cred.expires_at),
            "expires_in_seconds": cred.expires_in(kimi_vault::now_unix()),
        });
        // The token is spliced into the serialized object, in a buffer wiped on drop, so that
        // no unwiped JSON value ever holds it.
        let text = value.to_string();
        let token = cred.access_token.expose();
        let mut quoted = zeroize::Zeroizing::new(Vec::with_capacity(token.len() * 6 + 2));
        serde_json::to_writer(&mut *quoted, token)
            .map_err(|e| Failure::Output(std::io::Error::other(e)))?;
        let at = text.find(r#""access_token":"""#).expect("the key is there") + 15;
        let mut line =
            zeroize::Zeroizing::new(String::with_capacity(text.len() + quoted.len() + 1));
        line.push_str(&text[..at]);
        line.push_str(std::str::from_utf8(&quoted).unwrap_or("\"\""));
        line.push_str(&text[at + 2..]);
        line.push('\n');
        line
    } else {
        let mut line =
            zeroize::Zeroizing::new(String::with_capacity(cred.access_token.expose().len() + 1));
        line.push_str(cred.access_token.expose());
        line.push('\n');
        line
    };
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes())
        .and_then(|()| out.flush())
        .map_err(Failure::Output)?;
    Ok(exit::OK)
}

fn check_var(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Failure::Usage(format!(
            "--env takes an environment variable name (letters, digits, '_'), not '{}'",
            name.escape_default()
        )))
    }
}

/// Runs `cmd` with the token in its environment; its exit code becomes ours.
pub(crate) fn exec(ctx: &Ctx, vars: &[String], cmd: &[OsString]) -> CmdResult {
    vars.iter().try_for_each(|v| check_var(v))?;
    let (program, args) = cmd
        .split_first()
        .ok_or_else(|| Failure::Usage("exec needs a command after --".into()))?;
    let cred = ctx.session.token(EXEC_MIN_VALID)?;
    let endpoints = ctx.session.endpoints_for(&cred)?;
    let mut child = Command::new(program);
    child.args(args);
    if vars.is_empty() {
        child.env(DEFAULT_TOKEN_VAR, cred.access_token.expose());
    }
    for var in vars {
        child.env(var, cred.access_token.expose());
    }
    if std::env::var_os(BASE_URL_VAR).is_none() {
        child.env(BASE_URL_VAR, endpoints.anthropic_base_url());
    }
    let shown = program.to_string_lossy().into_owned();
    #[cfg(unix)]
    {
        // Replace this process: signals, the terminal and the exit code are CMD's own.
        use std::os::unix::process::CommandExt;
        let source = child.exec();
        Err(Failure::Exec {
            program: shown,
            source,
        })
    }
    #[cfg(not(unix))]
    {
        let status = child.status().map_err(|source| Failure::Exec {
            program: shown,
            source,
        })?;
        Ok(status.code().map(|c| c as u8).unwrap_or(exit::FAILURE))
    }
}
