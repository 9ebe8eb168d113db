//! The everyday `token` command lines, recognised without building clap's parser.
//!
//! clap builds its whole tree of 14 subcommands (and the options each inherits) on every run,
//! which costs more than reading, decrypting and printing the token. `token` is run by Claude
//! Code's `apiKeyHelper` and scripts, often: its usual shapes are recognised here, and yield the
//! very value clap would have produced. Anything else (another command, `--help`, an option or a
//! value this does not know, a repeated option, `--`) returns `None`, and clap parses the line as
//! it always did: its help, errors, completions and man page stay the only ones.

use std::ffi::OsString;

use crate::cli::{BackendArg, Cli, Command, Config};

/// The `Cli` clap would produce for `args`, when they are one of:
/// `[GLOBAL]... token [GLOBAL | --min-valid N]...` where GLOBAL is `--profile NAME`,
/// `--json`, `-v`, `-vv`, `--verbose`, `--backend auto|keyring|file` or `--vault-home DIR`
/// (`--opt=VALUE` too). `None` for anything else.
pub(crate) fn token_command(args: &[OsString]) -> Option<Cli> {
    let mut profile: Option<String> = None;
    let mut json = false;
    let mut verbose: u8 = 0;
    let mut min_valid: Option<u32> = None;
    let mut seen_token = false;
    let mut config = Config::default();
    let mut words = args.iter().skip(1).map(|a| a.to_str());
    while let Some(word) = words.next() {
        let word = word?;
        match word {
            "token" if !seen_token => seen_token = true,
            "--json" if !json => json = true,
            "-v" | "--verbose" => verbose = verbose.checked_add(1)?,
            "-vv" => verbose = verbose.checked_add(2)?,
            "--profile" if profile.is_none() => profile = Some(value(words.next()??)?.to_owned()),
            "--min-valid" if seen_token && min_valid.is_none() => {
                min_valid = Some(seconds(words.next()??)?);
            }
            "--backend" if config.backend.is_none() => {
                config.backend = Some(backend(words.next()??)?);
            }
            "--vault-home" if config.vault_home.is_none() => {
                config.vault_home = Some(value(words.next()??)?.into());
            }
            _ => {
                if let Some(v) = word.strip_prefix("--profile=")
                    && profile.is_none()
                {
                    profile = Some(value(v)?.to_owned());
                } else if let Some(v) = word.strip_prefix("--min-valid=")
                    && seen_token
                    && min_valid.is_none()
                {
                    min_valid = Some(seconds(v)?);
                } else if let Some(v) = word.strip_prefix("--backend=")
                    && config.backend.is_none()
                {
                    config.backend = Some(backend(v)?);
                } else if let Some(v) = word.strip_prefix("--vault-home=")
                    && config.vault_home.is_none()
                {
                    config.vault_home = Some(value(v)?.into());
                } else {
                    return None;
                }
            }
        }
    }
    if !seen_token {
        return None;
    }
    Some(Cli {
        profile,
        json,
        verbose,
        config,
        command: Command::Token {
            min_valid: min_valid.unwrap_or(DEFAULT_MIN_VALID),
            // `--refresh` is not a fast-path flag: it goes through clap.
            refresh: false,
        },
    })
}

/// `token --min-valid`'s default (as clap's definition says; a test compares the two).
pub(crate) const DEFAULT_MIN_VALID: u32 = 300;

/// An option's value as clap would take it: not empty, not looking like an option.
fn value(v: &str) -> Option<&str> {
    (!v.is_empty() && !v.starts_with('-')).then_some(v)
}

/// A `--backend` value clap would accept.
fn backend(v: &str) -> Option<BackendArg> {
    match v {
        "auto" => Some(BackendArg::Auto),
        "keyring" => Some(BackendArg::Keyring),
        "file" => Some(BackendArg::File),
        _ => None,
    }
}

/// A number of seconds written plainly (clap decides about anything else).
fn seconds(v: &str) -> Option<u32> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(line: &str) -> Vec<OsString> {
        std::iter::once("kimi-vault")
            .chain(line.split_whitespace())
            .map(OsString::from)
            .collect()
    }

    /// What matters of a parsed line, to compare the fast path with clap.
    fn summary(cli: &Cli) -> String {
        let min_valid = match cli.command {
            Command::Token { min_valid, .. } => Some(min_valid),
            _ => None,
        };
        format!(
            "{:?} {} {} {:?} {:?}",
            cli.profile, cli.json, cli.verbose, min_valid, cli.config
        )
    }

    #[test]
    fn the_fast_path_gives_what_clap_gives() {
        for line in [
            "token",
            "token --json",
            "--json token",
            "token --min-valid 600",
            "token --min-valid=0",
            "--profile work token",
            "--profile=work token --min-valid 5 --json",
            "token --profile work",
            "-v token",
            "-vv token",
            "token -v --verbose",
            "--json --profile a.b token --min-valid 4294967295",
            "--backend file --vault-home /tmp/v token",
            "token --backend=keyring --vault-home=/tmp/v",
        ] {
            let fast = token_command(&args(line)).unwrap_or_else(|| panic!("fast: {line}"));
            let slow = Cli::try_parse_from(args(line)).expect(line);
            assert_eq!(summary(&fast), summary(&slow), "{line}");
        }
    }

    #[test]
    fn anything_else_goes_to_clap() {
        for line in [
            "",
            "status",
            "token --help",
            "token -h",
            "--help",
            "--version",
            "token token",
            "token --json --json",
            "--profile a --profile b token",
            "token --min-valid",
            "token --min-valid -1",
            "token --min-valid 1 --min-valid 2",
            "token --min-valid 4294967296",
            "token --min-valid +5",
            "--min-valid 5 token",
            "--profile token",
            "--profile= token",
            "token --refresh",
            "token --backend kering",
            "token --backend file --backend auto",
            "--vault-home -x token",
            "--vault-home= token",
            "--api-base http://x token",
            "token --",
            "token extra",
            "tok",
            "-x token",
        ] {
            assert!(token_command(&args(line)).is_none(), "{line}");
        }
    }

    #[test]
    fn the_default_threshold_is_clap_s() {
        let slow = Cli::try_parse_from(args("token")).unwrap();
        assert!(
            matches!(slow.command, Command::Token { min_valid, .. } if min_valid == DEFAULT_MIN_VALID)
        );
    }
}
