//! In-process figures for the redactor (`redact_body`) on a few realistic bodies: a JSON OAuth
//! error, a 4 kB HTML error page, and a 12 kB body with a held secret planted in it. A secret is
//! held (remembered) in each case, as in a process that has read its tokens.
//!
//! `cargo bench --features testing --bench redact` (issue 15's figures were taken with
//! `CARGO_PROFILE_BENCH_LTO=false CARGO_PROFILE_BENCH_CODEGEN_UNITS=16` to spare the shared
//! machine a fat-LTO build; before and after built alike).

use criterion::{Criterion, criterion_group, criterion_main};
use kimi_vault::internals::redact_body;
use kimi_vault::secret::SecretString;

/// A JSON OAuth error of about 400 bytes, as Kimi's auth server sends for a refused refresh.
fn oauth_error() -> String {
    let body = r#"{"error":"invalid_grant","error_description":"The refresh token is invalid, expired, revoked, or was issued to another client. Sign in again with kimi-vault login. (request 7f3c9a52-1b4e-4c1d-9a7e-2f6b8d0e4a13)","error_uri":"https://auth.kimi.com/docs/errors#invalid_grant","refresh_token":"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl","trace_id":"b6c1f0a2d94e4e7f","status":400}"#;
    assert!((350..=450).contains(&body.len()), "{}", body.len());
    body.to_owned()
}

/// A 4 kB HTML error page from a reverse proxy in front of the API.
fn html_page() -> String {
    let mut page = String::from(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>502 Bad Gateway</title>\n<style>body{font-family:sans-serif;margin:2em;color:#333}\
         h1{font-size:1.5em}.ray{color:#999;font-size:.8em}</style>\n</head>\n<body>\n\
         <h1>502 Bad Gateway</h1>\n<p>The upstream server returned an invalid response.</p>\n",
    );
    let mut i = 0;
    while page.len() < 3900 {
        page.push_str(&format!(
            "<p class=\"ray\">Ray ID: 8e4f{i:04x}c2a1d3b5 &middot; node edge-{i} &middot; \
             Please try again in a few minutes. If the problem persists, contact support.</p>\n"
        ));
        i += 1;
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// A 12 kB plain-text body (a debugging dump of a failed request) with a held secret in it.
fn planted(secret: &str) -> String {
    let mut body = String::new();
    let mut i = 0;
    while body.len() < 6000 {
        body.push_str(&format!(
            "line {i}: upstream connect error or disconnect/reset before headers. retried=true \
             reset reason: connection termination, elapsed {i} ms\n"
        ));
        i += 1;
    }
    body.push_str(&format!("forwarded credential was {secret} (held)\n"));
    while body.len() < 12_000 {
        body.push_str(&format!(
            "line {i}: transport failure reason: delayed connect error 111\n"
        ));
        i += 1;
    }
    body
}

fn benches(c: &mut Criterion) {
    let held = SecretString::from("kimi-held-refresh-2f6b8d0e4a13c2a1d3b5");
    let oauth = oauth_error();
    let html = html_page();
    let big = planted(held.expose());
    // Sanity: what the benchmark measures is a real redaction.
    assert!(!redact_body(&oauth).contains("eyJ"));
    assert!(!redact_body(&big).contains(held.expose()));
    c.bench_function("redact_body_oauth_error_400b", |b| {
        b.iter(|| redact_body(&oauth))
    });
    c.bench_function("redact_body_html_4k", |b| b.iter(|| redact_body(&html)));
    c.bench_function("redact_body_planted_12k", |b| b.iter(|| redact_body(&big)));
    // The secret in the middle of the body must also be found when it is near the start.
    let early = format!("{}{}", held.expose(), &big[..6000]);
    c.bench_function("redact_body_secret_first_6k", |b| {
        b.iter(|| redact_body(&early))
    });
}

criterion_group!(group, benches);
criterion_main!(group);
