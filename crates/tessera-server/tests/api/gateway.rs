//! The built-in reverse proxy (G1) against a real upstream on a loopback port: identity headers
//! and a verifiable assertion in, spoofed headers and the credential out, scopes and limits,
//! streaming (server-sent events, uploads, an upgraded connection), and an upstream that is
//! down, slow or answers with its own errors.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use hyper::body::Frame;
use hyper_util::rt::TokioIo;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_server::config::Config;
use tessera_server::config::gateway::{UpstreamDefaults, parse_upstreams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

use crate::helpers::{TestApp, assert_error, header, spawn_app_with};

/// The upstream's shared state: requests seen, and the gate that holds the SSE stream open.
#[derive(Default)]
struct Seen {
    hits: AtomicUsize,
    release: Notify,
}

/// A small upstream: echoes what it got as JSON, streams events, sleeps, upgrades.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Seen>,
}

impl Upstream {
    async fn start() -> Upstream {
        let seen = Arc::new(Seen::default());
        let router = axum::Router::new()
            .route("/sse", get(sse))
            .route("/slow", get(slow))
            .route("/ws", get(upgrade))
            .route("/status/{code}", any(status))
            .route("/cookies", get(cookies))
            .fallback(echo)
            .with_state(Arc::clone(&seen));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        Upstream { addr, seen }
    }

    fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }
}

async fn echo(State(seen): State<Arc<Seen>>, request: Request) -> Response {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let Ok(body) = axum::body::to_bytes(body, usize::MAX).await else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut headers = serde_json::Map::new();
    for name in parts.headers.keys() {
        let values: Vec<Value> = parts
            .headers
            .get_all(name)
            .iter()
            .map(|v| json!(String::from_utf8_lossy(v.as_bytes())))
            .collect();
        headers.insert(name.as_str().to_owned(), Value::Array(values));
    }
    axum::Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_len": body.len(),
    }))
    .into_response()
}

async fn status(State(seen): State<Arc<Seen>>, axum::extract::Path(code): axum::extract::Path<u16>) -> Response {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let mut response = axum::Json(json!({ "detail": "from upstream" })).into_response();
    *response.status_mut() = StatusCode::from_u16(code).unwrap();
    response
}

/// Sets a cookie of its own and tries to replace Tessera's session cookie.
async fn cookies() -> Response {
    Response::builder()
        .header(header::SET_COOKIE, "theme=dark; Path=/")
        .header(header::SET_COOKIE, "access_token=planted; Path=/; HttpOnly")
        .body(Body::empty())
        .unwrap()
}

/// A body fed by a channel: each message is one frame, sent when it arrives.
struct ChannelBody(mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_recv(cx)
            .map(|message| message.map(|bytes| Ok(Frame::data(bytes))))
    }
}

/// One event now, the next only when the test releases it.
async fn sse(State(seen): State<Arc<Seen>>) -> Response {
    seen.hits.fetch_add(1, Ordering::SeqCst);
    let (sender, receiver) = mpsc::channel(4);
    tokio::spawn(async move {
        let _ = sender.send(Bytes::from_static(b"data: one\n\n")).await;
        seen.release.notified().await;
        let _ = sender.send(Bytes::from_static(b"data: two\n\n")).await;
    });
    Response::builder()
        .header(header::CONTENT_TYPE, "text/event-stream")
        .body(Body::new(ChannelBody(receiver)))
        .unwrap()
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(30)).await;
    "late"
}

/// `Upgrade: echo`: after the 101, every byte comes back.
async fn upgrade(mut request: Request) -> Response {
    let upgraded = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgraded.await else { return };
        let mut io = TokioIo::new(upgraded);
        let mut buffer = [0_u8; 256];
        while let Ok(n) = io.read(&mut buffer).await {
            if n == 0 || io.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "echo")
        .body(Body::empty())
        .unwrap()
}

fn route(config: &mut Config, upstreams: &str) {
    config.upstreams = parse_upstreams(
        upstreams,
        UpstreamDefaults {
            max_body_bytes: config.gateway_max_body_bytes,
            response_timeout: config.gateway_response_timeout,
        },
    )
    .unwrap();
}

async fn gateway_to(upstream: &Upstream, options: &str) -> TestApp {
    let routes = format!("/agent/=http://{}/ {options}", upstream.addr);
    spawn_app_with(|config| route(config, &routes)).await
}

/// The value of one metric series in the app's /metrics text (0 when absent).
async fn metric(app: &TestApp, series: &str) -> f64 {
    let text = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

fn seen_header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    echo["headers"][name][0].as_str()
}

#[tokio::test]
async fn identity_goes_upstream_and_spoofed_headers_and_the_credential_do_not() {
    let upstream = Upstream::start().await;
    let app = gateway_to(&upstream, "").await;
    let (user, login) = app.new_session().await;
    let response = app
        .get("/agent/v1/chat?stream=1")
        .bearer_auth(&login.access)
        .header("x-tessera-user-id", "999")
        .header("X-Tessera-Assertion", "forged")
        .header("remote-user", "mallory")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x-request-id", "trace-123")
        .header("x-custom", "kept")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "x-request-id"), Some("trace-123"));
    assert!(header(response.headers(), "x-ratelimit-remaining").is_some());
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        (echo["path"].as_str(), echo["query"].as_str()),
        (Some("/v1/chat"), Some("stream=1"))
    );
    assert_eq!(
        seen_header(&echo, "x-tessera-user-id"),
        Some(user.id.to_string().as_str())
    );
    assert_eq!(seen_header(&echo, "x-tessera-username"), Some(user.username.as_str()));
    assert!(seen_header(&echo, "x-tessera-session-id").is_some_and(|s| !s.is_empty()));
    assert!(seen_header(&echo, "x-tessera-scopes").is_some_and(|s| s.contains("agent:chat")));
    assert_eq!(echo["headers"]["x-tessera-user-id"].as_array().unwrap().len(), 1);
    assert_eq!(seen_header(&echo, "x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen_header(&echo, "x-forwarded-proto"), Some("http"));
    let host = app.address.trim_start_matches("http://");
    assert_eq!(seen_header(&echo, "x-forwarded-host"), Some(host));
    assert_eq!(seen_header(&echo, "x-request-id"), Some("trace-123"));
    assert_eq!(seen_header(&echo, "x-custom"), Some("kept"));
    for gone in ["remote-user", "forwarded", "x-real-ip", "authorization"] {
        assert!(
            echo["headers"].get(gone).is_none(),
            "{gone} reached the upstream: {echo}"
        );
    }

    // The assertion: for this upstream only, short-lived, and verifiable with the JWK set by an
    // independent library.
    let assertion = seen_header(&echo, "x-tessera-assertion").unwrap();
    assert_ne!(assertion, "forged");
    let claims: Value =
        serde_json::from_slice(&tessera_core::b64::decode(assertion.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["aud"], "agent");
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["email"], user.email.as_str());
    assert!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap() <= 60);
    if let Some(python) = crate::keys::python() {
        let dir = tempfile::tempdir().unwrap();
        let set = crate::keys::published_jwks(&app).await;
        let alg = app.config.identity_algorithm.as_str();
        let (code, stdout, stderr) =
            crate::keys::python_verify_as(&python, dir.path(), assertion, &set, alg, "agent", &app.config.issuer).await;
        assert_eq!(code, 0, "PyJWT refused the assertion: {stderr}");
        assert!(stdout.contains(&user.username), "{stdout}");
        let (code, _, _) =
            crate::keys::python_verify_as(&python, dir.path(), assertion, &set, alg, "tools", &app.config.issuer).await;
        assert_ne!(code, 0, "an assertion for `agent` must not verify for another upstream");
    }
}

#[tokio::test]
async fn no_or_bad_credentials_never_reach_the_upstream() {
    let upstream = Upstream::start().await;
    let app = gateway_to(&upstream, "").await;
    let response = app.get("/agent/chat").send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    let response = app.get("/agent/chat").bearer_auth("not.a.jwt").send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_token").await;
    // The prefix without its slash is the upstream's too.
    let response = app.get("/agent").send().await.unwrap();
    assert_error(response, StatusCode::UNAUTHORIZED, "not_authenticated").await;
    // The seed's echo stepped aside: POST /agent/chat is the upstream's.
    let (_, login) = app.new_session().await;
    let response = app
        .post("/agent/chat")
        .bearer_auth(&login.access)
        .json(&json!({ "message": "hi" }))
        .send()
        .await
        .unwrap();
    let echo: Value = response.json().await.unwrap();
    assert_eq!(
        (echo["method"].as_str(), echo["path"].as_str()),
        (Some("POST"), Some("/chat"))
    );
    assert_eq!(upstream.hits(), 1, "only the authenticated request got through");
    // A path that climbs out of the target's path never leaves Tessera (hyper sends the
    // path as written: no client-side normalisation here).
    let hits = upstream.hits();
    for climbing in ["/agent/../admin", "/agent/%2e%2e/admin", "/agent/a%2F..%2F..%2Fadmin"] {
        let mut stream = TcpStream::connect(app.address.trim_start_matches("http://"))
            .await
            .unwrap();
        let request = format!(
            "GET {climbing} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            login.access
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 400"), "{climbing}: {answer}");
        assert!(answer.contains("\"bad_request\""), "{answer}");
    }
    assert_eq!(upstream.hits(), hits);
    // Tessera's own routes are untouched.
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn cookies_need_csrf_on_unsafe_methods_and_tesseras_cookies_stay_home() {
    let upstream = Upstream::start().await;
    let app = gateway_to(&upstream, "").await;
    let (_, login) = app.new_session().await;
    let cookies = format!("theme=dark; {}; {}", login.access_cookie(), login.refresh_cookie());
    let response = app
        .post("/agent/chat")
        .header("cookie", &cookies)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "csrf_failed").await;
    assert_eq!(upstream.hits(), 0);

    let response = app
        .post("/agent/chat")
        .header("cookie", &cookies)
        .header("x-csrf-token", &login.csrf)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echo: Value = response.json().await.unwrap();
    assert_eq!(seen_header(&echo, "cookie"), Some("theme=dark"));
    assert!(echo["headers"].get("x-csrf-token").is_none(), "{echo}");
    assert!(seen_header(&echo, "x-tessera-user-id").is_some());
}

#[tokio::test]
async fn the_upstreams_scope_and_rate_limit_apply() {
    let upstream = Upstream::start().await;
    let routes = format!(
        "/agent/=http://{0}/ rate=2/minute, /tools/=http://{0}/ scope=keys:write",
        upstream.addr
    );
    let app = spawn_app_with(|config| route(config, &routes)).await;
    let (_, login) = app.new_session().await;
    // A key that may only read profiles cannot call the agent (agent:chat by default).
    let created: Value = app
        .post("/api-keys")
        .bearer_auth(&login.access)
        .json(&json!({ "name": "reader", "scopes": ["profile:read"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let response = app.get("/agent/x").bearer_auth(key).send().await.unwrap();
    let (headers, _) = assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert!(header(&headers, "www-authenticate").is_some_and(|c| c.contains("agent:chat")));
    // Nor an upstream that needs keys:write.
    let response = app.get("/tools/x").bearer_auth(key).send().await.unwrap();
    assert_error(response, StatusCode::FORBIDDEN, "insufficient_scope").await;
    assert_eq!(upstream.hits(), 0);

    for _ in 0..2 {
        let response = app.get("/agent/x").bearer_auth(&login.access).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    let response = app.get("/agent/x").bearer_auth(&login.access).send().await.unwrap();
    let (headers, _) = assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    assert!(header(&headers, "retry-after").is_some());
    assert_eq!(upstream.hits(), 2);
    // The other upstream has no such limit, and a user's own scopes include keys:write.
    let response = app.get("/tools/x").bearer_auth(&login.access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn server_sent_events_reach_the_client_as_the_upstream_sends_them() {
    let upstream = Upstream::start().await;
    let app = gateway_to(&upstream, "").await;
    let (_, login) = app.new_session().await;
    let mut response = app.get("/agent/sse").bearer_auth(&login.access).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(header(response.headers(), "content-type"), Some("text/event-stream"));
    // The first event arrives while the upstream still holds the stream open.
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk())
        .await
        .expect("the first event arrives before the upstream finishes")
        .unwrap()
        .unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    assert_eq!(
        metric(&app, "tessera_gateway_open_streams{upstream=\"agent\"}").await,
        1.0
    );
    upstream.seen.release.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), response.bytes())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&rest[..], b"data: two\n\n");
    assert_eq!(
        metric(&app, "tessera_gateway_open_streams{upstream=\"agent\"}").await,
        0.0
    );
}

#[tokio::test]
async fn the_upstreams_own_errors_pass_through_untouched() {
    let upstream = Upstream::start().await;
    let app = gateway_to(&upstream, "").await;
    let (_, login) = app.new_session().await;
    for code in [404, 422, 500, 503] {
        let response = app
            .get(&format!("/agent/status/{code}"))
            .bearer_auth(&login.access)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({ "detail": "from upstream" }), "{code}");
    }
    assert_eq!(
        metric(
            &app,
            "tessera_gateway_requests_total{status=\"5xx\",upstream=\"agent\"}"
        )
        .await,
        2.0
    );
    // Its own cookies pass; Tessera's session cookie is not the upstream's to set.
    let response = app
        .get("/agent/cookies")
        .bearer_auth(&login.access)
        .send()
        .await
        .unwrap();
    let set: Vec<_> = response.headers().get_all("set-cookie").iter().collect();
    assert_eq!(set, ["theme=dark; Path=/"]);
}

#[tokio::test]
async fn an_upstream_down_is_502_and_a_slow_one_504() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let upstream = Upstream::start().await;
    let routes = format!("/agent/=http://{down}/, /slow/=http://{}/ timeout=1", upstream.addr);
    let app = spawn_app_with(|config| route(config, &routes)).await;
    let (_, login) = app.new_session().await;

    let response = app.get("/agent/chat").bearer_auth(&login.access).send().await.unwrap();
    assert_error(response, StatusCode::BAD_GATEWAY, "bad_gateway").await;
    let started = std::time::Instant::now();
    let response = app.get("/slow/slow").bearer_auth(&login.access).send().await.unwrap();
    assert_error(response, StatusCode::GATEWAY_TIMEOUT, "gateway_timeout").await;
    assert!(started.elapsed() < Duration::from_secs(20), "the timeout fired");
    assert_eq!(
        metric(
            &app,
            "tessera_gateway_upstream_errors_total{kind=\"connect\",upstream=\"agent\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &app,
            "tessera_gateway_upstream_errors_total{kind=\"timeout\",upstream=\"slow\"}"
        )
        .await,
        1.0
    );
    // In the client's language, like every Tessera error.
    let response = app
        .get("/agent/chat")
        .bearer_auth(&login.access)
        .header("accept-language", "zh-CN")
        .send()
        .await
        .unwrap();
    let (_, body) = assert_error(response, StatusCode::BAD_GATEWAY, "bad_gateway").await;
    assert!(body["message"].as_str().unwrap().contains("上游"), "{body}");
}

/// Sends a raw HTTP/1.1 request on a fresh connection and returns the connection and the
/// response head.
async fn raw(app: &TestApp, head: &str, body: &[u8]) -> (TcpStream, String) {
    let mut stream = TcpStream::connect(app.address.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer (413) before taking the whole body: a refused write is fine.
    let _ = stream.write_all(body).await;
    let mut received = Vec::new();
    let mut buffer = [0_u8; 1024];
    while !received.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer))
            .await
            .expect("a response head")
            .unwrap();
        assert_ne!(
            n,
            0,
            "closed before a response head: {}",
            String::from_utf8_lossy(&received)
        );
        received.extend_from_slice(&buffer[..n]);
    }
    (stream, String::from_utf8_lossy(&received).into_owned())
}

#[tokio::test]
async fn bodies_over_the_upstreams_limit_get_413_declared_or_streamed() {
    let upstream = Upstream::start().await;
    let app = gateway_to(&upstream, "max_body=2048").await;
    let (_, login) = app.new_session().await;
    let host = app.address.trim_start_matches("http://").to_owned();

    // Within the limit, streamed in chunks: the upstream gets all of it.
    let chunk = format!("400\r\n{}\r\n", "a".repeat(0x400));
    let head = format!(
        "POST /agent/upload HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        login.access
    );
    let (mut stream, response) = raw(&app, &head, format!("{chunk}0\r\n\r\n").as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    let all = format!("{response}{}", String::from_utf8_lossy(&rest));
    assert!(all.contains("\"body_len\":1024"), "{all}");

    // Declared too large: refused before the upstream is called.
    let response = app
        .post("/agent/upload")
        .bearer_auth(&login.access)
        .body(vec![b'a'; 4096])
        .send()
        .await
        .unwrap();
    assert_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    assert_eq!(upstream.hits(), 1);

    // Streamed past the limit: cut, and a 413.
    let (_, response) = raw(&app, &head, format!("{}0\r\n\r\n", chunk.repeat(4)).as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

#[tokio::test]
async fn an_upgraded_connection_is_joined_end_to_end() {
    let upstream = Upstream::start().await;
    let app = gateway_to(&upstream, "").await;
    let (_, login) = app.new_session().await;
    let host = app.address.trim_start_matches("http://").to_owned();
    let head = format!(
        "GET /agent/ws HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        login.access
    );
    let (mut stream, response) = raw(&app, &head, b"").await;
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(response.to_ascii_lowercase().contains("upgrade: echo"), "{response}");
    for message in [&b"ping"[..], b"hello, upstream"] {
        stream.write_all(message).await.unwrap();
        let mut back = vec![0_u8; message.len()];
        tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut back))
            .await
            .expect("the echo comes back")
            .unwrap();
        assert_eq!(back, message);
    }
    // Without credentials, no upgrade.
    let head = format!("GET /agent/ws HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n");
    let (_, response) = raw(&app, &head, b"").await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
}

#[tokio::test]
async fn a_stream_silent_past_the_idle_timeout_is_cut() {
    let upstream = Upstream::start().await;
    let routes = format!("/agent/=http://{}/", upstream.addr);
    let app = spawn_app_with(|config| {
        route(config, &routes);
        config.gateway_idle_timeout = Duration::from_secs(1);
    })
    .await;
    let (_, login) = app.new_session().await;
    let mut response = app.get("/agent/sse").bearer_auth(&login.access).send().await.unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: one\n\n");
    // The upstream never sends the second event: after a second of silence the stream ends
    // with an error (the response is cut, not completed).
    let rest = tokio::time::timeout(Duration::from_secs(15), response.bytes())
        .await
        .expect("the idle timeout cut the stream");
    assert!(rest.is_err(), "an idle stream is cut, not ended cleanly: {rest:?}");
    assert_eq!(
        metric(
            &app,
            "tessera_gateway_upstream_errors_total{kind=\"idle\",upstream=\"agent\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(&app, "tessera_gateway_open_streams{upstream=\"agent\"}").await,
        0.0
    );
}

#[tokio::test]
async fn forwarding_headers_are_believed_only_from_trusted_proxies() {
    let upstream = Upstream::start().await;
    let routes = format!("/agent/=http://{}/", upstream.addr);
    let app = spawn_app_with(|config| {
        route(config, &routes);
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let (_, login) = app.new_session().await;
    let echo: Value = app
        .get("/agent/x")
        .bearer_auth(&login.access)
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "api.example.com")
        .header("remote-user", "mallory")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // From a trusted proxy: the client it names, its scheme and host.
    assert_eq!(seen_header(&echo, "x-forwarded-for"), Some("203.0.113.9"));
    assert_eq!(seen_header(&echo, "x-forwarded-proto"), Some("https"));
    assert_eq!(seen_header(&echo, "x-forwarded-host"), Some("api.example.com"));
    // Identity headers are never believed, whoever sends them.
    assert!(echo["headers"].get("remote-user").is_none(), "{echo}");
}

/// Signing is the dearest step of a proxied request: an assertion is reused for the same caller
/// and audience for half its lifetime, never longer, never for another audience or identity.
#[tokio::test]
async fn an_assertion_is_reused_for_half_its_lifetime_and_no_further() {
    let app = crate::helpers::spawn_app_on_manual_clock(|_| {}).await;
    let (_, login) = app.new_session().await;
    let now = app.state.clock.now();
    let claims = app.state.verify_access(&login.access, now).await.unwrap();
    let caller = tessera_server::app::api_keys::Authenticated {
        scopes: tessera_core::ScopeSet::from_claim(claims.scope.as_deref()),
        claims,
        api_key_id: None,
        api_key: None,
    };
    let identity = app.state.identity(&caller).await.unwrap();
    let first = app.state.assertion(&identity, "agent").unwrap();
    app.advance(Duration::from_secs(29));
    assert_eq!(app.state.assertion(&identity, "agent").unwrap(), first);
    assert_ne!(
        app.state.assertion(&identity, "tools").unwrap(),
        first,
        "another audience"
    );
    let mut narrower = identity.clone();
    narrower.scopes = tessera_core::ScopeSet::from_claim(Some("profile:read"));
    assert_ne!(app.state.assertion(&narrower, "agent").unwrap(), first, "other scopes");
    app.advance(Duration::from_secs(1));
    let renewed = app.state.assertion(&identity, "agent").unwrap();
    assert_ne!(renewed, first, "30 s on, a fresh one");
    let claims: Value =
        serde_json::from_slice(&tessera_core::b64::decode(renewed.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["iat"].as_i64().unwrap(), app.state.clock.now());
}
