//! `kimi-vault login`: device flow with a QR code, a browser, a countdown, Ctrl-C to cancel, and
//! JSON lines.

use std::io::IsTerminal;
use std::time::Duration;

use kimi_vault::Error;
use kimi_vault::oauth::{DeviceAuthorization, LoginEvent, Region};
use serde_json::json;
use tokio::time::Instant;

use crate::cli::failure::{CmdResult, Failure, exit, profile_flag};
use crate::cli::{Ctx, output};

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

fn show_verification(ctx: &Ctx, auth: &DeviceAuthorization, no_browser: bool) {
    let complete = auth
        .verification_uri_complete
        .clone()
        .unwrap_or_else(|| auth.verification_uri.clone());
    if ctx.json {
        output::json_line(&json!({
            "type": "verification",
            "user_code": auth.user_code,
            "verification_uri": auth.verification_uri,
            "verification_uri_complete": auth.verification_uri_complete,
            "expires_in": auth.expires_in,
        }));
    }
    let openable = complete.starts_with("https://") || complete.starts_with("http://");
    // What the server sent is shown escaped (an OSC 52 or a bidi override in a code or a URL
    // must not reach the terminal); --json above and the browser get the exact values.
    let shown = kimi_vault::sanitize::for_terminal(&complete);
    let user_code = kimi_vault::sanitize::for_terminal(&auth.user_code);
    let opened = !no_browser && openable && has_display() && webbrowser::open(&complete).is_ok();
    if opened {
        eprintln!("Opened your browser at:\n\n    {shown}\n");
    } else {
        eprintln!("To log in to Kimi, open this URL on any device:\n\n    {shown}\n");
    }
    eprintln!("and confirm the code:  {user_code}\n");
    if !ctx.json
        && std::io::stderr().is_terminal()
        && let Some(code) = qr(&complete)
    {
        eprintln!("{code}");
    }
    eprintln!(
        "The code expires in {}. Press Ctrl-C to cancel.",
        output::span(auth.expires_in)
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

/// Runs the device flow and stores the tokens.
pub(crate) fn run(ctx: &Ctx, no_browser: bool, region: Region) -> CmdResult {
    announce_replacement(ctx);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Output)?;
    let session = &ctx.session;
    let grant = runtime.block_on(async {
        let pending = session.begin_login(region).await?;
        let auth = pending.authorization();
        let deadline = Instant::now() + Duration::from_secs(auth.expires_in);
        show_verification(ctx, auth, no_browser);
        let spinner = (!ctx.json && std::io::stderr().is_terminal()).then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.enable_steady_tick(Duration::from_millis(120));
            s
        });
        let json = ctx.json;
        let mut on_event = |event| {
            if json && event == LoginEvent::Waiting {
                output::json_line(&json!({"type": "waiting"}));
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
        match outcome {
            Some(grant) => Ok(grant?),
            None => Err(Failure::Cancelled),
        }
    })?;
    let stored = session.store_login(grant, region)?;
    let profile = ctx.profile();
    if ctx.json {
        output::json_line(&json!({
            "type": "success",
            "profile": profile,
            "backend": stored.backend.as_str(),
            "region": region.as_str(),
            "expires_at": kimi_vault::rfc3339(stored.expires_at),
            "replaced": stored.replaced.map(|(expires_at, needs_login)| json!({
                "expires_at": kimi_vault::rfc3339(expires_at),
                "needs_login": needs_login,
            })),
        }));
    }
    if let Some((expires_at, needs_login)) = stored.replaced {
        eprintln!(
            "Replaced the earlier credential of profile '{profile}' ({}).",
            if needs_login {
                "its refresh token had been rejected".to_owned()
            } else {
                format!("access token expiring {}", kimi_vault::rfc3339(expires_at))
            }
        );
    }
    let left = stored.expires_at - kimi_vault::now_unix();
    let flag = profile_flag(profile);
    eprintln!(
        "Logged in: profile '{profile}' ({} region) stored in the {}. The access token expires at {} ({}) and is renewed automatically.\nNext: `kimi-vault{flag} status`, or run a tool with it: `kimi-vault{flag} exec -- claude`.",
        region.as_str(),
        stored.backend.describe(),
        kimi_vault::rfc3339(stored.expires_at),
        output::relative(left),
    );
    Ok(exit::OK)
}
