//! Passkeys (C3) over HTTP, with a software authenticator written here (P-256, "none"
//! attestation, CTAP2 canonical CBOR) so every ceremony is really verified: registration with
//! re-authentication, password-less sign-in, a passkey as the second factor, single-use and
//! expiring ceremonies, ceremonies of one flow refused in another, unknown credentials, a
//! signature counter that goes backwards (a cloned authenticator), removal, and the account's
//! deletion taking the passkeys along, and every ceremony started on one of two instances
//! (shared PostgreSQL and Redis) finished once on the other. The browser itself is tested by
//! `e2e/passkeys.test.mjs`.

use std::time::Duration;

use p256::ecdsa::signature::Signer;
use p256::ecdsa::{Signature, SigningKey};
use rand::RngCore;
use rand::rngs::OsRng;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_server::config::mail::PublicUrl;

use crate::helpers::{TestApp, assert_error, assert_field_error, set_cookies, spawn_app_on_manual_clock};

const ORIGIN: &str = "https://auth.example.test";
const RP_ID: &str = "auth.example.test";

fn b64(bytes: &[u8]) -> String {
    tessera_core::b64::encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    tessera_core::b64::decode(text).expect("base64url")
}

/// CBOR head of `major` with length/value `n`.
fn cbor_head(major: u8, n: usize, out: &mut Vec<u8>) {
    let major = major << 5;
    if n < 24 {
        out.push(major | n as u8);
    } else if n < 256 {
        out.extend([major | 24, n as u8]);
    } else {
        out.extend([major | 25, (n >> 8) as u8, n as u8]);
    }
}

fn cbor_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    cbor_head(2, bytes.len(), out);
    out.extend_from_slice(bytes);
}

fn cbor_text(text: &str, out: &mut Vec<u8>) {
    cbor_head(3, text.len(), out);
    out.extend_from_slice(text.as_bytes());
}

/// A passkey held by the software authenticator.
struct SoftKey {
    id: Vec<u8>,
    key: SigningKey,
    user_handle: Vec<u8>,
    sign_count: u32,
}

impl SoftKey {
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        let mut out = vec![0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21];
        cbor_bytes(point.x().unwrap(), &mut out);
        out.push(0x22);
        cbor_bytes(point.y().unwrap(), &mut out);
        out
    }

    fn spki(&self) -> Vec<u8> {
        let mut der = hex_prefix();
        der.extend_from_slice(self.key.verifying_key().to_encoded_point(false).as_bytes());
        der
    }
}

/// The DER SubjectPublicKeyInfo prefix of an uncompressed P-256 key.
fn hex_prefix() -> Vec<u8> {
    let hex = "3059301306072a8648ce3d020106082a8648ce3d030107034200";
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn client_data(kind: &str, challenge: &str, origin: &str) -> Vec<u8> {
    format!(r#"{{"type":"{kind}","challenge":"{challenge}","origin":"{origin}","crossOrigin":false}}"#).into_bytes()
}

/// `navigator.credentials.create` on `options`: a new passkey and its `toJSON()` answer.
fn create(options: &Value) -> (SoftKey, Value) {
    assert_eq!(options["rp"]["id"], RP_ID);
    let mut id = vec![0u8; 16];
    OsRng.fill_bytes(&mut id);
    let key = SoftKey {
        id,
        key: SigningKey::random(&mut OsRng),
        user_handle: unb64(options["user"]["id"].as_str().unwrap()),
        sign_count: 0,
    };
    let client_data = client_data("webauthn.create", options["challenge"].as_str().unwrap(), ORIGIN);
    let mut auth_data = Sha256::digest(RP_ID.as_bytes()).to_vec();
    auth_data.push(0x01 | 0x04 | 0x40); // UP, UV, attested credential data
    auth_data.extend(key.sign_count.to_be_bytes());
    auth_data.extend([0u8; 16]); // AAGUID
    auth_data.extend((key.id.len() as u16).to_be_bytes());
    auth_data.extend(&key.id);
    auth_data.extend(key.cose_key());
    let mut attestation = vec![0xa3];
    cbor_text("fmt", &mut attestation);
    cbor_text("none", &mut attestation);
    cbor_text("attStmt", &mut attestation);
    attestation.push(0xa0);
    cbor_text("authData", &mut attestation);
    cbor_bytes(&auth_data, &mut attestation);
    let answer = json!({
        "id": b64(&key.id),
        "rawId": b64(&key.id),
        "response": {
            "clientDataJSON": b64(&client_data),
            "authenticatorData": b64(&auth_data),
            "transports": ["internal"],
            "publicKey": b64(&key.spki()),
            "publicKeyAlgorithm": -7,
            "attestationObject": b64(&attestation),
        },
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
        "type": "public-key",
    });
    (key, answer)
}

/// `navigator.credentials.get` on `options` with `key` (counter moved to `sign_count`).
fn get(options: &Value, key: &SoftKey, sign_count: u32, origin: &str) -> Value {
    let client_data = client_data("webauthn.get", options["challenge"].as_str().unwrap(), origin);
    let mut auth_data = Sha256::digest(RP_ID.as_bytes()).to_vec();
    auth_data.push(0x01 | 0x04);
    auth_data.extend(sign_count.to_be_bytes());
    let mut signed = auth_data.clone();
    signed.extend(Sha256::digest(&client_data));
    let signature: Signature = key.key.sign(&signed);
    json!({
        "id": b64(&key.id),
        "rawId": b64(&key.id),
        "response": {
            "clientDataJSON": b64(&client_data),
            "authenticatorData": b64(&auth_data),
            "signature": b64(signature.to_der().as_bytes()),
            "userHandle": b64(&key.user_handle),
        },
        "authenticatorAttachment": "platform",
        "clientExtensionResults": {},
        "type": "public-key",
    })
}

async fn spawn() -> TestApp {
    spawn_app_on_manual_clock(|config| {
        config.public_url = PublicUrl::parse(ORIGIN).unwrap();
    })
    .await
}

async fn post(app: &TestApp, path: &str, access: Option<&str>, body: Value) -> reqwest::Response {
    let request = app.post(path).json(&body);
    let request = match access {
        Some(access) => request.bearer_auth(access),
        None => request,
    };
    request.send().await.unwrap()
}

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    let got = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(got, status, "{body}");
    body
}

/// Adds a passkey named `name` to the account of `access`.
async fn add_passkey(app: &TestApp, access: &str, password: &str, name: &str) -> (SoftKey, Value) {
    let start = post(
        app,
        "/account/passkeys/register/start",
        Some(access),
        json!({ "password": password }),
    )
    .await;
    let start = json_of(start, StatusCode::OK).await;
    let (key, credential) = create(&start["public_key"]);
    let finish = post(
        app,
        "/account/passkeys/register/finish",
        Some(access),
        json!({ "ceremony_id": start["ceremony_id"], "name": name, "credential": credential }),
    )
    .await;
    (key, json_of(finish, StatusCode::CREATED).await)
}

async fn list(app: &TestApp, access: &str) -> Vec<Value> {
    let body = json_of(app.get_bearer("/account/passkeys", access).await, StatusCode::OK).await;
    body["passkeys"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_passkey_is_added_with_the_password_then_signs_in_alone_once_per_ceremony() {
    let app = spawn().await;
    let (user, login) = app.new_session().await;

    // The creation options: passkey (resident key, user verification), attestation none.
    let start = post(
        &app,
        "/account/passkeys/register/start",
        Some(&login.access),
        json!({ "password": user.password }),
    )
    .await;
    assert_eq!(start.headers()["cache-control"], "no-store");
    let start = json_of(start, StatusCode::OK).await;
    let options = &start["public_key"];
    assert_eq!(options["rp"]["id"], RP_ID);
    assert_eq!(options["user"]["name"], user.username.as_str());
    assert_eq!(options["attestation"], "none");
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    assert!(start["ceremony_id"].as_str().unwrap().len() >= 43);

    let (key, credential) = create(options);
    let finish = post(
        &app,
        "/account/passkeys/register/finish",
        Some(&login.access),
        json!({ "ceremony_id": start["ceremony_id"], "name": "  Laptop ", "credential": credential }),
    )
    .await;
    let added = json_of(finish, StatusCode::CREATED).await;
    assert_eq!(added["name"], "Laptop");
    assert_eq!(added["id"], b64(&key.id));
    assert!(added["last_used_at"].is_null());
    // The registration ceremony was single use.
    let again = post(
        &app,
        "/account/passkeys/register/finish",
        Some(&login.access),
        json!({ "ceremony_id": start["ceremony_id"], "name": "Again", "credential": credential }),
    )
    .await;
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;
    assert_eq!(list(&app, &login.access).await.len(), 1);

    // Password-less: discoverable options, user verification required. The body is an object.
    for not_an_object in [json!([]), json!("AAA"), json!(1)] {
        let response = post(&app, "/login/passkey/start", None, not_an_object).await;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
    let start = json_of(
        post(&app, "/login/passkey/start", None, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let options = &start["public_key"];
    assert_eq!(options["userVerification"], "required");
    assert!(
        options
            .get("allowCredentials")
            .is_none_or(|a| a.as_array().unwrap().is_empty())
    );
    let assertion = get(options, &key, 1, ORIGIN);
    let signed_in = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": assertion }),
    )
    .await;
    assert!(!set_cookies(signed_in.headers()).is_empty(), "the cookies of a login");
    let body = json_of(signed_in, StatusCode::OK).await;
    let access = body["access_token"].as_str().unwrap();
    let profile = json_of(app.profile(access).await, StatusCode::OK).await;
    assert_eq!(profile["username"], user.username.as_str());
    let listed = list(&app, &login.access).await;
    assert!(listed[0]["last_used_at"].is_string(), "the use is recorded");

    // The same ceremony does not sign in twice.
    let replay = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": assertion }),
    )
    .await;
    assert_error(replay, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;
}

#[tokio::test]
async fn ceremonies_are_bound_to_their_flow_expire_and_refuse_bad_answers() {
    let app = spawn().await;
    let (user, login) = app.new_session().await;

    // Re-authentication: no password is 422, a wrong one 422 incorrect_password, none 401.
    let missing = post(&app, "/account/passkeys/register/start", Some(&login.access), json!({})).await;
    assert_field_error(missing, "password", "missing").await;
    let wrong = post(
        &app,
        "/account/passkeys/register/start",
        Some(&login.access),
        json!({ "password": "not the password" }),
    )
    .await;
    assert_field_error(wrong, "password", "incorrect_password").await;
    let anonymous = post(
        &app,
        "/account/passkeys/register/start",
        None,
        json!({ "password": "x" }),
    )
    .await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/account/passkeys").send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );

    let (key, _) = add_passkey(&app, &login.access, &user.password, "Phone").await;

    // A login ceremony is no registration ceremony, and another account's is not ours.
    let login_start = json_of(
        post(&app, "/login/passkey/start", None, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let (_, credential) = create(&json!({
        "rp": { "id": RP_ID },
        "user": { "id": b64(&[1; 16]) },
        "challenge": login_start["public_key"]["challenge"],
    }));
    let crossed = post(
        &app,
        "/account/passkeys/register/finish",
        Some(&login.access),
        json!({ "ceremony_id": login_start["ceremony_id"], "name": "X", "credential": credential }),
    )
    .await;
    assert_error(crossed, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;
    let (other, other_login) = app.new_session().await;
    let other_start = json_of(
        post(
            &app,
            "/account/passkeys/register/start",
            Some(&other_login.access),
            json!({ "password": other.password }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (_, credential) = create(&other_start["public_key"]);
    let stolen = post(
        &app,
        "/account/passkeys/register/finish",
        Some(&login.access),
        json!({ "ceremony_id": other_start["ceremony_id"], "name": "X", "credential": credential }),
    )
    .await;
    assert_error(stolen, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;

    // Bad input is 422 and uses up no ceremony; a wrong origin is refused.
    let start = json_of(
        post(&app, "/login/passkey/start", None, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let not_object = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": "abc" }),
    )
    .await;
    assert_field_error(not_object, "credential", "invalid_type").await;
    let no_raw_id = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": { "id": "x" } }),
    )
    .await;
    assert_field_error(no_raw_id, "credential", "invalid_format").await;
    let missing = post(&app, "/login/passkey/finish", None, json!({})).await;
    assert_eq!(missing.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let phished = get(&start["public_key"], &key, 1, "https://evil.example.test");
    let refused = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": phished }),
    )
    .await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "passkey_refused").await;

    // An unknown passkey is refused.
    let start = json_of(
        post(&app, "/login/passkey/start", None, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let (stranger, _) = create(&json!({
        "rp": { "id": RP_ID },
        "user": { "id": b64(&[2; 16]) },
        "challenge": start["public_key"]["challenge"],
    }));
    let unknown = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": get(&start["public_key"], &stranger, 1, ORIGIN) }),
    )
    .await;
    assert_error(unknown, StatusCode::UNAUTHORIZED, "passkey_refused").await;

    // A ceremony lives 5 minutes.
    let start = json_of(
        post(&app, "/login/passkey/start", None, json!({})).await,
        StatusCode::OK,
    )
    .await;
    app.advance(Duration::from_secs(301));
    let late = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": get(&start["public_key"], &key, 1, ORIGIN) }),
    )
    .await;
    assert_error(late, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;
    let unknown_id = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": "nope", "credential": get(&start["public_key"], &key, 1, ORIGIN) }),
    )
    .await;
    assert_error(unknown_id, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;
}

#[tokio::test]
async fn a_counter_that_goes_backwards_is_refused_as_a_clone() {
    let app = spawn().await;
    let (user, login) = app.new_session().await;
    let (key, _) = add_passkey(&app, &login.access, &user.password, "Key").await;
    let sign_in = |count: u32| {
        let app = &app;
        let key = &key;
        async move {
            let start = json_of(post(app, "/login/passkey/start", None, json!({})).await, StatusCode::OK).await;
            post(
                app,
                "/login/passkey/finish",
                None,
                json!({ "ceremony_id": start["ceremony_id"], "credential": get(&start["public_key"], key, count, ORIGIN) }),
            )
            .await
        }
    };
    assert_eq!(sign_in(5).await.status(), StatusCode::OK);
    assert_error(sign_in(5).await, StatusCode::UNAUTHORIZED, "passkey_refused").await;
    assert_error(sign_in(3).await, StatusCode::UNAUTHORIZED, "passkey_refused").await;
    assert_eq!(
        sign_in(6).await.status(),
        StatusCode::OK,
        "the real authenticator goes on"
    );

    // tessera_mfa_total{method="passkey"}: the registration and two sign-ins succeeded, the
    // two refused sign-ins failed (this app's own registry).
    let metrics = app.get("/metrics").send().await.unwrap().text().await.unwrap();
    let sample = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert_eq!(sample(r#"tessera_mfa_total{method="passkey",result="success"}"#), 3.0);
    assert_eq!(sample(r#"tessera_mfa_total{method="passkey",result="failure"}"#), 2.0);
}

#[tokio::test]
async fn with_a_passkey_a_password_login_asks_for_it_and_it_completes_the_login() {
    let app = spawn().await;
    let (user, login) = app.new_session().await;
    let (key, added) = add_passkey(&app, &login.access, &user.password, "Laptop").await;

    // The password alone no longer signs in: the challenge carries the passkey ceremony.
    let challenge = json_of(app.login(&user.email, &user.password).await, StatusCode::OK).await;
    assert_eq!(challenge["mfa_required"], true);
    assert_eq!(challenge["methods"], json!(["passkey"]));
    let options = &challenge["passkey"]["public_key"];
    assert_eq!(options["userVerification"], "preferred");
    assert_eq!(options["allowCredentials"][0]["id"], added["id"]);
    let mfa_token = challenge["mfa_token"].as_str().unwrap();

    // Malformed: 422, nothing used. Another login's ceremony: refused, an attempt used.
    let malformed = post(
        &app,
        "/login/mfa",
        None,
        json!({ "mfa_token": mfa_token, "passkey": { "ceremony_id": challenge["passkey"]["ceremony_id"] } }),
    )
    .await;
    assert_field_error(malformed, "passkey.credential", "missing").await;
    let both = post(
        &app,
        "/login/mfa",
        None,
        json!({ "mfa_token": mfa_token, "code": "123456", "passkey": { "ceremony_id": "x", "credential": {} } }),
    )
    .await;
    assert_eq!(both.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let second = json_of(app.login(&user.email, &user.password).await, StatusCode::OK).await;
    let crossed = post(
        &app,
        "/login/mfa",
        None,
        json!({ "mfa_token": mfa_token, "passkey": {
            "ceremony_id": second["passkey"]["ceremony_id"],
            "credential": get(&second["passkey"]["public_key"], &key, 1, ORIGIN),
        } }),
    )
    .await;
    assert_error(crossed, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    // The crossed try spent that ceremony (single use): its own login cannot use it either.
    let spent = post(
        &app,
        "/login/mfa",
        None,
        json!({ "mfa_token": second["mfa_token"], "passkey": {
            "ceremony_id": second["passkey"]["ceremony_id"],
            "credential": get(&second["passkey"]["public_key"], &key, 1, ORIGIN),
        } }),
    )
    .await;
    assert_error(spent, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;

    // The right answer completes the login, once.
    let third = json_of(app.login(&user.email, &user.password).await, StatusCode::OK).await;
    let answer = json!({ "mfa_token": third["mfa_token"], "passkey": {
        "ceremony_id": third["passkey"]["ceremony_id"],
        "credential": get(&third["passkey"]["public_key"], &key, 2, ORIGIN),
    } });
    let done = json_of(post(&app, "/login/mfa", None, answer.clone()).await, StatusCode::OK).await;
    assert!(done["access_token"].is_string());
    let again = post(&app, "/login/mfa", None, answer).await;
    assert_eq!(again.status(), StatusCode::UNAUTHORIZED);

    // Removal needs the password; then the password signs in alone again.
    let path = format!("/account/passkeys/{}", added["id"].as_str().unwrap());
    let no_password = app
        .delete(&path)
        .bearer_auth(&login.access)
        .json(&json!({ "password": "wrong password" }))
        .send()
        .await
        .unwrap();
    assert_field_error(no_password, "password", "incorrect_password").await;
    let unknown = app
        .delete("/account/passkeys/AAAA")
        .bearer_auth(&login.access)
        .json(&json!({ "password": user.password }))
        .send()
        .await
        .unwrap();
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let removed = app
        .delete(&path)
        .bearer_auth(&login.access)
        .json(&json!({ "password": user.password }))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    assert!(list(&app, &login.access).await.is_empty());
    let plain = json_of(app.login(&user.email, &user.password).await, StatusCode::OK).await;
    assert!(plain["access_token"].is_string());
}

#[tokio::test]
async fn deleting_the_account_takes_its_passkeys_along() {
    let app = spawn().await;
    let (user, login) = app.new_session().await;
    let (key, _) = add_passkey(&app, &login.access, &user.password, "Laptop").await;
    let deleted = app
        .delete("/account")
        .bearer_auth(&login.access)
        .json(&json!({ "password": user.password }))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    let start = json_of(
        post(&app, "/login/passkey/start", None, json!({})).await,
        StatusCode::OK,
    )
    .await;
    let refused = post(
        &app,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": get(&start["public_key"], &key, 1, ORIGIN) }),
    )
    .await;
    assert_error(refused, StatusCode::UNAUTHORIZED, "passkey_refused").await;
}

/// `tessera users mfa reset NAME` (the real binary on the server's database) removes the
/// account's passkeys too: the next login needs the password alone.
#[tokio::test]
async fn the_operator_reset_removes_the_passkeys_too() {
    let setup = crate::cli_users::sqlite().await;
    let app = &setup.app;
    let (user, login) = app.new_session().await;
    let added = app
        .state
        .mfa
        .add_passkey(tessera_core::store::Passkey {
            credential_id: vec![7; 16],
            user_id: user.id,
            name: "Lost phone".into(),
            user_handle: vec![8; 16],
            public_key: vec![1, 2, 3],
            state: vec![0; 7],
            sign_count: 0,
            transports: 0,
            created_at: 1_000,
            last_used_at: None,
        })
        .await
        .unwrap();
    assert!(added);
    let challenge = json_of(app.login(&user.email, &user.password).await, StatusCode::OK).await;
    assert_eq!(challenge["methods"], json!(["passkey"]));
    assert_eq!(
        challenge["passkey"]["public_key"]["allowCredentials"][0]["id"],
        b64(&[7; 16])
    );

    let output = setup.run(&["users", "mfa", "reset", &user.email], None).await;
    crate::cli_users::assert_exit(&output, 0, "users mfa reset");
    let events = crate::helpers::security_events(&output.stderr, "mfa_reset");
    assert_eq!(events.len(), 1, "{}", crate::cli_users::text(&output.stderr));
    assert_eq!(events[0]["passkeys_removed"], 1);
    assert!(list(app, &login.access).await.is_empty());
    let plain = json_of(app.login(&user.email, &user.password).await, StatusCode::OK).await;
    assert_eq!(plain["token_type"], "bearer");
}

/// Two instances sharing one PostgreSQL schema and one Redis key prefix (`services::cluster`),
/// with the same `PUBLIC_URL` (one relying party): every ceremony started on one instance is
/// finished on the other, and is finished once across both. Needs the services (skips without
/// them, fails under `TESSERA_REQUIRE_SERVICES=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ceremonies_started_on_one_instance_finish_on_the_other_once() {
    let Some(cluster) = crate::services::cluster(&[("PUBLIC_URL", ORIGIN)]).await else {
        return;
    };
    let (a, b) = (&cluster.a, &cluster.b);
    let (user, login) = a.new_session().await;

    // Registration: started on A, finished on B; the same ceremony then refused on A.
    let start = json_of(
        post(
            a,
            "/account/passkeys/register/start",
            Some(&login.access),
            json!({ "password": user.password }),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(start["public_key"]["rp"]["id"], RP_ID);
    let (mut key, credential) = create(&start["public_key"]);
    let finish = json!({ "ceremony_id": start["ceremony_id"], "name": "Laptop", "credential": credential });
    let added = json_of(
        post(
            b,
            "/account/passkeys/register/finish",
            Some(&login.access),
            finish.clone(),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(added["id"], b64(&key.id));
    let again = post(a, "/account/passkeys/register/finish", Some(&login.access), finish).await;
    assert_error(again, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;
    for app in cluster.instances() {
        let listed = list(app, &login.access).await;
        assert_eq!(listed.len(), 1, "one passkey, seen by both instances");
        assert_eq!(listed[0]["id"], added["id"]);
    }

    // Password-less: started on one instance, finished on the other, then refused on the first
    // (single use across instances), both ways round.
    for (started_on, finished_on) in [(b, a), (a, b)] {
        let start = json_of(
            post(started_on, "/login/passkey/start", None, json!({})).await,
            StatusCode::OK,
        )
        .await;
        key.sign_count += 1;
        let answer = json!({
            "ceremony_id": start["ceremony_id"],
            "credential": get(&start["public_key"], &key, key.sign_count, ORIGIN),
        });
        let signed_in = json_of(
            post(finished_on, "/login/passkey/finish", None, answer.clone()).await,
            StatusCode::OK,
        )
        .await;
        let access = signed_in["access_token"].as_str().unwrap();
        for app in cluster.instances() {
            let profile = json_of(app.profile(access).await, StatusCode::OK).await;
            assert_eq!(profile["username"], user.username.as_str());
        }
        let replay = post(started_on, "/login/passkey/finish", None, answer.clone()).await;
        assert_error(replay, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;
        let replay = post(finished_on, "/login/passkey/finish", None, answer).await;
        assert_error(replay, StatusCode::BAD_REQUEST, "invalid_passkey_ceremony").await;
    }

    // The sign counter is shared: a value already used on one instance is refused on the other.
    let start = json_of(post(a, "/login/passkey/start", None, json!({})).await, StatusCode::OK).await;
    let stale = post(
        b,
        "/login/passkey/finish",
        None,
        json!({ "ceremony_id": start["ceremony_id"], "credential": get(&start["public_key"], &key, key.sign_count, ORIGIN) }),
    )
    .await;
    assert_error(stale, StatusCode::UNAUTHORIZED, "passkey_refused").await;

    // Second factor: the password on A, the passkey on B; the same answer is refused on A.
    let challenge = json_of(a.login(&user.email, &user.password).await, StatusCode::OK).await;
    assert_eq!(challenge["mfa_required"], true);
    assert_eq!(challenge["methods"], json!(["passkey"]));
    assert_eq!(
        challenge["passkey"]["public_key"]["allowCredentials"][0]["id"],
        added["id"]
    );
    key.sign_count += 1;
    let answer = json!({ "mfa_token": challenge["mfa_token"], "passkey": {
        "ceremony_id": challenge["passkey"]["ceremony_id"],
        "credential": get(&challenge["passkey"]["public_key"], &key, key.sign_count, ORIGIN),
    } });
    let done = json_of(post(b, "/login/mfa", None, answer.clone()).await, StatusCode::OK).await;
    let access = done["access_token"].as_str().unwrap();
    let profile = json_of(a.profile(access).await, StatusCode::OK).await;
    assert_eq!(profile["username"], user.username.as_str());
    let replay = post(a, "/login/mfa", None, answer).await;
    assert_eq!(replay.status(), StatusCode::UNAUTHORIZED);

    // Both instances record the uses in the one database.
    let listed = list(b, &login.access).await;
    assert!(listed[0]["last_used_at"].is_string(), "{listed:?}");
}
