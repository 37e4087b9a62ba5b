//! Service accounts (G3) end to end: `tessera service-accounts create|list|disable` and
//! `tessera api-keys create --service-account` run as the real binary against the database of
//! a running server, on SQLite and (when TESSERA_TEST_DATABASE_URL is set) PostgreSQL.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli_users::{Setup, assert_exit, postgres, sqlite, text, wait_until_refused};
use crate::helpers::{PASSWORD, unique};

/// `tessera service-accounts create NAME [--roles ...]`; returns the id it printed.
async fn create_account(setup: &Setup, name: &str, roles: Option<&str>) -> i64 {
    let mut args = vec!["service-accounts", "create", name];
    if let Some(roles) = roles {
        args.extend(["--roles", roles]);
    }
    let output = setup.run(&args, None).await;
    assert_exit(&output, 0, "service-accounts create");
    text(&output.stdout).trim().parse().expect("the new id on stdout")
}

async fn create_key(setup: &Setup, account: &str, scopes: &str) -> std::process::Output {
    setup
        .run(
            &[
                "api-keys",
                "create",
                "--service-account",
                account,
                "--scopes",
                scopes,
                "--name",
                "deploy",
            ],
            None,
        )
        .await
}

async fn a_service_account_gets_a_key_that_works_and_never_logs_in(setup: &Setup) {
    // Arrange
    let name = format!("ci-bot-{}", unique());
    let id = create_account(setup, &name, Some("support,ops")).await;

    // Act: a key with `introspect`, which no user's key may hold.
    let output = create_key(setup, &name, "introspect,profile:read").await;

    // Assert: the key alone on stdout, working as the account, listed with its scopes.
    assert_exit(&output, 0, "api-keys create");
    let key = text(&output.stdout).trim().to_owned();
    assert_eq!(tessera_core::apikey::check_format(&key), Ok(()), "{key}");
    assert!(
        !text(&output.stderr).contains(&key),
        "the key is printed once, on stdout"
    );
    let response = setup.app.profile(&key).await;
    assert_eq!(response.status(), StatusCode::OK);
    let profile: Value = response.json().await.unwrap();
    assert_eq!(profile["user_id"], id);
    assert_eq!(profile["username"], name.as_str());
    let stored = setup.app.state.api_keys.list_keys(id, 0).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].name, "deploy");
    assert_eq!(stored[0].scopes, "profile:read introspect");
    assert_eq!(
        stored[0].key_hash,
        setup.app.state.keys.api_key_hasher.hash(&key).to_vec()
    );

    // Listed, with its roles, as a table and as JSON.
    let listed = setup.run(&["service-accounts", "list", "--json"], None).await;
    assert_exit(&listed, 0, "service-accounts list");
    let rows: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let row = rows.as_array().unwrap().iter().find(|r| r["id"] == id).expect("listed");
    assert_eq!(row["name"], name.as_str());
    assert_eq!(row["roles"], json!(["ops", "support"]));
    assert!(row["disabled_at"].is_null());
    let table = setup.run(&["service-accounts", "list"], None).await;
    assert_exit(&table, 0, "service-accounts list");
    assert!(text(&table.stdout).contains(&name));
    // `users create` accounts are not service accounts.
    let users = setup.run(&["users", "list", "--json"], None).await;
    assert!(
        text(&users.stdout).contains(&name),
        "still an account of the users table"
    );

    // A password login is refused exactly like a wrong password.
    let user = setup.app.register_user().await;
    let wrong = setup.app.login(&user.email, "not the right password").await;
    let (wrong_status, wrong_body) = (wrong.status(), wrong.text().await.unwrap());
    for password in [PASSWORD, "", tessera_core::store::SERVICE_ACCOUNT_PASSWORD_HASH] {
        let response = setup
            .app
            .post("/login")
            .json(&json!({ "username": name, "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), wrong_status);
        assert_eq!(response.text().await.unwrap(), wrong_body);
    }
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
}

async fn bad_requests_are_refused_and_nothing_is_created(setup: &Setup) {
    let name = format!("svc-{}", unique());
    let id = create_account(setup, &name, None).await;
    let user = setup.app.register_user().await;
    let cases: [(&[&str], &str); 6] = [
        (&["service-accounts", "create", &name], "already exists"),
        (&["service-accounts", "create", "x"], "name"),
        (
            &["service-accounts", "create", "okname", "--roles", "Bad Role"],
            "invalid role",
        ),
        (
            &["api-keys", "create", "--service-account", &name, "--scopes", "*"],
            "within",
        ),
        (
            &["api-keys", "create", "--service-account", &name, "--scopes", "nope"],
            "unknown scope",
        ),
        (
            &[
                "api-keys",
                "create",
                "--service-account",
                &user.username,
                "--scopes",
                "profile:read",
            ],
            "not a service account",
        ),
    ];
    for (args, message) in cases {
        let output = setup.run(args, None).await;
        assert_exit(&output, 1, &args.join(" "));
        assert!(
            text(&output.stderr).contains(message),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(output.stdout.is_empty(), "{args:?} printed {}", text(&output.stdout));
    }
    assert!(setup.app.state.api_keys.list_keys(id, 0).await.unwrap().is_empty());
    assert!(setup.app.state.users.find_by_login("okname").await.unwrap().is_none());
    // An admin service account may hold every scope.
    let admin = format!("svc-admin-{}", unique());
    create_account(setup, &admin, Some("admin")).await;
    assert_exit(&create_key(setup, &admin, "*").await, 0, "admin key with *");
}

async fn disabling_a_service_account_disables_its_keys(setup: &Setup) {
    // Arrange: a working key.
    let name = format!("svc-off-{}", unique());
    create_account(setup, &name, None).await;
    let output = create_key(setup, &name, "profile:read").await;
    assert_exit(&output, 0, "api-keys create");
    let key = text(&output.stdout).trim().to_owned();
    assert_eq!(setup.app.profile(&key).await.status(), StatusCode::OK);

    // Act
    let disabled = setup.run(&["service-accounts", "disable", &name], None).await;

    // Assert: refused by the running instance (it had the key cached), no new key for it,
    // listed as disabled; a user account is not disabled by this command.
    assert_exit(&disabled, 0, "service-accounts disable");
    wait_until_refused(&setup.app, &key, Duration::from_secs(10)).await;
    let again = create_key(setup, &name, "profile:read").await;
    assert_exit(&again, 1, "api-keys create for a disabled account");
    let listed = setup.run(&["service-accounts", "list", "--json"], None).await;
    let rows: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name.as_str())
        .unwrap();
    assert!(row["disabled_at"].is_string());
    let user = setup.app.register_user().await;
    let refused = setup.run(&["service-accounts", "disable", &user.username], None).await;
    assert_exit(&refused, 1, "service-accounts disable of a user");
    assert!(text(&refused.stderr).contains("not a service account"));
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    super::$name(&super::sqlite().await).await;
                }
            )*
        }
        mod postgres_backend {
            $(
                #[tokio::test]
                async fn $name() {
                    if let Some(setup) = super::postgres().await {
                        super::$name(&setup).await;
                    }
                }
            )*
        }
    };
}

on_both_backends!(
    a_service_account_gets_a_key_that_works_and_never_logs_in,
    bad_requests_are_refused_and_nothing_is_created,
    disabling_a_service_account_disables_its_keys,
);
