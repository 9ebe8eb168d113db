//! `doctor`'s report: one typed value per section, serialized for `--json` and rendered for
//! people from the same value, so that the two cannot drift. Values are exact in `--json`; the
//! human text escapes what came from outside (`outln!`).

use std::path::Path;

use kimi_vault::KeyringError;
use kimi_vault::oauth::Region;
use kimi_vault::sanitize::for_terminal;
use kimi_vault::store::inspect::{FileProbe, PathCheck, PathKind};
use kimi_vault::store::{BackendKind, KeyringProbe, LockState};
use serde::Serialize;

use crate::cli::doctor_checks::{Checks, FILE_FIX, Key, keyring_fix, shown_url, store_name};
use crate::cli::doctor_clients::Finding;
use crate::cli::failure::exit;
use crate::cli::output::{self, outln};

fn ms(d: std::time::Duration) -> u128 {
    d.as_millis()
}

/// `doctor --json` (README), and `doctor` for people ([`DoctorJson::print`]).
#[derive(Serialize)]
pub(crate) struct DoctorJson<'a> {
    profile: &'a str,
    backend_mode: &'static str,
    ok: bool,
    backend: Option<&'static str>,
    keyring: KeyringJson,
    file: FileJson<'a>,
    key: KeyJson<'a>,
    paths: Vec<PathJson<'a>>,
    lock: LockJson<'a>,
    clock: ClockJson<'a>,
    endpoints: EndpointsJson<'a>,
    migrate_sources: Vec<SourceJson<'a>>,
    clients: ClientsJson<'a>,
    /// The backend credentials would go to (for the result's words).
    #[serde(skip)]
    backend_kind: Option<BackendKind>,
    /// The exit code.
    #[serde(skip)]
    code: u8,
}

/// The OS keyring: a write/read/delete round trip of a throwaway entry.
#[derive(Serialize)]
struct KeyringJson {
    /// `ok`, `unavailable`, `failed`, `not_checked`.
    status: &'static str,
    store: &'static str,
    reason: Option<String>,
    fix: Option<&'static str>,
    /// The step that failed (`write`, `read`, `delete`).
    step: Option<&'static str>,
    round_trip_ms: Option<u128>,
    /// Write, read and delete, each (people see them apart).
    #[serde(skip)]
    steps_ms: Option<[u128; 3]>,
}

impl KeyringJson {
    fn new(keyring: &Option<Result<KeyringProbe, (&'static str, KeyringError)>>) -> Self {
        let none = KeyringJson {
            status: "ok",
            store: store_name(),
            reason: None,
            fix: None,
            step: None,
            round_trip_ms: None,
            steps_ms: None,
        };
        match keyring {
            None => KeyringJson {
                status: "not_checked",
                reason: Some("KIMI_VAULT_BACKEND=file never touches the keyring".into()),
                ..none
            },
            Some(Ok(p)) => KeyringJson {
                round_trip_ms: Some(ms(p.write + p.read + p.delete)),
                steps_ms: Some([ms(p.write), ms(p.read), ms(p.delete)]),
                ..none
            },
            Some(Err((step, e))) => KeyringJson {
                status: if e.is_unavailable() || matches!(e, KeyringError::TooLong { .. }) {
                    "unavailable"
                } else {
                    "failed"
                },
                reason: Some(kimi_vault::scrub(&e.to_string())),
                fix: Some(keyring_fix(e)),
                step: Some(step),
                ..none
            },
        }
    }

    fn print(&self) {
        outln!("\nOS keyring ({})", self.store);
        match (self.status, self.steps_ms) {
            ("not_checked", _) => outln!(
                "  not checked: KIMI_VAULT_BACKEND=file never touches the keyring (run `KIMI_VAULT_BACKEND=auto kimi-vault doctor` to check it)"
            ),
            ("ok", Some([write, read, delete])) => outln!(
                "  works: a throwaway entry was written, read back and deleted (write {write} ms, read {read} ms, delete {delete} ms)"
            ),
            _ => {
                outln!(
                    "  does not work here: the {} of a throwaway entry failed: {}",
                    self.step.unwrap_or("use"),
                    self.reason.as_deref().unwrap_or_default()
                );
                if let Some(fix) = self.fix {
                    outln!("  fix: {fix}");
                }
            }
        }
    }
}

/// The encrypted file: a temp file written, read back and deleted in the vault directory.
#[derive(Serialize)]
struct FileJson<'a> {
    /// `ok`, `will_create`, `failed`.
    status: &'static str,
    vault_home: &'a Path,
    reason: Option<String>,
    fix: Option<&'static str>,
    round_trip_ms: Option<u128>,
    /// Where the vault directory will be created.
    #[serde(skip)]
    under: Option<&'a Path>,
}

impl<'a> FileJson<'a> {
    fn new(vault_home: &'a Path, file: &'a FileProbe) -> Self {
        let none = FileJson {
            status: "ok",
            vault_home,
            reason: None,
            fix: None,
            round_trip_ms: None,
            under: None,
        };
        match file {
            FileProbe::Works { took } => FileJson {
                round_trip_ms: Some(ms(*took)),
                ..none
            },
            FileProbe::WillCreate { under } => FileJson {
                status: "will_create",
                reason: Some(format!(
                    "created (0700) in {} at the first write",
                    under.display()
                )),
                under: Some(under),
                ..none
            },
            FileProbe::Fails(why) => FileJson {
                status: "failed",
                reason: Some(kimi_vault::scrub(why)),
                fix: Some(FILE_FIX),
                ..none
            },
        }
    }

    fn print(&self) {
        outln!("\nEncrypted file ({})", self.vault_home.display());
        match (self.status, self.round_trip_ms, self.under) {
            ("ok", Some(took), _) => outln!(
                "  works: a temp file was written, read back and deleted in the vault directory ({took} ms)"
            ),
            ("will_create", _, Some(under)) => outln!(
                "  works: the vault directory does not exist yet; it is created (mode 700) in {} at the first write",
                under.display()
            ),
            _ => {
                outln!(
                    "  does not work: {}",
                    self.reason.as_deref().unwrap_or_default()
                );
                outln!("  fix: {FILE_FIX}");
            }
        }
    }
}

/// What the key is bound to.
#[derive(Serialize)]
struct BoundToJson {
    machine_id: Option<&'static str>,
    uid: u32,
}

/// Whether `vault.key` opens `vault.enc` here.
#[derive(Serialize)]
struct KeyJson<'a> {
    /// `opens`, `no_vault`, `unreadable`.
    status: &'static str,
    profiles: Option<usize>,
    error: Option<&'a str>,
    bound_to: BoundToJson,
}

impl<'a> KeyJson<'a> {
    fn new(key: &'a Key, binding: &kimi_vault::store::inspect::Binding) -> Self {
        let bound_to = BoundToJson {
            machine_id: binding.machine_id_source,
            uid: binding.uid,
        };
        let (status, profiles, error) = match key {
            Key::NoVault => ("no_vault", None, None),
            Key::Opens(profiles) => ("opens", Some(*profiles), None),
            Key::Unreadable(message) => ("unreadable", None, Some(message.as_str())),
        };
        KeyJson {
            status,
            profiles,
            error,
            bound_to,
        }
    }

    fn print(&self) {
        let bound = match self.bound_to.machine_id {
            Some(src) => format!("this machine ({src}) and uid {}", self.bound_to.uid),
            None => format!(
                "uid {} only (no machine id found on this system)",
                self.bound_to.uid
            ),
        };
        match (self.profiles, self.error) {
            (Some(profiles), _) => outln!(
                "  vault.key opens vault.enc here ({profiles} profile{}); the key is bound to {bound}",
                if profiles == 1 { "" } else { "s" }
            ),
            (None, Some(message)) => outln!("  vault.enc cannot be read: {message}"),
            (None, None) => outln!("  no vault.enc yet; a new key will be bound to {bound}"),
        }
    }
}

/// One of the vault's paths: its kind, mode and owner, and whether it is refused.
#[derive(Serialize)]
struct PathJson<'a> {
    path: &'a Path,
    kind: &'static str,
    /// Octal, as the system reports it (file type bits included).
    mode: Option<String>,
    owner_uid: Option<u32>,
    ok: bool,
    /// kimi-vault refuses this path (exit 4).
    blocking: bool,
    problem: Option<&'a str>,
    #[serde(skip)]
    missing: bool,
    #[serde(skip)]
    mode_bits: Option<u32>,
}

impl<'a> PathJson<'a> {
    fn new(c: &'a PathCheck) -> Self {
        PathJson {
            path: &c.path,
            kind: c.kind.as_str(),
            mode: c.mode.map(|m| format!("{m:o}")),
            owner_uid: c.owner,
            ok: c.problem.is_none(),
            blocking: c.blocking,
            problem: c.problem.as_deref(),
            missing: c.kind == PathKind::Missing,
            mode_bits: c.mode,
        }
    }
}

fn print_paths(paths: &[PathJson<'_>]) {
    outln!("\nVault files");
    let width = paths
        .iter()
        .map(|c| c.path.display().to_string().chars().count())
        .max()
        .unwrap_or(0)
        + 2;
    for c in paths {
        let path = c.path.display().to_string();
        if c.missing {
            outln!(
                "  {}missing (created when needed)",
                output::pad(&path, width)
            );
            continue;
        }
        let facts = match (c.mode_bits, c.owner_uid) {
            (Some(mode), Some(owner)) => {
                format!("{}, mode {:o}, uid {owner}", c.kind, mode & 0o7777)
            }
            _ => c.kind.to_owned(),
        };
        let verdict = match c.problem {
            None => "ok".to_owned(),
            Some(p) if c.blocking => format!("REFUSED: {p}"),
            Some(p) => format!("note: {p}"),
        };
        outln!("  {}{facts}: {verdict}", output::pad(&path, width));
    }
}

/// The vault lock: free, held (by whom), or not there yet.
#[derive(Serialize)]
struct LockJson<'a> {
    /// `free`, `held`, `no_lock_file`, `unknown`, `error`.
    status: &'static str,
    holder_pid: Option<u32>,
    holder_command: Option<&'a str>,
    error: Option<String>,
}

impl<'a> LockJson<'a> {
    fn new(lock: &'a Result<LockState, kimi_vault::Error>) -> Self {
        let none = LockJson {
            status: "unknown",
            holder_pid: None,
            holder_command: None,
            error: None,
        };
        match lock {
            Ok(LockState::NoLockFile) => LockJson {
                status: "no_lock_file",
                ..none
            },
            Ok(LockState::Free) => LockJson {
                status: "free",
                ..none
            },
            Ok(LockState::Held { pid, command }) => LockJson {
                status: "held",
                holder_pid: *pid,
                holder_command: command.as_deref(),
                ..none
            },
            Ok(_) => none,
            Err(e) => LockJson {
                status: "error",
                error: Some(kimi_vault::scrub(&e.to_string())),
                ..none
            },
        }
    }

    fn print(&self) {
        outln!("\nVault lock");
        match self.status {
            "no_lock_file" => outln!("  no vault.lock yet: it is created at the first write"),
            "free" => outln!("  free: it can be taken"),
            "held" => outln!(
                "  held by {}{}: other commands wait for it (at most 90 s)",
                self.holder_pid
                    .map(|p| format!("process {p}"))
                    .unwrap_or_else(|| "another process".into()),
                self.holder_command
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default()
            ),
            "error" => outln!(
                "  cannot be tried: {}",
                self.error.as_deref().unwrap_or_default()
            ),
            _ => outln!("  state unknown"),
        }
    }
}

/// The clock: now, and what looks wrong about it.
#[derive(Serialize)]
struct ClockJson<'a> {
    ok: bool,
    now: String,
    problems: &'a [String],
}

impl ClockJson<'_> {
    fn print(&self) {
        outln!("\nClock");
        if self.problems.is_empty() {
            outln!("  ok: {} (UTC)", self.now);
        }
        for p in self.problems {
            outln!("  problem: {p}");
        }
    }
}

/// A region's hosts against the endpoint rule.
#[derive(Serialize)]
struct RegionJson<'a> {
    ok: bool,
    oauth_host: Option<&'a str>,
    api_base: Option<&'a str>,
    error: Option<String>,
}

impl<'a> RegionJson<'a> {
    fn new(e: &'a Result<kimi_vault::oauth::Endpoints, kimi_vault::Error>) -> Self {
        match e {
            Ok(e) => RegionJson {
                ok: true,
                oauth_host: Some(e.oauth_host.as_str()),
                api_base: Some(e.api_base.as_str()),
                error: None,
            },
            Err(err) => RegionJson {
                ok: false,
                oauth_host: None,
                api_base: None,
                error: Some(kimi_vault::scrub(&err.to_string())),
            },
        }
    }

    fn print(&self, region: &str) {
        match (self.oauth_host, self.api_base) {
            (Some(host), Some(base)) => outln!("  {region:<7} {host}  {base}  ok"),
            _ => outln!(
                "  {region:<7} refused: {}",
                self.error.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// An endpoint override that is set, shown without user info, query or fragment.
#[derive(Serialize)]
struct OverrideJson {
    variable: &'static str,
    value: Option<String>,
    ok: bool,
    error: Option<String>,
}

/// Both regions' hosts, and the overrides.
#[derive(Serialize)]
struct EndpointsJson<'a> {
    cn: Option<RegionJson<'a>>,
    global: Option<RegionJson<'a>>,
    overrides: Vec<OverrideJson>,
}

impl<'a> EndpointsJson<'a> {
    fn new(checks: &'a Checks<'_>) -> Self {
        let region = |want: Region| {
            checks
                .regions
                .iter()
                .find(|(r, _)| *r == want)
                .map(|(_, e)| RegionJson::new(e))
        };
        EndpointsJson {
            cn: region(Region::Cn),
            global: region(Region::Global),
            overrides: checks
                .overrides
                .list
                .iter()
                .map(|(name, raw)| {
                    let checked = kimi_vault::oauth::endpoints::checked_url(raw);
                    OverrideJson {
                        variable: name,
                        value: shown_url(raw),
                        ok: checked.is_ok(),
                        error: checked.err().map(|e| kimi_vault::scrub(&e.to_string())),
                    }
                })
                .collect(),
        }
    }

    fn print(&self) {
        outln!("\nEndpoints (the rule: https on kimi.com, kimi.ai or a subdomain, or loopback)");
        for (name, region) in [("cn", &self.cn), ("global", &self.global)] {
            if let Some(r) = region {
                r.print(name);
            }
        }
        for o in &self.overrides {
            let verdict = match &o.error {
                None => "allowed".to_owned(),
                Some(e) => format!("refused: {e}"),
            };
            outln!(
                "  override {} = {}: {verdict}",
                o.variable,
                o.value.as_deref().unwrap_or("(not a URL)")
            );
        }
    }
}

/// A plaintext file `migrate` would find.
#[derive(Serialize)]
struct SourceJson<'a> {
    path: &'a Path,
    tool: &'static str,
}

fn print_sources(sources: &[SourceJson<'_>]) {
    outln!("\nPlaintext credentials of other Kimi tools (what `kimi-vault migrate` would find)");
    if sources.is_empty() {
        outln!("  none found");
    }
    for s in sources {
        outln!("  {} ({}): there", s.path.display(), s.tool);
    }
    if !sources.is_empty() {
        outln!(
            "  `kimi-vault migrate --dry-run` shows what would move; `kimi-vault migrate` moves it"
        );
    }
}

/// The client checks: `{"ok", "checks": [{check, status, detail, fix}]}`.
#[derive(Serialize)]
struct ClientsJson<'a> {
    ok: bool,
    checks: &'a [Finding],
}

impl<'a> DoctorJson<'a> {
    pub(crate) fn new(profile: &'a str, vault_home: &'a Path, checks: &'a Checks<'_>) -> Self {
        DoctorJson {
            profile,
            backend_mode: checks.mode_name,
            ok: checks.code == exit::OK,
            backend: checks.backend.map(BackendKind::as_str),
            keyring: KeyringJson::new(&checks.keyring),
            file: FileJson::new(vault_home, &checks.file),
            key: KeyJson::new(&checks.key, &checks.binding),
            paths: checks.files.iter().map(PathJson::new).collect(),
            lock: LockJson::new(&checks.lock),
            clock: ClockJson {
                ok: checks.clock.is_empty(),
                now: kimi_vault::rfc3339(kimi_vault::now_unix()),
                problems: &checks.clock,
            },
            endpoints: EndpointsJson::new(checks),
            migrate_sources: checks
                .sources
                .iter()
                .map(|(path, tool)| SourceJson {
                    path,
                    tool: tool.name(),
                })
                .collect(),
            clients: ClientsJson {
                ok: crate::cli::doctor_clients::all_ok(&checks.clients),
                checks: &checks.clients,
            },
            backend_kind: checks.backend,
            code: checks.code,
        }
    }

    /// `doctor` for people: one section per check, then the result.
    pub(crate) fn print(&self) {
        outln!(
            "kimi-vault doctor: profile '{}', KIMI_VAULT_BACKEND={}",
            self.profile,
            self.backend_mode
        );
        self.keyring.print();
        self.file.print();
        self.key.print();
        print_paths(&self.paths);
        self.lock.print();
        self.clock.print();
        self.endpoints.print();
        print_sources(&self.migrate_sources);
        crate::cli::doctor_clients::print(self.clients.checks);
        outln!();
        self.print_result();
    }

    fn print_result(&self) {
        let mode_name = self.backend_mode;
        match self.backend_kind {
            Some(b) if self.code == exit::VAULT_UNREADABLE => outln!(
                "Result: the configured backend ({mode_name}) could keep credentials in the {}, but the vault here cannot be used as it is (see the error below).",
                b.describe()
            ),
            Some(b) => outln!(
                "Result: the configured backend ({mode_name}) works here: credentials go to the {}.",
                b.describe()
            ),
            None => {
                outln!(
                    "Result: the configured backend ({mode_name}) does not work here (see above)."
                )
            }
        }
    }

    /// The error line on stderr (human and `--json` alike): the first of an unsafe file, an
    /// unreadable vault, a backend that does not work.
    pub(crate) fn print_error(&self) {
        if let Some(c) = self.paths.iter().find(|c| c.blocking) {
            eprintln!(
                "kimi-vault: error: {} is refused: {}",
                for_terminal(&c.path.display().to_string()),
                for_terminal(c.problem.unwrap_or_default())
            );
        } else if let Some(m) = self.key.error {
            eprintln!("kimi-vault: error: {}", for_terminal(m));
        } else if self.backend_kind.is_none() {
            eprintln!(
                "kimi-vault: error: the configured backend (KIMI_VAULT_BACKEND={}) does not work here; see above",
                self.backend_mode
            );
        }
    }
}
