//! The shipped example (examples/agent-upstream, FastAPI under uvicorn) behind the gateway: the
//! reply streams through as server-sent events, and the upstream believes only an assertion it
//! verified with PyJWT through Tessera's JWK set.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use tessera_server::config::gateway::{UpstreamDefaults, parse_upstreams};

use crate::helpers::{header, spawn_app_with};

/// uvicorn running the example, killed when dropped.
struct Uvicorn {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Drop for Uvicorn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The Python that has the example's packages, or `None` (after a note, or a failure in CI).
fn python_with_fastapi() -> Option<PathBuf> {
    let python = crate::keys::python()?;
    let ok = Command::new(&python)
        .args(["-c", "import fastapi, uvicorn, jwt, cryptography"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !ok {
        crate::services::unavailable(&format!(
            "{} lacks fastapi/uvicorn/PyJWT (pip install -r examples/agent-upstream/requirements.txt)",
            python.display()
        ));
        return None;
    }
    Some(python)
}

fn start_uvicorn(python: &Path, port: u16, jwks_url: &str, log_dir: &Path) -> Uvicorn {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/agent-upstream");
    let log = log_dir.join("uvicorn.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(python)
        .args([
            "-m",
            "uvicorn",
            "app:app",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .arg("--app-dir")
        .arg(&example)
        .env("TESSERA_JWKS_URL", jwks_url)
        .env("REPLY_DELAY_MS", "150")
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("could not start uvicorn: {e}"));
    let uvicorn = Uvicorn {
        child,
        address: format!("http://127.0.0.1:{port}"),
        log,
    };
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "uvicorn did not listen within 60 s: {}",
            std::fs::read_to_string(&uvicorn.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    uvicorn
}

#[tokio::test]
async fn the_example_agent_streams_its_reply_and_trusts_only_verified_assertions() {
    let Some(python) = python_with_fastapi() else { return };
    let port = free_port();
    let routes = format!("/agent/=http://127.0.0.1:{port}/");
    let app = spawn_app_with(|config| {
        config.upstreams = parse_upstreams(
            &routes,
            UpstreamDefaults {
                max_body_bytes: config.gateway_max_body_bytes,
                response_timeout: config.gateway_response_timeout,
            },
        )
        .unwrap();
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let upstream = start_uvicorn(&python, port, &app.url("/.well-known/jwks.json"), dir.path());
    let (user, login) = app.new_session().await;

    // Through Tessera: the identity first, then the words as they are produced.
    let started = Instant::now();
    let mut response = app
        .post("/agent/chat")
        .bearer_auth(&login.access)
        .json(&json!({ "message": "hello from the test" }))
        .send()
        .await
        .unwrap();
    let log = || std::fs::read_to_string(&upstream.log).unwrap_or_default();
    assert_eq!(response.status(), StatusCode::OK, "{}", log());
    assert!(header(response.headers(), "content-type").is_some_and(|t| t.starts_with("text/event-stream")));
    let first = tokio::time::timeout(Duration::from_secs(20), response.chunk())
        .await
        .expect("a first event")
        .unwrap()
        .unwrap();
    let first = String::from_utf8_lossy(&first).into_owned();
    assert!(first.starts_with("event: identity"), "{first}");
    assert!(
        first.contains(&format!("\"username\": \"{}\"", user.username)),
        "{first}"
    );
    assert!(first.contains(&format!("\"user_id\": \"{}\"", user.id)), "{first}");
    assert!(
        !first.contains("event: done"),
        "the first event came before the reply was done"
    );
    let first_at = started.elapsed();
    let rest = String::from_utf8_lossy(&response.bytes().await.unwrap()).into_owned();
    assert!(
        rest.contains("\"text\": \"test\"") && rest.ends_with("event: done\ndata: {}\n\n"),
        "{rest}"
    );
    // Five words at 150 ms each: the stream took a while, and the first event did not wait for it.
    assert!(
        started.elapsed() >= first_at + Duration::from_millis(500),
        "the reply streamed: first event at {first_at:?}, end at {:?}",
        started.elapsed()
    );
    assert!(
        log().contains("verified_identity") && log().contains(&user.username),
        "{}",
        log()
    );

    // Straight to the upstream, around Tessera: no assertion, a forged one, one for another
    // upstream: all refused by the upstream itself.
    let client = reqwest::Client::new();
    let chat = |assertion: Option<String>| {
        let mut request = client
            .post(format!("{}/chat", upstream.address))
            .header("x-tessera-user-id", user.id.to_string())
            .json(&json!({ "message": "hi" }));
        if let Some(assertion) = assertion {
            request = request.header("x-tessera-assertion", assertion);
        }
        request.send()
    };
    assert_eq!(chat(None).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let claims = app
        .state
        .verify_access(&login.access, crate::keys::unix_now())
        .await
        .unwrap();
    let caller = tessera_server::app::api_keys::Authenticated {
        scopes: tessera_core::ScopeSet::from_claim(claims.scope.as_deref()),
        claims,
        api_key_id: None,
        api_key: None,
    };
    let identity = app.state.identity(&caller).await.unwrap();
    let for_agent = app.state.assertion(&identity, "agent").unwrap();
    let for_tools = app.state.assertion(&identity, "tools").unwrap();
    assert_eq!(chat(Some(for_tools)).await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let mut parts: Vec<String> = for_agent.split('.').map(str::to_owned).collect();
    parts[1] = tessera_core::b64::encode(
        br#"{"iss":"tessera","sub":"1","aud":"agent","iat":1,"exp":9999999999,"preferred_username":"admin"}"#,
    );
    assert_eq!(
        chat(Some(parts.join("."))).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        chat(Some(for_agent)).await.unwrap().status(),
        StatusCode::OK,
        "{}",
        log()
    );
}
