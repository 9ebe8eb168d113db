//! `kimi-vault token` and `kimi-vault exec`: a fresh access token for scripts and programs.

// Environment reads belong to the edge, and this is the edge: exec builds CMD's environment ($SHELL, the nesting marker) from this process's.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::process::Command;

use crate::cli::Ctx;
use crate::cli::failure::{CmdResult, Failure, exit};

/// Default variable for `exec`.
pub(crate) const DEFAULT_TOKEN_VAR: &str = "ANTHROPIC_AUTH_TOKEN";
/// `exec` sets this to the Anthropic-compatible base unless it is already set.
pub(crate) const BASE_URL_VAR: &str = "ANTHROPIC_BASE_URL";
/// Removed from CMD's environment unless `--env` names it.
pub(crate) const API_KEY_VAR: &str = "ANTHROPIC_API_KEY";
/// Threshold `exec` uses before handing a token to a program.
const EXEC_MIN_VALID: i64 = 300;

/// `token --json`. The token is borrowed from the credential's `SecretString`: no unwiped copy
/// of it is made; it is serialized straight into a buffer wiped on drop ([`token_line`]).
#[derive(serde::Serialize)]
pub(crate) struct TokenJson<'a> {
    pub(crate) access_token: &'a str,
    pub(crate) token_type: &'a str,
    pub(crate) expires_at: String,
    pub(crate) expires_in_seconds: i64,
}

/// The line `token` prints: the token and a newline, or with `--json` one object holding the
/// token, its type and expiry, serialized (terminal-safe, as every `--json`) into a buffer wiped
/// on drop. One buffer, one write: the token is in no other buffer of ours.
pub(crate) fn token_line(
    cred: &kimi_vault::store::Credential,
    json: bool,
) -> Result<zeroize::Zeroizing<Vec<u8>>, Failure> {
    let token = cred.access_token.expose();
    if json {
        let value = TokenJson {
            access_token: token,
            token_type: &cred.token_type,
            expires_at: kimi_vault::rfc3339(cred.expires_at),
            expires_in_seconds: cred.expires_in(kimi_vault::now_unix()),
        };
        // The worst case: every character of the token and the type escaped as \uXXXX (6
        // bytes), and the keys, the time and the number.
        let room = (token.len() + cred.token_type.len()) * 6 + 160;
        return crate::cli::output::wiped_json_line(&value, room)
            .map_err(|e| Failure::Output(std::io::Error::other(e)));
    }
    let mut line = zeroize::Zeroizing::new(Vec::with_capacity(token.len() + 1));
    line.extend_from_slice(token.as_bytes());
    line.push(b'\n');
    Ok(line)
}

/// Prints a valid access token and a newline; with `--json`, [`TokenJson`].
pub(crate) fn token(ctx: &Ctx, min_valid: u32, refresh: bool) -> CmdResult {
    let cred = if refresh {
        ctx.session.refresh_now()?
    } else {
        ctx.session.token(i64::from(min_valid))?
    };
    let line = token_line(&cred, ctx.json)?;
    crate::cli::output::write_stdout(&line).map_err(Failure::Output)?;
    Ok(exit::OK)
}

/// Variable names a dynamic loader, libc, a shell or an interpreter acts on at start: given the
/// token, they print it in an error (ld.so: "object '<token>' from LD_PRELOAD cannot be
/// preloaded", bash: "<token>: No such file" for BASH_ENV, node: "bad option: <token>") or run
/// it. Compared without regard to case (zsh ties `path` to PATH). Each prefix or name comes
/// with the reason shown.
const REFUSED_PREFIXES: &[(&str, &str)] = &[
    ("LD_", "LD_* variables are read by the dynamic loader"),
    (
        "DYLD_",
        "DYLD_* variables are read by the macOS dynamic loader",
    ),
    (
        "MALLOC_",
        "MALLOC_* variables are read by the C library's allocator",
    ),
    ("GLIBC_", "GLIBC_* variables are read by the C library"),
    (
        "LC_",
        "LC_* variables select the locale, and a bad one is printed",
    ),
    ("BASH_FUNC_", "BASH_FUNC_* variables define shell functions"),
    ("PYTHON", "PYTHON* variables change how Python starts"),
    ("PERL5", "PERL5* variables change how Perl starts"),
    ("RUBY", "RUBY* variables change how Ruby starts"),
    ("NODE_", "NODE_* variables change how Node.js starts"),
    ("GIT_", "GIT_* variables change what git runs and where"),
];

const REFUSED_NAMES: &[(&str, &str)] = &[
    ("PATH", "the shell looks commands up in it"),
    ("IFS", "the shell splits words with it"),
    ("ENV", "sh and bash source the file it names"),
    ("BASH_ENV", "bash sources the file it names"),
    ("PS1", "the shell prints and expands it"),
    ("PS2", "the shell prints and expands it"),
    ("PS3", "the shell prints and expands it"),
    ("PS4", "the shell prints and expands it when tracing"),
    ("SHELLOPTS", "it sets bash options"),
    ("BASHOPTS", "it sets bash options"),
    ("PROMPT_COMMAND", "the shell runs it"),
    ("CDPATH", "the shell searches it"),
    ("GLOBIGNORE", "the shell reads it"),
    ("HOME", "programs read their configuration from it"),
    ("SHELL", "programs run it"),
    (
        "TERM",
        "terminal programs look it up, and print it when unknown",
    ),
    ("TERMINFO", "terminal programs read the directory it names"),
    ("TMPDIR", "programs create files in it"),
    ("LANG", "it selects the locale, and a bad one is printed"),
    ("LANGUAGE", "it selects the locale"),
    ("GCONV_PATH", "the C library loads modules from it"),
    ("LOCPATH", "the C library loads locales from it"),
    ("NLSPATH", "the C library loads message catalogs from it"),
    ("HOSTALIASES", "the resolver reads the file it names"),
    ("RES_OPTIONS", "the resolver reads it"),
    ("LOCALDOMAIN", "the resolver reads it"),
    ("TZ", "the C library reads the file it names"),
    ("INPUTRC", "readline reads the file it names"),
    ("ZDOTDIR", "zsh reads its startup files from it"),
    ("JAVA_TOOL_OPTIONS", "the Java VM reads its options from it"),
    ("_JAVA_OPTIONS", "the Java VM reads its options from it"),
    (
        "JDK_JAVA_OPTIONS",
        "the Java launcher reads its options from it",
    ),
    ("LUA_INIT", "Lua runs it at start"),
    ("EDITOR", "programs run it"),
    ("VISUAL", "programs run it"),
    ("PAGER", "programs run it"),
    ("SSH_ASKPASS", "ssh runs it"),
    ("SUDO_ASKPASS", "sudo runs it"),
];

/// The endings of a variable name that holds a credential (SPEC §3), compared without regard
/// to case.
const CREDENTIAL_SUFFIXES: &[&str] = &["_KEY", "_TOKEN", "_SECRET", "_PASSWORD", "_CREDENTIALS"];

/// Checks an `--env` name: a plain variable name that ends like a credential's (`_KEY`,
/// `_TOKEN`, `_SECRET`, `_PASSWORD`, `_CREDENTIALS`), and not one a loader, the C library, a
/// shell or an interpreter acts on.
pub(crate) fn check_var(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if !ok {
        return Err(Failure::Usage(format!(
            "--env takes an environment variable name (letters, digits, '_'), not '{}'",
            name.escape_default()
        )));
    }
    let upper = name.to_ascii_uppercase();
    let reason = REFUSED_PREFIXES
        .iter()
        .find(|(prefix, _)| upper.starts_with(prefix))
        .or_else(|| REFUSED_NAMES.iter().find(|(n, _)| upper == *n))
        .map(|(_, why)| *why);
    match reason {
        None if !CREDENTIAL_SUFFIXES.iter().any(|s| upper.ends_with(s)) => {
            Err(Failure::Usage(format!(
                "--env {name}: refused: --env names a variable that holds a credential, so its name must end in _KEY, _TOKEN, _SECRET, _PASSWORD or _CREDENTIALS (any case), as {DEFAULT_TOKEN_VAR} or OPENAI_API_KEY do; a program may print or act on any other variable's value"
            )))
        }
        None => Ok(()),
        Some(why) => Err(Failure::Usage(format!(
            "--env {name}: refused, {why}: given the token, it could print it or act on it. Name a variable the program reads its key from (for example {DEFAULT_TOKEN_VAR})"
        ))),
    }
}

/// Set in every `exec` child: the profile in use (as aws-vault sets `AWS_VAULT`), so that
/// prompts can show it and kimi-vault commands inside use the same profile.
pub(crate) const PROFILE_VAR: &str = "KIMI_VAULT_PROFILE";
/// Set in every `exec` child too (to the profile): how an `exec` inside it knows it is nested
/// (`KIMI_VAULT_PROFILE` alone may be the user's own setting).
pub(crate) const NESTED_VAR: &str = "KIMI_VAULT_EXEC";

/// The program to run and its arguments: CMD, or `$SHELL` (else `/bin/sh`) when none is given.
pub(crate) fn program_or_shell(cmd: &[OsString]) -> (OsString, &[OsString]) {
    match cmd.split_first() {
        Some((program, args)) => (program.clone(), args),
        None => {
            let shell = std::env::var_os("SHELL")
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "/bin/sh".into());
            (shell, &[])
        }
    }
}

/// Warns (on stderr) when this `exec` runs inside another one, and marks `child` as an `exec`
/// child of `profile`.
pub(crate) fn mark_child(child: &mut Command, profile: &str) {
    if let Some(outer) = std::env::var_os(NESTED_VAR) {
        let outer = kimi_vault::sanitize::for_terminal(&outer.to_string_lossy()).into_owned();
        tracing::warn!(
            "nested: this exec runs inside another `kimi-vault exec` (profile '{outer}'); the credentials of profile '{profile}' replace those in this environment for the new command"
        );
    }
    child.env(PROFILE_VAR, profile).env(NESTED_VAR, profile);
}

/// Runs `cmd` (or `$SHELL`) with the token in its environment; its exit code becomes ours.
pub(crate) fn exec(ctx: &Ctx, vars: &[String], cmd: &[OsString]) -> CmdResult {
    vars.iter().try_for_each(|v| check_var(v))?;
    let (program, args) = program_or_shell(cmd);
    let program = program.as_os_str();
    let cred = ctx.session.token(EXEC_MIN_VALID)?;
    let endpoints = ctx.session.endpoints_for(&cred)?;
    let mut child = Command::new(program);
    child.args(args);
    mark_child(&mut child, ctx.profile());
    if vars.is_empty() {
        child.env(DEFAULT_TOKEN_VAR, cred.access_token.expose());
    }
    for var in vars {
        child.env(var, cred.access_token.expose());
    }
    #[allow(
        clippy::disallowed_methods,
        reason = "the command line keeps a base URL the caller set (SPEC: unless already set)"
    )]
    if std::env::var_os(BASE_URL_VAR).is_none() {
        child.env(BASE_URL_VAR, endpoints.anthropic_base_url());
    }
    // Claude Code would send ANTHROPIC_API_KEY beside the token (and, interactive, ask about
    // it): removed unless `--env ANTHROPIC_API_KEY` puts the token there.
    if !vars.iter().any(|v| v == API_KEY_VAR) {
        child.env_remove(API_KEY_VAR);
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
