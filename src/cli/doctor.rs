//! `kimi-vault doctor`: which backends work here and exactly why not (proven by a round trip,
//! not guessed), the vault's files, the lock, the clock, the endpoints, and the plaintext files
//! `migrate` would find. It changes nothing except a throwaway keyring entry and a temp file,
//! both deleted at once.

use std::time::Duration;

use kimi_vault::KeyringError;
use kimi_vault::oauth::Region;
use kimi_vault::sanitize::for_terminal;
use kimi_vault::store::inspect::{FileProbe, KeyCheck, PathCheck, PathKind};
use kimi_vault::store::{BackendKind, BackendMode, KeyringProbe, LockState};
use serde_json::{Value, json};

use crate::cli::failure::{CmdResult, Failure, exit};
use crate::cli::output::outln;
use crate::cli::{Config, Ctx, output};

/// The earliest date a sane clock can show (this version did not exist before).
const CLOCK_FLOOR: i64 = 1_735_689_600; // 2025-01-01T00:00:00Z
/// How far in the future a file or record may be before the clock is suspect.
const CLOCK_SLACK: i64 = 300;

fn store_name() -> &'static str {
    if cfg!(target_os = "macos") {
        "Keychain"
    } else if cfg!(windows) {
        "Credential Manager"
    } else {
        "Secret Service over D-Bus"
    }
}

/// What fixes an encrypted-file backend that cannot write.
const FILE_FIX: &str = "point KIMI_VAULT_HOME (or --vault-home) at a directory you own and can write (the vault directory is created there, mode 700), or make the directory named above writable; with a working keyring, KIMI_VAULT_BACKEND=auto keeps credentials there instead";

/// Why the keyring failed, in words, and what fixes it.
fn keyring_fix(e: &KeyringError) -> &'static str {
    match e {
        KeyringError::NoSessionBus { .. } => {
            "there is no D-Bus session here (a server, a container, ssh without a desktop session). Run kimi-vault inside a desktop session or under `dbus-run-session` with a Secret Service (gnome-keyring, KeePassXC); or keep KIMI_VAULT_BACKEND=auto, which uses the encrypted file"
        }
        KeyringError::NoService { .. } => {
            "no Secret Service answers on the session bus: install and start one (gnome-keyring: `gnome-keyring-daemon --start --components=secrets`; or KeePassXC with Secret Service integration); or keep KIMI_VAULT_BACKEND=auto, which uses the encrypted file"
        }
        KeyringError::Locked { .. } => {
            "the collection is locked and no unlock prompt can be shown: unlock it (log in to the desktop session, or `gnome-keyring-daemon --unlock`); meanwhile auto mode uses the encrypted file"
        }
        KeyringError::TimedOut { .. } | KeyringError::RecentlyTimedOut { .. } => {
            "the keyring did not answer: it is probably waiting on an unlock prompt nobody can see; unlock it; meanwhile auto mode uses the encrypted file"
        }
        KeyringError::TooLong { .. } => {
            "this platform's keyring cannot hold an entry of a credential's size; auto mode uses the encrypted file"
        }
        _ => {
            "see the detail above; auto mode uses the encrypted file when the keyring is unavailable"
        }
    }
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

struct Overrides<'a> {
    list: Vec<(&'static str, &'a str)>,
}

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

/// A URL for display: no user info, query or fragment (an override may carry a password).
fn shown_url(raw: &str) -> Option<String> {
    let mut u = url::Url::parse(raw.trim()).ok()?;
    let _ = u.set_username("");
    let _ = u.set_password(None);
    u.set_query(None);
    u.set_fragment(None);
    Some(u.to_string())
}

fn path_json(c: &PathCheck) -> Value {
    json!({
        "path": c.path,
        "kind": c.kind.as_str(),
        "mode": c.mode.map(|m| format!("{m:o}")),
        "owner_uid": c.owner,
        "ok": c.problem.is_none(),
        "blocking": c.blocking,
        "problem": c.problem,
    })
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

/// What the key check found; an unreadable vault's error is worded at once (the words are
/// all `doctor` shows of it).
enum Key {
    /// No `vault.enc` yet.
    NoVault,
    /// The key opens the vault here, with this many profiles.
    Opens(usize),
    /// The vault cannot be read: the message, with what to do.
    Unreadable(String),
}

/// What every check found (nothing here is printed yet).
struct Checks<'a> {
    mode_name: &'static str,
    keyring: Option<Result<KeyringProbe, (&'static str, KeyringError)>>,
    file: FileProbe,
    files: Vec<PathCheck>,
    key: Key,
    binding: kimi_vault::store::inspect::Binding,
    lock: Result<LockState, kimi_vault::Error>,
    clock: Vec<String>,
    regions: Vec<(
        Region,
        Result<kimi_vault::oauth::Endpoints, kimi_vault::Error>,
    )>,
    overrides: Overrides<'a>,
    sources: Vec<(std::path::PathBuf, kimi_vault::migrate::Tool)>,
    clients: Vec<crate::cli::doctor_clients::Finding>,
    /// The backend credentials would go to, if the configured one works.
    backend: Option<BackendKind>,
    code: u8,
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
    if ctx.json {
        print_json(ctx, &checks);
    } else {
        print_human(ctx, &checks);
    }
    print_error(&checks);
    Ok(checks.code)
}

fn keyring_json(keyring: &Option<Result<KeyringProbe, (&str, KeyringError)>>) -> Value {
    match keyring {
        None => json!({"status": "not_checked", "store": store_name(),
            "reason": "KIMI_VAULT_BACKEND=file never touches the keyring", "fix": null,
            "step": null, "round_trip_ms": null}),
        Some(Ok(p)) => json!({"status": "ok", "store": store_name(), "reason": null,
            "fix": null, "step": null,
            "round_trip_ms": ms(p.write + p.read + p.delete)}),
        Some(Err((step, e))) => json!({
            "status": if e.is_unavailable() || matches!(e, KeyringError::TooLong { .. }) { "unavailable" } else { "failed" },
            "store": store_name(), "reason": kimi_vault::scrub(&e.to_string()),
            "fix": keyring_fix(e), "step": step, "round_trip_ms": null}),
    }
}

fn file_json(ctx: &Ctx, file: &FileProbe) -> Value {
    let home = ctx.session.vault().paths().home();
    match file {
        FileProbe::Works { took } => {
            json!({"status": "ok", "vault_home": home, "reason": null, "fix": null, "round_trip_ms": ms(*took)})
        }
        FileProbe::WillCreate { under } => {
            json!({"status": "will_create", "vault_home": home, "reason": format!("created (0700) in {} at the first write", under.display()), "fix": null, "round_trip_ms": null})
        }
        FileProbe::Fails(why) => {
            json!({"status": "failed", "vault_home": home, "reason": kimi_vault::scrub(why), "fix": FILE_FIX, "round_trip_ms": null})
        }
    }
}

fn key_json(checks: &Checks<'_>) -> Value {
    let mut key_json = match &checks.key {
        Key::NoVault => json!({"status": "no_vault", "profiles": null, "error": null}),
        Key::Opens(profiles) => {
            json!({"status": "opens", "profiles": profiles, "error": null})
        }
        Key::Unreadable(message) => {
            json!({"status": "unreadable", "profiles": null, "error": message})
        }
    };
    key_json["bound_to"] =
        json!({"machine_id": checks.binding.machine_id_source, "uid": checks.binding.uid});
    key_json
}

fn lock_json(lock: &Result<LockState, kimi_vault::Error>) -> Value {
    match lock {
        Ok(LockState::NoLockFile) => {
            json!({"status": "no_lock_file", "holder_pid": null, "holder_command": null, "error": null})
        }
        Ok(LockState::Free) => {
            json!({"status": "free", "holder_pid": null, "holder_command": null, "error": null})
        }
        Ok(LockState::Held { pid, command }) => {
            json!({"status": "held", "holder_pid": pid, "holder_command": command, "error": null})
        }
        Ok(_) => {
            json!({"status": "unknown", "holder_pid": null, "holder_command": null, "error": null})
        }
        Err(e) => {
            json!({"status": "error", "holder_pid": null, "holder_command": null, "error": kimi_vault::scrub(&e.to_string())})
        }
    }
}

fn endpoints_json(checks: &Checks<'_>) -> Value {
    let mut endpoints = serde_json::Map::new();
    for (r, e) in &checks.regions {
        endpoints.insert(
            r.as_str().to_owned(),
            match e {
                Ok(e) => json!({"ok": true, "oauth_host": e.oauth_host.as_str(), "api_base": e.api_base.as_str(), "error": null}),
                Err(err) => json!({"ok": false, "oauth_host": null, "api_base": null, "error": kimi_vault::scrub(&err.to_string())}),
            },
        );
    }
    let overrides_json: Vec<Value> = checks
        .overrides
        .list
        .iter()
        .map(|(name, raw)| {
            let checked = kimi_vault::oauth::endpoints::checked_url(raw);
            json!({
                "variable": name,
                "value": shown_url(raw),
                "ok": checked.is_ok(),
                "error": checked.err().map(|e| kimi_vault::scrub(&e.to_string())),
            })
        })
        .collect();
    endpoints.insert("overrides".into(), Value::Array(overrides_json));
    Value::Object(endpoints)
}

/// `doctor --json`: one object.
fn print_json(ctx: &Ctx, checks: &Checks<'_>) {
    output::json_line(&json!({
        "profile": ctx.profile(),
        "backend_mode": checks.mode_name,
        "ok": checks.code == exit::OK,
        "backend": checks.backend.map(BackendKind::as_str),
        "keyring": keyring_json(&checks.keyring),
        "file": file_json(ctx, &checks.file),
        "key": key_json(checks),
        "paths": checks.files.iter().map(path_json).collect::<Vec<_>>(),
        "lock": lock_json(&checks.lock),
        "clock": {"ok": checks.clock.is_empty(), "now": kimi_vault::rfc3339(kimi_vault::now_unix()), "problems": checks.clock},
        "endpoints": endpoints_json(checks),
        "migrate_sources": checks.sources.iter().map(|(p, t)| json!({"path": p, "tool": t.name()})).collect::<Vec<_>>(),
        "clients": crate::cli::doctor_clients::to_json(&checks.clients),
    }));
}

/// `doctor` for people: one section per check, then the result.
fn print_human(ctx: &Ctx, checks: &Checks<'_>) {
    outln!(
        "kimi-vault doctor: profile '{}', KIMI_VAULT_BACKEND={}",
        ctx.profile(),
        checks.mode_name
    );
    print_keyring(&checks.keyring);
    print_file_backend(ctx, checks);
    print_files(&checks.files);
    print_lock(&checks.lock);
    print_clock(&checks.clock);
    print_endpoints(checks);
    print_sources(&checks.sources);
    crate::cli::doctor_clients::print(&checks.clients);
    outln!();
    print_result(checks);
}

fn print_keyring(keyring: &Option<Result<KeyringProbe, (&str, KeyringError)>>) {
    outln!("\nOS keyring ({})", store_name());
    match keyring {
        None => outln!(
            "  not checked: KIMI_VAULT_BACKEND=file never touches the keyring (run `KIMI_VAULT_BACKEND=auto kimi-vault doctor` to check it)"
        ),
        Some(Ok(p)) => outln!(
            "  works: a throwaway entry was written, read back and deleted (write {} ms, read {} ms, delete {} ms)",
            ms(p.write),
            ms(p.read),
            ms(p.delete)
        ),
        Some(Err((step, e))) => {
            outln!(
                "  does not work here: the {step} of a throwaway entry failed: {}",
                kimi_vault::scrub(&e.to_string())
            );
            outln!("  fix: {}", keyring_fix(e));
        }
    }
}

/// The encrypted file: whether it can be written, and whether the key opens the vault.
fn print_file_backend(ctx: &Ctx, checks: &Checks<'_>) {
    outln!(
        "\nEncrypted file ({})",
        ctx.session.vault().paths().home().display()
    );
    match &checks.file {
        FileProbe::Works { took } => outln!(
            "  works: a temp file was written, read back and deleted in the vault directory ({} ms)",
            ms(*took)
        ),
        FileProbe::WillCreate { under } => outln!(
            "  works: the vault directory does not exist yet; it is created (mode 700) in {} at the first write",
            under.display()
        ),
        FileProbe::Fails(why) => {
            outln!("  does not work: {}", kimi_vault::scrub(why));
            outln!("  fix: {FILE_FIX}");
        }
    }
    let binding = &checks.binding;
    let bound = match binding.machine_id_source {
        Some(src) => format!("this machine ({src}) and uid {}", binding.uid),
        None => format!(
            "uid {} only (no machine id found on this system)",
            binding.uid
        ),
    };
    match &checks.key {
        Key::NoVault => outln!("  no vault.enc yet; a new key will be bound to {bound}"),
        Key::Opens(profiles) => outln!(
            "  vault.key opens vault.enc here ({profiles} profile{}); the key is bound to {bound}",
            if *profiles == 1 { "" } else { "s" }
        ),
        Key::Unreadable(message) => outln!("  vault.enc cannot be read: {message}"),
    }
}

fn print_files(files: &[PathCheck]) {
    outln!("\nVault files");
    let width = files
        .iter()
        .map(|c| c.path.display().to_string().chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    for c in files {
        let facts = match (c.kind, c.mode, c.owner) {
            (PathKind::Missing, _, _) => "missing (created when needed)".to_owned(),
            (kind, Some(mode), Some(owner)) => {
                format!("{}, mode {:o}, uid {owner}", kind.as_str(), mode & 0o7777)
            }
            (kind, _, _) => kind.as_str().to_owned(),
        };
        let verdict = match &c.problem {
            None => "ok".to_owned(),
            Some(p) if c.blocking => format!("REFUSED: {p}"),
            Some(p) => format!("note: {p}"),
        };
        let path = c.path.display().to_string();
        if c.kind == PathKind::Missing {
            outln!("  {}{facts}", output::pad(&path, width));
        } else {
            outln!("  {}{facts}: {verdict}", output::pad(&path, width));
        }
    }
}

fn print_lock(lock: &Result<LockState, kimi_vault::Error>) {
    outln!("\nVault lock");
    match lock {
        Ok(LockState::NoLockFile) => {
            outln!("  no vault.lock yet: it is created at the first write")
        }
        Ok(LockState::Free) => outln!("  free: it can be taken"),
        Ok(LockState::Held { pid, command }) => outln!(
            "  held by {}{}: other commands wait for it (at most 90 s)",
            pid.map(|p| format!("process {p}"))
                .unwrap_or_else(|| "another process".into()),
            command
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        ),
        Ok(_) => outln!("  state unknown"),
        Err(e) => outln!("  cannot be tried: {}", kimi_vault::scrub(&e.to_string())),
    }
}

fn print_clock(clock: &[String]) {
    outln!("\nClock");
    if clock.is_empty() {
        outln!(
            "  ok: {} (UTC)",
            kimi_vault::rfc3339(kimi_vault::now_unix())
        );
    }
    for p in clock {
        outln!("  problem: {p}");
    }
}

fn print_endpoints(checks: &Checks<'_>) {
    outln!("\nEndpoints (the rule: https on kimi.com, kimi.ai or a subdomain, or loopback)");
    for (r, e) in &checks.regions {
        match e {
            Ok(e) => outln!("  {:<7} {}  {}  ok", r.as_str(), e.oauth_host, e.api_base),
            Err(err) => outln!(
                "  {:<7} refused: {}",
                r.as_str(),
                kimi_vault::scrub(&err.to_string())
            ),
        }
    }
    for (name, raw) in &checks.overrides.list {
        let verdict = match kimi_vault::oauth::endpoints::checked_url(raw) {
            Ok(_) => "allowed".to_owned(),
            Err(e) => format!("refused: {}", kimi_vault::scrub(&e.to_string())),
        };
        outln!(
            "  override {name} = {}: {verdict}",
            shown_url(raw).unwrap_or_else(|| "(not a URL)".into())
        );
    }
}

fn print_sources(sources: &[(std::path::PathBuf, kimi_vault::migrate::Tool)]) {
    outln!("\nPlaintext credentials of other Kimi tools (what `kimi-vault migrate` would find)");
    if sources.is_empty() {
        outln!("  none found");
    }
    for (p, t) in sources {
        outln!("  {} ({}): there", p.display(), t.name());
    }
    if !sources.is_empty() {
        outln!(
            "  `kimi-vault migrate --dry-run` shows what would move; `kimi-vault migrate` moves it"
        );
    }
}

fn print_result(checks: &Checks<'_>) {
    let mode_name = checks.mode_name;
    match checks.backend {
        Some(b) if checks.code == exit::VAULT_UNREADABLE => outln!(
            "Result: the configured backend ({mode_name}) could keep credentials in the {}, but the vault here cannot be used as it is (see the error below).",
            b.describe()
        ),
        Some(b) => outln!(
            "Result: the configured backend ({mode_name}) works here: credentials go to the {}.",
            b.describe()
        ),
        None => {
            outln!("Result: the configured backend ({mode_name}) does not work here (see above).")
        }
    }
}

/// The error line on stderr (human and `--json` alike): the first of an unsafe file, an
/// unreadable vault, a backend that does not work.
fn print_error(checks: &Checks<'_>) {
    if let Some(c) = checks.files.iter().find(|c| c.blocking) {
        eprintln!(
            "kimi-vault: error: {} is refused: {}",
            for_terminal(&c.path.display().to_string()),
            for_terminal(c.problem.as_deref().unwrap_or_default())
        );
    } else if let Key::Unreadable(m) = &checks.key {
        eprintln!("kimi-vault: error: {}", for_terminal(m));
    } else if checks.backend.is_none() {
        eprintln!(
            "kimi-vault: error: the configured backend (KIMI_VAULT_BACKEND={}) does not work here; see above",
            checks.mode_name
        );
    }
}
