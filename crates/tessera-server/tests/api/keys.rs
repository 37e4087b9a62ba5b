//! Keys (S3, S4, B4): rotation end to end on running instances (publish, then sign, then prune),
//! the JWK set as RFC 7517 and its cache headers, an independent JOSE library (Python's PyJWT)
//! verifying Tessera's asymmetric tokens through the served JWK set, PREVIOUS_SECRET_KEYS across
//! a secret change, and private keys sealed under MASTER_KEY.
//!
//! The two-instance rotation runs on PostgreSQL (see `services.rs`: skipped without
//! `TESSERA_TEST_DATABASE_URL`, a failure under `TESSERA_REQUIRE_SERVICES=1`); a single-instance
//! variant on SQLite, driven through the `tessera keys` binary, always runs. The interop test
//! needs `TESSERA_PYTHON`, a Python with PyJWT[crypto] (`.ci/run` makes one), under the same rule.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use sqlx::Connection;
use tessera_core::Algorithm;
use tessera_core::store::KeyPurpose;
use tessera_server::config::{Config, Database, Secret};

use crate::helpers::{
    TestApp, TestUser, assert_token_rejected, header, security_events, spawn_app_on_manual_clock, spawn_app_with, start,
};
use crate::services::{self, TestSchema};

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");

/// The prefix of a private key sealed under MASTER_KEY (tessera-core's `sealing`).
const SEALED_MAGIC: &[u8] = b"tessera-sealed-v1\0";

/// Members RFC 7517/7518 define for private keys: none may appear in a public JWK set.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

fn now_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn unix_now() -> i64 {
    now_f64() as i64
}

/// The decoded JOSE header of a compact token.
fn jose_header(token: &str) -> Value {
    let segment = token.split('.').next().unwrap_or_default();
    let bytes = tessera_core::b64::decode(segment).unwrap_or_else(|| panic!("header of {token} is not base64url"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("header of {token} is not JSON: {e}"))
}

/// The `kid` of a token, read from its header (not through the server).
fn kid_of(token: &str) -> String {
    let header = jose_header(token);
    header["kid"]
        .as_str()
        .unwrap_or_else(|| panic!("no kid in the header {header}"))
        .to_owned()
}

/// GET /.well-known/jwks.json.
async fn get_jwks(app: &TestApp) -> Response {
    app.get("/.well-known/jwks.json").send().await.expect("GET jwks")
}

/// The whole JWK set of `app` (access and identity keys), asserting a 200.
async fn published_jwks(app: &TestApp) -> Value {
    let response = get_jwks(app).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("the JWK set is JSON")
}

/// The access keys of `app`'s JWK set: the set without the identity ring's keys (the
/// gateway's assertions; `pyjwt_verifies_identity_assertions_through_the_jwk_set`).
async fn jwks(app: &TestApp) -> Value {
    let mut set = published_jwks(app).await;
    let identity = app.state.keys.identity.load();
    if let Some(keys) = set["keys"].as_array_mut() {
        keys.retain(|key| key["kid"].as_str().is_none_or(|kid| identity.find(kid).is_none()));
    }
    set
}

/// The kids a JWK set lists, in its order.
fn jwks_kids(set: &Value) -> Vec<String> {
    set["keys"]
        .as_array()
        .unwrap_or_else(|| panic!("no keys list: {set}"))
        .iter()
        .map(|k| {
            k["kid"]
                .as_str()
                .unwrap_or_else(|| panic!("key without kid: {k}"))
                .to_owned()
        })
        .collect()
}

/// Logs `user` in on `app` and returns the access token.
async fn access_token(app: &TestApp, user: &TestUser) -> String {
    app.login_user(user).await.access
}

/// Asserts GET /profile with `token` is 200 for `user` on every app.
async fn assert_accepted(apps: &[&TestApp], user: &TestUser, tokens: &[&String], what: &str) {
    for (i, app) in apps.iter().enumerate() {
        for token in tokens {
            let response = app.profile(token).await;
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_eq!(
                status,
                StatusCode::OK,
                "{what}: instance {i} refused a token with kid {}: {body}",
                kid_of(token)
            );
            let body: Value = serde_json::from_str(&body).unwrap();
            assert_eq!(body["user_id"], user.id, "{what}");
        }
    }
}

/// Polls GET /profile with `token` until it is refused with 401 `invalid_token`; fails if it is
/// still accepted after `give_up`. Returns how long that took.
async fn wait_until_rejected(app: &TestApp, token: &str, give_up: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let response = app.profile(token).await;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                assert_token_rejected(response, "invalid_token").await;
                return started.elapsed();
            }
            other => panic!("GET /profile answered {other} while waiting for the key to go"),
        }
        assert!(
            started.elapsed() < give_up,
            "a token of the pruned key was still accepted after {give_up:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sleeps until just after the next whole second, so that a key rotated now (Unix seconds)
/// with KEY_PUBLISH_DELAY=2 activates almost 2 s later, not barely 1 s later.
async fn align_to_second() {
    let fraction = now_f64().fract();
    tokio::time::sleep(Duration::from_secs_f64(1.0 - fraction + 0.02)).await;
}

/// Runs the `tessera` binary with exactly `env` (and PATH), in an empty directory (no `.env`).
async fn run_tessera(args: &[&str], env: &[(String, String)]) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env = env.to_vec();
    tokio::task::spawn_blocking(move || {
        let cwd = tempfile::tempdir().unwrap();
        let mut command = Command::new(BINARY);
        command.args(&args).env_clear().current_dir(cwd.path());
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        command.envs(env);
        command.output().expect("run tessera")
    })
    .await
    .unwrap()
}

/// How a test acts as the operator: through the library functions behind `tessera keys`, or
/// through the binary itself (with the environment it needs to find the same database).
enum Operator {
    Direct(Box<Config>),
    Binary(Vec<(String, String)>),
}

/// What a prune did: removed kids, kept (refused) kids.
#[derive(Debug, Default, PartialEq, Eq)]
struct Pruned {
    removed: Vec<String>,
    refused: Vec<String>,
}

impl Operator {
    async fn rotate(&self, app: &TestApp) -> String {
        match self {
            Operator::Direct(config) => {
                tessera_server::keys::rotate(app.state.key_store.as_ref(), config, KeyPurpose::Access, unix_now())
                    .await
                    .expect("rotate")
            }
            Operator::Binary(env) => {
                let output = run_tessera(&["keys", "rotate"], env).await;
                let stdout = String::from_utf8_lossy(&output.stdout);
                assert!(
                    output.status.success(),
                    "tessera keys rotate: {stdout} {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                // "added access key <kid>: published now, signing from ..."
                let words: Vec<&str> = stdout.split_whitespace().collect();
                assert_eq!(words.get(..3), Some(&["added", "access", "key"][..]), "{stdout}");
                let kid = words[3].trim_end_matches(':').to_owned();
                // The security event goes to stderr as a JSON line (S6).
                let event = security_events(&output.stderr, "key_rotated");
                assert_eq!(event.len(), 1, "{event:?}");
                assert_eq!(event[0]["kid"], kid.as_str());
                assert_eq!(event[0]["purpose"], "access");
                kid
            }
        }
    }

    async fn prune(&self, app: &TestApp, keep: usize, force: bool) -> Pruned {
        match self {
            Operator::Direct(config) => {
                let outcome =
                    tessera_server::keys::prune(app.state.key_store.as_ref(), config, keep, force, unix_now())
                        .await
                        .expect("prune");
                Pruned {
                    removed: outcome.removed.iter().map(ToString::to_string).collect(),
                    refused: outcome.refused.iter().map(ToString::to_string).collect(),
                }
            }
            Operator::Binary(env) => {
                let keep = keep.to_string();
                let mut args = vec!["keys", "prune", "--keep", keep.as_str()];
                if force {
                    args.push("--force");
                }
                let output = run_tessera(&args, env).await;
                let stdout = String::from_utf8_lossy(&output.stdout);
                assert!(
                    output.status.success(),
                    "tessera keys prune: {stdout} {}",
                    String::from_utf8_lossy(&output.stderr)
                );
                let mut pruned = Pruned::default();
                let events = security_events(&output.stderr, "key_pruned");
                for line in stdout.lines() {
                    if let Some(kid) = line.strip_prefix("removed ") {
                        pruned.removed.push(kid.to_owned());
                    } else if let Some(rest) = line.strip_prefix("kept ") {
                        let kid = rest.split(':').next().unwrap_or_default();
                        assert!(rest.contains("--force"), "the refusal says how to force it: {line}");
                        pruned.refused.push(kid.to_owned());
                    }
                }
                let logged: Vec<&str> = events.iter().filter_map(|e| e["kid"].as_str()).collect();
                assert_eq!(logged, pruned.removed, "one key_pruned event per removed key");
                pruned
            }
        }
    }

    /// `tessera keys list` through the binary: (kid, purpose, state) per line.
    async fn list_via_binary(&self) -> Option<Vec<(String, String, String)>> {
        let Operator::Binary(env) = self else { return None };
        let output = run_tessera(&["keys", "list"], env).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "tessera keys list: {stdout}");
        Some(
            stdout
                .lines()
                .skip(1)
                .map(|line| {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    (words[0].to_owned(), words[1].to_owned(), words[3].to_owned())
                })
                .collect(),
        )
    }
}

/// When the access key `kid` starts signing, from the key table.
async fn activates_at(app: &TestApp, kid: &str) -> i64 {
    let keys = tessera_server::keys::list(app.state.key_store.as_ref(), &app.state.config, unix_now())
        .await
        .expect("list keys");
    keys.iter()
        .find(|k| k.kid == kid)
        .unwrap_or_else(|| panic!("{kid} is not in the key table"))
        .activates_at
}

/// The rotation acceptance scenario on `apps` (one or two instances sharing a database, with
/// KEY_RELOAD_SECONDS=1 and KEY_PUBLISH_DELAY=2).
async fn rotation_end_to_end(apps: &[&TestApp], operator: &Operator) {
    let first = apps[0];
    let asymmetric = !first.state.config.algorithm.is_symmetric();
    assert_eq!(first.state.config.key_reload_secs, 1);
    assert_eq!(first.state.config.key_publish_delay_secs, 2);
    let user = first.register_user().await;

    // Before the rotation: one key, listed (when asymmetric) everywhere.
    let before = access_token(first, &user).await;
    let old_kid = kid_of(&before);
    assert_accepted(apps, &user, &[&before], "token from before the rotation").await;
    for app in apps {
        let kids = jwks_kids(&jwks(app).await);
        if asymmetric {
            assert_eq!(kids, [old_kid.as_str()]);
        } else {
            assert!(kids.is_empty(), "an HMAC deployment publishes no key: {kids:?}");
        }
    }

    align_to_second().await;
    let new_kid = operator.rotate(first).await;
    let rotated_at = Instant::now();
    assert_ne!(new_kid, old_kid);
    let activation = activates_at(first, &new_kid).await;
    if let Some(listed) = operator.list_via_binary().await {
        let state = |kid: &str| {
            listed
                .iter()
                .find(|(k, purpose, _)| k == kid && purpose == "access")
                .map(|(_, _, state)| state.clone())
        };
        if now_f64() < activation as f64 - 0.2 {
            assert_eq!(state(&new_kid).as_deref(), Some("published"), "{listed:?}");
        }
        assert_eq!(state(&old_kid).as_deref(), Some("signing"), "{listed:?}");
    }

    // Until every instance signs with the new key: every round reads each instance's JWK set
    // and key ring, then issues a token on each. A token carrying the new kid must never come
    // before every instance publishes (and verifies) that kid.
    let mut during = Vec::new();
    let mut after = vec![None; apps.len()];
    let mut window_seen = false;
    while after.iter().any(Option::is_none) {
        assert!(
            now_f64() < activation as f64 + 4.0,
            "the new key was not signing everywhere 4 s after its activation"
        );
        let mut published_everywhere = true;
        for app in apps {
            let knows = || app.state.keys.access.load().find_verifier(&new_kid).is_some();
            let knew = knows();
            let kids = jwks_kids(&jwks(app).await);
            let published = if asymmetric {
                // The JWK set lists exactly the keys that verify (a reload may land between
                // the reads, hence before and after).
                assert!(!knew || kids.contains(&new_kid), "verifies but not listed: {kids:?}");
                assert!(
                    !kids.contains(&new_kid) || knows(),
                    "listed but not verifying: {kids:?}"
                );
                assert!(kids.len() <= 2, "{kids:?}");
                kids.contains(&new_kid)
            } else {
                assert!(kids.is_empty(), "{kids:?}");
                knew
            };
            published_everywhere &= published;
        }
        let mut tokens = Vec::new();
        for app in apps {
            tokens.push(access_token(app, &user).await);
        }
        for (i, token) in tokens.into_iter().enumerate() {
            let kid = kid_of(&token);
            if kid == new_kid {
                assert!(
                    published_everywhere,
                    "instance {i} signed with {new_kid} before every instance published it"
                );
                after[i].get_or_insert(token);
            } else {
                assert_eq!(kid, old_kid);
                assert!(
                    after[i].is_none(),
                    "instance {i} went back to the old key after signing with the new one"
                );
                if published_everywhere {
                    // The publication window: the new key is listed, tokens still carry the old one.
                    window_seen = true;
                    assert!(
                        now_f64() < activation as f64 + 2.5,
                        "still signing with the old key long after the activation"
                    );
                }
                during.push(token);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        window_seen,
        "no round saw the publication window (new kid published, tokens with the old kid); \
         rotation took {:?} to reach every instance",
        rotated_at.elapsed()
    );
    if asymmetric {
        for app in apps {
            let kids = jwks_kids(&jwks(app).await);
            assert_eq!(kids.len(), 2, "{kids:?}");
            assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "{kids:?}");
        }
    }
    let after: Vec<String> = after.into_iter().map(Option::unwrap).collect();

    // Every token, from before, during and after the rotation, verifies on every instance.
    let everything: Vec<&String> = std::iter::once(&before).chain(&during).chain(&after).collect();
    assert_accepted(apps, &user, &everything, "tokens of every phase").await;

    // Prune keeping one key: the old key may still verify live tokens, so it stays...
    let pruned = operator.prune(first, 1, false).await;
    assert_eq!(
        pruned,
        Pruned {
            removed: vec![],
            refused: vec![old_kid.clone()]
        }
    );
    assert_accepted(apps, &user, &[&before, &during[0]], "after prune without --force").await;
    if let Some(listed) = operator.list_via_binary().await {
        let access: Vec<(&str, &str)> = listed
            .iter()
            .filter(|(_, purpose, _)| purpose == "access")
            .map(|(kid, _, state)| (kid.as_str(), state.as_str()))
            .collect();
        assert_eq!(
            access,
            [(old_kid.as_str(), "verify_only"), (new_kid.as_str(), "signing")]
        );
    }

    // ...unless forced: then its tokens stop working on every instance within a reload (the
    // token caches, which hold them as verified, are cleared).
    let pruned = operator.prune(first, 1, true).await;
    assert_eq!(
        pruned,
        Pruned {
            removed: vec![old_kid.clone()],
            refused: vec![]
        }
    );
    let give_up = Duration::from_millis(2_500);
    for app in apps {
        for token in [&before, &during[0]] {
            wait_until_rejected(app, token, give_up).await;
        }
        if asymmetric {
            assert_eq!(jwks_kids(&jwks(app).await), [new_kid.as_str()]);
        }
    }
    let after_refs: Vec<&String> = after.iter().collect();
    assert_accepted(apps, &user, &after_refs, "tokens of the new key after the prune").await;
}

/// KEY_RELOAD_SECONDS=1, KEY_PUBLISH_DELAY=2 and `algorithm` on top of the services' test
/// configuration, on `database_url`.
fn rotation_config(database_url: &str, algorithm: &str) -> Config {
    services::config(&[
        ("DATABASE_URL", database_url),
        ("ALGORITHM", algorithm),
        ("KEY_RELOAD_SECONDS", "1"),
        ("KEY_PUBLISH_DELAY", "2"),
    ])
}

/// Two instances on one fresh PostgreSQL schema (no Redis: keys need none).
async fn rotation_on_two_postgres_instances(algorithm: &str) {
    let Some(database) = services::database_url() else {
        return;
    };
    let schema = TestSchema::create(&database).await;
    let config = rotation_config(&schema.url(), algorithm);
    let a = services::spawn_with_config(config.clone()).await;
    let b = services::spawn_with_config(config.clone()).await;
    rotation_end_to_end(&[&a, &b], &Operator::Direct(Box::new(config))).await;
    drop((a, b));
    drop(schema);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_rotation_publishes_then_signs_then_prunes_on_two_instances() {
    rotation_on_two_postgres_instances("EdDSA").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_rotation_publishes_then_signs_then_prunes_on_two_instances() {
    rotation_on_two_postgres_instances("HS256").await;
}

/// ES256 with the shared token cache in Redis (TOKEN_CACHE_REDIS): a pruned key's tokens must
/// not come back from the shared layer either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn es256_rotation_with_the_shared_token_cache_on_two_instances() {
    let Some(cluster) = services::cluster(&[
        ("ALGORITHM", "ES256"),
        ("KEY_RELOAD_SECONDS", "1"),
        ("KEY_PUBLISH_DELAY", "2"),
        ("TOKEN_CACHE_REDIS", "true"),
    ])
    .await
    else {
        return;
    };
    assert!(cluster.a.state.shared_token_cache.is_some());
    let operator = Operator::Direct(Box::new(cluster.a.config.clone()));
    rotation_end_to_end(&cluster.instances(), &operator).await;
}

/// No services needed: one instance on SQLite, the operator using the `tessera keys` binary on
/// the same database file while the server runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eddsa_rotation_through_the_keys_command_on_sqlite() {
    let app = spawn_app_with(|config| {
        config.algorithm = Algorithm::EdDSA;
        config.key_reload_secs = 1;
        config.key_publish_delay_secs = 2;
    })
    .await;
    let env = vec![
        ("DATA_DIR".to_owned(), app.config.data_dir.display().to_string()),
        ("ALGORITHM".to_owned(), "EdDSA".to_owned()),
        ("KEY_RELOAD_SECONDS".to_owned(), "1".to_owned()),
        ("KEY_PUBLISH_DELAY".to_owned(), "2".to_owned()),
        ("LOG_LEVEL".to_owned(), "info".to_owned()),
    ];
    rotation_end_to_end(&[&app], &Operator::Binary(env)).await;
}

// --- the JWK set --------------------------------------------------------------------------

/// Asserts that `text` is canonical unpadded base64url and returns the decoded bytes.
fn base64url(text: &Value, what: &str) -> Vec<u8> {
    let text = text.as_str().unwrap_or_else(|| panic!("{what} is not a string"));
    assert!(!text.is_empty(), "{what} is empty");
    assert!(
        text.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{what} is not base64url without padding: {text}"
    );
    tessera_core::b64::decode(text).unwrap_or_else(|| panic!("{what} is not canonical base64url: {text}"))
}

/// Asserts a JWK set is a valid RFC 7517 public signing-key set for `algorithm`.
fn assert_valid_jwk_set(set: &Value, algorithm: Algorithm) {
    let object = set.as_object().unwrap_or_else(|| panic!("not an object: {set}"));
    assert_eq!(object.keys().collect::<Vec<_>>(), ["keys"], "{set}");
    let keys = set["keys"].as_array().unwrap();
    assert!(!keys.is_empty(), "{set}");
    let mut kids: Vec<&str> = Vec::new();
    for key in keys {
        let jwk = key
            .as_object()
            .unwrap_or_else(|| panic!("a key is not an object: {key}"));
        for private in PRIVATE_MEMBERS {
            assert!(!jwk.contains_key(private), "private member {private} in {key}");
        }
        let kid = key["kid"].as_str().unwrap_or_else(|| panic!("no kid: {key}"));
        assert!(!kid.is_empty());
        kids.push(kid);
        assert_eq!(key["alg"], algorithm.as_str(), "{key}");
        assert_eq!(key["use"], "sig", "{key}");
        let kty = key["kty"].as_str().unwrap_or_else(|| panic!("no kty: {key}"));
        let (expected_kty, members): (&str, &[&str]) = match algorithm {
            Algorithm::EdDSA => ("OKP", &["kty", "kid", "alg", "use", "crv", "x"]),
            Algorithm::ES256 => ("EC", &["kty", "kid", "alg", "use", "crv", "x", "y"]),
            Algorithm::RS256 => ("RSA", &["kty", "kid", "alg", "use", "n", "e"]),
            other => panic!("{other} has no public key"),
        };
        assert_eq!(kty, expected_kty, "{key}");
        let mut present: Vec<&str> = jwk.keys().map(String::as_str).collect();
        present.sort_unstable();
        let mut expected = members.to_vec();
        expected.sort_unstable();
        assert_eq!(present, expected, "members of {key}");
        match kty {
            "OKP" => {
                assert_eq!(key["crv"], "Ed25519");
                assert_eq!(base64url(&key["x"], "x").len(), 32, "{key}");
            }
            "EC" => {
                assert_eq!(key["crv"], "P-256");
                assert_eq!(base64url(&key["x"], "x").len(), 32, "{key}");
                assert_eq!(base64url(&key["y"], "y").len(), 32, "{key}");
            }
            "RSA" => {
                let n = base64url(&key["n"], "n");
                assert!(n.len() >= 256 && n[0] != 0, "n of {} bytes, no leading zero", n.len());
                let e = base64url(&key["e"], "e");
                assert!(!e.is_empty() && e[0] != 0, "e without leading zero");
            }
            _ => unreachable!(),
        }
    }
    let mut unique = kids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), kids.len(), "kids are unique: {kids:?}");
}

/// Asserts the cache headers: `Cache-Control` with a `max-age` that, with KEY_RELOAD_SECONDS,
/// stays within KEY_PUBLISH_DELAY, and a quoted `ETag`. Returns the ETag.
fn assert_cache_headers(headers: &HeaderMap, config: &Config) -> String {
    let cache = header(headers, "cache-control").unwrap_or_else(|| panic!("no Cache-Control"));
    let max_age: i64 = cache
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .unwrap_or_else(|| panic!("no max-age in {cache}"))
        .parse()
        .unwrap_or_else(|_| panic!("max-age is not a number: {cache}"));
    assert!(max_age > 0, "{cache}");
    assert!(
        max_age + config.key_reload_secs as i64 <= config.key_publish_delay_secs,
        "a verifier caching for max-age={max_age} could miss a key published {} s before it signs",
        config.key_publish_delay_secs
    );
    let etag = header(headers, "etag").unwrap_or_else(|| panic!("no ETag"));
    assert!(etag.len() > 2 && etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    etag.to_owned()
}

#[tokio::test]
async fn the_jwk_set_is_rfc_7517_with_cache_headers_and_etag() {
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let app = spawn_app_with(|config| {
            config.algorithm = algorithm;
            config.identity_algorithm = algorithm;
        })
        .await;
        let (_, login) = app.new_session().await;

        let response = get_jwks(&app).await;
        assert_eq!(response.status(), StatusCode::OK);
        let headers = response.headers().clone();
        assert_eq!(header(&headers, "content-type"), Some("application/jwk-set+json"));
        let etag = assert_cache_headers(&headers, &app.config);
        let set: Value = response.json().await.unwrap();
        assert_valid_jwk_set(&set, algorithm);
        // The token's key is listed, and the identity key (the gateway's assertions).
        let identity_kid = app.state.keys.identity.load().signing_key().unwrap().kid().to_string();
        assert_eq!(jwks_kids(&set), [kid_of(&login.access), identity_kid], "{algorithm}");
        assert_eq!(jose_header(&login.access)["alg"], algorithm.as_str());

        // Revalidation: the same ETag gives 304 with no body and the same validators; a stale
        // one gives the document again.
        let response = app
            .get("/.well-known/jwks.json")
            .header("if-none-match", &etag)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_MODIFIED, "{algorithm}");
        assert_eq!(header(response.headers(), "etag"), Some(etag.as_str()));
        assert!(header(response.headers(), "cache-control").is_some());
        assert!(response.bytes().await.unwrap().is_empty());
        let response = app
            .get("/.well-known/jwks.json")
            .header("if-none-match", "\"something-else\", W/\"x\"")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.json::<Value>().await.unwrap(), set);
    }
}

#[tokio::test]
async fn hmac_deployments_publish_only_the_identity_keys() {
    let managed = spawn_app_with(|_| {}).await;
    let configured = spawn_app_with(|config| {
        config.secret_key = Some(Secret::new(vec![b'a'; 32]));
        config.refresh_secret_key = Some(Secret::new(vec![b'r'; 32]));
    })
    .await;
    for app in [&managed, &configured] {
        assert_eq!(app.config.algorithm, Algorithm::HS256);
        app.new_session().await;
        let response = get_jwks(app).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_cache_headers(response.headers(), &app.config);
        // No HMAC secret ever: only the identity ring's public keys (the gateway's
        // assertions), which never verify an access token.
        let set = response.json::<Value>().await.unwrap();
        let keys = set["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{set}");
        assert_eq!(keys[0]["alg"], "ES256", "{set}");
        assert_eq!(keys[0]["kty"], "EC", "{set}");
        assert!(keys[0].get("k").is_none() && keys[0].get("d").is_none(), "{set}");
        let identity_kid = app.state.keys.identity.load().signing_key().unwrap().kid().to_string();
        assert_eq!(keys[0]["kid"], identity_kid.as_str());
        assert!(app.state.keys.access.load().find(&identity_kid).is_none());
    }
}

// --- an independent JOSE library --------------------------------------------------------

/// Verifies a token against a JWK set with PyJWT: picks the key by the header's kid, pins the
/// algorithm given on the command line (never the token's), checks signature, exp/nbf/iat, aud
/// and iss, and prints the claims as JSON.
const VERIFY_PY: &str = r#"
import json
import sys

import jwt

token_path, jwks_path, alg, audience, issuer = sys.argv[1:6]
with open(token_path) as f:
    token = f.read().strip()
with open(jwks_path) as f:
    jwks = json.load(f)
try:
    header = jwt.get_unverified_header(token)
    if header.get("alg") != alg:
        raise ValueError("unexpected alg %r" % header.get("alg"))
    keys = [k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id == header.get("kid")]
    if len(keys) != 1:
        raise ValueError("no single key for kid %r" % header.get("kid"))
    claims = jwt.decode(
        token,
        key=keys[0].key,
        algorithms=[alg],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "nbf", "sub", "iss", "aud"]},
    )
except Exception as error:
    print("rejected: %s: %s" % (type(error).__name__, error), file=sys.stderr)
    sys.exit(3)
print(json.dumps(claims))
"#;

/// The Python to verify with (`TESSERA_PYTHON`), or `None` (after a note) to skip; a failure
/// when `TESSERA_REQUIRE_SERVICES=1`.
pub(crate) fn python() -> Option<PathBuf> {
    match std::env::var("TESSERA_PYTHON") {
        Ok(path) if !path.trim().is_empty() => Some(PathBuf::from(path.trim())),
        _ => {
            crate::services::unavailable(
                "TESSERA_PYTHON is not set (a Python with PyJWT[crypto], e.g. .venv-ci/bin/python; .ci/run makes one)",
            );
            None
        }
    }
}

/// Runs the verification script on `token` and `jwks`; returns (exit code, stdout, stderr).
async fn python_verify(python: &Path, dir: &Path, token: &str, jwks: &Value, config: &Config) -> (i32, String, String) {
    python_verify_as(
        python,
        dir,
        token,
        jwks,
        config.algorithm.as_str(),
        &config.audience,
        &config.issuer,
    )
    .await
}

/// [`python_verify`] with the algorithm, audience and issuer given.
pub(crate) async fn python_verify_as(
    python: &Path,
    dir: &Path,
    token: &str,
    jwks: &Value,
    alg: &str,
    audience: &str,
    issuer: &str,
) -> (i32, String, String) {
    let script = dir.join("verify.py");
    let token_file = dir.join("token.txt");
    let jwks_file = dir.join("jwks.json");
    std::fs::write(&script, VERIFY_PY).unwrap();
    std::fs::write(&token_file, token).unwrap();
    std::fs::write(&jwks_file, serde_json::to_vec(jwks).unwrap()).unwrap();
    let mut command = Command::new(python);
    command
        .arg(&script)
        .arg(&token_file)
        .arg(&jwks_file)
        .arg(alg)
        .arg(audience)
        .arg(issuer);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("cannot run TESSERA_PYTHON={}: {e}", python.display()));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `token` with its payload's user_id changed (header and signature kept).
fn tampered(token: &str) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&tessera_core::b64::decode(parts[1]).unwrap()).unwrap();
    payload["user_id"] = json!(payload["user_id"].as_i64().unwrap() + 1);
    let payload = tessera_core::b64::encode(&serde_json::to_vec(&payload).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

#[tokio::test]
async fn pyjwt_verifies_eddsa_es256_and_rs256_tokens_through_the_jwk_set() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    for algorithm in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let app = spawn_app_with(|config| config.algorithm = algorithm).await;
        let (user, login) = app.new_session().await;
        let set = jwks(&app).await;

        let (code, stdout, stderr) = python_verify(&python, dir.path(), &login.access, &set, &app.config).await;
        assert_eq!(code, 0, "{algorithm}: PyJWT refused Tessera's token: {stderr}");
        let claims: Value =
            serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{algorithm}: not JSON ({e}): {stdout}"));
        assert_eq!(claims["user_id"], user.id, "{algorithm}: {stdout}");
        assert_eq!(claims["sub"], user.id.to_string(), "{algorithm}");
        assert_eq!(claims["username"], user.username.as_str(), "{algorithm}");

        // A tampered payload fails the signature in Python too (and in Tessera).
        let forged = tampered(&login.access);
        let (code, stdout, stderr) = python_verify(&python, dir.path(), &forged, &set, &app.config).await;
        assert_ne!(code, 0, "{algorithm}: PyJWT accepted a tampered token: {stdout}");
        assert!(stdout.trim().is_empty(), "{algorithm}: {stdout}");
        assert!(stderr.contains("InvalidSignatureError"), "{algorithm}: {stderr}");
        assert_token_rejected(app.profile(&forged).await, "invalid_token").await;
    }
}

/// The gateway's identity assertion (G1, G2) verifies in PyJWT through the JWK set, for the
/// upstream it names only, on an HMAC deployment (the default) as on an asymmetric one.
#[tokio::test]
async fn pyjwt_verifies_identity_assertions_through_the_jwk_set() {
    let Some(python) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    for (access, identity) in [
        (Algorithm::HS256, Algorithm::ES256),
        (Algorithm::EdDSA, Algorithm::RS256),
    ] {
        let app = spawn_app_with(|config| {
            config.algorithm = access;
            config.identity_algorithm = identity;
        })
        .await;
        let (user, login) = app.new_session().await;
        let claims = app.state.verify_access(&login.access, unix_now()).await.unwrap();
        let caller = tessera_server::app::api_keys::Authenticated {
            scopes: tessera_core::ScopeSet::from_claim(claims.scope.as_deref()),
            claims,
            api_key_id: None,
            api_key: None,
        };
        let who = app.state.identity(&caller).await.unwrap();
        assert_eq!(who.email, user.email);
        let assertion = app.state.assertion(&who, "agent").unwrap();
        let header: Value =
            serde_json::from_slice(&tessera_core::b64::decode(assertion.split('.').next().unwrap()).unwrap()).unwrap();
        assert_eq!(header["typ"], "tessera-assertion+jwt", "{access}/{identity}");
        let set = published_jwks(&app).await;

        let (code, stdout, stderr) = python_verify_as(
            &python,
            dir.path(),
            &assertion,
            &set,
            identity.as_str(),
            "agent",
            &app.config.issuer,
        )
        .await;
        assert_eq!(code, 0, "{access}/{identity}: PyJWT refused the assertion: {stderr}");
        let verified: Value = serde_json::from_str(stdout.trim()).unwrap();
        assert_eq!(verified["sub"], user.id.to_string());
        assert_eq!(verified["preferred_username"], user.username.as_str());
        assert_eq!(verified["email"], user.email.as_str());
        assert_eq!(verified["sid"], login_sid(&login.access).as_str());
        let lifetime = verified["exp"].as_i64().unwrap() - verified["iat"].as_i64().unwrap();
        assert!(lifetime > 0 && lifetime <= 60, "{lifetime}");

        // Bound to its upstream: another audience refuses it.
        let (code, _, stderr) = python_verify_as(
            &python,
            dir.path(),
            &assertion,
            &set,
            identity.as_str(),
            "tools",
            &app.config.issuer,
        )
        .await;
        assert_ne!(code, 0);
        assert!(stderr.contains("InvalidAudienceError"), "{stderr}");
        // Never an access token at Tessera.
        assert_token_rejected(app.profile(&assertion).await, "invalid_token").await;
    }
}

/// The `sid` claim of a token (unverified: the test issued it).
fn login_sid(token: &str) -> String {
    let payload: Value =
        serde_json::from_slice(&tessera_core::b64::decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    payload["sid"].as_str().unwrap().to_owned()
}

// --- configured secrets -------------------------------------------------------------------

#[tokio::test]
async fn previous_secret_keys_keep_old_tokens_valid_across_a_secret_change() {
    let old = "old-access-secret-0123456789abcdefghijkl";
    let new = "new-access-secret-0123456789abcdefghijkl";
    let app = spawn_app_with(|config| {
        config.secret_key = Some(Secret::new(old.as_bytes().to_vec()));
        config.refresh_secret_key = Some(Secret::new(b"refresh-secret-0123456789abcdefghijklmn".to_vec()));
    })
    .await;
    let (user, login) = app.new_session().await;
    let old_kid = kid_of(&login.access);
    assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);

    // Restart with the new secret, the old one listed as previous: old tokens still verify,
    // new ones are signed with the new secret (another kid).
    let (dir, mut config) = app.stop().await;
    config.secret_key = Some(Secret::new(new.as_bytes().to_vec()));
    config.previous_secret_keys = vec![Secret::new(old.as_bytes().to_vec())];
    let app = start(dir, config).await;
    assert_accepted(&[&app], &user, &[&login.access], "old token with PREVIOUS_SECRET_KEYS").await;
    let fresh = app.login_user(&user).await.access;
    assert_ne!(kid_of(&fresh), old_kid);
    assert_accepted(&[&app], &user, &[&fresh], "new token").await;

    // Without PREVIOUS_SECRET_KEYS, the old token's kid is unknown.
    let (dir, mut config) = app.stop().await;
    config.previous_secret_keys = Vec::new();
    let app = start(dir, config).await;
    assert_token_rejected(app.profile(&login.access).await, "invalid_token").await;
    assert_accepted(&[&app], &user, &[&fresh], "new token without previous").await;
}

// --- MASTER_KEY ---------------------------------------------------------------------------

/// The (purpose, private_key) rows of the SQLite key table.
async fn stored_private_keys(database: &Database) -> Vec<(String, Vec<u8>)> {
    let Database::Sqlite(path) = database else {
        panic!("not SQLite: {database}")
    };
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
    let mut connection = sqlx::SqliteConnection::connect_with(&options).await.unwrap();
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as("SELECT purpose, private_key FROM signing_keys ORDER BY purpose")
        .fetch_all(&mut connection)
        .await
        .unwrap();
    connection.close().await.unwrap();
    rows
}

#[tokio::test]
async fn master_key_seals_stored_keys_and_a_wrong_one_stops_the_start() {
    let master = "master-key-0123456789abcdefghijklmnopqr";
    let app = spawn_app_with(|config| {
        config.algorithm = Algorithm::EdDSA;
        config.master_key = Some(Secret::new(master.as_bytes().to_vec()));
    })
    .await;
    let (user, login) = app.new_session().await;
    let rows = stored_private_keys(&app.config.database).await;
    let purposes: Vec<&str> = rows.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(purposes, ["access", "csrf", "identity", "refresh"]);
    for (purpose, private_key) in &rows {
        assert!(
            private_key.starts_with(SEALED_MAGIC),
            "the {purpose} key is stored unsealed"
        );
        assert!(private_key.len() > SEALED_MAGIC.len() + 24 + 16, "{purpose}");
    }

    // The same master key: the keys open, old tokens verify, and CSRF/refresh still work.
    let app = app.restart().await;
    assert_accepted(
        &[&app],
        &user,
        &[&login.access],
        "after a restart with the same MASTER_KEY",
    )
    .await;
    assert_eq!(app.refresh(&login.refresh).await.status(), StatusCode::OK);

    // Another master key, or none: the start fails, naming MASTER_KEY, without printing it.
    let (dir, config) = app.stop().await;
    for (other, expected) in [
        (Some("another-master-key-0123456789abcdefghij"), "does not open"),
        (None, "encrypted"),
    ] {
        let mut config = config.clone();
        config.master_key = other.map(|k| Secret::new(k.as_bytes().to_vec()));
        let error = match tessera_server::build(config).await {
            Ok(_) => panic!("the app started with MASTER_KEY {other:?}"),
            Err(error) => format!("{error:#}"),
        };
        assert!(error.starts_with("MASTER_KEY: "), "{error}");
        assert!(error.contains(expected), "{error}");
        assert!(!error.contains(master), "{error}");
        if let Some(other) = other {
            assert!(!error.contains(other), "{error}");
        }
    }
    // Nothing was rewritten: the right key still works.
    let app = start(dir, config).await;
    assert_accepted(&[&app], &user, &[&login.access], "after the failed starts").await;
}

// --- automatic rotation -------------------------------------------------------------------

/// KEY_ROTATION_INTERVAL: when the newest key is older than the interval, an instance adds a
/// pre-published key by itself. The server runs on a manual clock (A4): the test moves it past
/// the interval and runs the reload step itself instead of waiting for it.
#[tokio::test]
async fn keys_rotate_on_schedule_when_the_newest_is_older_than_the_interval() {
    let app = spawn_app_on_manual_clock(|config| {
        config.algorithm = Algorithm::EdDSA;
        // The background reload stays out of the way; the test runs each reload itself.
        config.key_reload_secs = 3_600;
        config.key_publish_delay_secs = 2;
        config.key_rotation_interval_secs = Some(3_600);
    })
    .await;
    let first = jwks_kids(&jwks(&app).await);
    assert_eq!(first.len(), 1, "one key at start");
    // Nothing is due yet: after a reload there is still one key.
    app.advance(Duration::from_secs(3_590));
    app.state.reload_keys().await;
    assert_eq!(jwks_kids(&jwks(&app).await), first);

    // Past the interval: the next reload publishes a second key (access), and only one
    // rotation happens however often it runs.
    app.advance(Duration::from_secs(20));
    app.state.reload_keys().await;
    let rotated = jwks_kids(&jwks(&app).await);
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    app.state.reload_keys().await;
    app.advance(Duration::from_secs(1));
    app.state.reload_keys().await;
    assert_eq!(jwks_kids(&jwks(&app).await).len(), 2, "exactly one scheduled rotation");

    // The new key signs once its publication delay has passed on the clock.
    let user = app.register_user().await;
    let new_kid = rotated.iter().find(|kid| **kid != first[0]).cloned().unwrap();
    assert_eq!(kid_of(&access_token(&app, &user).await), first[0], "still publishing");
    app.advance(Duration::from_secs(2));
    app.state.reload_keys().await;
    assert_eq!(
        kid_of(&access_token(&app, &user).await),
        new_kid,
        "signing after the delay"
    );
}
