//! `kimi-vault login`: device flow with a QR code, a browser, a spinner, and JSON lines.

use std::io::IsTerminal;
use std::time::Duration;

use kimi_vault::oauth::{DeviceAuthorization, LoginEvent, Region};
use serde_json::json;

use crate::cli::failure::{CmdResult, Failure, exit};
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
    eprintln!("To log in to Kimi, open:\n\n    {complete}\n");
    eprintln!("and confirm the code:  {}\n", auth.user_code);
    if !ctx.json
        && std::io::stderr().is_terminal()
        && let Some(code) = qr(&complete)
    {
        eprintln!("{code}");
    }
    let openable = complete.starts_with("https://") || complete.starts_with("http://");
    if !no_browser && openable && has_display() && webbrowser::open(&complete).is_err() {
        eprintln!("(could not open a browser: open the URL above yourself)");
    }
}

/// Runs the device flow and stores the tokens.
pub(crate) fn run(ctx: &Ctx, no_browser: bool, region: Region) -> CmdResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Failure::Output)?;
    let session = &ctx.session;
    let grant = runtime.block_on(async {
        let pending = session.begin_login(region).await?;
        show_verification(ctx, pending.authorization(), no_browser);
        let spinner = (!ctx.json && std::io::stderr().is_terminal()).then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_message("Waiting for you to approve the login…");
            s.enable_steady_tick(Duration::from_millis(120));
            s
        });
        let json = ctx.json;
        let grant = pending
            .wait(&mut |event| {
                if json && event == LoginEvent::Waiting {
                    output::json_line(&json!({"type": "waiting"}));
                }
            })
            .await;
        if let Some(s) = &spinner {
            s.finish_and_clear();
        }
        grant
    })?;
    let stored = session.store_login(grant, region)?;
    if ctx.json {
        output::json_line(&json!({
            "type": "success",
            "profile": ctx.profile(),
            "backend": stored.backend.as_str(),
            "expires_at": kimi_vault::rfc3339(stored.expires_at),
        }));
    }
    eprintln!(
        "Logged in: profile '{}' stored in the {}.",
        ctx.profile(),
        stored.backend.describe()
    );
    Ok(exit::OK)
}
