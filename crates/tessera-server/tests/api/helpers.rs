//! Spawning a real server on a loopback port, and the small vocabulary the tests share.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera_server::ConnectionLimits;
use tessera_server::clock::{ManualClock, SharedClock, SystemClock};
use tessera_server::config::Config;
use tessera_server::http::AppState;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A password that passes the policy.
pub const PASSWORD: &str = "correct horse battery staple";
/// The user agent every test client sends.
pub const USER_AGENT: &str = "tessera-api-tests";
/// `WWW-Authenticate` when no token was presented (RFC 6750 section 3: no `error`).
pub const BARE_CHALLENGE: &str = r#"Bearer realm="tessera""#;

/// A running server and a client for it.
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A plain client: no cookie store, no redirects.
    pub client: Client,
    /// The data directory (SQLite file, keys). Kept alive as long as the app.
    pub dir: TempDir,
    /// The server's state, for set-up that has no endpoint (deleting a user).
    pub state: AppState,
    /// The configuration the app was built with (reused by [`TestApp::restart`]).
    pub config: Config,
    /// The server's clock when the test controls it ([`spawn_app_on_manual_clock`]).
    pub clock: Option<Arc<ManualClock>>,
    shutdown: oneshot::Sender<()>,
    server: JoinHandle<Result<(), String>>,
}

/// A registered account.
#[derive(Debug, Clone)]
pub struct TestUser {
    /// Database id.
    pub id: i64,
    /// Email as registered.
    pub email: String,
    /// Username as registered.
    pub username: String,
    /// Password.
    pub password: String,
}

/// One logged-in session: its tokens, however they were delivered.
#[derive(Debug, Clone)]
pub struct Login {
    /// The access token (from the body, or from the cookie under TOKEN_DELIVERY=cookie).
    pub access: String,
    /// The refresh token.
    pub refresh: String,
    /// The CSRF token for this session.
    pub csrf: String,
    /// The response body.
    pub body: Value,
    /// Every `Set-Cookie` of the response.
    pub set_cookies: Vec<String>,
}

impl Login {
    /// `Cookie` header value carrying the access cookie.
    pub fn access_cookie(&self) -> String {
        format!("access_token={}", self.access)
    }

    /// `Cookie` header value carrying the refresh cookie.
    pub fn refresh_cookie(&self) -> String {
        format!("refresh_token={}", self.refresh)
    }
}

fn init_logs(config: &Config) {
    static LOGS: Once = Once::new();
    if std::env::var_os("TEST_LOG").is_some() {
        LOGS.call_once(|| tessera_server::telemetry::init(config));
    }
}

/// Serialises the tests that load the machine on purpose (the fault suite's load generators, the
/// connection flood): on a 2-core CI machine two of them at once starve each other's timers and
/// turn time bounds into flakes. Hold the guard for the whole test.
pub async fn heavy_test() -> tokio::sync::MutexGuard<'static, ()> {
    static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    HEAVY.lock().await
}

/// A unique suffix for names within one test binary run.
pub fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Starts an app with the test configuration.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts an app with the test configuration, changed by `tweak` first.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::for_tests(dir.path());
    tweak(&mut config);
    start(dir, config).await
}

/// Starts an app with the test configuration changed by `tweak`, on a clock that moves only
/// when the test calls [`TestApp::advance`] (A4: no sleeping for expiry or grace windows).
pub async fn spawn_app_on_manual_clock(tweak: impl FnOnce(&mut Config)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut config = Config::for_tests(dir.path());
    tweak(&mut config);
    start_on(
        dir,
        config,
        Some(ManualClock::starting_now()),
        ConnectionLimits::default(),
    )
    .await
}

/// Starts an app with exactly `config` on the data directory `dir` (see [`TestApp::stop`]: a
/// restart with a changed configuration).
pub async fn start(dir: TempDir, config: Config) -> TestApp {
    start_on(dir, config, None, ConnectionLimits::default()).await
}

/// [`start`] with connection limits other than the defaults (short timeouts, a small cap).
pub async fn start_with_limits(dir: TempDir, config: Config, limits: ConnectionLimits) -> TestApp {
    start_on(dir, config, None, limits).await
}

/// [`start`] on `clock` (the system clock when `None`) with `limits`.
async fn start_on(dir: TempDir, config: Config, clock: Option<Arc<ManualClock>>, limits: ConnectionLimits) -> TestApp {
    init_logs(&config);
    let shared: SharedClock = match &clock {
        Some(clock) => clock.clone(),
        None => SystemClock::shared(),
    };
    let app = tessera_server::build_with_clock(config.clone(), shared)
        .await
        .expect("the app builds");
    serve_on(dir, config, app, clock, limits).await
}

/// Serves an app the test built itself (e.g. with `tessera_server::build_with_store`).
pub async fn serve_app(dir: TempDir, config: Config, app: tessera_server::Built) -> TestApp {
    init_logs(&config);
    serve_on(dir, config, app, None, ConnectionLimits::default()).await
}

async fn serve_on(
    dir: TempDir,
    config: Config,
    app: tessera_server::Built,
    clock: Option<Arc<ManualClock>>,
    limits: ConnectionLimits,
) -> TestApp {
    let state = app.state.clone();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
    let address = format!("http://{}", listener.local_addr().expect("local address"));
    let (shutdown, signal) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        tessera_server::serve(app, listener, limits, async {
            let _ = signal.await;
        })
        .await
        .map_err(|e| format!("{e:#}"))
    });
    let client = Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    TestApp {
        address,
        client,
        dir,
        state,
        config,
        clock,
        shutdown,
        server,
    }
}

impl TestApp {
    /// Stops the server (graceful shutdown) and starts a new one on the same data directory
    /// with the same configuration: a process restart, as far as the data is concerned.
    pub async fn restart(self) -> TestApp {
        let (dir, config) = self.stop().await;
        start(dir, config).await
    }

    /// Stops the server (graceful shutdown) and hands back its data directory and
    /// configuration, to start again with [`start`] (possibly with a changed configuration).
    pub async fn stop(self) -> (TempDir, Config) {
        let TestApp {
            client,
            dir,
            state,
            config,
            shutdown,
            server,
            ..
        } = self;
        drop(client);
        drop(state);
        let _ = shutdown.send(());
        let stopped = tokio::time::timeout(Duration::from_secs(10), server)
            .await
            .expect("the server stops within 10 s");
        stopped
            .expect("the server task ends cleanly")
            .expect("the server stops without error");
        (dir, config)
    }

    /// Moves the server's manual clock forward (only for [`spawn_app_on_manual_clock`] apps).
    pub fn advance(&self, by: Duration) {
        self.clock
            .as_ref()
            .expect("advance needs an app on a manual clock")
            .advance(by);
    }

    /// The absolute URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// GET `path`.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    /// POST `path`.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(self.url(path))
    }

    /// DELETE `path`.
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.client.delete(self.url(path))
    }

    /// POST /register.
    pub async fn register(&self, email: &str, username: &str, password: &str) -> Response {
        self.post("/register")
            .json(&json!({ "email": email, "username": username, "password": password }))
            .send()
            .await
            .expect("POST /register")
    }

    /// Registers a fresh account, asserting success.
    pub async fn register_user(&self) -> TestUser {
        let n = unique();
        let email = format!("user{n}@example.com");
        let username = format!("user_{n}");
        let response = self.register(&email, &username, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.expect("JSON body");
        TestUser {
            id: body["user_id"].as_i64().expect("user_id is an integer"),
            email,
            username,
            password: PASSWORD.to_owned(),
        }
    }

    /// POST /login with JSON `{"email", "password"}`.
    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post("/login")
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("POST /login")
    }

    /// Logs `user` in, asserting success, and collects the session's tokens.
    pub async fn login_user(&self, user: &TestUser) -> Login {
        let response = self.login(&user.email, &user.password).await;
        assert_eq!(response.status(), StatusCode::OK);
        read_login(response).await
    }

    /// A new account with one logged-in session.
    pub async fn new_session(&self) -> (TestUser, Login) {
        let user = self.register_user().await;
        let login = self.login_user(&user).await;
        (user, login)
    }

    /// POST /refresh with the token in the JSON body.
    pub async fn refresh(&self, refresh_token: &str) -> Response {
        self.post("/refresh")
            .json(&json!({ "refresh_token": refresh_token }))
            .send()
            .await
            .expect("POST /refresh")
    }

    /// GET `path` with a Bearer token.
    pub async fn get_bearer(&self, path: &str, token: &str) -> Response {
        self.get(path).bearer_auth(token).send().await.expect("GET")
    }

    /// GET /profile with a Bearer token.
    pub async fn profile(&self, token: &str) -> Response {
        self.get_bearer("/profile", token).await
    }

    /// The session id of an access token (from GET /profile).
    pub async fn session_id(&self, access: &str) -> String {
        let response = self.profile(access).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("JSON body");
        body["session_id"].as_str().expect("session_id").to_owned()
    }

    /// GET /sessions with a Bearer token, asserting success; the session list.
    pub async fn sessions(&self, access: &str) -> Vec<Value> {
        let response = self.get_bearer("/sessions", access).await;
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.expect("JSON body");
        body["sessions"].as_array().expect("sessions is a list").clone()
    }
}

/// Collects the tokens of a successful login or refresh response.
pub async fn read_login(response: Response) -> Login {
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookies = set_cookies(response.headers());
    let body: Value = response.json().await.expect("JSON body");
    let token = |field: &str| {
        body.get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| cookie_value(&set_cookies, field))
            .unwrap_or_else(|| panic!("no {field} in the body or the cookies"))
    };
    Login {
        access: token("access_token"),
        refresh: token("refresh_token"),
        csrf: body["csrf_token"].as_str().expect("csrf_token").to_owned(),
        body: body.clone(),
        set_cookies,
    }
}

/// Every `Set-Cookie` header value.
pub fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().expect("Set-Cookie is text").to_owned())
        .collect()
}

/// The `Set-Cookie` header for cookie `name`.
pub fn find_cookie<'a>(set_cookies: &'a [String], name: &str) -> Option<&'a str> {
    set_cookies
        .iter()
        .find(|c| c.split_once('=').is_some_and(|(n, _)| n == name))
        .map(String::as_str)
}

/// The value a `Set-Cookie` header gives cookie `name`.
pub fn cookie_value(set_cookies: &[String], name: &str) -> Option<String> {
    let cookie = find_cookie(set_cookies, name)?;
    let pair = cookie.split(';').next()?;
    let (_, value) = pair.split_once('=')?;
    Some(value.to_owned())
}

/// A header as text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .map(|v: &HeaderValue| v.to_str().expect("header is text"))
}

/// Asserts an error response: its status, the unified `{"error","message","details"}` shape
/// (exactly those keys, a non-empty message) and the `error` code. Returns headers and body.
pub async fn assert_error(response: Response, status: StatusCode, code: &str) -> (HeaderMap, Value) {
    let headers = response.headers().clone();
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "status of {text}");
    assert!(
        header(&headers, "content-type").is_some_and(|ct| ct.starts_with("application/json")),
        "content type {:?} of {text}",
        headers.get("content-type")
    );
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let object = body.as_object().unwrap_or_else(|| panic!("not an object: {text}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["details", "error", "message"], "keys of {text}");
    assert_eq!(body["error"], code, "error code of {text}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "message of {text}"
    );
    assert!(
        body["details"].is_null() || body["details"].is_object(),
        "details of {text}"
    );
    if status == StatusCode::UNAUTHORIZED {
        let challenge = header(&headers, "www-authenticate").unwrap_or_else(|| panic!("401 without WWW-Authenticate"));
        assert!(challenge.starts_with("Bearer"), "WWW-Authenticate: {challenge}");
    }
    (headers, body)
}

/// Asserts a 401 for a token that was presented and rejected: `error` code `code`, and
/// RFC 6750's `error="invalid_token"` with a description in the challenge.
pub async fn assert_token_rejected(response: Response, code: &str) -> Value {
    let (headers, body) = assert_error(response, StatusCode::UNAUTHORIZED, code).await;
    let challenge = header(&headers, "www-authenticate").unwrap_or_default();
    assert!(challenge.starts_with(r#"Bearer realm="tessera""#), "{challenge}");
    assert!(challenge.contains(r#"error="invalid_token""#), "{challenge}");
    assert!(challenge.contains("error_description="), "{challenge}");
    body
}

/// Asserts a 401 `not_authenticated` with the bare challenge (no `error=`).
pub async fn assert_not_authenticated(response: Response) -> Value {
    let (headers, body) = assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    assert_eq!(header(&headers, "www-authenticate"), Some(BARE_CHALLENGE));
    body
}

/// Asserts a 422 whose `details.errors` has an entry for `field` with `code`.
pub async fn assert_field_error(response: Response, field: &str, code: &str) -> Value {
    let (_, body) = assert_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error").await;
    let errors = body["details"]["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no details.errors: {body}"));
    assert!(
        errors
            .iter()
            .any(|e| e["field"] == field && e["code"] == code && e["message"].is_string()),
        "no {field}/{code} in {body}"
    );
    body
}

/// Asserts the keys of a JSON object, in any order.
pub fn assert_keys(value: &Value, expected: &[&str]) {
    let object = value.as_object().unwrap_or_else(|| panic!("not an object: {value}"));
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = expected.to_vec();
    expected.sort_unstable();
    assert_eq!(keys, expected, "keys of {value}");
}

/// Whether text looks like an RFC 3339 UTC timestamp (`2024-01-02T03:04:05Z`).
pub fn is_rfc3339_utc(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() >= 20
        && text.ends_with('Z')
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
}

/// The JSON log lines of `event` in a command's stderr (where operator commands log).
pub fn security_events(stderr: &[u8], event: &str) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stderr)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["event"] == event)
        .collect()
}
