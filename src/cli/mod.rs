//! The command line: argument parsing, dispatch, and turning errors into messages and exit codes.

mod login;
mod logout;
mod migrate;
mod output;
mod status;
mod token;

use std::ffi::OsString;

use clap::{Parser, Subcommand, ValueEnum};

use crate::error::{Error, Result, exit};
use crate::oauth::endpoints::Region;
use crate::store::Vault;

/// Keeps Kimi Code OAuth credentials safe and hands them to the tools that need them.
#[derive(Debug, Parser)]
#[command(name = "kimi-vault", version, about, long_about = None)]
pub struct Cli {
    /// Profile to use.
    #[arg(
        long,
        global = true,
        env = "KIMI_VAULT_PROFILE",
        default_value = "default"
    )]
    pub profile: String,
    /// Machine-readable output on stdout (human text goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// More detail on stderr (never a secret).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// `--region`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RegionArg {
    /// auth.kimi.com / api.kimi.com
    Cn,
    /// auth.kimi.ai / api.kimi.ai
    Global,
}

impl From<RegionArg> for Region {
    fn from(r: RegionArg) -> Self {
        match r {
            RegionArg::Cn => Region::Cn,
            RegionArg::Global => Region::Global,
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in with Kimi's device flow and store the tokens.
    Login {
        /// Do not open a browser.
        #[arg(long)]
        no_browser: bool,
        /// Kimi region.
        #[arg(long, value_enum, default_value = "cn")]
        region: RegionArg,
    },
    /// Remove the profile's credential from every backend.
    Logout,
    /// Show the profile, backend, login state and expiry (never a secret).
    Status,
    /// Print a valid access token on stdout, refreshing first if needed.
    Token {
        /// Refresh first if the token expires within this many seconds.
        #[arg(long, default_value_t = 300, value_name = "SECONDS")]
        min_valid: u32,
    },
    /// Run a command with a fresh token in its environment.
    Exec {
        /// Variable to put the token in (repeatable; default ANTHROPIC_AUTH_TOKEN).
        #[arg(long = "env", value_name = "VAR")]
        env: Vec<String>,
        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "CMD")]
        cmd: Vec<OsString>,
    },
    /// Move other Kimi tools' plaintext credentials into the vault.
    Migrate {
        /// Source file to migrate (repeatable; `keyring:kimi-code` for kimi-cli's old keyring
        /// entry). Without it, every known location is scanned.
        #[arg(long = "from", value_name = "PATH")]
        from: Vec<std::path::PathBuf>,
        /// Leave the sources in place (refresh tokens rotate: one of the two copies will stop
        /// working).
        #[arg(long)]
        keep: bool,
        /// Read and report only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Replace a credential the profile already has.
        #[arg(long)]
        force: bool,
    },
}

/// What every command needs.
pub struct Ctx {
    /// The profile.
    pub profile: String,
    /// `--json`.
    pub json: bool,
    /// `-v` count.
    pub verbose: u8,
    /// The vault.
    pub vault: Vault,
}

fn check_profile(profile: &str) -> Result<()> {
    let ok = !profile.is_empty()
        && profile.len() <= 64
        && profile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !profile.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "invalid profile name '{}': use 1 to 64 letters, digits, '-', '_' or '.'",
            profile.escape_default()
        )))
    }
}

/// Parses the arguments, runs the command, and returns the exit code.
pub fn main() -> u8 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
        }
    };
    let json = cli.json;
    let is_login = matches!(cli.command, Command::Login { .. });
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            let message = crate::redact::scrub(&e.to_string());
            if json && is_login {
                output::json_line(&serde_json::json!({"type": "error", "message": message}));
            }
            eprintln!("kimi-vault: error: {message}");
            e.exit_code()
        }
    }
}

fn run(cli: Cli) -> Result<u8> {
    check_profile(&cli.profile)?;
    crate::diag::set_verbosity(cli.verbose);
    let ctx = Ctx {
        profile: cli.profile,
        json: cli.json,
        verbose: cli.verbose,
        vault: Vault::from_env()?,
    };
    match cli.command {
        Command::Login { no_browser, region } => login::run(&ctx, no_browser, region.into()),
        Command::Logout => logout::run(&ctx),
        Command::Status => status::run(&ctx),
        Command::Token { min_valid } => token::token(&ctx, min_valid),
        Command::Exec { env, cmd } => token::exec(&ctx, &env, &cmd),
        Command::Migrate {
            from,
            keep,
            dry_run,
            force,
        } => migrate::run(&ctx, from, keep, dry_run, force),
    }
}
