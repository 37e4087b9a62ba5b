//! The second factor (C3): TOTP enrolment with re-authentication, the login challenge and its
//! completion, replay refusal, one step of skew, recovery codes used once, the attempt budget and
//! lifetime of an `mfa_token`, removal, and the account's deletion taking the factor along. The
//! server runs on a manual clock, so the codes computed here are the ones it expects.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_core::sealing::is_sealed;
use tessera_core::totp::TotpSecret;
use tessera_server::config::Secret;

use crate::helpers::{
    TestApp, TestUser, assert_error, assert_field_error, read_login, security_events, set_cookies,
    spawn_app_on_manual_clock,
};

/// A user with a session and a confirmed authenticator app.
struct Enrolled {
    user: TestUser,
    access: String,
    secret: TotpSecret,
    recovery_codes: Vec<String>,
}

/// The server's now: its manual clock, or the system clock (the CLI tests' servers).
fn now(app: &TestApp) -> i64 {
    use tessera_server::clock::{Clock, SystemClock};
    match &app.clock {
        Some(clock) => clock.now(),
        None => SystemClock.now(),
    }
}

/// The code the app shows `offset` seconds from the server's now.
fn code(app: &TestApp, secret: &TotpSecret, offset: i64) -> String {
    secret.code_at(now(app) + offset).to_string()
}

async fn post_json(app: &TestApp, path: &str, access: &str, body: Value) -> reqwest::Response {
    app.post(path).bearer_auth(access).json(&body).send().await.unwrap()
}

async fn start(app: &TestApp, access: &str, password: &str) -> reqwest::Response {
    post_json(app, "/account/mfa/totp", access, json!({ "password": password })).await
}

async fn status(app: &TestApp, access: &str) -> Value {
    let response = app.get_bearer("/account/mfa", access).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Registers, signs in, enrols and confirms; then moves a manual clock one step on, so the
/// confirming code's step is in the past.
async fn enrolled(app: &TestApp) -> Enrolled {
    let (user, login) = app.new_session().await;
    let response = start(app, &login.access, &user.password).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    let secret = TotpSecret::from_base32(body["secret"].as_str().unwrap()).unwrap();
    let confirm = post_json(
        app,
        "/account/mfa/totp/confirm",
        &login.access,
        json!({ "code": code(app, &secret, 0) }),
    )
    .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let body: Value = confirm.json().await.unwrap();
    let recovery_codes: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    if app.clock.is_some() {
        app.advance(Duration::from_secs(30));
    }
    Enrolled {
        user,
        access: login.access,
        secret,
        recovery_codes,
    }
}

/// POST /login for `user`, asserting the challenge; its `mfa_token`.
async fn challenge(app: &TestApp, user: &TestUser) -> String {
    let response = app.login(&user.email, &user.password).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        set_cookies(response.headers()).is_empty(),
        "no cookies before the second factor"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["mfa_required"], true);
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none());
    body["mfa_token"].as_str().unwrap().to_owned()
}

async fn login_mfa(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/login/mfa").json(&body).send().await.unwrap()
}

#[tokio::test]
async fn enrolment_then_login_asks_for_a_code_and_the_code_signs_in_once() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let (user, login) = app.new_session().await;
    assert_eq!(
        status(&app, &login.access).await,
        json!({ "totp_enrolled": false, "totp_pending": false, "recovery_codes_left": 0 })
    );

    // Start: a secret, its URI and QR code; pending until confirmed.
    let response = start(&app, &login.access, &user.password).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/"), "{uri}");
    assert!(uri.contains(&format!("secret={}", body["secret"].as_str().unwrap())));
    assert!(body["qr_svg"].as_str().unwrap().contains("<svg"));
    let secret = TotpSecret::from_base32(body["secret"].as_str().unwrap()).unwrap();
    assert_eq!(status(&app, &login.access).await["totp_pending"], true);
    // A pending app does not change the login.
    assert_eq!(
        read_login(app.login(&user.email, &user.password).await).await.body["token_type"],
        "bearer"
    );

    // Confirm: a wrong code is a field error; the right one answers the recovery codes.
    let wrong = post_json(
        &app,
        "/account/mfa/totp/confirm",
        &login.access,
        json!({ "code": "000000" }),
    )
    .await;
    let wrong_is_right = code(&app, &secret, 0) == "000000";
    if !wrong_is_right {
        assert_field_error(wrong, "code", "incorrect_code").await;
    }
    let malformed = post_json(
        &app,
        "/account/mfa/totp/confirm",
        &login.access,
        json!({ "code": "12ab" }),
    )
    .await;
    assert_field_error(malformed, "code", "invalid_format").await;
    let confirm = post_json(
        &app,
        "/account/mfa/totp/confirm",
        &login.access,
        json!({ "code": code(&app, &secret, 0) }),
    )
    .await;
    assert_eq!(confirm.status(), StatusCode::OK);
    let body: Value = confirm.json().await.unwrap();
    assert_eq!(body["recovery_codes"].as_array().unwrap().len(), 10);
    assert_eq!(
        status(&app, &login.access).await,
        json!({ "totp_enrolled": true, "totp_pending": false, "recovery_codes_left": 10 })
    );
    // Starting again while enrolled is refused.
    let again = start(&app, &login.access, &user.password).await;
    assert_error(again, StatusCode::CONFLICT, "mfa_already_enrolled").await;

    // Login: no session yet, only a challenge.
    app.advance(Duration::from_secs(30));
    let token = challenge(&app, &user).await;
    let now_code = code(&app, &secret, 0);
    let response = login_mfa(&app, json!({ "mfa_token": token, "code": now_code })).await;
    let session = read_login(response).await;
    assert!(session.set_cookies.iter().any(|c| c.starts_with("access_token=")));
    assert_eq!(app.profile(&session.access).await.status(), StatusCode::OK);

    // The same code again, with a fresh challenge, is a replay.
    let token = challenge(&app, &user).await;
    let replay = login_mfa(&app, json!({ "mfa_token": token, "code": now_code })).await;
    let (headers, body) = assert_error(replay, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    assert_eq!(body["details"]["attempts_left"], 4);
    assert!(headers.get("set-cookie").is_none());
    // The next step's code works with the same token.
    app.advance(Duration::from_secs(30));
    let response = login_mfa(&app, json!({ "mfa_token": token, "code": code(&app, &secret, 0) })).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_code_of_the_previous_step_is_accepted_but_not_one_two_steps_back() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let enrolled = enrolled(&app).await;
    app.advance(Duration::from_secs(90));
    let token = challenge(&app, &enrolled.user).await;

    let two_back = code(&app, &enrolled.secret, -60);
    if two_back != code(&app, &enrolled.secret, 0) && two_back != code(&app, &enrolled.secret, -30) {
        let response = login_mfa(&app, json!({ "mfa_token": token, "code": two_back })).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    let previous = code(&app, &enrolled.secret, -30);
    let response = login_mfa(&app, json!({ "mfa_token": token, "code": previous })).await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_recovery_code_signs_in_once() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let enrolled = enrolled(&app).await;
    let recovery = &enrolled.recovery_codes[3];

    // Typed in capitals with spaces instead of hyphens: the same code.
    let token = challenge(&app, &enrolled.user).await;
    let typed = recovery.to_uppercase().replace('-', " ");
    let response = login_mfa(&app, json!({ "mfa_token": token, "recovery_code": typed })).await;
    let session = read_login(response).await;
    assert_eq!(app.profile(&session.access).await.status(), StatusCode::OK);
    assert_eq!(status(&app, &enrolled.access).await["recovery_codes_left"], 9);

    let token = challenge(&app, &enrolled.user).await;
    let again = login_mfa(&app, json!({ "mfa_token": token, "recovery_code": recovery })).await;
    assert_error(again, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    // Another code of the set still works.
    let other = login_mfa(
        &app,
        json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[4] }),
    )
    .await;
    assert_eq!(other.status(), StatusCode::OK);
}

#[tokio::test]
async fn five_wrong_codes_void_the_token_and_a_used_or_expired_token_is_refused() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let enrolled = enrolled(&app).await;
    let right = code(&app, &enrolled.secret, 0);
    let wrong = if right == "123456" { "654321" } else { "123456" };

    let token = challenge(&app, &enrolled.user).await;
    for left in (0..5).rev() {
        let response = login_mfa(&app, json!({ "mfa_token": token, "code": wrong })).await;
        let (_, body) = assert_error(response, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
        assert_eq!(body["details"]["attempts_left"], left);
    }
    let response = login_mfa(&app, json!({ "mfa_token": token, "code": right })).await;
    assert_error(response, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;

    // Single use: a token that completed a login is spent.
    let token = challenge(&app, &enrolled.user).await;
    let response = login_mfa(&app, json!({ "mfa_token": token, "code": right })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let reuse = login_mfa(
        &app,
        json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[0] }),
    )
    .await;
    assert_error(reuse, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;

    // Five minutes, then void.
    app.advance(Duration::from_secs(30));
    let token = challenge(&app, &enrolled.user).await;
    app.advance(Duration::from_secs(301));
    let late = login_mfa(
        &app,
        json!({ "mfa_token": token, "code": code(&app, &enrolled.secret, 0) }),
    )
    .await;
    assert_error(late, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;

    // Unknown tokens and bad input.
    let unknown = login_mfa(&app, json!({ "mfa_token": "nope", "code": right })).await;
    assert_error(unknown, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    let neither = login_mfa(&app, json!({ "mfa_token": "nope" })).await;
    assert_field_error(neither, "code", "missing").await;
    let both = login_mfa(
        &app,
        json!({ "mfa_token": "nope", "code": right, "recovery_code": enrolled.recovery_codes[1] }),
    )
    .await;
    assert_field_error(both, "recovery_code", "conflicting_fields").await;
    let no_token = login_mfa(&app, json!({ "code": right })).await;
    assert_field_error(no_token, "mfa_token", "missing").await;
    let malformed = login_mfa(&app, json!({ "mfa_token": "nope", "recovery_code": "short" })).await;
    assert_field_error(malformed, "recovery_code", "invalid_format").await;
}

#[tokio::test]
async fn codes_count_against_the_accounts_login_limit() {
    let app = spawn_app_on_manual_clock(|config| {
        config.rate_limit_login_account = "6/minute".parse().unwrap();
    })
    .await;
    let enrolled = enrolled(&app).await;
    // Past both windows of the sliding limit: a clean budget.
    app.advance(Duration::from_secs(150));
    let right = code(&app, &enrolled.secret, 0);
    let wrong = if right == "123456" { "654321" } else { "123456" };
    // The login's password: one; two wrong codes: two more (three of six used); the same again.
    let token = challenge(&app, &enrolled.user).await;
    for _ in 0..2 {
        let response = login_mfa(&app, json!({ "mfa_token": token, "code": wrong })).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    let token = challenge(&app, &enrolled.user).await;
    for _ in 0..2 {
        let response = login_mfa(&app, json!({ "mfa_token": token, "code": wrong })).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    }
    // Six used: even the right code waits for the limit.
    let response = login_mfa(&app, json!({ "mfa_token": token, "code": right })).await;
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

#[tokio::test]
async fn codes_are_limited_per_client_ip_like_logins() {
    let app = spawn_app_on_manual_clock(|config| {
        config.rate_limit_login = "3/minute".parse().unwrap();
    })
    .await;
    // Unknown tokens cost a database write each: a client cannot send them without bound.
    for _ in 0..3 {
        let response = login_mfa(&app, json!({ "mfa_token": "x".repeat(43), "code": "123456" })).await;
        assert_error(response, StatusCode::UNAUTHORIZED, "invalid_mfa_token").await;
    }
    let response = login_mfa(&app, json!({ "mfa_token": "x".repeat(43), "code": "123456" })).await;
    assert!(response.headers().get("retry-after").is_some());
    assert_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    // The password logins' own budget is untouched by the codes.
    let user = app.register_user().await;
    assert_eq!(app.login(&user.email, &user.password).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn factor_changes_need_the_password_and_removal_restores_the_plain_login() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let (user, login) = app.new_session().await;
    // Without or with a wrong password, nothing starts.
    let missing = post_json(&app, "/account/mfa/totp", &login.access, json!({})).await;
    assert_field_error(missing, "password", "missing").await;
    let wrong = start(&app, &login.access, "not the password").await;
    assert_field_error(wrong, "password", "incorrect_password").await;
    assert_eq!(status(&app, &login.access).await["totp_pending"], false);
    // Nothing pending to confirm, nothing to remove, no codes to renew.
    let confirm = post_json(
        &app,
        "/account/mfa/totp/confirm",
        &login.access,
        json!({ "code": "123456" }),
    )
    .await;
    assert_error(confirm, StatusCode::CONFLICT, "mfa_not_enrolled").await;
    let remove = app
        .delete("/account/mfa/totp")
        .bearer_auth(&login.access)
        .json(&json!({ "password": user.password }))
        .send()
        .await
        .unwrap();
    assert_error(remove, StatusCode::NOT_FOUND, "not_found").await;
    let renew = post_json(
        &app,
        "/account/mfa/recovery-codes",
        &login.access,
        json!({ "password": user.password }),
    )
    .await;
    assert_error(renew, StatusCode::CONFLICT, "mfa_not_enrolled").await;

    let enrolled = enrolled(&app).await;
    // New recovery codes need the password and void the old set.
    let renew = post_json(&app, "/account/mfa/recovery-codes", &enrolled.access, json!({})).await;
    assert_field_error(renew, "password", "missing").await;
    let renew = post_json(
        &app,
        "/account/mfa/recovery-codes",
        &enrolled.access,
        json!({ "password": enrolled.user.password }),
    )
    .await;
    assert_eq!(renew.status(), StatusCode::OK);
    let fresh: Value = renew.json().await.unwrap();
    assert_eq!(fresh["recovery_codes"].as_array().unwrap().len(), 10);
    let token = challenge(&app, &enrolled.user).await;
    let old = login_mfa(
        &app,
        json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[0] }),
    )
    .await;
    assert_error(old, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
    let new = login_mfa(
        &app,
        json!({ "mfa_token": token, "recovery_code": fresh["recovery_codes"][0] }),
    )
    .await;
    assert_eq!(new.status(), StatusCode::OK);

    // Removal needs the password, then the login is a plain one again.
    let remove = |password: Value| {
        app.delete("/account/mfa/totp")
            .bearer_auth(&enrolled.access)
            .json(&json!({ "password": password }))
            .send()
    };
    assert_field_error(
        remove(json!("wrong password")).await.unwrap(),
        "password",
        "incorrect_password",
    )
    .await;
    let removed = remove(json!(enrolled.user.password)).await.unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    let login = read_login(app.login(&enrolled.user.email, &enrolled.user.password).await).await;
    assert_eq!(login.body["token_type"], "bearer");
    assert_eq!(
        status(&app, &enrolled.access).await,
        json!({ "totp_enrolled": false, "totp_pending": false, "recovery_codes_left": 0 })
    );
}

#[tokio::test]
async fn an_api_key_cannot_change_factors() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let (user, login) = app.new_session().await;
    let key: Value = app
        .post("/api-keys")
        .bearer_auth(&login.access)
        .json(&json!({ "name": "ci", "scopes": ["sessions:write"] }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = key["key"].as_str().unwrap();
    let response = start(&app, key, &user.password).await;
    assert_error(response, StatusCode::FORBIDDEN, "session_required").await;
    let response = post_json(&app, "/account/mfa/totp/confirm", key, json!({ "code": "123456" })).await;
    assert_error(response, StatusCode::FORBIDDEN, "session_required").await;
}

#[tokio::test]
async fn secrets_are_sealed_under_master_key_and_go_with_the_account() {
    let app = spawn_app_on_manual_clock(|config| {
        config.master_key = Some(Secret::new(b"an mfa test master key of 32+ bytes!".to_vec()));
    })
    .await;
    let enrolled = enrolled(&app).await;
    let stored = app.state.mfa.find_totp(enrolled.user.id).await.unwrap().unwrap();
    assert!(is_sealed(&stored.secret), "the stored secret is sealed");
    assert_ne!(stored.secret, enrolled.secret.as_bytes());
    // Sealed or not, it signs in.
    let token = challenge(&app, &enrolled.user).await;
    let response = login_mfa(
        &app,
        json!({ "mfa_token": token, "code": code(&app, &enrolled.secret, 0) }),
    )
    .await;
    assert_eq!(response.status(), StatusCode::OK);

    // DELETE /account takes the factor and the codes along.
    let deleted = app
        .delete("/account")
        .bearer_auth(&enrolled.access)
        .json(&json!({ "password": enrolled.user.password }))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert_eq!(app.state.mfa.find_totp(enrolled.user.id).await.unwrap(), None);
    assert_eq!(app.state.mfa.recovery_codes_left(enrolled.user.id).await.unwrap(), 0);
}

/// `tessera users mfa reset NAME` (run as the real binary on the server's database): the factor
/// is gone, the event `mfa_reset` is logged, the next login needs the password alone.
async fn operator_reset_removes_the_factor(setup: &crate::cli_users::Setup) {
    let app = &setup.app;
    let enrolled = enrolled(app).await;
    let output = setup.run(&["users", "mfa", "reset", &enrolled.user.email], None).await;
    crate::cli_users::assert_exit(&output, 0, "users mfa reset");
    assert!(crate::cli_users::text(&output.stdout).contains("removed the second factor"));
    let events = security_events(&output.stderr, "mfa_reset");
    assert_eq!(events.len(), 1, "{}", crate::cli_users::text(&output.stderr));
    assert_eq!(events[0]["user_id"], enrolled.user.id);
    let login = read_login(app.login(&enrolled.user.email, &enrolled.user.password).await).await;
    assert_eq!(login.body["token_type"], "bearer");
    assert_eq!(status(app, &enrolled.access).await["totp_enrolled"], false);

    // Nothing left to reset; an unknown account is an error.
    let again = setup
        .run(&["users", "mfa", "reset", &enrolled.user.username], None)
        .await;
    crate::cli_users::assert_exit(&again, 0, "users mfa reset again");
    assert!(crate::cli_users::text(&again.stdout).contains("has no second factor"));
    assert!(security_events(&again.stderr, "mfa_reset").is_empty());
    let unknown = setup.run(&["users", "mfa", "reset", "nobody@example.com"], None).await;
    crate::cli_users::assert_exit(&unknown, 1, "users mfa reset of an unknown account");
}

#[tokio::test]
async fn operator_reset_removes_the_factor_on_sqlite() {
    operator_reset_removes_the_factor(&crate::cli_users::sqlite().await).await;
}

#[tokio::test]
async fn operator_reset_removes_the_factor_on_postgres() {
    if let Some(setup) = crate::cli_users::postgres().await {
        operator_reset_removes_the_factor(&setup).await;
    }
}

/// Two concurrent sign-ins with the same code, on two instances sharing PostgreSQL and Redis:
/// exactly one gets a session, the other is told the code was used (the step is checked and set
/// in one conditional update on the shared database).
#[tokio::test]
async fn one_code_signs_in_once_across_instances_even_when_raced() {
    use tessera_server::clock::{Clock, SystemClock};

    let Some(cluster) = crate::services::cluster(&[]).await else {
        return;
    };
    // Keep clear of a step boundary: everything below happens within one 30-second step.
    let into_step = SystemClock.now().rem_euclid(30);
    if into_step > 20 {
        tokio::time::sleep(Duration::from_secs((31 - into_step) as u64)).await;
    }
    let (user, login) = cluster.a.new_session().await;
    let started: Value = start(&cluster.a, &login.access, &user.password)
        .await
        .json()
        .await
        .unwrap();
    let secret = TotpSecret::from_base32(started["secret"].as_str().unwrap()).unwrap();
    let now = SystemClock.now();
    // Confirmed with the previous step's code (skew), so the current step is still unused.
    let confirm = post_json(
        &cluster.a,
        "/account/mfa/totp/confirm",
        &login.access,
        json!({ "code": secret.code_at(now - 30).to_string() }),
    )
    .await;
    assert_eq!(confirm.status(), StatusCode::OK);

    let token_a = challenge(&cluster.a, &user).await;
    let token_b = challenge(&cluster.b, &user).await;
    let code = secret.code_at(now).to_string();
    let (on_a, on_b) = tokio::join!(
        login_mfa(&cluster.a, json!({ "mfa_token": token_a, "code": code })),
        login_mfa(&cluster.b, json!({ "mfa_token": token_b, "code": code })),
    );
    let statuses = [on_a.status(), on_b.status()];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    let refused = if on_a.status() == StatusCode::OK { on_b } else { on_a };
    assert_error(refused, StatusCode::UNAUTHORIZED, "invalid_mfa_code").await;
}

/// One `mfa_token` raced with two right answers (a code and a recovery code) completes one
/// login.
#[tokio::test]
async fn one_token_completes_one_login_even_when_raced() {
    let app = spawn_app_on_manual_clock(|_| {}).await;
    let enrolled = enrolled(&app).await;
    let token = challenge(&app, &enrolled.user).await;
    let (first, second) = tokio::join!(
        login_mfa(
            &app,
            json!({ "mfa_token": token, "code": code(&app, &enrolled.secret, 0) })
        ),
        login_mfa(
            &app,
            json!({ "mfa_token": token, "recovery_code": enrolled.recovery_codes[0] })
        ),
    );
    let statuses = [first.status(), second.status()];
    assert_eq!(
        statuses.iter().filter(|s| **s == StatusCode::OK).count(),
        1,
        "{statuses:?}"
    );
    assert!(statuses.contains(&StatusCode::UNAUTHORIZED), "{statuses:?}");
}
