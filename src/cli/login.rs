//! `kimi-vault login`: device flow with a QR code, a browser, a spinner, and JSON lines.

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::json;

use crate::cli::{Ctx, output};
use crate::diag::{now_unix, rfc3339};
use crate::error::{Result, exit};
use crate::oauth::device::{self, LoginEvent};
use crate::oauth::endpoints::{Endpoints, Region};
use crate::oauth::http::Http;
use crate::oauth::response::DeviceAuthorization;
use crate::store::{Credential, device_id};

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
pub fn run(ctx: &Ctx, no_browser: bool, region: Region) -> Result<u8> {
    let endpoints = Endpoints::resolve(region)?;
    let http = Http::new(&device_id::load_or_create(ctx.vault.paths())?);
    let auth = device::start(&http, &endpoints)?;
    show_verification(ctx, &auth, no_browser);

    let spinner = (!ctx.json && std::io::stderr().is_terminal()).then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.set_message("Waiting for you to approve the login in the browser…");
        s.enable_steady_tick(Duration::from_millis(120));
        s
    });
    let grant = device::poll(&http, &endpoints, &auth, &mut |event| match event {
        LoginEvent::Waiting if ctx.json => output::json_line(&json!({"type": "waiting"})),
        LoginEvent::SlowDown(secs) if ctx.verbose > 0 => {
            eprintln!("server asked to slow down: polling every {secs} s");
        }
        _ => {}
    });
    if let Some(s) = &spinner {
        s.finish_and_clear();
    }
    let grant = grant?;

    let lock = ctx.vault.lock()?;
    // Keep the proxy client key of an earlier login, so running proxies' clients keep working.
    let previous_key = ctx
        .vault
        .load(&ctx.profile)
        .ok()
        .flatten()
        .and_then(|l| l.cred.proxy_client_key);
    let mut cred = Credential::new(
        grant.access_token,
        grant.refresh_token.unwrap_or_default(),
        now_unix() + grant.expires_in,
    );
    cred.scope = grant.scope.unwrap_or_default();
    if let Some(t) = grant.token_type {
        cred.token_type = t;
    }
    cred.region = region.as_str().to_owned();
    cred.proxy_client_key = previous_key;
    if cred.refresh_token.is_empty() {
        crate::diag::warn(
            "Kimi sent no refresh token: you will have to log in again when the access token expires",
        );
    }
    let backend = ctx.vault.save(&ctx.profile, &cred, &lock, true)?;
    drop(lock);
    if ctx.json {
        output::json_line(&json!({
            "type": "success",
            "profile": ctx.profile,
            "backend": backend.as_str(),
            "expires_at": rfc3339(cred.expires_at),
        }));
    }
    eprintln!(
        "Logged in: profile '{}' stored in the {}.",
        ctx.profile,
        match backend {
            crate::store::BackendKind::Keyring => "OS keyring",
            crate::store::BackendKind::File => "encrypted file",
        }
    );
    Ok(exit::OK)
}
