//! The command line: arguments and environment (read once, here), dispatch, and turning
//! failures into messages and exit codes.

mod failure;
mod logging;
mod login;
mod logout;
mod migrate;
mod output;
mod signals;
mod status;
mod token;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kimi_vault::Session;
use kimi_vault::oauth::{EndpointOverrides, Region};
use kimi_vault::store::{BackendMode, Vault, VaultPaths};

use failure::{CmdResult, Failure, exit};

/// Keeps Kimi Code OAuth credentials safe and hands them to the tools that need them.
#[derive(Debug, Parser)]
#[command(name = "kimi-vault", version, about, long_about = None)]
struct Cli {
    /// Profile to use.
    #[arg(
        long,
        global = true,
        env = "KIMI_VAULT_PROFILE",
        default_value = "default",
        value_name = "NAME"
    )]
    profile: String,
    /// Machine-readable output on stdout (human text goes to stderr).
    #[arg(long, global = true)]
    json: bool,
    /// More detail on stderr (-v notes, -vv detail; never a secret).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(flatten)]
    config: Config,
    /// The command.
    #[command(subcommand)]
    command: Command,
}

/// Where things are, usually set through the environment.
#[derive(Debug, Args)]
#[command(next_help_heading = "Configuration (usually set through the environment)")]
struct Config {
    /// Directory of the encrypted vault, its key, lock and device id [default: the platform
    /// data directory, ~/.local/share/kimi-vault on Linux].
    #[arg(long, global = true, env = "KIMI_VAULT_HOME", value_name = "DIR")]
    vault_home: Option<PathBuf>,
    /// Where credentials are kept: auto (the OS keyring, the encrypted file where no keyring is
    /// usable), keyring (fail rather than fall back), file.
    #[arg(
        long,
        global = true,
        env = "KIMI_VAULT_BACKEND",
        value_enum,
        default_value_t = BackendArg::Auto,
        value_name = "MODE"
    )]
    backend: BackendArg,
    /// OAuth host override (KIMI_OAUTH_HOST is read too, after this one).
    #[arg(long, global = true, env = "KIMI_CODE_OAUTH_HOST", value_name = "URL")]
    oauth_host: Option<String>,
    /// The other name of the OAuth host override.
    #[arg(long, global = true, env = "KIMI_OAUTH_HOST", hide = true)]
    kimi_oauth_host: Option<String>,
    /// API base override.
    #[arg(long, global = true, env = "KIMI_CODE_BASE_URL", value_name = "URL")]
    api_base: Option<String>,
    /// OAuth client id override.
    #[arg(long, global = true, env = "KIMI_CLIENT_ID", value_name = "ID")]
    client_id: Option<String>,
}

/// `KIMI_VAULT_BACKEND`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum BackendArg {
    /// The OS keyring, the encrypted file where no keyring is usable.
    Auto,
    /// The OS keyring, or fail.
    Keyring,
    /// The encrypted file.
    File,
}

/// `--region`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum RegionArg {
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
enum Command {
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
        from: Vec<PathBuf>,
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

impl Command {
    /// True for the commands that defer SIGINT/SIGTERM/SIGHUP during a token refresh (all the
    /// short ones). A long-running command with its own graceful shutdown (the coming `proxy`)
    /// answers false and waits with `kimi_vault::session::wait_for_critical_sections` before
    /// it exits.
    fn defers_signals_during_refresh(&self) -> bool {
        match self {
            Command::Login { .. }
            | Command::Logout
            | Command::Status
            | Command::Token { .. }
            | Command::Exec { .. }
            | Command::Migrate { .. } => true,
        }
    }
}

/// What every command needs.
pub(crate) struct Ctx {
    /// `--json`.
    pub json: bool,
    /// The profile's session (its vault inside).
    pub session: Session,
}

impl Ctx {
    /// The profile.
    pub(crate) fn profile(&self) -> &str {
        self.session.profile()
    }
}

impl Config {
    fn vault(&self) -> Result<Vault, Failure> {
        let paths = match self
            .vault_home
            .as_ref()
            .filter(|p| !p.as_os_str().is_empty())
        {
            Some(home) => VaultPaths::at(home.clone()),
            None => VaultPaths::platform_default()?,
        };
        let mode = match self.backend {
            BackendArg::Auto => BackendMode::Auto,
            BackendArg::Keyring => BackendMode::Keyring,
            BackendArg::File => BackendMode::File,
        };
        Ok(Vault::new(paths, mode))
    }

    fn overrides(&self) -> EndpointOverrides {
        let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        EndpointOverrides {
            oauth_host: set(&self.oauth_host).or_else(|| set(&self.kimi_oauth_host)),
            api_base: set(&self.api_base),
            client_id: set(&self.client_id),
        }
    }
}

/// Parses the arguments, runs the command, and returns the exit code.
pub(crate) fn main() -> u8 {
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
    logging::init(cli.verbose);
    if cli.command.defers_signals_during_refresh() {
        signals::defer_during_refresh();
    }
    let json = cli.json;
    let is_login = matches!(cli.command, Command::Login { .. });
    let profile = cli.profile.clone();
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            let message = kimi_vault::scrub(&failure.message(&profile));
            let code = failure.exit_code();
            if json {
                output::json_line(&if is_login {
                    serde_json::json!({"type": "error", "message": message})
                } else {
                    serde_json::json!({"error": {"code": code, "message": message}})
                });
            }
            eprintln!("kimi-vault: error: {message}");
            code
        }
    }
}

fn run(cli: Cli) -> CmdResult {
    let session = Session::new(cli.config.vault()?, &cli.profile, cli.config.overrides())?;
    let ctx = Ctx {
        json: cli.json,
        session,
    };
    // Every command checks the vault directory first (creating nothing), so that an unusable
    // one gives the same exit code and message whatever the command. `status` does it itself,
    // to report it in its own object.
    if !matches!(cli.command, Command::Status) {
        ctx.session.vault().check_home()?;
    }
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
