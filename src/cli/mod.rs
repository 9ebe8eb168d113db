//! The command line: arguments and environment (read once, here), dispatch, and turning
//! failures into messages and exit codes.

mod completions;
mod config;
mod doctor;
mod doctor_checks;
mod doctor_clients;
mod doctor_report;
mod exec_proxy;
mod failure;
mod fast;
mod logging;
mod login;
mod logout;
mod migrate;
mod models;
mod output;
mod profiles;
mod proxy;
mod setup;
mod signals;
mod status;
mod token;
mod usage;

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use kimi_vault::Session;
use kimi_vault::oauth::{EndpointOverrides, Region};
use kimi_vault::store::{BackendMode, Vault, VaultPaths};

use failure::{CmdResult, Failure, exit};

/// Examples, the environment and the exit codes, after `--help`.
const AFTER_HELP: &str = "\
Examples:
  kimi-vault login                        log in (device flow), store the tokens
  kimi-vault status                       where the credential lives, whether it is valid
  kimi-vault token                        print a fresh access token (Claude Code's apiKeyHelper)
  kimi-vault exec -- claude               run a program with the token in its environment
  kimi-vault exec --proxy -- claude       ... with a private proxy: fresh tokens for long sessions
  kimi-vault setup claude                 make Claude Code take its key from the vault
  kimi-vault proxy                        a local proxy for any Anthropic/OpenAI-style client
  kimi-vault usage                        weekly and 5-hour quota
  kimi-vault --profile work login --region global
  kimi-vault profiles use work            make 'work' the default profile
  kimi-vault doctor                       what works here (keyring, file, lock, clock, endpoints)

Environment:
  KIMI_VAULT_PROFILE      profile (default: the one `profiles use` set, else default)
  KIMI_VAULT_HOME         vault directory (default: ~/.local/share/kimi-vault on Linux)
  KIMI_VAULT_BACKEND      auto (keyring, else encrypted file), keyring, file
  KIMI_CODE_OAUTH_HOST    OAuth host override (also KIMI_OAUTH_HOST)
  KIMI_CODE_BASE_URL      API base override
  KIMI_CLIENT_ID          OAuth client id override
  KIMI_SHARE_DIR, KIMI_CODE_HOME, RODER_DATA_DIR, RODER_CONFIG_DIR
                          where `migrate` looks for other tools' files

Exit codes:
  0  success
  1  any other failure (membership not active, endpoint refused, keyring required but failing)
  2  usage error (bad flag, bad profile name)
  3  login required: no credential, or the refresh token was rejected
  4  vault unreadable: corrupt, tampered, other machine/user, unsafe permissions
  5  Kimi's service unreachable or failing after retries
  126, 127  exec: CMD cannot be executed / not found (exec --proxy: CMD's code, 128+signal)
  130 login cancelled with Ctrl-C

--json: one JSON value on stdout (human text goes to stderr); a failure prints
{\"error\":{\"code\":N,\"message\":\"...\"}}. Profile names: 1-64 of A-Z a-z 0-9 - _ .,
not starting with '.'.";

/// Keeps Kimi Code OAuth credentials safe and hands them to the tools that need them.
#[derive(Debug, Parser)]
#[command(
    name = "kimi-vault",
    version,
    about,
    long_about = None,
    after_help = AFTER_HELP,
    arg_required_else_help = true
)]
struct Cli {
    /// Profile to use (1-64 of A-Z a-z 0-9 - _ ., not starting with '.') [env: KIMI_VAULT_PROFILE]
    /// [default: the one set with `profiles use`, else default].
    #[arg(long, global = true, value_name = "NAME", display_order = 1)]
    profile: Option<String>,
    /// Machine-readable output on stdout (human text goes to stderr).
    #[arg(long, global = true, display_order = 2)]
    json: bool,
    /// More detail on stderr (-v notes, -vv detail; never a secret).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, display_order = 3)]
    verbose: u8,
    #[command(flatten)]
    config: Config,
    /// The command.
    #[command(subcommand)]
    command: Command,
}

/// Where things are, usually set through the environment. clap reads none of the variables:
/// [`Config::fill_from_env`] (the configuration layer, `config.rs`) does, once.
#[derive(Debug, Default, Args)]
#[command(next_help_heading = "Configuration (usually set through the environment)")]
pub(crate) struct Config {
    /// Directory of the encrypted vault, its key, lock and device id [default: the platform
    /// data directory, ~/.local/share/kimi-vault on Linux] [env: KIMI_VAULT_HOME].
    #[arg(long, global = true, value_name = "DIR")]
    pub(crate) vault_home: Option<PathBuf>,
    /// Where credentials are kept: auto (the OS keyring, the encrypted file where no keyring is
    /// usable), keyring (fail rather than fall back), file [env: KIMI_VAULT_BACKEND] [default:
    /// auto].
    #[arg(long, global = true, value_enum, value_name = "MODE")]
    pub(crate) backend: Option<BackendArg>,
    /// OAuth host override [env: KIMI_CODE_OAUTH_HOST, then KIMI_OAUTH_HOST].
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) oauth_host: Option<String>,
    /// The other name of the OAuth host override: its variable only, `KIMI_OAUTH_HOST` (the
    /// flag is `--oauth-host`). Not an option of the command line: a hidden option would still
    /// be offered by the completion scripts (clap_complete completes hidden options).
    #[arg(skip)]
    pub(crate) kimi_oauth_host: Option<String>,
    /// API base override [env: KIMI_CODE_BASE_URL].
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) api_base: Option<String>,
    /// OAuth client id override [env: KIMI_CLIENT_ID].
    #[arg(long, global = true, value_name = "ID")]
    pub(crate) client_id: Option<String>,
}

/// `KIMI_VAULT_BACKEND`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum BackendArg {
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
    /// auth.kimi.com / api.kimi.com (also `mainland-cn`, kimi-code's name)
    #[value(alias = "mainland-cn")]
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

/// The subcommands, in the order people reach for them.
#[derive(Debug, Subcommand)]
enum Command {
    /// Log in with Kimi's device flow and store the tokens.
    #[command(
        after_help = "Examples:\n  kimi-vault login\n  kimi-vault login --no-browser          on a machine without a display\n  kimi-vault --profile work login --region global"
    )]
    Login {
        /// Do not open a browser (show the URL and the code only).
        #[arg(long)]
        no_browser: bool,
        /// Kimi region: cn (auth.kimi.com, api.kimi.com) or global (auth.kimi.ai, api.kimi.ai);
        /// stored with the credential.
        #[arg(long, value_enum, default_value = "cn")]
        region: RegionArg,
    },
    /// Show the profile, backend, login state, expiry and region (never a secret).
    #[command(
        after_help = "Exit 0 when logged in, 3 when not (or when the refresh token was rejected), 4 when the vault cannot be read.\n\nExamples:\n  kimi-vault status\n  kimi-vault -v status                   also what was looked at, and how long it took\n  kimi-vault status --json"
    )]
    Status,
    /// Print a valid access token on stdout, refreshing first if needed.
    #[command(
        after_help = "For Claude Code's apiKeyHelper, which caches a key for 5 minutes by default: keep\nCLAUDE_CODE_API_KEY_HELPER_TTL_MS below --min-valid (both default to 5 minutes), so a\ncached token never expires while cached.\n\nExamples:\n  kimi-vault token\n  kimi-vault token --min-valid 600\n  kimi-vault token --refresh             refresh now, then print the new token\n  kimi-vault token --json                {\"access_token\":…,\"expires_at\":…}"
    )]
    Token {
        /// Refresh first if the token expires within this many seconds.
        #[arg(long, default_value_t = fast::DEFAULT_MIN_VALID, value_name = "SECONDS")]
        min_valid: u32,
        /// Refresh now, whatever the token's age (once across processes: a refresh another
        /// process has just made is used instead).
        #[arg(long)]
        refresh: bool,
    },
    /// Run a command with a fresh token in its environment, or with a private proxy.
    #[command(
        after_help = "The command goes after `--`; without one, $SHELL starts (type `exit` to leave it). CMD gets\nKIMI_VAULT_PROFILE set to the profile in use; an exec inside it warns that it is nested.\nWithout --proxy it replaces kimi-vault, so its exit code is\nreturned; 127 when it is not found, 126 when it cannot be executed. With --proxy, kimi-vault\nwaits for it and returns its exit code (or 128 + the signal that ended it).\n\nExamples:\n  kimi-vault exec -- claude\n  kimi-vault exec --proxy -- claude\n  kimi-vault exec --proxy --for kimi -- kimi\n  kimi-vault exec --proxy --for openai -- my-openai-tool\n  kimi-vault exec --env KIMI_API_KEY -- some-tool\n  kimi-vault exec                        a shell with the token in its environment\n\n--env VAR names a variable that holds a credential: its name ends in _KEY, _TOKEN, _SECRET,\n_PASSWORD or _CREDENTIALS (any case); any other name is refused (exit 2)."
    )]
    Exec {
        /// Variable to put the token in (repeatable; default ANTHROPIC_AUTH_TOKEN).
        #[arg(long = "env", value_name = "VAR", conflicts_with = "proxy")]
        env: Vec<String>,
        /// Start a private proxy on a random loopback port with a one-time client key for the
        /// lifetime of CMD, and point CMD at it (tokens stay fresh however long CMD runs).
        #[arg(long)]
        proxy: bool,
        /// Which client CMD is (with --proxy): claude sets ANTHROPIC_BASE_URL and
        /// ANTHROPIC_AUTH_TOKEN (and removes ANTHROPIC_API_KEY); kimi serves both Kimi CLIs
        /// (kimi-cli: KIMI_BASE_URL, KIMI_CODE_BASE_URL, KIMI_API_KEY; kimi-code: KIMI_MODEL_*);
        /// openai sets OPENAI_BASE_URL and OPENAI_API_KEY. Each also adds loopback to NO_PROXY.
        #[arg(
            long = "for",
            value_enum,
            default_value = "claude",
            requires = "proxy",
            value_name = "CLIENT"
        )]
        for_client: exec_proxy::ForClient,
        /// With --for kimi: the model for kimi-code (KIMI_MODEL_NAME) [default: the first model
        /// Kimi lists].
        #[arg(long, requires = "proxy", value_name = "ID")]
        model: Option<String>,
        /// The command and its arguments [default: $SHELL, an interactive shell].
        #[arg(last = true, value_name = "CMD")]
        cmd: Vec<OsString>,
    },
    /// Run a local proxy that injects a fresh token into every request (long sessions).
    #[command(
        after_help = "Clients use the printed URL and key (Anthropic-style: the URL; OpenAI-style: the URL + /v1).\nSIGINT or SIGTERM: stop accepting, let in-flight responses finish (up to 10 s), exit 0.\n\nExamples:\n  kimi-vault proxy\n  kimi-vault proxy --port 0 --json\n  kimi-vault proxy --check"
    )]
    Proxy(proxy::ProxyArgs),
    /// Show the account's quota: the weekly and the 5-hour window.
    #[command(after_help = "Examples:\n  kimi-vault usage\n  kimi-vault usage --json")]
    Usage,
    /// List the models the account can use.
    #[command(after_help = "Examples:\n  kimi-vault models\n  kimi-vault models --json")]
    Models,
    /// List every stored profile: backend, login state, expiry, region (never a secret).
    #[command(
        after_help = "Examples:\n  kimi-vault profiles\n  kimi-vault profiles --json\n  kimi-vault profiles use work            make 'work' the default profile"
    )]
    Profiles {
        /// `profiles use NAME`.
        #[command(subcommand)]
        action: Option<ProfilesAction>,
    },
    /// Remove the profile's credential from every backend.
    #[command(
        after_help = "Kimi has no revoke endpoint: the tokens are deleted locally only. Nothing stored:\nnothing is touched. An unreadable vault is kept aside (vault.enc.unreadable-<time>), not deleted.\n\nExamples:\n  kimi-vault logout\n  kimi-vault --profile work logout"
    )]
    Logout,
    /// Move other Kimi tools' plaintext credentials into the vault.
    #[command(
        after_help = "Examples:\n  kimi-vault migrate --dry-run\n  kimi-vault migrate\n  kimi-vault migrate --from ~/.kimi/credentials/kimi-code.json --profile kimi-cli"
    )]
    Migrate {
        /// Source file to migrate (repeatable; `keyring:kimi-code` for kimi-cli's old keyring
        /// entry). Without it, every known location is scanned.
        #[arg(long = "from", value_name = "PATH")]
        from: Vec<PathBuf>,
        /// Read and report only; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Leave the sources in place (refresh tokens rotate: one of the two copies will stop
        /// working).
        #[arg(long)]
        keep: bool,
        /// Replace a credential the profile already has.
        #[arg(long)]
        force: bool,
        /// The region of a kimi-code credential slot whose name matches no known region
        /// (without it, such a slot is left untouched); a known slot keeps its own.
        #[arg(long, value_enum, value_name = "REGION")]
        region: Option<RegionArg>,
    },
    /// Explain which backends work here and why not; check files, lock, clock and endpoints.
    #[command(
        after_help = "Exit 0 when the configured backend works, 1 when it does not, 4 when the vault\ncannot be read or a vault file is unsafe.\n\nExamples:\n  kimi-vault doctor\n  KIMI_VAULT_BACKEND=keyring kimi-vault doctor\n  kimi-vault doctor --json"
    )]
    Doctor,
    /// Print a shell completion script on stdout.
    #[command(
        after_help = "Examples:\n  kimi-vault completions bash > ~/.local/share/bash-completion/completions/kimi-vault\n  kimi-vault completions zsh > ~/.zfunc/_kimi-vault\n  kimi-vault completions fish > ~/.config/fish/completions/kimi-vault.fish"
    )]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) of the tool or of one command on stdout, or write them all.
    #[command(
        after_help = "Examples:\n  kimi-vault man | man -l -                 read the tool's page\n  kimi-vault man login | man -l -           one command's page\n  kimi-vault man --dir ~/.local/share/man/man1 && man kimi-vault-login"
    )]
    Man {
        /// The command whose page to print (`login`, `profiles-use` …) [default: the tool's].
        #[arg(value_name = "COMMAND")]
        command: Option<String>,
        /// Write one page per command into DIR (kimi-vault.1, kimi-vault-login.1 …) instead.
        #[arg(long, value_name = "DIR", conflicts_with = "command")]
        dir: Option<PathBuf>,
    },
    /// Configure a client to take its key from the vault (Claude Code: settings.json).
    #[command(
        after_help = "Sets apiKeyHelper (this program with `token --min-valid 600`), env.ANTHROPIC_BASE_URL and\nenv.CLAUDE_CODE_API_KEY_HELPER_TTL_MS in Claude Code's settings.json ($CLAUDE_CONFIG_DIR, default\n~/.claude), keeping everything else; the previous file is kept as settings.json.bak-<time>.\nNo login needed. Safe to run twice; --undo puts back what it replaced.\n\nExamples:\n  kimi-vault setup claude --dry-run\n  kimi-vault setup claude\n  kimi-vault --profile work setup claude\n  kimi-vault setup claude --undo"
    )]
    Setup {
        /// The client to configure.
        #[arg(value_enum)]
        client: setup::SetupClient,
        /// Remove what setup set and put back the values it replaced.
        #[arg(long)]
        undo: bool,
        /// Print the new settings file on stdout; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `profiles`' subcommands.
#[derive(Debug, Subcommand)]
enum ProfilesAction {
    /// Make NAME the default profile (kept in the vault directory as `default-profile`;
    /// --profile and KIMI_VAULT_PROFILE still win).
    #[command(
        after_help = "Examples:\n  kimi-vault profiles use work\n  kimi-vault profiles use default"
    )]
    Use {
        /// The profile (1-64 of A-Z a-z 0-9 - _ ., not starting with '.').
        #[arg(value_name = "NAME")]
        name: String,
    },
}

impl Command {
    /// True for the commands that defer SIGINT/SIGTERM/SIGHUP during a token refresh (the
    /// short ones). The commands with signal handling of their own answer false: `proxy` and
    /// `exec --proxy` (graceful shutdown, forwarding to CMD; they wait with
    /// `kimi_vault::session::wait_for_critical_sections` before they exit) and `login` (Ctrl-C
    /// cancels it cleanly; it refreshes nothing).
    fn defers_signals_during_refresh(&self) -> bool {
        match self {
            Command::Logout
            | Command::Status
            | Command::Token { .. }
            | Command::Exec { proxy: false, .. }
            | Command::Usage
            | Command::Models
            | Command::Profiles { .. }
            | Command::Doctor
            | Command::Completions { .. }
            | Command::Man { .. }
            | Command::Migrate { .. }
            | Command::Setup { .. } => true,
            Command::Login { .. } | Command::Exec { proxy: true, .. } | Command::Proxy(_) => false,
        }
    }
}

/// What every command needs.
pub(crate) struct Ctx {
    /// `--json`.
    pub json: bool,
    /// `-v` count.
    pub verbose: u8,
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
        let mode = match self.backend.unwrap_or(BackendArg::Auto) {
            BackendArg::Auto => BackendMode::Auto,
            BackendArg::Keyring => BackendMode::Keyring,
            BackendArg::File => BackendMode::File,
        };
        Ok(Vault::new(paths, mode))
    }

    pub(crate) fn overrides(&self) -> EndpointOverrides {
        let set = |v: &Option<String>| v.clone().filter(|s| !s.trim().is_empty());
        EndpointOverrides {
            oauth_host: set(&self.oauth_host).or_else(|| set(&self.kimi_oauth_host)),
            api_base: set(&self.api_base),
            client_id: set(&self.client_id),
        }
    }
}

/// True when `--json` is among the arguments (before a `--`), for errors found while parsing.
fn json_requested(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "--json")
}

/// True when the command line is an `exec` (for the hint at `--`).
fn is_exec(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|a| *a != "--")
        .any(|a| a == "exec")
}

/// True when `--` is among the arguments.
fn has_double_dash(args: &[OsString]) -> bool {
    args.iter().skip(1).any(|a| a == "--")
}

/// Lines joined with single spaces.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Reports an error found while parsing, with the same prefix as every other error (and as a
/// JSON error object with `--json`); help and version go out as clap prints them.
fn parse_failure(e: clap::Error, args: &[OsString]) -> u8 {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            return exit::OK;
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            return exit::USAGE;
        }
        _ => {}
    }
    let rendered = e.render().to_string();
    let text = rendered.trim_end();
    let text = text.strip_prefix("error: ").unwrap_or(text);
    // The first paragraph says what is wrong ("… were not provided:\n  <CMD>...").
    let first = text.split("\n\n").next().unwrap_or_default().to_owned();
    let mut message = text.to_owned();
    let mut headline = first.clone();
    let for_without_proxy = is_exec(args)
        && e.kind() == ErrorKind::MissingRequiredArgument
        && matches!(e.get(ContextKind::InvalidArg), Some(ContextValue::Strings(v)) if v.iter().any(|a| a.starts_with("--proxy")));
    if for_without_proxy {
        let rest: Vec<String> = args
            .iter()
            .skip_while(|a| *a != "exec")
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let hint = format!(
            "--for needs --proxy: kimi-vault exec --proxy {}",
            kimi_vault::sanitize::for_terminal(&rest.join(" "))
        );
        message = format!("{first}\n\n  hint: {hint}");
        headline = format!("{}; {hint}", one_line(&first));
    } else if is_exec(args)
        && !has_double_dash(args)
        && matches!(
            e.kind(),
            ErrorKind::UnknownArgument | ErrorKind::MissingRequiredArgument
        )
    {
        let given = match e.get(ContextKind::InvalidArg) {
            Some(ContextValue::String(s)) if !s.starts_with('-') => format!(" {s} …"),
            _ => " CMD [ARGS]…".to_owned(),
        };
        let hint = format!("the command to run goes after `--`, as in: kimi-vault exec --{given}");
        message = format!("{first}\n\n  hint: {hint}");
        headline = format!("{}; {hint}", one_line(&first));
    }
    if json_requested(args) {
        let headline = one_line(&headline);
        output::json_line(&output::ErrorJson::new(exit::USAGE, &headline));
    }
    eprintln!("{}{message}", output::error_prefix());
    exit::USAGE
}

/// Parses the arguments, runs the command, and returns the exit code. The everyday `token`
/// command lines are recognised without building clap's parser ([`fast::token_command`]);
/// everything else (and anything unusual about those) goes through clap.
pub(crate) fn main() -> u8 {
    let args: Vec<OsString> = std::env::args_os().collect();
    let cli = match fast::token_command(&args) {
        Some(cli) => cli,
        None => match Cli::try_parse_from(&args) {
            Ok(cli) => cli,
            Err(e) => return parse_failure(e, &args),
        },
    };
    logging::init(cli.verbose);
    if cli.command.defers_signals_during_refresh() {
        signals::defer_during_refresh();
    }
    let json = cli.json;
    let is_login = matches!(cli.command, Command::Login { .. });
    // The profile named in messages: the flag's until the configuration is resolved.
    let mut profile = cli
        .profile
        .clone()
        .unwrap_or_else(|| kimi_vault::store::DEFAULT_PROFILE.to_owned());
    match run(cli, &mut profile) {
        Ok(code) if code == exit::OK && output::stdout_failed() => exit::FAILURE,
        Ok(code) => code,
        Err(failure) => report(&failure, &profile, json, is_login),
    }
}

/// Prints a failure (on stderr, and as JSON on stdout with `--json`) and returns its exit code.
pub(crate) fn report(failure: &Failure, profile: &str, json: bool, is_login: bool) -> u8 {
    let message = kimi_vault::scrub(&failure.message(profile));
    let code = failure.exit_code();
    if json {
        if is_login {
            output::json_line(&login::LoginLine::Error { message: &message });
        } else {
            output::json_line(&output::ErrorJson::new(code, &message));
        }
    }
    // Error messages carry outside text (server bodies, paths): escaped for the terminal;
    // the JSON above keeps the exact value.
    eprintln!(
        "{}{}",
        output::error_prefix(),
        kimi_vault::sanitize::for_terminal_multiline(&message)
    );
    code
}

/// Runs the command; `profile` is set to the profile in use once it is known (for messages).
fn run(mut cli: Cli, profile: &mut String) -> CmdResult {
    // Commands that need no vault and no profile.
    // They print a shell script or a roff page, which has no JSON form: `--json` is refused
    // (a usage error) rather than ignored, so that a script asking for JSON is told at once.
    match &cli.command {
        Command::Completions { .. } | Command::Man { .. } if cli.json => {
            let name = match &cli.command {
                Command::Completions { .. } => "completions",
                _ => "man",
            };
            return Err(Failure::Usage(format!(
                "`{name}` prints {}, which has no JSON form: run it without --json",
                if name == "man" {
                    "a man page (roff)"
                } else {
                    "a shell script"
                }
            )));
        }
        Command::Completions { shell } => return completions::completions(*shell),
        Command::Man { command, dir } => {
            return completions::man(command.as_deref(), dir.as_deref());
        }
        _ => {}
    }
    cli.config.fill_from_env()?;
    let vault = cli.config.vault()?;
    // An unusable `default-profile` file names `profiles use NAME` as its fix: that command
    // must still run then (it rewrites the file). `status` reports it in its own output (with
    // `--json`, its object with `error` set), for the profile `default`.
    let mut unresolved = None;
    *profile = match (
        config::resolve_profile(cli.profile.take(), vault.paths()),
        &cli.command,
    ) {
        (Ok(p), _) => p,
        (
            Err(_),
            Command::Profiles {
                action: Some(ProfilesAction::Use { name }),
            },
        ) => name.clone(),
        (Err(Failure::Lib(e)), Command::Status) => {
            unresolved = Some(e);
            kimi_vault::store::DEFAULT_PROFILE.to_owned()
        }
        // `doctor` is where one looks when commands fail: it runs (for `default`), says why,
        // and lists the file among the vault's.
        (Err(e), Command::Doctor) => {
            tracing::warn!(
                "{}; doctor checks profile '{}' instead",
                e.message(kimi_vault::store::DEFAULT_PROFILE),
                kimi_vault::store::DEFAULT_PROFILE
            );
            kimi_vault::store::DEFAULT_PROFILE.to_owned()
        }
        (Err(e), _) => return Err(e),
    };
    failure::set_vault_paths(vault.paths());
    let session = Session::new(vault, profile, cli.config.overrides())?;
    let ctx = Ctx {
        json: cli.json,
        verbose: cli.verbose,
        session,
    };
    // Every command checks the vault directory first (creating nothing), so that an unusable
    // one gives the same exit code and message whatever the command. `status` and `doctor` do
    // it themselves, to report it in their own output.
    if !matches!(cli.command, Command::Status | Command::Doctor) {
        ctx.session
            .vault()
            .check_home()
            .map_err(vault_home_failure)?;
    }
    match cli.command {
        Command::Login { no_browser, region } => login::run(&ctx, no_browser, region.into()),
        Command::Logout => logout::run(&ctx),
        Command::Status => status::run(&ctx, unresolved),
        Command::Token { min_valid, refresh } => token::token(&ctx, min_valid, refresh),
        Command::Exec {
            proxy: true,
            for_client,
            model,
            cmd,
            ..
        } => exec_proxy::run(&ctx, for_client, model.as_deref(), &cmd),
        Command::Exec { env, cmd, .. } => token::exec(&ctx, &env, &cmd),
        Command::Proxy(args) => proxy::run(&ctx, &args),
        Command::Usage => usage::run(&ctx),
        Command::Models => models::run(&ctx),
        Command::Profiles { action: None } => profiles::run(&ctx),
        Command::Profiles {
            action: Some(ProfilesAction::Use { name }),
        } => profiles::use_profile(&ctx, &name),
        Command::Doctor => doctor::run(&ctx, &cli.config),
        Command::Migrate {
            from,
            keep,
            dry_run,
            force,
            region,
        } => migrate::run(&ctx, from, keep, dry_run, force, region.map(Into::into)),
        Command::Setup {
            client,
            undo,
            dry_run,
        } => setup::run(&ctx, &cli.config, client, undo, dry_run),
        Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
    }
}

/// A failure of the vault directory's check, with the way out when the directory cannot even
/// be looked at (a home directory that cannot be used: unreadable, a name too long, a loop of
/// links): the library's I/O error names the path, the command line names `KIMI_VAULT_HOME`.
/// Every other error keeps its own words and exit code.
pub(crate) fn vault_home_failure(e: kimi_vault::Error) -> Failure {
    match e {
        e @ kimi_vault::Error::Io { .. } => Failure::Other(format!(
            "{e}. The vault directory cannot be used there: point {} (or --vault-home) at a directory you can write (the vault directory is created there, mode 700); `kimi-vault doctor` checks it",
            config::HOME_VAR
        )),
        e => Failure::Lib(e),
    }
}

/// The command-line definition (for completions and the man page).
pub(crate) fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

#[cfg(test)]
mod tests {
    /// clap's own consistency check of the whole definition (flags, `env`, conflicts,
    /// subcommands), which otherwise runs only when a broken path is taken.
    #[test]
    fn the_command_line_definition_is_consistent() {
        super::command().debug_assert();
    }
}
