//! Shared test parts: a fake Kimi auth server on loopback (a real HTTP server) and helpers that
//! run the real `kimi-vault` binary in a private HOME and vault directory.

#![allow(dead_code)]

pub mod upstream;

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use assert_cmd::Command;
use kimi_vault::secret::SecretString;
use kimi_vault::store::{BackendMode, Credential, Vault, VaultPaths};

/// Canary secrets planted in failure paths: none may ever reach output.
pub const CANARY_ACCESS: &str = "CANARYaccess0123456789abcdefSECRET";
pub const CANARY_REFRESH: &str = "CANARYrefresh0123456789abcdefSECRET";

/// How the fake server answers device-code polls.
#[derive(Clone, Debug)]
pub enum DeviceScenario {
    /// `pending` polls answered authorization_pending (alternating 400 and 200), then tokens.
    Approve { pending: usize },
    /// One slow_down, then tokens.
    SlowDownThenApprove,
    /// access_denied.
    Deny,
    /// expired_token.
    Expire,
}

/// A canned response served before normal handling.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Debug)]
pub struct State {
    pub device: DeviceScenario,
    pub interval: Option<u64>,
    pub polls: usize,
    /// Refresh token currently valid; every refresh rotates it.
    pub valid_refresh: Option<String>,
    pub generation: u64,
    pub refresh_requests: usize,
    pub device_requests: usize,
    pub expires_in: i64,
    pub omit_refresh_in_response: bool,
    /// Accept any refresh token (for kill tests, where a killed process may lose a rotation).
    pub accept_any_refresh: bool,
    /// Served, in order, to token-endpoint requests before normal handling.
    pub canned: VecDeque<Canned>,
    /// Refresh requests get no answer for this long (a hung auth server).
    pub hang_refresh: Option<std::time::Duration>,
    /// Refresh requests are answered (normally) only after this long (a slow auth server).
    pub delay_refresh: Option<std::time::Duration>,
    /// Headers of every request (lower-case names).
    pub seen_headers: Vec<HashMap<String, String>>,
    pub seen_forms: Vec<HashMap<String, String>>,
    /// Served, in order, to `GET /coding/v1/usages` before the default answer.
    pub usages: VecDeque<Canned>,
    /// Served, in order, to `GET /coding/v1/models` before the default answer.
    pub models: VecDeque<Canned>,
    /// Served, in order, to `GET /coding/v1/me` before the default answer.
    pub me: VecDeque<Canned>,
    /// The default answers of the API routes (200).
    pub usages_body: String,
    pub models_body: String,
    pub me_body: String,
    /// `Authorization` header of every API request, in order (`path`, value).
    pub api_auth: Vec<(String, String)>,
    /// Replaces the device authorization's `user_code` and `verification_uri` (a hostile
    /// server's text).
    pub device_text: Option<(String, String)>,
}

/// `GET /usages` as Kimi answers it: numbers as decimal strings, the 5-hour window in
/// `limits[]`, the plan level, and fields this tool does not know.
pub const USAGES_BODY: &str = r#"{"usage":{"limit":"100","used":"26","remaining":"74","resetTime":"2099-01-01T00:00:00.123456Z","ignored":true},"limits":[{"window":{"duration":300,"timeUnit":"TIME_UNIT_MINUTE"},"detail":{"limit":"100","remaining":"85","resetTime":"2099-01-01T00:00:00Z"}}],"user":{"membership":{"level":"LEVEL_INTERMEDIATE"},"region":"REGION_CN"},"totalQuota":{},"boosterWallet":{"balance":{"type":"BOOSTER","amount":"2000000000","amountLeft":"1234500000"},"monthlyChargeLimitEnabled":true,"monthlyChargeLimit":{"priceInCents":"5000","currency":"USD"},"monthlyUsed":{"priceInCents":"766","currency":"USD"}}}"#;

/// `GET /me` as Kimi answers it (personal fields included, masked phone).
pub const ME_BODY: &str = r#"{"user_id":"u_canary_4242","nickname":"moonwalker","status":"USER_STATUS_NORMAL","region":"REGION_CN","user_level":30,"user_level_name":"Vivace","domain":1,"domain_name":"DOMAIN_KIMI","email":"m***@example.com","phone":{"country_code":"86","number":"176****0000"},"created_time":"2026-06-11T13:26:47.561184Z"}"#;

/// `GET /models` as Kimi answers it, with an extra field.
pub const MODELS_BODY: &str = r#"{"object":"list","data":[{"id":"kimi-for-coding","display_name":"Kimi For Coding","context_length":262144,"supports_reasoning":true,"supports_image_in":true,"supports_video_in":false,"supports_tool_use":true,"supports_thinking_type":"both","think_efforts":{"support":true,"valid_efforts":["low","medium","high"],"default_effort":"medium"},"protocol":"anthropic","created":1700000000},{"id":"kimi-k2-turbo","context_length":"131072","supports_reasoning":"false"}]}"#;

impl Canned {
    pub fn new(status: u16, body: &str) -> Self {
        Canned {
            status,
            body: body.to_owned(),
            headers: Vec::new(),
        }
    }
}

pub struct FakeKimi {
    pub url: String,
    pub state: Arc<Mutex<State>>,
    stopping: Arc<std::sync::atomic::AtomicBool>,
    server: Arc<tiny_http::Server>,
    handle: Option<thread::JoinHandle<()>>,
}

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

impl FakeKimi {
    pub fn start() -> Self {
        let server = Arc::new(tiny_http::Server::http("127.0.0.1:0").expect("bind loopback"));
        let url = format!("http://{}", server.server_addr().to_ip().unwrap());
        let state = Arc::new(Mutex::new(State {
            device: DeviceScenario::Approve { pending: 1 },
            interval: Some(1),
            polls: 0,
            valid_refresh: None,
            generation: 0,
            refresh_requests: 0,
            device_requests: 0,
            expires_in: 900,
            omit_refresh_in_response: false,
            accept_any_refresh: false,
            canned: VecDeque::new(),
            hang_refresh: None,
            delay_refresh: None,
            seen_headers: Vec::new(),
            seen_forms: Vec::new(),
            usages: VecDeque::new(),
            models: VecDeque::new(),
            me: VecDeque::new(),
            usages_body: USAGES_BODY.to_owned(),
            models_body: MODELS_BODY.to_owned(),
            me_body: ME_BODY.to_owned(),
            api_auth: Vec::new(),
            device_text: None,
        }));
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (s, st, stop) = (server.clone(), state.clone(), stopping.clone());
        let handle = thread::spawn(move || {
            for mut req in s.incoming_requests() {
                let mut body = String::new();
                let _ = req.as_reader().read_to_string(&mut body);
                let headers: HashMap<String, String> = req
                    .headers()
                    .iter()
                    .map(|h| {
                        (
                            h.field.as_str().as_str().to_ascii_lowercase(),
                            h.value.to_string(),
                        )
                    })
                    .collect();
                let form = form(&body);
                let hang = st.lock().unwrap().hang_refresh;
                if let Some(hang) = hang
                    && form.get("grant_type").map(String::as_str) == Some("refresh_token")
                {
                    st.lock().unwrap().refresh_requests += 1;
                    // Never answers: hold the connection until the hang or the test is over.
                    let until = std::time::Instant::now() + hang;
                    while std::time::Instant::now() < until
                        && !stop.load(std::sync::atomic::Ordering::Relaxed)
                    {
                        thread::sleep(std::time::Duration::from_millis(50));
                    }
                    continue;
                }
                let (status, body, extra) = handle(&st, req.url(), &headers, &form);
                let mut resp = tiny_http::Response::from_string(body).with_status_code(status);
                resp.add_header(
                    tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap(),
                );
                for (k, v) in extra {
                    resp.add_header(tiny_http::Header::from_bytes(k, v).unwrap());
                }
                let delay = st.lock().unwrap().delay_refresh;
                match delay {
                    // Answered later, on a thread of its own, so that other requests are served.
                    Some(delay)
                        if form.get("grant_type").map(String::as_str) == Some("refresh_token") =>
                    {
                        thread::spawn(move || {
                            thread::sleep(delay);
                            let _ = req.respond(resp);
                        });
                    }
                    _ => {
                        let _ = req.respond(resp);
                    }
                }
            }
        });
        FakeKimi {
            url,
            state,
            stopping,
            server,
            handle: Some(handle),
        }
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }

    pub fn refresh_requests(&self) -> usize {
        self.with(|s| s.refresh_requests)
    }
}

impl Drop for FakeKimi {
    fn drop(&mut self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.server.unblock();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn tokens(st: &mut State) -> String {
    st.generation += 1;
    let g = st.generation;
    let refresh = format!("rt-gen{g}-0123456789abcdef0123456789");
    st.valid_refresh = Some(refresh.clone());
    let mut v = serde_json::json!({
        "access_token": format!("at-gen{g}-0123456789abcdef0123456789"),
        "refresh_token": refresh,
        "expires_in": st.expires_in,
        "scope": "kimi-code",
        "token_type": "Bearer",
    });
    if st.omit_refresh_in_response {
        v.as_object_mut().unwrap().remove("refresh_token");
    }
    v.to_string()
}

fn oauth_error(status: u16, code: &str) -> (u16, String, Vec<(String, String)>) {
    (
        status,
        serde_json::json!({"error": code}).to_string(),
        vec![],
    )
}

fn handle(
    st: &Mutex<State>,
    url: &str,
    headers: &HashMap<String, String>,
    form: &HashMap<String, String>,
) -> (u16, String, Vec<(String, String)>) {
    let mut st = st.lock().unwrap();
    st.seen_headers.push(headers.clone());
    st.seen_forms.push(form.clone());
    if let Some(route) = url.strip_prefix("/coding/v1/") {
        let auth = headers.get("authorization").cloned().unwrap_or_default();
        st.api_auth.push((route.to_owned(), auth));
        let (next, default) = match route {
            "usages" => (st.usages.pop_front(), st.usages_body.clone()),
            "models" => (st.models.pop_front(), st.models_body.clone()),
            "me" => (st.me.pop_front(), st.me_body.clone()),
            _ => return (404, "{}".into(), vec![]),
        };
        return match next {
            Some(c) => (c.status, c.body, c.headers),
            None => (200, default, vec![]),
        };
    }
    match url {
        "/api/oauth/device_authorization" => {
            st.device_requests += 1;
            let mut v = serde_json::json!({
                "device_code": "dc-0123456789abcdef0123456789",
                "user_code": "ABCD-1234",
                "verification_uri": "https://www.kimi.com/code/authorize_device",
                "verification_uri_complete": "https://www.kimi.com/code/authorize_device?user_code=ABCD-1234",
                "expires_in": 600,
            });
            if let Some(i) = st.interval {
                v["interval"] = i.into();
            }
            if let Some((code, uri)) = &st.device_text {
                v["user_code"] = code.as_str().into();
                v["verification_uri"] = uri.as_str().into();
                v["verification_uri_complete"] = serde_json::Value::Null;
            }
            (200, v.to_string(), vec![])
        }
        "/api/oauth/token" => {
            if let Some(c) = st.canned.pop_front() {
                if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
                    st.refresh_requests += 1;
                }
                return (c.status, c.body, c.headers);
            }
            match form.get("grant_type").map(String::as_str) {
                Some("urn:ietf:params:oauth:grant-type:device_code") => {
                    st.polls += 1;
                    let polls = st.polls;
                    match st.device.clone() {
                        DeviceScenario::Approve { pending } if polls <= pending => oauth_error(
                            if polls % 2 == 1 { 400 } else { 200 },
                            "authorization_pending",
                        ),
                        DeviceScenario::SlowDownThenApprove if polls == 1 => {
                            oauth_error(400, "slow_down")
                        }
                        DeviceScenario::Deny => oauth_error(400, "access_denied"),
                        DeviceScenario::Expire => oauth_error(400, "expired_token"),
                        _ => (200, tokens(&mut st), vec![]),
                    }
                }
                Some("refresh_token") => {
                    st.refresh_requests += 1;
                    let given = form.get("refresh_token").cloned().unwrap_or_default();
                    if st.accept_any_refresh || st.valid_refresh.as_deref() == Some(given.as_str())
                    {
                        (200, tokens(&mut st), vec![])
                    } else {
                        oauth_error(401, "invalid_grant")
                    }
                }
                _ => oauth_error(400, "unsupported_grant_type"),
            }
        }
        _ => (404, "{}".into(), vec![]),
    }
}

/// A private HOME and vault directory plus the fake server.
pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub server: FakeKimi,
}

impl TestEnv {
    /// How many API requests (usages, models) reached the fake server.
    pub fn api_requests(&self) -> usize {
        self.server.with(|s| s.api_auth.len())
    }

    pub fn new() -> Self {
        TestEnv {
            dir: tempfile::tempdir().unwrap(),
            server: FakeKimi::start(),
        }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    pub fn vault_home(&self) -> PathBuf {
        self.dir.path().join("vault")
    }

    /// The real binary, file backend, no D-Bus, no display, pointed at the fake server.
    pub fn cmd(&self) -> Command {
        Command::from_std(self.std_cmd())
    }

    /// The same as a plain `std::process::Command` (for spawning many at once).
    pub fn std_cmd(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("kimi-vault"));
        std::fs::create_dir_all(self.home()).unwrap();
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home())
            .env("KIMI_VAULT_HOME", self.vault_home())
            .env("KIMI_VAULT_BACKEND", "file")
            .env("KIMI_CODE_OAUTH_HOST", &self.server.url)
            .env(
                "KIMI_CODE_BASE_URL",
                format!("{}/coding/v1", self.server.url),
            );
        c
    }

    /// A library handle on the same vault (file backend).
    pub fn vault(&self) -> Vault {
        Vault::new(VaultPaths::at(self.vault_home()), BackendMode::File)
    }

    /// Stores a credential directly (as a previous login would have) and tells the fake server
    /// that its refresh token is the valid one.
    pub fn seed(&self, profile: &str, access: &str, refresh: &str, expires_in: i64) {
        self.store(profile, &credential(access, refresh, expires_in));
        self.server
            .with(|s| s.valid_refresh = Some(refresh.to_owned()));
    }

    /// Stores `cred` for `profile` in the file backend, under the vault lock, as a login would
    /// have (the fake server is not told about it: see [`seed`](Self::seed)).
    pub fn store(&self, profile: &str, cred: &Credential) {
        let vault = self.vault();
        let lock = vault.lock().unwrap();
        vault.save(profile, cred, &lock, false).unwrap();
    }

    /// Starts `n` `kimi-vault ARGS…` processes at once, output captured.
    pub fn spawn_many(&self, n: usize, args: &[&str]) -> Vec<std::process::Child> {
        (0..n)
            .map(|_| {
                self.std_cmd()
                    .args(args)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect()
    }

    /// `status --json`'s object (whatever the exit code).
    pub fn status_json(&self) -> serde_json::Value {
        let out = self.cmd().args(["status", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    pub fn stored(&self, profile: &str) -> Option<Credential> {
        self.vault().load(profile).unwrap().map(|l| l.cred)
    }
}

pub fn credential(access: &str, refresh: &str, expires_in: i64) -> Credential {
    let mut cred = Credential::new(
        SecretString::from(access),
        SecretString::from(refresh),
        kimi_vault::now_unix() + expires_in,
    );
    cred.scope = "kimi-code".into();
    cred.region = "cn".into();
    cred
}

/// Asserts that none of `secrets` appears in the output.
pub fn assert_no_secret(output: &std::process::Output, secrets: &[&str]) {
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    for s in secrets {
        assert!(!out.contains(s), "secret {s} leaked on stdout: {out}");
        assert!(!err.contains(s), "secret {s} leaked on stderr: {err}");
    }
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Appends a measured figure to `$KIMI_VAULT_TEST_REPORT` (scripts/test.sh prints the file at the
/// end, so CI shows the numbers) and to stderr.
pub fn report(line: &str) {
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("KIMI_VAULT_TEST_REPORT") {
        use std::io::Write;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}

/// For the tests that are `#[ignore = "needs root …"]`: run without root (with
/// `--include-ignored`), they fail here, saying why, rather than pass having tested nothing.
pub fn require_root(why: &str) {
    assert!(
        rustix::process::geteuid().as_raw() == 0,
        "this test needs root ({why}): run it as root, or leave out --include-ignored"
    );
}
