//! Observability on the real binary (S6, S10, B11): `tessera serve` runs as a child process with
//! its stdout captured; a scripted sequence drives every endpoint with known values; then
//! - each security event is in the log with its fields, request id and client IP,
//! - no line contains a password, a token, a CSRF token or a secret,
//! - the counters moved exactly as the sequence says,
//! - /metrics is served only on METRICS_ADDR and passes `promtool check metrics`,
//! - the alert rules pass `promtool check rules` and every metric the rules and the Grafana
//!   dashboard use is exported.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

use crate::helpers::{Login, PASSWORD, header, read_login};

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");
const ACCESS_SECRET: &str = "obs-test-access-secret-4f1c9a7be2d05836a1";
const REFRESH_SECRET: &str = "obs-test-refresh-secret-9d3e7b2a6c1f0485e7";
const WRONG_PASSWORD: &str = "wrong-Password-zebra-7731";
/// Short, so `token_expired` happens within the test; long enough that the steps using one
/// access token finish before it expires on a busy CI machine.
const ACCESS_LIFETIME_SECS: u64 = 6;

/// `tessera serve` as a child process, its stdout collected line by line.
struct Server {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    address: String,
    metrics_address: String,
    dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn start(vars: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(BINARY);
        command
            .arg("serve")
            .env_clear()
            .current_dir(dir.path())
            .env("DATA_DIR", dir.path())
            .env("BIND_ADDR", "127.0.0.1:0")
            .env("METRICS_ADDR", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("start tessera serve");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let startup = loop {
            let found = lines.lock().unwrap().iter().find_map(|line| {
                let value: Value = serde_json::from_str(line).ok()?;
                (value["event"] == "startup").then_some(value)
            });
            if let Some(startup) = found {
                break startup;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("tessera serve exited with {status}: {:?}", lines.lock().unwrap());
            }
            assert!(
                Instant::now() < deadline,
                "no startup line: {:?}",
                lines.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Server {
            child,
            address: format!("http://{}", startup["address"].as_str().unwrap()),
            metrics_address: format!("http://{}", startup["metrics_address"].as_str().unwrap()),
            lines,
            dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Every line so far, parsed; a line that is not a JSON object fails the test.
    fn json_lines(&self) -> Vec<Map<String, Value>> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|line| match serde_json::from_str::<Value>(line) {
                Ok(Value::Object(object)) => object,
                _ => panic!("not a JSON object line: {line}"),
            })
            .collect()
    }

    /// The lines of `event`, waiting briefly for them (stdout is read by another thread).
    async fn events(&self, event: &str) -> Vec<Map<String, Value>> {
        for _ in 0..100 {
            let found: Vec<_> = self
                .json_lines()
                .into_iter()
                .filter(|line| line["event"] == event)
                .collect();
            if !found.is_empty() {
                return found;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {event} line in {:#?}", self.json_lines());
    }
}

/// Remembers a session's tokens and CSRF token as strings no log line may contain.
fn keep(secrets: &mut Vec<String>, login: &Login) {
    for token in [&login.access, &login.refresh] {
        secrets.push(token.clone());
        // The signature alone is as good as the token to an attacker holding the rest.
        secrets.push(token.rsplit('.').next().unwrap().to_owned());
    }
    secrets.push(login.csrf.clone());
}

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// The value of the sample `name{labels}` (exact label text) in a Prometheus exposition.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}

fn assert_fields(line: &Map<String, Value>, expected: &[(&str, Value)]) {
    for (key, value) in expected {
        assert_eq!(line.get(*key), Some(value), "{key} in {line:?}");
    }
}

async fn login(client: &Client, server: &Server, email: &str, password: &str) -> reqwest::Response {
    client
        .post(server.url("/login"))
        .json(&json!({ "email": email, "password": password }))
        .send()
        .await
        .unwrap()
}

/// `promtool`, or None when it is not installed (a failure under TESSERA_REQUIRE_SERVICES=1:
/// CI installs Debian's prometheus package for it).
fn promtool() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("promtool"))
            .find(|path| path.is_file())
    });
    if found.is_none() {
        crate::services::unavailable("promtool is not installed (Debian package prometheus): no promtool checks");
    }
    found
}

fn run_promtool(promtool: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut child = Command::new(promtool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default().as_bytes()).unwrap();
    drop(input);
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

#[tokio::test]
async fn security_events_request_ids_metrics_and_no_secret_in_any_line() {
    let lifetime = ACCESS_LIFETIME_SECS.to_string();
    let server = Server::start(&[
        ("SECRET_KEY", ACCESS_SECRET),
        ("REFRESH_SECRET_KEY", REFRESH_SECRET),
        ("COOKIE_SECURE", "false"),
        ("LOG_LEVEL", "debug"),
        ("PASSWORD_HASH_MEMORY_KIB", "256"),
        ("PASSWORD_HASH_ITERATIONS", "1"),
        ("RATE_LIMIT_LOGIN", "1000/minute"),
        ("RATE_LIMIT_REGISTER", "1000/minute"),
        ("RATE_LIMIT_API", "10000/minute"),
        ("RATE_LIMIT_LOGIN_ACCOUNT", "10/minute"),
        ("ACCESS_TOKEN_EXPIRE_SECONDS", lifetime.as_str()),
        ("TOKEN_LEEWAY_SECONDS", "0"),
        ("REFRESH_REUSE_GRACE_SECONDS", "0"),
    ]);
    let client = client();
    let mut secrets: Vec<String> = vec![
        PASSWORD.into(),
        WRONG_PASSWORD.into(),
        ACCESS_SECRET.into(),
        REFRESH_SECRET.into(),
    ];

    // register: a sane client request id is kept and echoed; an insane one is replaced.
    let response = client
        .post(server.url("/register"))
        .header("x-request-id", "obs-register-1")
        .json(&json!({ "email": "alice@example.com", "username": "alice", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(header(response.headers(), "x-request-id"), Some("obs-register-1"));
    let alice_id = response.json::<Value>().await.unwrap()["user_id"].as_i64().unwrap();
    let hostile_id = "bad id\" with quotes and spaces";
    let response = client
        .post(server.url("/register"))
        .header("x-request-id", hostile_id)
        .json(&json!({ "email": "bob@example.com", "username": "bob", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let generated = header(response.headers(), "x-request-id").unwrap().to_owned();
    assert_ne!(generated, hostile_id);
    assert!(generated.len() >= 16, "{generated}");

    // login failures: wrong password, unknown user; then a success.
    let response = login(&client, &server, "alice@example.com", WRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let response = login(&client, &server, "nobody@example.com", WRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let first = read_login(login(&client, &server, "alice@example.com", PASSWORD).await).await;
    keep(&mut secrets, &first);

    // A good token, a garbage one and a tampered one.
    let profile = |token: String| client.get(server.url("/profile")).bearer_auth(token).send();
    assert_eq!(profile(first.access.clone()).await.unwrap().status(), StatusCode::OK);
    let garbage = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.obs-garbage-signature-AAAAAAAAAAAAAAAAAAAAAA";
    secrets.push(garbage.into());
    assert_eq!(
        profile(garbage.into()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let mut tampered = first.access.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    secrets.push(tampered.clone());
    assert_eq!(profile(tampered).await.unwrap().status(), StatusCode::UNAUTHORIZED);

    // Cookie auth without the CSRF header, then with it.
    let chat = |csrf: Option<&str>| {
        let mut request = client
            .post(server.url("/agent/chat"))
            .header("cookie", first.access_cookie())
            .json(&json!({ "message": "hello observability" }));
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        request.send()
    };
    assert_eq!(chat(None).await.unwrap().status(), StatusCode::FORBIDDEN);
    assert_eq!(chat(Some(&first.csrf)).await.unwrap().status(), StatusCode::OK);

    // Refresh, then replay the spent refresh token (no grace): reuse detected.
    let refresh = |token: String| {
        client
            .post(server.url("/refresh"))
            .json(&json!({ "refresh_token": token }))
            .send()
    };
    let second = read_login(refresh(first.refresh.clone()).await.unwrap()).await;
    keep(&mut secrets, &second);
    assert_eq!(
        refresh(first.refresh.clone()).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    // Logout; logout everywhere.
    let third = read_login(login(&client, &server, "alice@example.com", PASSWORD).await).await;
    keep(&mut secrets, &third);
    let response = client
        .post(server.url("/logout"))
        .bearer_auth(&third.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let fourth = read_login(login(&client, &server, "alice@example.com", PASSWORD).await).await;
    keep(&mut secrets, &fourth);
    let fifth = read_login(login(&client, &server, "alice", PASSWORD).await).await;
    keep(&mut secrets, &fifth);
    let response = client
        .post(server.url("/logout/all"))
        .bearer_auth(&fifth.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Per-account throttling: ten wrong passwords for bob, the eleventh attempt is refused
    // (login_failure reason `locked`, rate_limited route `login_account`).
    for _ in 0..10 {
        let response = login(&client, &server, "bob@example.com", WRONG_PASSWORD).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let response = login(&client, &server, "bob@example.com", WRONG_PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);

    // A disabled account (`tessera users disable`, on the same database).
    let response = client
        .post(server.url("/register"))
        .json(&json!({ "email": "carol@example.com", "username": "carol", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let output = Command::new(BINARY)
        .args(["users", "disable", "carol"])
        .env_clear()
        .current_dir(server.dir.path())
        .env("DATA_DIR", server.dir.path())
        .env("SECRET_KEY", ACCESS_SECRET)
        .env("REFRESH_SECRET_KEY", REFRESH_SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let response = login(&client, &server, "carol", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // An access token past its exp (leeway 0).
    let sixth = read_login(login(&client, &server, "alice@example.com", PASSWORD).await).await;
    keep(&mut secrets, &sixth);

    // The remaining endpoints, so their lines are checked too: a form login, the sessions
    // list, ending another session, a cookie refresh with CSRF, the full profile, health and
    // the JWK set.
    let form = client
        .post(server.url("/login"))
        .form(&[("username", "alice"), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    let form = read_login(form).await;
    keep(&mut secrets, &form);
    let form_sid = profile(form.access.clone())
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = client
        .get(server.url("/sessions"))
        .bearer_auth(&sixth.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let response = client
        .delete(server.url(&format!("/sessions/{form_sid}")))
        .bearer_auth(&sixth.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let response = client
        .post(server.url("/refresh"))
        .header("cookie", sixth.refresh_cookie())
        .header("x-csrf-token", &sixth.csrf)
        .send()
        .await
        .unwrap();
    let seventh = read_login(response).await;
    keep(&mut secrets, &seventh);
    for path in ["/profile/full", "/healthz", "/readyz", "/.well-known/jwks.json"] {
        let response = client
            .get(server.url(path))
            .bearer_auth(&sixth.access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }

    tokio::time::sleep(Duration::from_secs(ACCESS_LIFETIME_SECS + 1)).await;
    let response = profile(sixth.access.clone()).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "token_expired");

    // ---- The log lines ----
    let alice = json!(alice_id);
    let local = json!("127.0.0.1");
    let register = server.events("register").await;
    assert_eq!(register.len(), 3);
    assert_fields(
        &register[0],
        &[
            ("user_id", alice.clone()),
            ("username", json!("alice")),
            ("ip_address", local.clone()),
            ("request_id", json!("obs-register-1")),
            ("level", json!("INFO")),
        ],
    );
    assert_eq!(register[1]["request_id"], json!(generated));

    let failures = server.events("login_failure").await;
    let reasons: Vec<&str> = failures.iter().map(|l| l["reason"].as_str().unwrap()).collect();
    assert_eq!(
        reasons.iter().filter(|r| **r == "wrong_password").count(),
        11,
        "{reasons:?}"
    );
    assert_eq!(
        reasons.iter().filter(|r| **r == "user_not_found").count(),
        1,
        "{reasons:?}"
    );
    assert_eq!(reasons.iter().filter(|r| **r == "locked").count(), 1, "{reasons:?}");
    let disabled: Vec<_> = failures.iter().filter(|l| l["reason"] == "disabled").collect();
    assert_eq!(disabled.len(), 1, "{reasons:?}");
    assert_eq!(disabled[0]["email"], "carol");
    assert_fields(
        &failures[0],
        &[
            ("email", json!("alice@example.com")),
            ("ip_address", local.clone()),
            ("reason", json!("wrong_password")),
            ("level", json!("WARN")),
        ],
    );
    let successes = server.events("login_success").await;
    assert_eq!(successes.len(), 6);
    assert_fields(
        &successes[0],
        &[
            ("user_id", alice.clone()),
            ("username", json!("alice")),
            ("ip_address", local.clone()),
        ],
    );
    let invalid = server.events("invalid_token").await;
    assert!(invalid.len() >= 2, "{invalid:?}");
    for line in &invalid[..2] {
        let prefix = line["token_prefix"].as_str().unwrap();
        assert!(prefix.starts_with("sha256:") && prefix.len() == 19, "{prefix}");
        assert_eq!(line["ip_address"], local);
    }
    let csrf = server.events("csrf_failure").await;
    assert_fields(&csrf[0], &[("ip_address", local.clone()), ("reason", json!("missing"))]);
    let refreshed = server.events("token_refresh").await;
    assert_eq!(refreshed.len(), 2);
    assert_fields(
        &refreshed[0],
        &[("user_id", alice.clone()), ("ip_address", local.clone())],
    );
    let reuse = server.events("refresh_reuse_detected").await;
    assert_eq!(reuse.len(), 1);
    assert_fields(&reuse[0], &[("user_id", alice.clone()), ("ip_address", local.clone())]);
    let logout = server.events("logout").await;
    assert_fields(&logout[0], &[("user_id", alice.clone()), ("ip_address", local.clone())]);
    let logout_all = server.events("logout_all").await;
    assert_fields(
        &logout_all[0],
        &[("user_id", alice.clone()), ("sessions_revoked", json!(2))],
    );
    let revoked = server.events("session_revoked").await;
    assert_fields(
        &revoked[0],
        &[
            ("user_id", alice.clone()),
            ("session_id", json!(form_sid)),
            ("ip_address", local.clone()),
        ],
    );
    let limited = server.events("rate_limited").await;
    assert_fields(
        &limited[0],
        &[("route", json!("login_account")), ("ip_address", local.clone())],
    );
    let expired = server.events("token_expired").await;
    assert_eq!(expired.len(), 1);
    assert_fields(
        &expired[0],
        &[("user_id", alice.clone()), ("ip_address", local.clone())],
    );
    assert!(expired[0]["token_prefix"].as_str().unwrap().starts_with("sha256:"));

    // Every line: ISO 8601 UTC timestamp, level, event and request_id keys; inside a request,
    // a request id and the client IP.
    let lines = server.json_lines();
    assert!(lines.len() > 25, "{}", lines.len());
    for line in &lines {
        let timestamp = line["timestamp"].as_str().unwrap();
        assert!(timestamp.ends_with('Z'), "{timestamp}");
        time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339).unwrap();
        assert!(["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&line["level"].as_str().unwrap()));
        assert!(
            line.contains_key("event") && line.contains_key("request_id"),
            "{line:?}"
        );
        if line["request_id"].is_string() {
            assert_eq!(line.get("ip_address"), Some(&local), "{line:?}");
        }
    }

    // No password, token, CSRF token or secret anywhere in the output.
    let raw = server.lines.lock().unwrap().join("\n");
    for secret in &secrets {
        assert!(!raw.contains(secret.as_str()), "a secret reached the log: {secret}");
    }

    // ---- Metrics: only on METRICS_ADDR ----
    let response = client.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.json::<Value>().await.unwrap()["error"], "not_found");
    let response = client
        .get(format!("{}/metrics", server.metrics_address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    // 6 successes; failures: 11 wrong passwords, 1 unknown user, 1 locked, 1 disabled.
    assert_eq!(sample(&text, r#"auth_login_attempts_total{status="success"}"#), 6.0);
    assert_eq!(sample(&text, r#"auth_login_attempts_total{status="failure"}"#), 14.0);
    assert_eq!(sample(&text, "auth_login_duration_seconds_count"), 20.0);
    assert_eq!(sample(&text, "auth_token_refresh_total"), 2.0);
    assert_eq!(sample(&text, "auth_refresh_reuse_detected_total"), 1.0);
    assert_eq!(sample(&text, "auth_csrf_failures_total"), 1.0);
    assert_eq!(sample(&text, r#"auth_rate_limited_total{route="login_account"}"#), 1.0);
    assert_eq!(
        sample(&text, r#"auth_token_verifications_total{result="expired"}"#),
        1.0
    );
    assert_eq!(
        sample(&text, r#"auth_token_verifications_total{result="invalid"}"#),
        2.0
    );
    // Live sessions: only the sixth (first's family revoked by reuse, third logged out,
    // fourth and fifth by logout/all, the form login's ended through /sessions).
    assert_eq!(sample(&text, "auth_active_tokens"), 1.0);
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="POST",route="/login",status="200"}"#
        ),
        6.0
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="POST",route="/login",status="429"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(
            &text,
            r#"http_requests_total{method="DELETE",route="/sessions/{id}",status="204"}"#
        ),
        1.0
    );
    // The listener serves /metrics and nothing else.
    let response = client
        .get(format!("{}/profile", server.metrics_address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    if let Some(promtool) = promtool() {
        run_promtool(&promtool, &["check", "metrics"], Some(&text));
    }
}

/// Metric names a PromQL expression uses: identifiers followed by `{`, `[`, whitespace or
/// `)` that look like our metric families, minus PromQL functions and keywords.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut current = String::new();
    let mut in_braces = 0usize;
    let mut in_string = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if in_string {
            in_string = c != '"';
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' => in_braces += 1,
            '}' => in_braces = in_braces.saturating_sub(1),
            _ => {}
        }
        if in_braces == 0 && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            current.push(c);
            continue;
        }
        let word = std::mem::take(&mut current);
        if (word.starts_with("auth_") || word.starts_with("http_") || word.starts_with("tessera_"))
            || word.starts_with("process_")
        {
            names.push(word);
        }
    }
    names
}

/// Whether the exposition has a sample of `name` (histograms export _bucket/_sum/_count).
fn is_exported(text: &str, name: &str) -> bool {
    text.lines().any(|line| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

#[tokio::test]
async fn alert_rules_and_dashboard_use_only_exported_metrics_and_pass_promtool() {
    let rules_path = repo_file("deploy/prometheus/tessera-alerts.yml");
    let dashboard_path = repo_file("deploy/grafana/tessera-dashboard.json");
    let rules = std::fs::read_to_string(&rules_path).unwrap();
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&dashboard_path).unwrap()).unwrap();

    // Expressions: every `expr:` of the rules, every `expr` of the dashboard's targets.
    let mut exprs: Vec<(String, String)> = Vec::new();
    let mut lines = rules.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let mut expr = rest.trim().trim_start_matches(['|', '>', '-']).to_owned();
        // A block scalar continues on the more-indented lines below.
        let indent = line.len() - line.trim_start().len();
        while let Some(next) = lines.peek() {
            let next_indent = next.len() - next.trim_start().len();
            if next.trim().is_empty() || next_indent <= indent {
                break;
            }
            expr.push(' ');
            expr.push_str(next.trim());
            lines.next();
        }
        exprs.push(("rules".into(), expr));
    }
    fn collect(value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(("dashboard".into(), expr.clone()));
                }
                map.values().for_each(|v| collect(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&dashboard, &mut exprs);
    let rule_count = exprs.iter().filter(|(from, _)| from == "rules").count();
    let panel_count = exprs.len() - rule_count;
    assert!(rule_count >= 5, "{rule_count} alert expressions");
    assert!(panel_count >= 8, "{panel_count} dashboard queries");

    // A server that has seen a little of everything, so every family has samples.
    let server = Server::start(&[
        ("PASSWORD_HASH_MEMORY_KIB", "256"),
        ("PASSWORD_HASH_ITERATIONS", "1"),
        ("RATE_LIMIT_LOGIN", "1000/minute"),
        ("RATE_LIMIT_REGISTER", "1000/minute"),
        // An upstream, so the gateway's series exist (nothing listens there: never called).
        ("UPSTREAMS", "/agent/=http://127.0.0.1:9/"),
    ]);
    let client = client();
    let response = client
        .post(server.url("/register"))
        .json(&json!({ "email": "carol@example.com", "username": "carol", "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let session = read_login(login(&client, &server, "carol@example.com", PASSWORD).await).await;
    let response = client
        .get(server.url("/profile"))
        .bearer_auth(&session.access)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = client
        .get(format!("{}/metrics", server.metrics_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    let mut checked = 0;
    for (from, expr) in &exprs {
        let names = metric_names(expr);
        // `up` is Prometheus's own series for the scrape itself.
        assert!(
            !names.is_empty() || expr.starts_with("up{"),
            "{from}: no metric in {expr}"
        );
        for name in names {
            assert!(
                is_exported(&text, &name),
                "{from} uses {name}, which /metrics does not export: {expr}"
            );
            checked += 1;
        }
    }
    assert!(checked >= rule_count + panel_count - 1);

    if let Some(promtool) = promtool() {
        let output = run_promtool(&promtool, &["check", "rules", rules_path.to_str().unwrap()], None);
        assert!(output.contains("SUCCESS"), "{output}");
        let tests = repo_file("deploy/prometheus/tessera-alerts.test.yml");
        let output = run_promtool(&promtool, &["test", "rules", tests.to_str().unwrap()], None);
        assert!(output.contains("SUCCESS"), "{output}");
    }
}

/// The second factor's security events and metrics on the real binary (C3): `mfa_enrolled`,
/// `login_mfa_required`, `mfa_failure`, `recovery_code_used`, `login_success` with the method,
/// `mfa_removed`; `tessera_mfa_total{method,result}`; and no TOTP secret, code, recovery code or
/// `mfa_token` in any line.
#[tokio::test]
async fn mfa_security_events_metrics_and_no_factor_secret_in_any_line() {
    use tessera_server::clock::{Clock, SystemClock};

    let server = Server::start(&[
        ("SECRET_KEY", ACCESS_SECRET),
        ("REFRESH_SECRET_KEY", REFRESH_SECRET),
        ("COOKIE_SECURE", "false"),
        ("LOG_LEVEL", "debug"),
        ("PASSWORD_HASH_MEMORY_KIB", "256"),
        ("PASSWORD_HASH_ITERATIONS", "1"),
    ]);
    let client = client();
    let post = |path: &str, access: Option<&str>, body: Value| {
        let mut request = client.post(server.url(path)).json(&body);
        if let Some(access) = access {
            request = request.bearer_auth(access);
        }
        request.send()
    };
    let response = post(
        "/register",
        None,
        json!({ "email": "mfa@example.com", "username": "mfa", "password": PASSWORD }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let user_id = response.json::<Value>().await.unwrap()["user_id"].as_i64().unwrap();
    let session = read_login(login(&client, &server, "mfa@example.com", PASSWORD).await).await;
    let mut secrets = vec![PASSWORD.to_owned()];
    keep(&mut secrets, &session);

    // Enrol and confirm.
    let started: Value = post(
        "/account/mfa/totp",
        Some(&session.access),
        json!({ "password": PASSWORD }),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let base32 = started["secret"].as_str().unwrap().to_owned();
    let secret = tessera_core::totp::TotpSecret::from_base32(&base32).unwrap();
    secrets.push(base32);
    let now = SystemClock.now();
    let response = post(
        "/account/mfa/totp/confirm",
        Some(&session.access),
        json!({ "code": secret.code_at(now).to_string() }),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let codes: Vec<String> = response.json::<Value>().await.unwrap()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    secrets.extend(codes.iter().cloned());
    secrets.extend(codes.iter().map(|c| c.replace('-', "")));
    assert_fields(
        &server.events("mfa_enrolled").await[0],
        &[("user_id", json!(user_id)), ("method", json!("totp"))],
    );

    // Login: a challenge; a wrong code; a recovery code.
    let challenge: Value = login(&client, &server, "mfa@example.com", PASSWORD)
        .await
        .json()
        .await
        .unwrap();
    let token = challenge["mfa_token"].as_str().unwrap().to_owned();
    secrets.push(token.clone());
    assert_fields(
        &server.events("login_mfa_required").await[0],
        &[("user_id", json!(user_id))],
    );
    let right = [now - 30, now, now + 30].map(|t| secret.code_at(t).to_string());
    let wrong = (0..10)
        .map(|d| format!("{d}{d}{d}{d}{d}{d}"))
        .find(|c| !right.contains(c))
        .unwrap();
    let response = post("/login/mfa", None, json!({ "mfa_token": token, "code": wrong }))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_fields(
        &server.events("mfa_failure").await[0],
        &[
            ("user_id", json!(user_id)),
            ("method", json!("totp")),
            ("reason", json!("wrong_code")),
            ("attempts_left", json!(4)),
        ],
    );
    let response = post(
        "/login/mfa",
        None,
        json!({ "mfa_token": token, "recovery_code": codes[0] }),
    )
    .await
    .unwrap();
    let second = read_login(response).await;
    keep(&mut secrets, &second);
    assert_fields(
        &server.events("recovery_code_used").await[0],
        &[("user_id", json!(user_id)), ("recovery_codes_left", json!(9))],
    );
    let logins = server.events("login_success").await;
    assert!(
        logins
            .iter()
            .any(|line| line.get("mfa") == Some(&json!("recovery_code"))),
        "{logins:?}"
    );

    // Removal.
    let response = client
        .delete(server.url("/account/mfa/totp"))
        .bearer_auth(&second.access)
        .json(&json!({ "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_fields(&server.events("mfa_removed").await[0], &[("user_id", json!(user_id))]);

    let raw = server.lines.lock().unwrap().join("\n");
    for secret in &secrets {
        assert!(!raw.contains(secret.as_str()), "a secret reached the log: {secret}");
    }
    let metrics = client
        .get(format!("{}/metrics", server.metrics_address))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&metrics, r#"tessera_mfa_total{method="totp",result="success"}"#),
        1.0
    );
    assert_eq!(
        sample(&metrics, r#"tessera_mfa_total{method="totp",result="failure"}"#),
        1.0
    );
    assert_eq!(
        sample(
            &metrics,
            r#"tessera_mfa_total{method="recovery_code",result="success"}"#
        ),
        1.0
    );
    assert_eq!(
        sample(&metrics, r#"tessera_mfa_total{method="totp",result="replay"}"#),
        0.0
    );
}
