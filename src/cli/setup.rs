//! `kimi-vault setup claude [--undo] [--dry-run]`: configures Claude Code to take its key from
//! the vault, as `gh auth setup-git` configures git. In Claude Code's `settings.json`
//! (`$CLAUDE_CONFIG_DIR`, default `~/.claude`) it sets `apiKeyHelper` (this binary with `token
//! --min-valid 600`), `env.ANTHROPIC_BASE_URL` and `env.CLAUDE_CODE_API_KEY_HELPER_TTL_MS`,
//! keeping every other key and its order. What it replaced is recorded in the vault directory
//! (`claude-setup.json`), so that `--undo` puts it back. Also the reader of Claude Code's settings
//! that `exec --proxy` and `doctor` use.

// Environment reads belong to the edge, and this is the edge: Claude Code's config directory and the shell variables that would override its helper.
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::cli::failure::{CmdResult, Failure, exit, profile_flag};
use crate::cli::output;
use crate::cli::{Config, Ctx};

/// The clients `setup` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SetupClient {
    /// Claude Code: apiKeyHelper, ANTHROPIC_BASE_URL and the helper's TTL in settings.json.
    Claude,
}

/// The `--min-valid` the helper asks for: above the helper TTL (300 s), so that a key Claude
/// Code caches never expires while cached.
pub(crate) const HELPER_MIN_VALID: u32 = 600;
/// `CLAUDE_CODE_API_KEY_HELPER_TTL_MS`: how long Claude Code caches the helper's key.
pub(crate) const HELPER_TTL_MS: &str = "300000";
/// Claude Code's default helper TTL when the variable is not set (5 minutes).
pub(crate) const DEFAULT_HELPER_TTL_MS: u64 = 300_000;
/// The record of what `setup claude` replaced, in the vault directory.
const RECORD_FILE: &str = "claude-setup.json";
/// Variables that override the helper (and `exec --proxy`) when Claude Code's settings set them.
pub(crate) const OVERRIDING: [&str; 2] = ["ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"];

/// Claude Code's configuration directory: `$CLAUDE_CONFIG_DIR`, else `~/.claude`.
pub(crate) fn config_dir() -> Option<PathBuf> {
    match std::env::var_os("CLAUDE_CONFIG_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => Some(PathBuf::from(dir)),
        None => dirs::home_dir().map(|h| h.join(".claude")),
    }
}

/// The user's `settings.json`.
pub(crate) fn settings_path() -> Option<PathBuf> {
    config_dir().map(|d| d.join("settings.json"))
}

/// Every settings file Claude Code reads here whose `env` applies to a session started in the
/// current directory: the user's, the project's (shared and local), the managed one.
pub(crate) fn all_settings_paths() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = settings_path().into_iter().collect();
    if let Ok(cwd) = std::env::current_dir() {
        paths.push(cwd.join(".claude").join("settings.json"));
        paths.push(cwd.join(".claude").join("settings.local.json"));
    }
    if cfg!(target_os = "macos") {
        paths.push("/Library/Application Support/ClaudeCode/managed-settings.json".into());
    } else if cfg!(unix) {
        paths.push("/etc/claude-code/managed-settings.json".into());
    }
    paths
}

/// A settings file's object: `Ok(None)` when the file does not exist; an empty file is `{}`.
pub(crate) fn read_settings(path: &Path) -> Result<Option<Map<String, Value>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    // The position only, never the content: the file may hold a key.
    kimi_vault::clients::parse_settings(&text)
        .map(Some)
        .map_err(|e| format!("{} is {e}; fix it first", path.display()))
}

/// The names among `names` that a settings file's `env` sets, per file.
pub(crate) fn settings_env_overrides(names: &[&str]) -> Vec<(PathBuf, Vec<String>)> {
    all_settings_paths()
        .into_iter()
        .filter_map(|path| {
            let map = read_settings(&path).ok()??;
            let env = map.get("env")?.as_object()?;
            let hits: Vec<String> = names
                .iter()
                .filter(|n| env.contains_key(**n))
                .map(|n| (*n).to_owned())
                .collect();
            (!hits.is_empty()).then_some((path, hits))
        })
        .collect()
}

/// `exec --proxy --for claude`: warns when Claude Code's settings set variables that override
/// the ones given to CMD (Claude Code applies its settings' `env` over the process environment,
/// so the private proxy would be bypassed).
pub(crate) fn warn_settings_override(names: &[&str]) {
    for (path, hits) in settings_env_overrides(names) {
        tracing::warn!(
            "{} sets {} in its \"env\", which Claude Code applies over the environment: Claude Code will bypass this private proxy. Remove {} there (after `kimi-vault setup claude`: `kimi-vault setup claude --undo`), or use that configuration instead of --proxy",
            kimi_vault::sanitize::for_terminal(&path.display().to_string()),
            hits.join(" and "),
            if hits.len() == 1 { "it" } else { "them" },
        );
    }
}

/// Quotes a word for the shell Claude Code runs `apiKeyHelper` with.
fn shell_word(word: &str) -> Result<String, Failure> {
    shlex::try_quote(word).map(|w| w.into_owned()).map_err(|_| {
        Failure::Other(format!(
            "cannot quote '{}' for a shell",
            word.escape_default()
        ))
    })
}

/// This binary's path for the helper: the path it was started by when that is absolute (or
/// found on PATH) and is the same file (a symlink such as Homebrew's survives upgrades), else the
/// resolved executable.
fn helper_program() -> Result<PathBuf, Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Other(format!("cannot find this program's path: {e}")))?;
    let real = std::fs::canonicalize(&exe).unwrap_or_else(|_| exe.clone());
    let invoked = std::env::args_os().next().map(PathBuf::from);
    let candidate = invoked.and_then(|p| {
        if p.is_absolute() {
            Some(p)
        } else if p.components().count() > 1 {
            std::env::current_dir().ok().map(|d| d.join(p))
        } else {
            find_on_path(&p.to_string_lossy())
        }
    });
    Ok(match candidate {
        Some(c) if std::fs::canonicalize(&c).ok().as_ref() == Some(&real) => c,
        _ => real,
    })
}

/// The first executable file called `name` on PATH.
pub(crate) fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

/// The options the helper needs to use the vault and the hosts this command uses, when they
/// are not the defaults: Claude Code runs the helper with its own environment, which may lack
/// `KIMI_VAULT_HOME`, `KIMI_VAULT_BACKEND` and the endpoint overrides this shell has. The vault
/// directory (made absolute: the helper runs in Claude Code's working directory) unless it is
/// the platform default; the backend unless `auto`; each endpoint override that is set. None
/// of them is a secret.
fn helper_config(ctx: &Ctx, config: &Config) -> Result<String, Failure> {
    let vault = ctx.session.vault();
    let mut words: Vec<(&str, String)> = Vec::new();
    let home = vault.paths().home();
    let default_home = kimi_vault::store::VaultPaths::platform_default().ok();
    if default_home.as_ref().map(|d| d.home()) != Some(home) {
        let home = std::path::absolute(home).map_err(|e| {
            Failure::Other(format!(
                "cannot make the vault directory {} absolute: {e}",
                home.display()
            ))
        })?;
        let home = home.to_str().ok_or_else(|| {
            Failure::Other(
                "the vault directory's path is not UTF-8 (the helper is a shell command)".into(),
            )
        })?;
        words.push(("--vault-home", home.to_owned()));
    }
    match vault.mode() {
        kimi_vault::store::BackendMode::Auto => {}
        kimi_vault::store::BackendMode::Keyring => words.push(("--backend", "keyring".into())),
        kimi_vault::store::BackendMode::File => words.push(("--backend", "file".into())),
    }
    let overrides = config.overrides();
    for (flag, value) in [
        ("--oauth-host", overrides.oauth_host),
        ("--api-base", overrides.api_base),
        ("--client-id", overrides.client_id),
    ] {
        if let Some(v) = value {
            words.push((flag, v));
        }
    }
    let mut out = String::new();
    for (flag, value) in words {
        out.push_str(&format!(" {flag} {}", shell_word(&value)?));
    }
    Ok(out)
}

/// The values `setup claude` sets, by their place in settings.json.
fn wanted(ctx: &Ctx, config: &Config) -> Result<Vec<(Key, String)>, Failure> {
    let program = helper_program()?;
    let program = program
        .to_str()
        .ok_or_else(|| Failure::Other("this program's path is not UTF-8".into()))?;
    // The profile is named unless it is 'default' and a bare `kimi-vault token` picks it: when
    // `profiles use` made another profile the default, 'default' is named too. A profile other
    // than 'default' is always named (a later `profiles use` must not switch Claude Code).
    let persisted = kimi_vault::store::read_default_profile(ctx.session.vault().paths())
        .ok()
        .flatten();
    let flag = if ctx.profile() == kimi_vault::store::DEFAULT_PROFILE
        && persisted.as_deref().is_none_or(|p| p == ctx.profile())
    {
        String::new()
    } else {
        format!(" --profile {}", ctx.profile())
    };
    let helper = format!(
        "{} token --min-valid {HELPER_MIN_VALID}{}{flag}",
        shell_word(program)?,
        helper_config(ctx, config)?,
    );
    let endpoints = match ctx.session.stored() {
        Ok(Some(loaded)) => ctx.session.endpoints_for(&loaded.cred)?,
        _ => {
            tracing::info!(
                "profile '{}' is not logged in: ANTHROPIC_BASE_URL is the default region's",
                ctx.profile()
            );
            ctx.session.endpoints(kimi_vault::oauth::Region::Cn)?
        }
    };
    Ok(vec![
        (Key::ApiKeyHelper, helper),
        (
            Key::Env("ANTHROPIC_BASE_URL"),
            endpoints.anthropic_base_url(),
        ),
        (
            Key::Env("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"),
            HELPER_TTL_MS.to_owned(),
        ),
    ])
}

/// A place in settings.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    ApiKeyHelper,
    Env(&'static str),
}

impl Key {
    fn name(self) -> String {
        match self {
            Key::ApiKeyHelper => "apiKeyHelper".into(),
            Key::Env(n) => format!("env.{n}"),
        }
    }

    fn all() -> [Key; 3] {
        [
            Key::ApiKeyHelper,
            Key::Env("ANTHROPIC_BASE_URL"),
            Key::Env("CLAUDE_CODE_API_KEY_HELPER_TTL_MS"),
        ]
    }

    fn get(self, map: &Map<String, Value>) -> Option<&Value> {
        match self {
            Key::ApiKeyHelper => map.get("apiKeyHelper"),
            Key::Env(n) => map.get("env")?.as_object()?.get(n),
        }
    }

    /// Sets the value (creating `env` at the end when missing).
    fn set(self, map: &mut Map<String, Value>, value: Value) {
        match self {
            Key::ApiKeyHelper => {
                map.insert("apiKeyHelper".into(), value);
            }
            Key::Env(n) => {
                let env = map.entry("env").or_insert_with(|| json!({}));
                if let Some(env) = env.as_object_mut() {
                    env.insert(n.to_owned(), value);
                }
            }
        }
    }

    /// Removes the value, keeping the order of the rest.
    fn remove(self, map: &mut Map<String, Value>) {
        match self {
            Key::ApiKeyHelper => {
                map.shift_remove("apiKeyHelper");
            }
            Key::Env(n) => {
                if let Some(env) = map.get_mut("env").and_then(Value::as_object_mut) {
                    env.shift_remove(n);
                }
            }
        }
    }
}

/// The record: for each settings file, for each key, the value set and the value it replaced
/// (absent when there was none), and whether `env` was created.
fn record_path(ctx: &Ctx) -> PathBuf {
    ctx.session.vault().paths().home().join(RECORD_FILE)
}

fn read_record(path: &Path) -> Map<String, Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| match v {
            Value::Object(m) => Some(m),
            _ => None,
        })
        .unwrap_or_default()
}

/// Writes `data` to `target` atomically (a temp file in the same directory, fsynced, renamed),
/// with mode `mode`.
fn write_atomic(target: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    let dir = target.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(data)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.as_file().sync_all()?;
    tmp.persist(target).map_err(|e| e.error)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

fn write_record(ctx: &Ctx, record: &Map<String, Value>) -> Result<(), Failure> {
    let path = record_path(ctx);
    if let Some(dir) = path.parent()
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(dir)
            .map_err(|e| Failure::Other(format!("cannot create {}: {e}", dir.display())))?;
    }
    let text = serde_json::to_string_pretty(&Value::Object(record.clone()))
        .map_err(|e| Failure::Other(e.to_string()))?;
    write_atomic(&path, format!("{text}\n").as_bytes(), 0o600)
        .map_err(|e| Failure::Other(format!("cannot write {}: {e}", path.display())))
}

/// The file a symlinked settings.json points to (written in place of the link's target, so a
/// dotfiles link stays a link).
fn resolved(path: &Path) -> PathBuf {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(path).unwrap_or(path.into()),
        _ => path.to_owned(),
    }
}

/// `settings.json.bak-<time>` beside the file, a name not taken yet.
fn backup_name(path: &Path) -> PathBuf {
    let stamp = kimi_vault::rfc3339(kimi_vault::now_unix()).replace(':', "");
    let base = format!(
        "{}.bak-{stamp}",
        path.file_name().unwrap_or_default().to_string_lossy()
    );
    let mut candidate = path.with_file_name(&base);
    let mut n = 2;
    while candidate.exists() {
        candidate = path.with_file_name(format!("{base}-{n}"));
        n += 1;
    }
    candidate
}

/// `--undo`: puts back what setup replaced, removes what it added (a value changed since is
/// left as it is). Returns what changed and whether the file, left empty, is to be removed.
fn undo_changes(
    ctx: &Ctx,
    config: &Config,
    entry: &Map<String, Value>,
    settings: &mut Map<String, Value>,
    existed: bool,
) -> Result<(Vec<String>, bool), Failure> {
    let mut changes: Vec<String> = Vec::new();
    let now_wanted = wanted(ctx, config)?;
    for key in Key::all() {
        let name = key.name();
        let (set, replaced) = match entry.get(&name).and_then(Value::as_object) {
            Some(e) => (e.get("set").cloned(), e.get("replaced").cloned()),
            // No record (an older setup, a lost vault directory): what setup would set now
            // is taken for setup's own.
            None => (
                now_wanted
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map(|(_, v)| Value::String(v.clone())),
                None,
            ),
        };
        let current = key.get(settings).cloned();
        match (&current, &set) {
            (Some(c), Some(s)) if c == s => match replaced {
                Some(old) => {
                    key.set(settings, old);
                    changes.push(format!("{name}: put back the value it replaced"));
                }
                None => {
                    key.remove(settings);
                    changes.push(format!("{name}: removed"));
                }
            },
            (Some(_), Some(_)) => changes.push(format!(
                "{name}: left as it is (changed since setup, by someone else)"
            )),
            _ => {}
        }
    }
    if entry.get("env_created") == Some(&Value::Bool(true))
        && settings
            .get("env")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        settings.shift_remove("env");
    }
    let remove_file =
        entry.get("file_created") == Some(&Value::Bool(true)) && settings.is_empty() && existed;
    Ok((changes, remove_file))
}

/// Sets the helper, the base URL and the TTL, recording in `entry` what each replaced (kept
/// from the first run while the value is still setup's). Refuses when the file's `env` would
/// override the helper. Returns what changed.
fn apply_changes(
    ctx: &Ctx,
    config: &Config,
    display: &str,
    entry: &mut Map<String, Value>,
    settings: &mut Map<String, Value>,
    existed: bool,
) -> Result<Vec<String>, Failure> {
    let mut changes: Vec<String> = Vec::new();
    let overriding: Vec<&str> = OVERRIDING
        .iter()
        .copied()
        .filter(|n| {
            settings
                .get("env")
                .and_then(Value::as_object)
                .is_some_and(|e| e.contains_key(*n))
        })
        .collect();
    if !overriding.is_empty() {
        return Err(Failure::Other(format!(
            "{display} sets {} in its \"env\", which Claude Code would use instead of the key from kimi-vault: remove {} from there, then run `kimi-vault setup claude` again; nothing was changed",
            overriding.join(" and "),
            if overriding.len() == 1 { "it" } else { "them" },
        )));
    }
    if !entry.contains_key("file_created") {
        entry.insert("file_created".into(), Value::Bool(!existed));
    }
    if !settings.contains_key("env") && !entry.contains_key("env_created") {
        entry.insert("env_created".into(), Value::Bool(true));
    } else if !entry.contains_key("env_created") {
        entry.insert("env_created".into(), Value::Bool(false));
    }
    for (key, value) in wanted(ctx, config)? {
        let name = key.name();
        let value = Value::String(value);
        let current = key.get(settings).cloned();
        let previous_set = entry
            .get(&name)
            .and_then(Value::as_object)
            .and_then(|e| e.get("set"))
            .cloned();
        // What the key held before setup: kept from the first run while the value is still
        // the one setup set; otherwise the value found now.
        let replaced = match (&current, &previous_set) {
            (Some(c), Some(s)) if c == s => entry
                .get(&name)
                .and_then(Value::as_object)
                .and_then(|e| e.get("replaced"))
                .cloned(),
            _ => current.clone(),
        };
        let mut e = Map::new();
        e.insert("set".into(), value.clone());
        if let Some(r) = replaced {
            e.insert("replaced".into(), r);
        }
        entry.insert(name.clone(), Value::Object(e));
        if current.as_ref() != Some(&value) {
            changes.push(format!("{name} = {}", value.as_str().unwrap_or_default()));
            key.set(settings, value);
        }
    }
    for name in OVERRIDING {
        if std::env::var_os(name).is_some() {
            tracing::warn!(
                "{name} is set in this shell: a Claude Code started from it sends that instead of the key from kimi-vault (with ANTHROPIC_API_KEY, interactive Claude Code also asks whether to use it). Unset it (`unset {name}`) and remove it from your shell's startup files"
            );
        }
    }
    Ok(changes)
}

/// Writes the new settings (the previous file kept as a backup, the record first), or
/// removes a file undo left empty. Returns the backup's path.
#[allow(clippy::too_many_arguments)]
fn write_settings(
    ctx: &Ctx,
    path: &Path,
    display: &str,
    text: &str,
    existed: bool,
    undo: bool,
    remove_file: bool,
    record: &Map<String, Value>,
) -> Result<Option<PathBuf>, Failure> {
    let mode = mode_of(path).unwrap_or(0o600);
    let mut backup = None;
    if existed {
        let b = backup_name(path);
        std::fs::copy(path, &b).map_err(|e| {
            Failure::Other(format!(
                "cannot keep the previous file as {}: {e}; nothing was changed",
                b.display()
            ))
        })?;
        backup = Some(b);
    }
    // The record first: if writing settings.json fails after it, --undo finds values that
    // are not there and leaves the file alone.
    if !undo {
        write_record(ctx, record)?;
    }
    if remove_file {
        std::fs::remove_file(path)
            .map_err(|e| Failure::Other(format!("cannot remove {display}: {e}")))?;
    } else {
        write_atomic(path, text.as_bytes(), mode)
            .map_err(|e| Failure::Other(format!("cannot write {display}: {e}")))?;
    }
    Ok(backup)
}

/// Claude Code's settings file as `setup` found it, and setup's record of it.
struct Opened {
    /// The settings file as named (before a symlink is followed).
    shown: PathBuf,
    /// The file written (a symlink followed).
    path: PathBuf,
    /// `shown` for a terminal.
    display: String,
    /// Its object before any change; `None` when there was no file.
    before: Option<Map<String, Value>>,
    /// The object to change.
    settings: Map<String, Value>,
    record_file: PathBuf,
    record: Map<String, Value>,
    /// This settings file's key in the record.
    record_key: String,
}

/// Reads the settings file (refusing one that is not JSON, or whose `env` is not an object) and
/// the record; creates the settings directory unless `dry_run`.
fn open_settings(ctx: &Ctx, dry_run: bool) -> Result<Opened, Failure> {
    let shown = settings_path().ok_or_else(|| {
        Failure::Other(
            "cannot find Claude Code's configuration directory: set CLAUDE_CONFIG_DIR or HOME"
                .into(),
        )
    })?;
    let path = resolved(&shown);
    let display = kimi_vault::sanitize::for_terminal(&shown.display().to_string()).into_owned();
    let before = read_settings(&path).map_err(|why| {
        Failure::Other(format!(
            "{}; nothing was changed",
            kimi_vault::sanitize::for_terminal(&why)
        ))
    })?;
    let settings = before.clone().unwrap_or_default();
    if let Some(env) = settings.get("env")
        && !env.is_object()
    {
        return Err(Failure::Other(format!(
            "{display}: \"env\" is not a JSON object; fix it first; nothing was changed"
        )));
    }
    let record_file = record_path(ctx);
    let record = read_record(&record_file);
    // The directory is created now (when missing) so that the record's key, the settings file's
    // path with the directory resolved, is the same at setup and at undo.
    if !dry_run
        && let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
        && !dir.exists()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| Failure::Other(format!("cannot create {}: {e}", dir.display())))?;
    }
    let record_key = path
        .parent()
        .and_then(|d| std::fs::canonicalize(d).ok())
        .zip(path.file_name())
        .map(|(d, f)| d.join(f))
        .unwrap_or_else(|| path.clone())
        .display()
        .to_string();
    Ok(Opened {
        shown,
        path,
        display,
        before,
        settings,
        record_file,
        record,
        record_key,
    })
}

/// Runs `setup claude`.
pub(crate) fn run(
    ctx: &Ctx,
    config: &Config,
    _client: SetupClient,
    undo: bool,
    dry_run: bool,
) -> CmdResult {
    let Opened {
        shown,
        path,
        display,
        before,
        mut settings,
        record_file,
        mut record,
        record_key,
    } = open_settings(ctx, dry_run)?;
    let existed = before.is_some();
    let mut entry = record
        .get(&record_key)
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    // Undo of a setup that created settings.json, leaving nothing in it: the file goes.
    let (changes, remove_file) = if undo {
        undo_changes(ctx, config, &entry, &mut settings, existed)?
    } else {
        let changes = apply_changes(ctx, config, &display, &mut entry, &mut settings, existed)?;
        record.insert(record_key.clone(), Value::Object(entry));
        (changes, false)
    };

    let text = format!(
        "{}\n",
        serde_json::to_string_pretty(&Value::Object(settings.clone()))
            .map_err(|e| Failure::Other(e.to_string()))?
    );
    let unchanged = before.as_ref() == Some(&settings) || (!existed && undo);
    if dry_run {
        output::outln!("{}", text.trim_end());
        eprintln!(
            "kimi-vault: --dry-run: {display} was not changed{}",
            if unchanged { " (and would not be)" } else { "" }
        );
        return Ok(exit::OK);
    }
    let backup = if unchanged {
        None
    } else {
        write_settings(
            ctx,
            &path,
            &display,
            &text,
            existed,
            undo,
            remove_file,
            &record,
        )?
    };
    if undo && record.remove(&record_key).is_some() {
        if record.is_empty() {
            let _ = std::fs::remove_file(&record_file);
        } else {
            write_record(ctx, &record)?;
        }
    }
    let report = SetupJson {
        settings: &shown,
        changed: !unchanged,
        backup: backup.as_deref(),
        undo,
        changes,
        display: &display,
        profile: ctx.profile(),
    };
    if ctx.json {
        output::json_line(&report);
    }
    report.print(ctx.json);
    Ok(exit::OK)
}

/// `setup claude --json`, and what people are told.
#[derive(serde::Serialize)]
struct SetupJson<'a> {
    /// The settings file (as named, before a symlink is followed).
    settings: &'a Path,
    changed: bool,
    /// Where the previous file was kept.
    backup: Option<&'a Path>,
    undo: bool,
    /// What changed, key by key.
    changes: Vec<String>,
    /// The settings file for a terminal.
    #[serde(skip)]
    display: &'a str,
    #[serde(skip)]
    profile: &'a str,
}

impl SetupJson<'_> {
    /// The result for people: on stdout, or on stderr when stdout carries the JSON.
    fn print(&self, json: bool) {
        let say = |line: String| {
            if json {
                eprintln!("{line}");
            } else {
                output::outln!("{line}");
            }
        };
        let display = self.display;
        let b = self
            .backup
            .map(|b| format!("; the previous file is kept as {}", b.display()))
            .unwrap_or_default();
        if self.undo {
            if self.changed {
                say(format!("{display}: kimi-vault's settings undone{b}"));
            } else {
                say(format!("{display}: nothing of kimi-vault's to undo"));
            }
        } else if self.changed {
            say(format!(
                "{display}: Claude Code now takes its key from kimi-vault (profile '{}'){b}",
                self.profile
            ));
        } else {
            say(format!(
                "{display}: Claude Code already takes its key from kimi-vault (profile '{}'); nothing changed",
                self.profile
            ));
        }
        for c in &self.changes {
            say(format!("  {c}"));
        }
        if !self.undo && self.changed {
            say(format!(
                "Undo with: kimi-vault{} setup claude --undo",
                profile_flag(self.profile)
            ));
        }
    }
}

fn mode_of(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path)
            .ok()
            .map(|m| m.permissions().mode() & 0o7777)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}
