//! `tessera users ...` and `tessera migrate` (B13), run as the real binary against the database
//! of a running server: what the operator does must show in the HTTP API of that server.
//!
//! Every account test runs against SQLite (the server's own file) and, when
//! TESSERA_TEST_DATABASE_URL is set, against PostgreSQL (a fresh schema per test).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::Connection;
use sqlx::postgres::PgConnection;

use crate::helpers::{PASSWORD, TestApp, assert_error, assert_token_rejected, security_events, spawn_app, unique};
use crate::services::{self, TestSchema};

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");

/// Cheap hashing for the CLI, as the test servers use.
const FAST_HASHING: [(&str, &str); 2] = [("PASSWORD_HASH_MEMORY_KIB", "256"), ("PASSWORD_HASH_ITERATIONS", "1")];

/// Runs `tessera args...` with exactly `env` (and PATH) in an empty directory (no `.env`),
/// writing `stdin` to its standard input (or giving it none).
pub(crate) async fn tessera(args: &[&str], env: &[(String, String)], stdin: Option<&str>) -> Output {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let env = env.to_vec();
    let stdin = stdin.map(str::to_owned);
    tokio::task::spawn_blocking(move || {
        let cwd = tempfile::tempdir().unwrap();
        let mut command = Command::new(BINARY);
        command
            .args(&args)
            .env_clear()
            .current_dir(cwd.path())
            .envs(env)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        let mut child = command.spawn().expect("run tessera");
        if let Some(text) = stdin {
            use std::io::Write;
            let mut pipe = child.stdin.take().unwrap();
            // A command that stops before reading (invalid configuration) closes the pipe.
            if let Err(error) = pipe.write_all(text.as_bytes()) {
                assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe, "{error}");
            }
        }
        child.wait_with_output().expect("tessera output")
    })
    .await
    .unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts the exit code, showing both streams when it is wrong.
pub(crate) fn assert_exit(output: &Output, code: i32, what: &str) {
    assert_eq!(
        output.status.code(),
        Some(code),
        "{what}: stdout {} stderr {}",
        text(&output.stdout),
        text(&output.stderr)
    );
}

/// A running server and the environment that points the CLI at its database.
pub(crate) struct Setup {
    pub(crate) app: TestApp,
    pub(crate) env: Vec<(String, String)>,
    /// Dropped after the app (fields drop in order).
    _schema: Option<TestSchema>,
}

impl Setup {
    pub(crate) async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        tessera(args, &self.env, stdin).await
    }

    /// `tessera users create`, password on stdin; the exit status is not checked.
    async fn create(&self, email: &str, username: &str, password: &str) -> Output {
        self.run(
            &[
                "users",
                "create",
                "--email",
                email,
                "--username",
                username,
                "--password-stdin",
            ],
            Some(&format!("{password}\n")),
        )
        .await
    }
}

fn env_with(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    FAST_HASHING
        .iter()
        .chain(pairs)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A server on its own SQLite file, and the CLI pointed at the same DATA_DIR.
pub(crate) async fn sqlite() -> Setup {
    let app = spawn_app().await;
    let env = env_with(&[("DATA_DIR", app.dir.path().to_str().unwrap())]);
    Setup {
        app,
        env,
        _schema: None,
    }
}

/// A server on a fresh PostgreSQL schema, and the CLI pointed at the same DATABASE_URL; `None`
/// (the test skips) when TESSERA_TEST_DATABASE_URL is not set.
pub(crate) async fn postgres() -> Option<Setup> {
    let base = services::database_url()?;
    let schema = TestSchema::create(&base).await;
    let url = schema.url();
    let app = services::spawn_with_config(services::config(&[("DATABASE_URL", url.as_str())])).await;
    Some(Setup {
        app,
        env: env_with(&[("DATABASE_URL", url.as_str())]),
        _schema: Some(schema),
    })
}

/// Waits (at most `give_up`) until `access` is refused by GET /profile; returns how long.
pub(crate) async fn wait_until_refused(app: &TestApp, access: &str, give_up: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let response = app.profile(access).await;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                assert_token_rejected(response, "invalid_token").await;
                return started.elapsed();
            }
            other => panic!("GET /profile answered {other}"),
        }
        assert!(
            started.elapsed() < give_up,
            "the access token of a disabled account was still accepted after {give_up:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn created_account_logs_in_through_the_api(setup: &Setup) {
    // Arrange
    let n = unique();
    let (email, username) = (format!("cli{n}@example.com"), format!("cli_{n}"));
    // Act
    let output = setup.create(&format!("  {email} "), &username, PASSWORD).await;
    // Assert: the id on stdout, and the account logs in with the password from stdin (the
    // trailing newline was not part of it) by email and by username.
    assert_exit(&output, 0, "users create");
    let id: i64 = text(&output.stdout).trim().parse().expect("the new id on stdout");
    let response = setup.app.login(&email, PASSWORD).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let profile: Value = setup
        .app
        .profile(body["access_token"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(profile["user_id"], id);
    assert_eq!(profile["username"], username.as_str());
    let by_username = setup
        .app
        .post("/login")
        .json(&serde_json::json!({ "username": username, "password": PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(by_username.status(), StatusCode::OK);
    // The hash is argon2id, with the configured parameters, like POST /register's.
    let stored = setup.app.state.users.find_by_id(id).await.unwrap().unwrap();
    assert!(
        stored.password_hash.starts_with("$argon2id$v=19$m=256,t=1,p=1$"),
        "{}",
        stored.password_hash
    );
}

async fn weak_passwords_and_bad_fields_are_refused_and_nothing_is_created(setup: &Setup) {
    let n = unique();
    let (email, username) = (format!("weak{n}@example.com"), format!("weak_{n}"));
    let cases: [(&str, &str, &str, &str); 5] = [
        (&email, &username, "password", "password_too_common"),
        (&email, &username, "short", "password_too_short"),
        (&email, &username, &username, "password_equals_username"),
        ("not-an-email", &username, PASSWORD, "invalid_email"),
        (&email, "x", PASSWORD, "invalid_username"),
    ];
    for (email, username, password, code) in cases {
        let output = setup.create(email, username, password).await;
        assert_exit(&output, 1, code);
        assert!(output.stdout.is_empty(), "{code}: no id printed");
        let stderr = text(&output.stderr);
        assert!(stderr.contains(code), "{code}: {stderr}");
        assert!(!stderr.contains(PASSWORD), "the password was echoed: {stderr}");
    }
    assert!(setup.app.state.users.find_by_login(&email).await.unwrap().is_none());
    // No password at all: stdin is not a terminal and --password-stdin is missing (usage, 2).
    let output = setup
        .run(&["users", "create", "--email", &email, "--username", &username], None)
        .await;
    assert_exit(&output, 2, "no password source");
    assert!(text(&output.stderr).contains("--password-stdin"));
}

async fn duplicate_email_or_username_is_refused(setup: &Setup) {
    let existing = setup.app.register_user().await;
    let n = unique();
    let same_email = setup
        .create(&existing.email.to_uppercase(), &format!("other_{n}"), PASSWORD)
        .await;
    assert_exit(&same_email, 1, "duplicate email");
    assert!(
        text(&same_email.stderr).contains("an account with this email already exists"),
        "{}",
        text(&same_email.stderr)
    );
    let same_username = setup
        .create(
            &format!("other{n}@example.com"),
            &existing.username.to_uppercase(),
            PASSWORD,
        )
        .await;
    assert_exit(&same_username, 1, "duplicate username");
    assert!(
        text(&same_username.stderr).contains("an account with this username already exists"),
        "{}",
        text(&same_username.stderr)
    );
}

async fn disable_revokes_sessions_and_blocks_login_until_enable(setup: &Setup) {
    // Arrange: two live sessions, tokens in hand.
    let app = &setup.app;
    let (user, first) = app.new_session().await;
    let second = app.login_user(&user).await;
    assert_eq!(app.profile(&first.access).await.status(), StatusCode::OK);

    // Act
    let started = Instant::now();
    let output = setup.run(&["users", "disable", &user.username], None).await;
    let cli_time = started.elapsed();

    // Assert: the running server refuses the access tokens issued before, refresh and login.
    assert_exit(&output, 0, "users disable");
    let stdout = text(&output.stdout);
    assert!(stdout.contains(&format!("disabled user {}", user.id)), "{stdout}");
    assert!(stdout.contains("revoked 2 live session(s)"), "{stdout}");
    // The audit event, as a JSON line on stderr (S6).
    let events = security_events(&output.stderr, "user_disabled");
    assert_eq!(events.len(), 1, "{}", text(&output.stderr));
    let event = &events[0];
    assert_eq!(event["user_id"], user.id);
    assert_eq!(event["sessions_revoked"], 2);
    let waited = wait_until_refused(app, &first.access, Duration::from_secs(5)).await;
    eprintln!("users disable took {cli_time:?}; the server refused the token {waited:?} after it returned");
    assert_token_rejected(app.profile(&second.access).await, "invalid_token").await;
    assert_token_rejected(app.refresh(&first.refresh).await, "invalid_token").await;
    assert_error(
        app.login(&user.email, &user.password).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    // Disabling again is harmless and says so.
    let again = setup.run(&["users", "disable", &user.email], None).await;
    assert_exit(&again, 0, "disable twice");
    assert!(
        text(&again.stdout).contains("already disabled"),
        "{}",
        text(&again.stdout)
    );

    // Enable (by id): login works again; the revoked sessions stay revoked.
    let output = setup.run(&["users", "enable", &user.id.to_string()], None).await;
    assert_exit(&output, 0, "users enable");
    assert!(text(&output.stdout).contains(&format!("enabled user {}", user.id)));
    let fresh = app.login_user(&user).await;
    assert_eq!(app.profile(&fresh.access).await.status(), StatusCode::OK);
    assert_token_rejected(app.profile(&first.access).await, "invalid_token").await;

    // An unknown account is an error, not a silent success.
    let missing = setup.run(&["users", "disable", "nobody-at-all"], None).await;
    assert_exit(&missing, 1, "unknown user");
    assert!(
        text(&missing.stderr).contains("no account"),
        "{}",
        text(&missing.stderr)
    );
}

async fn list_shows_accounts_as_a_table_and_as_json(setup: &Setup) {
    let user = setup.app.register_user().await;
    let disabled = setup.app.register_user().await;
    let output = setup.run(&["users", "disable", &disabled.email], None).await;
    assert_exit(&output, 0, "disable");

    let table = setup.run(&["users", "list", "--limit", "1000"], None).await;
    assert_exit(&table, 0, "users list");
    let stdout = text(&table.stdout);
    let header = stdout.lines().next().unwrap();
    for column in ["id", "email", "username", "created", "disabled"] {
        assert!(header.contains(column), "{header}");
    }
    let row = stdout
        .lines()
        .find(|l| l.contains(&user.email))
        .unwrap_or_else(|| panic!("{} not listed: {stdout}", user.email));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[0], user.id.to_string());
    assert_eq!(fields[2], user.username);
    assert!(crate::helpers::is_rfc3339_utc(fields[3]), "{row}");
    assert_eq!(fields[4], "-", "{row}");
    let row = stdout.lines().find(|l| l.contains(&disabled.email)).unwrap();
    assert!(
        crate::helpers::is_rfc3339_utc(row.split_whitespace().nth(4).unwrap()),
        "{row}"
    );

    let json = setup.run(&["users", "list", "--json", "--limit", "1000"], None).await;
    assert_exit(&json, 0, "users list --json");
    let rows: Vec<Value> = serde_json::from_slice(&json.stdout).expect("a JSON array");
    let row = rows.iter().find(|r| r["id"] == user.id).expect("the user is listed");
    crate::helpers::assert_keys(row, &["id", "email", "username", "created_at", "disabled_at"]);
    assert_eq!(row["email"], user.email.as_str());
    assert!(row["disabled_at"].is_null());
    let row = rows.iter().find(|r| r["id"] == disabled.id).unwrap();
    assert!(crate::helpers::is_rfc3339_utc(row["disabled_at"].as_str().unwrap()));

    // Paging: oldest first, --offset skips, --limit bounds.
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    let page = setup
        .run(&["users", "list", "--json", "--limit", "1", "--offset", "1"], None)
        .await;
    let page: Vec<Value> = serde_json::from_slice(&page.stdout).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0]["id"], ids[1]);
}

/// The payload of a compact JWS, as JSON.
fn token_payload(token: &str) -> Value {
    let segment = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&tessera_core::b64::decode(segment).unwrap()).unwrap()
}

async fn roles_are_granted_listed_and_removed_and_reach_the_tokens(setup: &Setup) {
    let app = &setup.app;
    let (user, login) = app.new_session().await;

    let output = setup
        .run(&["users", "roles", "add", &user.username, "admin"], None)
        .await;
    assert_exit(&output, 0, "roles add");
    assert!(text(&output.stdout).contains(&format!("granted role admin to user {}", user.id)));
    assert_eq!(
        security_events(&output.stderr, "role_added").len(),
        1,
        "{}",
        text(&output.stderr)
    );
    let again = setup.run(&["users", "roles", "add", &user.email, "admin"], None).await;
    assert_exit(&again, 0, "roles add twice");
    assert!(
        text(&again.stdout).contains("already has role admin"),
        "{}",
        text(&again.stdout)
    );
    assert_exit(
        &setup
            .run(&["users", "roles", "add", &user.email, "support"], None)
            .await,
        0,
        "second role",
    );
    let list = setup.run(&["users", "roles", "list", &user.id.to_string()], None).await;
    assert_exit(&list, 0, "roles list");
    assert_eq!(text(&list.stdout), "admin\nsupport\n");

    // The next refresh carries them: `admin` holds every scope.
    let refreshed: Value = app.refresh(&login.refresh).await.json().await.unwrap();
    let claims = token_payload(refreshed["access_token"].as_str().unwrap());
    assert_eq!(claims["roles"], serde_json::json!(["admin", "support"]));
    assert_eq!(claims["scope"], "*");

    let removed = setup
        .run(&["users", "roles", "remove", &user.username, "admin"], None)
        .await;
    assert_exit(&removed, 0, "roles remove");
    assert!(
        text(&removed.stdout).contains("took role admin"),
        "{}",
        text(&removed.stdout)
    );
    let removed = setup
        .run(&["users", "roles", "remove", &user.username, "admin"], None)
        .await;
    assert!(
        text(&removed.stdout).contains("does not have role admin"),
        "{}",
        text(&removed.stdout)
    );
    let fresh = app.login_user(&user).await;
    let claims = token_payload(&fresh.access);
    assert_eq!(claims["roles"], serde_json::json!(["support"]));
    assert_eq!(claims["scope"], "agent:chat profile:read sessions:write keys:write");

    // A malformed role name or an unknown account: exit 1, nothing stored.
    let bad = setup
        .run(&["users", "roles", "add", &user.username, "Not A Role"], None)
        .await;
    assert_exit(&bad, 1, "bad role name");
    assert!(
        text(&bad.stderr).contains("is not a role name"),
        "{}",
        text(&bad.stderr)
    );
    assert_exit(
        &setup.run(&["users", "roles", "add", "nobody-at-all", "x"], None).await,
        1,
        "no account",
    );
    assert_eq!(
        app.state.users.roles(user.id).await.unwrap(),
        vec!["support".to_owned()]
    );
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
    created_account_logs_in_through_the_api,
    weak_passwords_and_bad_fields_are_refused_and_nothing_is_created,
    duplicate_email_or_username_is_refused,
    disable_revokes_sessions_and_blocks_login_until_enable,
    list_shows_accounts_as_a_table_and_as_json,
    roles_are_granted_listed_and_removed_and_reach_the_tokens,
);

/// `migrate --check` on a database that has nothing: every migration pending, exit 1; then
/// `migrate` applies them all; then `--check` and `migrate` both report the schema current.
async fn migrate_then_check(env: &[(String, String)]) {
    let check = tessera(&["migrate", "--check"], env, None).await;
    assert_exit(&check, 1, "migrate --check on a fresh database");
    let stdout = text(&check.stdout);
    assert!(stdout.contains("pending  0001 init"), "{stdout}");
    assert!(stdout.contains("pending  0002 key schedule"), "{stdout}");
    assert!(!stdout.contains("applied"), "{stdout}");

    let migrate = tessera(&["migrate"], env, None).await;
    assert_exit(&migrate, 0, "migrate");
    let stdout = text(&migrate.stdout);
    assert!(stdout.contains("applied  0001 init"), "{stdout}");
    assert!(stdout.contains("applied  0002 key schedule"), "{stdout}");
    assert!(stdout.contains("schema is current"), "{stdout}");

    let check = tessera(&["migrate", "--check"], env, None).await;
    assert_exit(&check, 0, "migrate --check after migrate");
    let stdout = text(&check.stdout);
    assert!(
        stdout.contains("schema is current") && !stdout.contains("pending"),
        "{stdout}"
    );

    let again = tessera(&["migrate"], env, None).await;
    assert_exit(&again, 0, "migrate twice");
    assert!(text(&again.stdout).contains("nothing to do"), "{}", text(&again.stdout));
}

#[tokio::test]
async fn migrate_applies_pending_migrations_to_a_fresh_sqlite_file_and_check_reports_current() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(&[("DATA_DIR", dir.path().to_str().unwrap())]);
    let check = tessera(&["migrate", "--check"], &env, None).await;
    assert_exit(&check, 1, "check");
    assert!(
        !dir.path().join("tessera.db").exists(),
        "--check created the database file"
    );
    migrate_then_check(&env).await;
    // The server starts on the migrated file and serves.
    let app = crate::helpers::spawn_app_with(|c| c.data_dir = dir.path().to_path_buf()).await;
    let _ = app.register_user().await;
}

#[tokio::test]
async fn migrate_check_refuses_a_schema_modified_after_it_was_applied() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(&[("DATA_DIR", dir.path().to_str().unwrap())]);
    assert_exit(&tessera(&["migrate"], &env, None).await, 0, "migrate");
    let url = format!("sqlite://{}", dir.path().join("tessera.db").display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 1")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    for args in [&["migrate", "--check"][..], &["migrate"][..]] {
        let output = tessera(args, &env, None).await;
        assert_exit(&output, 1, "modified migration");
        assert!(
            text(&output.stderr).contains("migration 1 was applied from different SQL"),
            "{}",
            text(&output.stderr)
        );
    }
}

/// A schema that exists but has no tables yet, dropped with this value.
struct EmptySchema {
    base: String,
    name: String,
}

impl Drop for EmptySchema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut conn = PgConnection::connect(&base).await.map_err(std::io::Error::other)?;
                let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .execute(&mut conn)
                    .await
                    .map_err(std::io::Error::other)?;
                Ok::<_, std::io::Error>(())
            })
        })
        .join();
    }
}

#[tokio::test]
async fn migrate_applies_pending_migrations_to_an_empty_postgres_schema() {
    let Some(base) = services::database_url() else { return };
    let schema = EmptySchema {
        name: format!("t_{}", services::random_hex()),
        base: base.clone(),
    };
    let mut conn = PgConnection::connect(&base).await.unwrap();
    let sql = format!("CREATE SCHEMA \"{}\"", schema.name);
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
    let separator = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{separator}options=-c%20search_path%3D{}", schema.name);
    migrate_then_check(&env_with(&[("DATABASE_URL", url.as_str())])).await;
}

/// With REDIS_URL, `users disable` publishes the revocations: both instances of a cluster
/// refuse the access token long before their database poll (set to 60 s here) could tell them.
#[tokio::test]
async fn disable_reaches_every_instance_at_once_over_redis_pub_sub() {
    let Some(cluster) = services::cluster(&[("REVOCATION_POLL_MILLIS", "60000")]).await else {
        return;
    };
    let redis = cluster.redis.as_ref().unwrap();
    redis.wait_for_subscribers(2).await;
    let (user, login) = cluster.a.new_session().await;
    for app in cluster.instances() {
        assert_eq!(app.profile(&login.access).await.status(), StatusCode::OK);
    }
    let config = &cluster.a.config;
    let tessera_server::config::Database::Postgres(database_url) = &config.database else {
        panic!("the cluster runs on PostgreSQL")
    };
    let env = env_with(&[
        ("DATABASE_URL", database_url.as_str()),
        ("REDIS_URL", config.redis_url.as_ref().unwrap().expose()),
        ("REDIS_KEY_PREFIX", redis.prefix.as_str()),
        ("REVOCATION_POLL_MILLIS", "60000"),
    ]);
    let output = tessera(&["users", "disable", &user.email], &env, None).await;
    assert_exit(&output, 0, "users disable");
    assert!(
        text(&output.stdout).contains("at once (Redis pub/sub)"),
        "{}",
        text(&output.stdout)
    );
    for (name, app) in ["A", "B"].into_iter().zip(cluster.instances()) {
        let waited = wait_until_refused(app, &login.access, Duration::from_secs(2)).await;
        eprintln!("instance {name} refused the token {waited:?} after `users disable` returned");
    }
}

/// An invalid configuration stops every command with exit status 2 and one line naming the
/// variable, before any database is opened or any password is asked for.
#[tokio::test]
async fn invalid_configuration_exits_2_before_touching_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let env = env_with(&[
        ("DATA_DIR", dir.path().to_str().unwrap()),
        ("RATE_LIMIT_LOGIN", "bogus"),
    ]);
    let commands: [&[&str]; 6] = [
        &["users", "list"],
        &["users", "disable", "ada"],
        &["users", "enable", "ada"],
        &[
            "users",
            "create",
            "--email",
            "ada@example.com",
            "--username",
            "ada",
            "--password-stdin",
        ],
        &["migrate"],
        &["migrate", "--check"],
    ];
    for args in commands {
        let output = tessera(args, &env, Some(PASSWORD)).await;
        assert_exit(&output, 2, &args.join(" "));
        assert!(
            text(&output.stderr).starts_with("error: RATE_LIMIT_LOGIN: "),
            "{args:?}: {}",
            text(&output.stderr)
        );
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "a database was created"
    );
}
