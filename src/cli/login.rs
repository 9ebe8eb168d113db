//! `kimi-vault login`: device flow with a QR code, a browser, a countdown, Ctrl-C to cancel, and
//! JSON lines.

use std::io::IsTerminal;
use std::time::Duration;

use kimi_vault::Error;
use kimi_vault::oauth::{DeviceAuthorization, LoginEvent, Region};
use serde::Serialize;
use tokio::time::Instant;

use crate::cli::failure::{CmdResult, Failure, exit, profile_flag};
use crate::cli::{Ctx, output};

#[allow(
    clippy::disallowed_methods,
    reason = "the command line decides whether to open a browser"
)]
fn has_display() -> bool {
    if cfg!(target_os = "linux") {
        std::env::var_os("DISPLAY").is_some_and(|v| !v.is_empty())
            || std::env::var_os("WAYLAND_DISPLAY").is_some_and(|v| !v.is_empty())
    } else {
        true
    }
}

fn qr(text: &str) -> Option<String> {
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::unicode::Dense1x2>()
            .quiet_zone(true)
            .build(),
    )
}

/// `login --json`: one object per line (SPEC §3), `type` first.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum LoginLine<'a> {
    /// The code and URL to confirm it at.
    Verification(&'a VerificationJson<'a>),
    /// A poll found the login still pending.
    Waiting,
    /// The tokens are stored.
    Success(&'a SuccessJson<'a>),
    /// The login failed (the message of stderr).
    Error { message: &'a str },
}

/// The user code and where to confirm it, exactly as Kimi sent them.
#[derive(Serialize)]
pub(crate) struct VerificationJson<'a> {
    user_code: &'a str,
    verification_uri: &'a str,
    verification_uri_complete: Option<&'a str>,
    expires_in: u64,
}

/// What a login stored, and what it replaced.
#[derive(Serialize)]
pub(crate) struct SuccessJson<'a> {
    profile: &'a str,
    backend: &'static str,
    region: &'static str,
    expires_at: String,
    account: Option<output::AccountJson<'a>>,
    replaced: Option<ReplacedJson>,
    /// For people: how the backend is called in a sentence.
    #[serde(skip)]
    backend_words: &'static str,
    /// For people: seconds the access token is valid for.
    #[serde(skip)]
    left: i64,
}

/// The credential a login replaced.
#[derive(Serialize)]
pub(crate) struct ReplacedJson {
    expires_at: String,
    needs_login: bool,
}

fn show_verification(ctx: &Ctx, auth: &DeviceAuthorization, no_browser: bool) {
    let shown = VerificationJson {
        user_code: &auth.user_code,
        verification_uri: &auth.verification_uri,
        verification_uri_complete: auth.verification_uri_complete.as_deref(),
        expires_in: auth.expires_in,
    };
    if ctx.json {
        output::json_line(&LoginLine::Verification(&shown));
    }
    print_verification(&shown, no_browser, !ctx.json);
}

/// The code and URL for people (on stderr; the QR code only on a terminal without `--json`);
/// opens the browser unless told not to or there is no display.
fn print_verification(v: &VerificationJson<'_>, no_browser: bool, qr_code: bool) {
    let complete = v.verification_uri_complete.unwrap_or(v.verification_uri);
    let openable = complete.starts_with("https://") || complete.starts_with("http://");
    // What the server sent is shown escaped (an OSC 52 or a bidi override in a code or a URL
    // must not reach the terminal); --json above and the browser get the exact values.
    let shown = kimi_vault::sanitize::for_terminal(complete);
    let user_code = kimi_vault::sanitize::for_terminal(v.user_code);
    let opened = !no_browser && openable && has_display() && webbrowser::open(complete).is_ok();
    if opened {
        eprintln!("Opened your browser at:\n\n    {shown}\n");
    } else {
        eprintln!("To log in to Kimi, open this URL on any device:\n\n    {shown}\n");
    }
    eprintln!("and confirm the code:  {user_code}\n");
    if qr_code
        && std::io::stderr().is_terminal()
        && let Some(code) = qr(complete)
    {
        eprintln!("{code}");
    }
    eprintln!(
        "The code expires in {}. Press Ctrl-C to cancel.",
        output::span(v.expires_in)
    );
}

/// Says what this login will replace, before it starts.
fn announce_replacement(ctx: &Ctx) {
    let profile = ctx.profile();
    let now = kimi_vault::now_unix();
    match ctx.session.stored() {
        Ok(Some(l)) if l.cred.needs_login => eprintln!(
            "Profile '{profile}' has a credential whose refresh token was rejected; this login replaces it."
        ),
        Ok(Some(l)) => eprintln!(
            "Profile '{profile}' already has a credential ({}, access token {} {}); this login replaces it.",
            l.backend.describe(),
            if l.cred.expires_in(now) > 0 {
                "valid until"
            } else {
                "expired at"
            },
            kimi_vault::rfc3339(l.cred.expires_at),
        ),
        Err(e @ Error::VaultUnreadable { .. })
            if !matches!(
                &e,
                Error::VaultUnreadable {
                    problem: kimi_vault::VaultProblem::Unsafe(_),
                    ..
                }
            ) =>
        {
            eprintln!(
                "The vault cannot be read ({e}); it will be kept aside as vault.enc.unreadable-<time> when the new login is stored."
            )
        }
        _ => {}
    }
}

/// Warns when another stored profile holds the same Kimi account (same `user_id`): two
/// profiles refreshing one account's tokens is rarely meant.
fn warn_same_account(ctx: &Ctx, user_id: &str) {
    let mut others: Vec<String> = ctx
        .session
        .vault()
        .profiles()
        .profiles
        .into_iter()
        .filter(|p| p.profile != ctx.profile())
        .filter(|p| {
            p.cred
                .as_ref()
                .is_ok_and(|c| c.account.as_ref().is_some_and(|a| a.user_id == user_id))
        })
        .map(|p| p.profile)
        .collect();
    others.dedup();
    if !others.is_empty() {
        eprintln!(
            "kimi-vault: warning: profile{} {} already hold{} this Kimi account; one profile per account is usually what you want (`kimi-vault --profile NAME logout` removes one)",
            if others.len() == 1 { "" } else { "s" },
            others
                .iter()
                .map(|p| format!("'{p}'"))
                .collect::<Vec<_>>()
                .join(", "),
            if others.len() == 1 { "s" } else { "" },
        );
    }
}

/// The spinner's terminal, three columns narrower than stderr: indicatif pads its line to the
/// full width, and the `^C` a terminal echoes after a full-width line wraps it, so that clearing
/// the (new) last line left the spinner's last frame on screen.
#[derive(Debug)]
struct SpinnerTerm(console::Term);

impl indicatif::TermLike for SpinnerTerm {
    fn width(&self) -> u16 {
        self.0.size().1.saturating_sub(3).max(20)
    }
    fn height(&self) -> u16 {
        self.0.size().0
    }
    fn move_cursor_up(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_up(n)
    }
    fn move_cursor_down(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_down(n)
    }
    fn move_cursor_right(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_right(n)
    }
    fn move_cursor_left(&self, n: usize) -> std::io::Result<()> {
        self.0.move_cursor_left(n)
    }
    fn write_line(&self, s: &str) -> std::io::Result<()> {
        self.0.write_line(s)
    }
    fn write_str(&self, s: &str) -> std::io::Result<()> {
        self.0.write_str(s)
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.0.clear_line()
    }
    fn flush(&self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The device flow: the code shown, the wait (a spinner on a terminal, `waiting` lines with
/// `--json`, Ctrl-C cancels), then which account it is (a failure there is a warning).
async fn device_flow(
    ctx: &Ctx,
    no_browser: bool,
    region: Region,
) -> Result<
    (
        kimi_vault::oauth::TokenGrant,
        Option<kimi_vault::store::Account>,
    ),
    Failure,
> {
    let session = &ctx.session;
    let pending = session.begin_login(region).await?;
    let auth = pending.authorization();
    let deadline = Instant::now() + Duration::from_secs(auth.expires_in);
    show_verification(ctx, auth, no_browser);
    let spinner = (!ctx.json && std::io::stderr().is_terminal()).then(|| {
        let target = indicatif::ProgressDrawTarget::term_like(Box::new(SpinnerTerm(
            console::Term::stderr(),
        )));
        let s = indicatif::ProgressBar::with_draw_target(None, target)
            .with_style(indicatif::ProgressStyle::default_spinner());
        s.enable_steady_tick(Duration::from_millis(120));
        s
    });
    let json = ctx.json;
    let mut on_event = |event| {
        if json && event == LoginEvent::Waiting {
            output::json_line(&LoginLine::Waiting);
        }
    };
    let wait = pending.wait(&mut on_event);
    tokio::pin!(wait);
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            // No way to catch it: Ctrl-C then ends the process as usual.
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(ctrl_c);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            grant = &mut wait => break Some(grant),
            () = &mut ctrl_c => break None,
            _ = tick.tick() => {
                if let Some(s) = &spinner {
                    let left = deadline.saturating_duration_since(Instant::now()).as_secs();
                    s.set_message(format!(
                        "Waiting for approval · the code expires in {} · Ctrl-C to cancel",
                        output::span(left)
                    ));
                }
            }
        }
    };
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let grant = match outcome {
        Some(grant) => grant?,
        None => return Err(Failure::Cancelled),
    };
    // Which account this is: a failure here is a warning, not a failed login.
    let account = match pending.account(&grant.access_token).await {
        Ok(account) => Some(account),
        Err(e) => {
            eprintln!(
                "kimi-vault: warning: logged in, but could not read which account this is ({}); `status` will not show it until the next login",
                kimi_vault::sanitize::for_terminal(&kimi_vault::scrub(&e.to_string()))
            );
            None
        }
    };
    Ok((grant, account))
}

/// Runs the device flow and stores the tokens.
pub(crate) fn run(ctx: &Ctx, no_browser: bool, region: Region) -> CmdResult {
    announce_replacement(ctx);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Output)?;
    let (grant, account) = runtime.block_on(device_flow(ctx, no_browser, region))?;
    let stored = ctx.session.store_login(grant, region, account)?;
    let profile = ctx.profile();
    let success = SuccessJson {
        profile,
        backend: stored.backend.as_str(),
        region: region.as_str(),
        expires_at: kimi_vault::rfc3339(stored.expires_at),
        account: output::AccountJson::of(stored.account.as_ref()),
        replaced: stored
            .replaced
            .map(|(expires_at, needs_login)| ReplacedJson {
                expires_at: kimi_vault::rfc3339(expires_at),
                needs_login,
            }),
        backend_words: stored.backend.describe(),
        left: stored.expires_at - kimi_vault::now_unix(),
    };
    if ctx.json {
        output::json_line(&LoginLine::Success(&success));
    }
    print_success(ctx, &success);
    Ok(exit::OK)
}

/// The login's result for people: what it replaced and which account on stderr, then where it
/// is stored (on stdout, or on stderr with `--json`).
fn print_success(ctx: &Ctx, s: &SuccessJson<'_>) {
    let profile = s.profile;
    if let Some(r) = &s.replaced {
        eprintln!(
            "Replaced the earlier credential of profile '{profile}' ({}).",
            if r.needs_login {
                "its refresh token had been rejected".to_owned()
            } else {
                format!("access token expiring {}", r.expires_at)
            }
        );
    }
    if let Some(account) = &s.account {
        eprintln!("Kimi account: {}.", account.words());
        warn_same_account(ctx, account.id);
    }
    let flag = profile_flag(profile);
    crate::cli::output::resln!(
        ctx.json,
        "Logged in: profile '{profile}' ({} region) stored in the {}. The access token expires at {} ({}) and is renewed automatically.\nNext: `kimi-vault{flag} status`, or run a tool with it: `kimi-vault{flag} exec -- claude`.",
        s.region,
        s.backend_words,
        s.expires_at,
        output::relative(s.left),
    );
}
