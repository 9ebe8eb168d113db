//! `kimi-vault doctor`: which backends work here and exactly why not (proven by a round trip,
//! not guessed), the vault's files, the lock, the clock, the endpoints, and the plaintext files
//! `migrate` would find. It changes nothing except a throwaway keyring entry and a temp file,
//! both deleted at once.

use kimi_vault::KeyringError;
use kimi_vault::oauth::Region;
use kimi_vault::store::inspect::{FileProbe, KeyCheck, PathCheck, PathKind};
use kimi_vault::store::{BackendKind, BackendMode, KeyringProbe};

use crate::cli::doctor_checks::{Checks, Key, Overrides};
use crate::cli::doctor_report::DoctorJson;
use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::{Config, Ctx, output};

/// The earliest date a sane clock can show (this version did not exist before).
const CLOCK_FLOOR: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
/// How far in the future a file or record may be before the clock is suspect.
const CLOCK_SLACK: i64 = 300;

fn overrides(config: &Config) -> Overrides<'_> {
    let mut list = Vec::new();
    fn set(v: &Option<String>) -> Option<&str> {
        v.as_deref().filter(|s| !s.trim().is_empty())
    }
    if let Some(v) = set(&config.oauth_host) {
        list.push(("KIMI_CODE_OAUTH_HOST (--oauth-host)", v));
    } else if let Some(v) = set(&config.kimi_oauth_host) {
        list.push(("KIMI_OAUTH_HOST", v));
    }
    if let Some(v) = set(&config.api_base) {
        list.push(("KIMI_CODE_BASE_URL (--api-base)", v));
    }
    Overrides { list }
}

fn clock_problems(ctx: &Ctx, files: &[PathCheck]) -> Vec<String> {
    let now = kimi_vault::now_unix();
    let mut problems = Vec::new();
    if now < CLOCK_FLOOR {
        problems.push(format!(
            "the clock says {}, before this version of kimi-vault existed: set the date (tokens would look valid or expired at the wrong time)",
            kimi_vault::rfc3339(now)
        ));
    }
    for c in files.iter().filter(|c| c.kind == PathKind::File) {
        let modified = std::fs::symlink_metadata(&c.path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64);
        if let Some(m) = modified
            && m > now + CLOCK_SLACK
        {
            problems.push(format!(
                "{} was modified {} in the future: the clock went back",
                c.path.display(),
                output::span((m - now) as u64)
            ));
        }
    }
    if let Ok(Some(l)) = ctx.session.stored() {
        let written = l.cred.updated_at_ms / 1000;
        if written > now + CLOCK_SLACK {
            problems.push(format!(
                "profile '{}' was stored {} in the future: the clock went back",
                ctx.profile(),
                output::span((written - now) as u64)
            ));
        }
    }
    problems
}

/// Runs every check (changing nothing but a throwaway keyring entry and a temp file).
fn check<'a>(ctx: &Ctx, config: &'a Config) -> Checks<'a> {
    let vault = ctx.session.vault();
    let mode = vault.mode();
    let mode_name = match mode {
        BackendMode::Auto => "auto",
        BackendMode::Keyring => "keyring",
        BackendMode::File => "file",
    };
    let keyring: Option<Result<KeyringProbe, (&str, KeyringError)>> =
        (mode != BackendMode::File).then(|| vault.probe_keyring());
    let file = vault.probe_file_backend();
    let files = vault.inspect_paths();
    let key = match vault.check_key() {
        KeyCheck::NoVault => Key::NoVault,
        KeyCheck::Opens { profiles } => Key::Opens(profiles),
        KeyCheck::Unreadable(e) => {
            Key::Unreadable(kimi_vault::scrub(&Failure::Lib(e).message(ctx.profile())))
        }
    };
    let keyring_ok = matches!(keyring, Some(Ok(_)));
    let file_ok = matches!(file, FileProbe::Works { .. } | FileProbe::WillCreate { .. });
    let backend = match mode {
        BackendMode::File => file_ok.then_some(BackendKind::File),
        BackendMode::Keyring => keyring_ok.then_some(BackendKind::Keyring),
        BackendMode::Auto if keyring_ok => Some(BackendKind::Keyring),
        BackendMode::Auto => file_ok.then_some(BackendKind::File),
    };
    let unreadable = matches!(key, Key::Unreadable(_));
    let code = if files.iter().any(|c| c.blocking) || unreadable {
        exit::VAULT_UNREADABLE
    } else if backend.is_none() {
        exit::FAILURE
    } else {
        exit::OK
    };
    Checks {
        mode_name,
        keyring,
        file,
        key,
        binding: vault.binding(),
        lock: vault.lock_state(),
        clock: clock_problems(ctx, &files),
        files,
        regions: [Region::Cn, Region::Global]
            .into_iter()
            .map(|r| (r, ctx.session.endpoints(r)))
            .collect(),
        overrides: overrides(config),
        sources: crate::cli::migrate::source_dirs(false)
            .map(|dirs| kimi_vault::migrate::discover(&dirs))
            .unwrap_or_default(),
        clients: crate::cli::doctor_clients::check(),
        backend,
        code,
    }
}

/// Runs every check and reports; exit 0 when the configured backend works, 1 when it does not,
/// 4 when the vault cannot be read or one of its files is unsafe.
pub(crate) fn run(ctx: &Ctx, config: &Config) -> CmdResult {
    let checks = check(ctx, config);
    let report = DoctorJson::new(ctx.profile(), ctx.session.vault().paths().home(), &checks);
    if ctx.json {
        output::json_line(&report);
    } else {
        report.print();
    }
    report.print_error();
    Ok(checks.code)
}
