//! Forward auth (G2) behind the real proxies: nginx (`auth_request` to `/auth/nginx`) and Caddy
//! (`forward_auth` to `/auth/forward`), each started by the test on a free loopback port with
//! its configuration in a temporary directory, in front of a small upstream written here that
//! echoes the headers it got and streams server-sent events.
//!
//! Checked through each proxy: allowed with the identity headers copied to the upstream,
//! refused with 401, a browser redirected to sign in, a client's spoofed identity headers never
//! reaching the upstream, SSE streamed through (the first event arrives while the upstream still
//! holds the stream open), and 502 when the upstream is down. The configurations are the ones
//! docs/GATEWAY.md shows.
//!
//! The binaries come from Debian (`apt-get install nginx caddy`, done by `.ci/run`). Without
//! them the tests skip with a note, unless `TESSERA_REQUIRE_SERVICES=1` (CI), where they fail.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tessera_core::gateway::{AbsoluteUrl, Domains};
use tokio::sync::{Notify, mpsc};

use crate::helpers::{TestApp, TestUser, spawn_app_with};

const HTML: &str = "text/html,application/xhtml+xml,*/*;q=0.8";
const SIGNIN: &str = "https://auth.example.com/signin";
/// The identity headers Tessera answers with and the proxies copy to the upstream.
const IDENTITY_HEADERS: [&str; 10] = [
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    "X-Tessera-User-Id",
    "X-Tessera-Username",
    "X-Tessera-Session-Id",
    "X-Tessera-Scopes",
    "X-Tessera-Roles",
    "X-Tessera-Assertion",
];

/// The path of a proxy binary, or `None` (after a note, or a failure under
/// `TESSERA_REQUIRE_SERVICES=1`).
fn binary(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|path| path.is_file());
    if found.is_none() {
        crate::services::unavailable(&format!("{name} is not installed (apt-get install {name})"));
    }
    found
}

/// A free loopback port (bound, then released for the proxy to take).
fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The upstream: `/sse` streams one event, then holds the stream open until the test calls
/// `release`, then sends a last event; every other path echoes the request's headers as JSON.
struct Upstream {
    port: u16,
    hits: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

#[derive(Clone)]
struct UpstreamState {
    hits: Arc<AtomicUsize>,
    release: Arc<Notify>,
}

async fn echo(State(state): State<UpstreamState>, uri: Uri, headers: HeaderMap) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let mut seen: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &headers {
        seen.entry(name.as_str().to_owned())
            .or_default()
            .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
    }
    axum::Json(json!({ "path": uri.path(), "headers": seen })).into_response()
}

async fn sse(State(state): State<UpstreamState>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    let (sender, receiver) = mpsc::channel::<Bytes>(4);
    let release = Arc::clone(&state.release);
    tokio::spawn(async move {
        let _ = sender.send(Bytes::from_static(b"data: first\n\n")).await;
        release.notified().await;
        let _ = sender.send(Bytes::from_static(b"data: last\n\n")).await;
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|chunk| (Ok::<Bytes, Infallible>(chunk), receiver))
    });
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn start_upstream() -> Upstream {
    let state = UpstreamState {
        hits: Arc::new(AtomicUsize::new(0)),
        release: Arc::new(Notify::new()),
    };
    let app = Router::new()
        .route("/sse", get(sse))
        .fallback(echo)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Upstream {
        port,
        hits: state.hits,
        release: state.release,
    }
}

/// A proxy process, killed (by PID) and reaped when dropped.
struct ProxyProcess {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ProxyProcess {
    /// Waits until the proxy accepts connections; fails with its log if it exits first.
    async fn wait_ready(mut self, name: &str) -> ProxyProcess {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("{name} exited with {status} before listening:\n{log}");
            }
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return self;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen on {} in time",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The `Host` the tests send: a name under GATEWAY_DOMAINS, on the proxy's port.
    fn host(&self) -> String {
        format!("app.example.com:{}", self.port)
    }
}

/// nginx's snippet for a protected location: the auth subrequest, the identity headers copied
/// from its answer to the upstream request, and the sign-in redirect (docs/GATEWAY.md).
fn nginx_auth_snippet() -> String {
    let mut snippet = String::from(
        "auth_request /_tessera_auth;\n\
         auth_request_set $tessera_location $upstream_http_location;\n\
         error_page 401 = @tessera_signin;\n",
    );
    for name in IDENTITY_HEADERS {
        let variable = name.to_ascii_lowercase().replace('-', "_");
        snippet.push_str(&format!(
            "auth_request_set $tessera_{variable} $upstream_http_{variable};\n\
             proxy_set_header {name} $tessera_{variable};\n"
        ));
    }
    snippet
}

fn nginx_config(dir: &Path, port: u16, tessera: SocketAddr, upstream: u16, dead: u16) -> String {
    let dir = dir.display();
    // `user root` only when the test runs as root (nginx otherwise drops to `nobody`, which
    // cannot use the temporary directory); `master_process off` keeps nginx one process, so
    // killing its PID stops it all.
    let is_root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let user = if is_root { "user root;" } else { "" };
    format!(
        r#"{user}
master_process off;
worker_processes 1;
error_log {dir}/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    server {{
        listen 127.0.0.1:{port};

        # The auth subrequest: Tessera reads the original request from X-Original-*.
        location = /_tessera_auth {{
            internal;
            proxy_pass http://{tessera}/auth/nginx;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Original-URL $scheme://$http_host$request_uri;
            proxy_set_header X-Original-Method $request_method;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        # A 401 with Location (a browser) becomes the sign-in redirect; without, it stays 401.
        location @tessera_signin {{
            if ($tessera_location) {{
                return 302 $tessera_location;
            }}
            return 401;
        }}

        location / {{
            include {dir}/tessera-auth.conf;
            proxy_http_version 1.1;
            proxy_buffering off;
            proxy_pass http://127.0.0.1:{upstream};
        }}

        location /down/ {{
            include {dir}/tessera-auth.conf;
            proxy_pass http://127.0.0.1:{dead};
        }}
    }}
}}
"#
    )
}

async fn start_nginx(binary: &Path, tessera: SocketAddr, upstream: u16, dead: u16) -> ProxyProcess {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    std::fs::write(dir.path().join("tessera-auth.conf"), nginx_auth_snippet()).unwrap();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_config(dir.path(), port, tessera, upstream, dead)).unwrap();
    let log = dir.path().join("error.log");
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(&log)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    ProxyProcess {
        child,
        port,
        log,
        _dir: dir,
    }
    .wait_ready("nginx")
    .await
}

fn caddyfile(port: u16, tessera: SocketAddr, upstream: u16, dead: u16) -> String {
    let headers = IDENTITY_HEADERS.join(" ");
    format!(
        r#"{{
    admin off
    auto_https off
}}

http://:{port} {{
    bind 127.0.0.1

    forward_auth {tessera} {{
        uri /auth/forward
        copy_headers {headers}
    }}

    handle /down/* {{
        reverse_proxy 127.0.0.1:{dead}
    }}
    handle {{
        reverse_proxy 127.0.0.1:{upstream}
    }}
}}
"#
    )
}

async fn start_caddy(binary: &Path, tessera: SocketAddr, upstream: u16, dead: u16) -> ProxyProcess {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, caddyfile(port, tessera, upstream, dead)).unwrap();
    let log = dir.path().join("caddy.log");
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let child = Command::new(binary)
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&file)
        .env("HOME", &home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    ProxyProcess {
        child,
        port,
        log,
        _dir: dir,
    }
    .wait_ready("caddy")
    .await
}

/// Tessera behind a proxy on loopback: the proxy is the trusted peer, `example.com` over plain
/// http is a return-URL domain (the tests have no TLS).
async fn tessera() -> TestApp {
    spawn_app_with(|config| {
        config.trusted_proxies = vec!["127.0.0.1".parse().unwrap()];
        config.gateway_domains = Domains::parse("http://example.com").unwrap();
        config.gateway_signin_url = Some(AbsoluteUrl::parse(SIGNIN).unwrap());
    })
    .await
}

fn tessera_addr(app: &TestApp) -> SocketAddr {
    app.address.trim_start_matches("http://").parse().unwrap()
}

/// A client that follows no redirect and sends requests as a fresh connection each time.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The headers the upstream saw (name -> every value), from the echo.
async fn upstream_saw(response: reqwest::Response) -> BTreeMap<String, Vec<String>> {
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    serde_json::from_value(body["headers"].clone()).unwrap()
}

fn single<'a>(seen: &'a BTreeMap<String, Vec<String>>, name: &str) -> Option<&'a str> {
    match seen.get(name).map(Vec::as_slice) {
        None => None,
        Some([value]) => Some(value.as_str()),
        Some(values) => panic!("{name} reached the upstream {} times: {values:?}", values.len()),
    }
}

/// The scenario, the same through either proxy.
async fn forward_auth_through(name: &str, proxy: &ProxyProcess, app: &TestApp, upstream: &Upstream) {
    let client = client();
    let (user, login) = app.new_session().await;
    let key = create_key(app, &login.access).await;

    // Allowed: the upstream gets the identity Tessera vouched for.
    let response = client
        .get(proxy.url("/echo"))
        .header("host", proxy.host())
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    let seen = upstream_saw(response).await;
    assert_identity(name, &seen, &user);
    assert!(single(&seen, "x-tessera-session-id").is_some(), "{name}: {seen:?}");
    assert_eq!(
        single(&seen, "x-tessera-assertion").map(|a| a.split('.').count()),
        Some(3),
        "{name}"
    );

    // Refused: an API client without a credential gets 401 and the upstream is not called.
    let hits = upstream.hits.load(Ordering::SeqCst);
    let response = client
        .get(proxy.url("/echo"))
        .header("host", proxy.host())
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
    let response = client
        .get(proxy.url("/echo"))
        .header("host", proxy.host())
        .bearer_auth("forged.token.value")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");

    // A browser is redirected to sign in, with the URL it wanted.
    let response = client
        .get(proxy.url("/echo?x=1"))
        .header("host", proxy.host())
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND, "{name}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!(
            "{SIGNIN}?rd=http%3A%2F%2Fapp.example.com%3A{}%2Fecho%3Fx%3D1",
            proxy.port
        ),
        "{name}"
    );
    // A host outside GATEWAY_DOMAINS: redirected without a return URL.
    let response = client
        .get(proxy.url("/echo"))
        .header("host", format!("evil.com:{}", proxy.port))
        .header("accept", HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND, "{name}");
    assert_eq!(response.headers()["location"], SIGNIN, "{name}");
    assert_eq!(
        upstream.hits.load(Ordering::SeqCst),
        hits,
        "{name}: refused requests reached the upstream"
    );

    // A client's own identity headers never reach the upstream: Tessera's replace them, and
    // the ones that do not apply (no session for an API key) come empty from Tessera, so the
    // proxy replaces (nginx: drops) the client's copy too.
    let mut spoofed = client
        .get(proxy.url("/echo"))
        .header("host", proxy.host())
        .bearer_auth(&login.access);
    for (header, value) in [
        ("Remote-User", "mallory"),
        ("Remote-Groups", "admin"),
        ("Remote-Email", "mallory@evil.com"),
        ("X-Tessera-User-Id", "999999"),
        ("X-Tessera-Roles", "admin"),
    ] {
        spoofed = spoofed.header(header, value);
    }
    let seen = upstream_saw(spoofed.send().await.unwrap()).await;
    assert_identity(name, &seen, &user);
    let seen = upstream_saw(
        client
            .get(proxy.url("/echo"))
            .header("host", proxy.host())
            .bearer_auth(&key)
            .header("X-Tessera-Session-Id", "forged-session")
            .header("Remote-User", "mallory")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_identity(name, &seen, &user);
    assert!(
        single(&seen, "x-tessera-session-id").unwrap_or_default().is_empty(),
        "{name}: a spoofed session id reached the upstream: {seen:?}"
    );

    // Server-sent events stream through: the first event arrives while the upstream still
    // holds the stream open.
    let mut response = client
        .get(proxy.url("/sse"))
        .header("host", proxy.host())
        .header("accept", "text/event-stream")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{name}");
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .unwrap_or_else(|_| panic!("{name}: the first event did not arrive while the stream was open"))
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&first).contains("data: first"),
        "{name}: {first:?}"
    );
    upstream.release.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .unwrap()
        .unwrap()
    {
        rest.extend_from_slice(&chunk);
    }
    assert!(
        String::from_utf8_lossy(&rest).contains("data: last"),
        "{name}: {rest:?}"
    );

    // The upstream is down: 502 from the proxy (authenticated; refused callers still get 401).
    let response = client
        .get(proxy.url("/down/x"))
        .header("host", proxy.host())
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY, "{name}");
    let response = client
        .get(proxy.url("/down/x"))
        .header("host", proxy.host())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
}

fn assert_identity(name: &str, seen: &BTreeMap<String, Vec<String>>, user: &TestUser) {
    assert_eq!(
        single(seen, "remote-user"),
        Some(user.username.as_str()),
        "{name}: {seen:?}"
    );
    assert_eq!(single(seen, "remote-email"), Some(user.email.as_str()), "{name}");
    assert_eq!(single(seen, "remote-name"), Some(user.username.as_str()), "{name}");
    assert!(
        single(seen, "remote-groups").unwrap_or_default().is_empty(),
        "{name}: {seen:?}"
    );
    assert!(
        single(seen, "x-tessera-roles").unwrap_or_default().is_empty(),
        "{name}: {seen:?}"
    );
    assert_eq!(
        single(seen, "x-tessera-user-id"),
        Some(user.id.to_string().as_str()),
        "{name}"
    );
    assert_eq!(
        single(seen, "x-tessera-username"),
        Some(user.username.as_str()),
        "{name}"
    );
}

async fn create_key(app: &TestApp, access: &str) -> String {
    let response = app
        .post("/api-keys")
        .bearer_auth(access)
        .json(&json!({ "name": "proxy", "scopes": ["agent:chat"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_upstream() {
    let Some(nginx) = binary("nginx") else { return };
    let app = tessera().await;
    let upstream = start_upstream().await;
    let proxy = start_nginx(&nginx, tessera_addr(&app), upstream.port, free_port()).await;
    forward_auth_through("nginx", &proxy, &app, &upstream).await;
}

#[tokio::test]
async fn caddy_forward_auth_in_front_of_an_upstream() {
    let Some(caddy) = binary("caddy") else { return };
    let app = tessera().await;
    let upstream = start_upstream().await;
    let proxy = start_caddy(&caddy, tessera_addr(&app), upstream.port, free_port()).await;
    forward_auth_through("caddy", &proxy, &app, &upstream).await;
}
