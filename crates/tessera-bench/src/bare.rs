//! `tessera-bench bare`: the thinnest server that honours the same contract as Tessera's
//! `GET /profile` and `POST /agent/chat`, measured in the same run as the real server (issue
//! [8/9]): hyper's HTTP/1.1 server, an HS256 access token checked with the same JWS code
//! Tessera uses (`tessera_core::jwt::verify`: signature, `typ`, `exp`/`nbf`/`iat`, `iss`, `aud`),
//! and a JSON answer. Nothing else: no store, no denylist, no limits, no logs, no metrics, no
//! security headers. The difference between its CPU per request and Tessera's is what
//! Tessera's stack costs.
//!
//! `GET /token` mints an access token for the load generator (not measured). Usage:
//! `tessera-bench bare --port 19100 [--threads 2]`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, header};
use hyper_util::rt::TokioIo;
use rand_core::OsRng;
use tessera_core::algorithm::Algorithm;
use tessera_core::jwt::{self, Claims, TokenKind, Validation};
use tessera_core::keys::{Key, KeyRing, KeyState};
use tokio::net::TcpListener;

const ISSUER: &str = "tessera";
const AUDIENCE: &str = "tessera";
/// The largest chat body read (Tessera's default MAX_BODY_BYTES is larger; the bench sends ~20 B).
const MAX_BODY: usize = 64 * 1024;

struct BareArgs {
    port: u16,
    threads: usize,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<BareArgs> {
    let mut args = BareArgs {
        port: 19100,
        threads: 0,
    };
    while let Some(flag) = it.next() {
        let mut value = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().context("--port")?,
            "--threads" => args.threads = value()?.parse().context("--threads")?,
            other => bail!("unknown bare argument {other}"),
        }
    }
    Ok(args)
}

struct Bare {
    ring: KeyRing,
    validation: Validation,
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn json(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

fn unauthorized() -> Response<Full<Bytes>> {
    json(
        StatusCode::UNAUTHORIZED,
        br#"{"error":"invalid_token","message":"Invalid token","details":null}"#.to_vec(),
    )
}

impl Bare {
    fn mint(&self) -> Result<String> {
        let now = now();
        let claims = Claims {
            sub: "1".into(),
            user_id: 1,
            username: "bare".into(),
            sid: "bare-session".into(),
            jti: "bare-token".into(),
            iat: now,
            nbf: now,
            exp: now + 3600,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            roles: Vec::new(),
            scope: Some("agent:chat profile:read".into()),
        };
        jwt::issue(&self.ring, TokenKind::Access, &claims, &mut OsRng).map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn claims(&self, request: &Request<Incoming>) -> Option<Claims> {
        let value = request.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
        let token = value.strip_prefix("Bearer ")?;
        jwt::verify(&self.ring, token, TokenKind::Access, &self.validation, now()).ok()
    }

    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/token") => match self.mint() {
                Ok(token) => json(StatusCode::OK, token.into_bytes()),
                Err(_) => json(StatusCode::INTERNAL_SERVER_ERROR, Vec::new()),
            },
            (&Method::GET, "/profile") => match self.claims(&request) {
                Some(claims) => {
                    let body = serde_json::json!({
                        "user_id": claims.user_id,
                        "username": claims.username,
                        "session_id": claims.sid,
                    });
                    json(StatusCode::OK, serde_json::to_vec(&body).unwrap_or_default())
                }
                None => unauthorized(),
            },
            (&Method::POST, "/agent/chat") => {
                if self.claims(&request).is_none() {
                    return unauthorized();
                }
                let Ok(body) = Limited::new(request.into_body(), MAX_BODY).collect().await else {
                    return json(StatusCode::PAYLOAD_TOO_LARGE, Vec::new());
                };
                let message = serde_json::from_slice::<serde_json::Value>(&body.to_bytes())
                    .ok()
                    .and_then(|v| v.get("message")?.as_str().map(str::to_owned));
                match message {
                    Some(message) => {
                        let reply = serde_json::json!({ "response": format!("AI reply: {message}") });
                        json(StatusCode::OK, serde_json::to_vec(&reply).unwrap_or_default())
                    }
                    None => json(StatusCode::UNPROCESSABLE_ENTITY, Vec::new()),
                }
            }
            _ => json(StatusCode::NOT_FOUND, Vec::new()),
        }
    }
}

async fn serve(port: u16) -> Result<()> {
    let key =
        Key::generate(Algorithm::HS256, KeyState::Signing, now(), &mut OsRng).map_err(|e| anyhow::anyhow!("{e}"))?;
    let bare = Arc::new(Bare {
        ring: KeyRing::new(vec![key]).map_err(|e| anyhow::anyhow!("{e}"))?,
        validation: Validation::new(ISSUER, AUDIENCE),
    });
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = TcpListener::bind(addr).await.with_context(|| format!("bind {addr}"))?;
    eprintln!("bare baseline listening on {addr}");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                eprintln!("accept: {error}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let bare = Arc::clone(&bare);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let bare = Arc::clone(&bare);
                async move { Ok::<_, Infallible>(bare.answer(request).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Runs the bare baseline until the process is killed. Its runtime has as many worker threads
/// as Tessera's (tokio's default: one per core) unless `--threads` says otherwise.
pub fn main(args: impl Iterator<Item = String>) -> Result<()> {
    let args = parse_args(args)?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        builder.worker_threads(args.threads);
    }
    let runtime = builder.enable_all().build()?;
    runtime.block_on(serve(args.port))
}
