//! `kimi-vault completions SHELL` (clap_complete) and `kimi-vault man` (clap_mangen): generated
//! from the same definition as the parser, so they never drift from it.

use std::io::Write;

use crate::cli::command;
use crate::cli::failure::{CmdResult, Failure, exit};

/// Prints the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> CmdResult {
    let mut cmd = command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "kimi-vault", &mut out);
    write_stdout(&out)
}

/// Prints the man page (roff) on stdout.
pub(crate) fn man() -> CmdResult {
    let mut out = Vec::new();
    clap_mangen::Man::new(command())
        .render(&mut out)
        .map_err(Failure::Output)?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> CmdResult {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(bytes)
        .and_then(|()| stdout.flush())
        .map_err(Failure::Output)?;
    Ok(exit::OK)
}
