//! `tessera config check` (S11, B13): invalid values exit 2 with one line naming the variable;
//! a valid configuration prints, secrets redacted.

use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");

/// Fixed random secrets (from `openssl rand`), strong enough for the strength rules.
const STRONG_A: &str = "q7Lx2Vd9Kp4Rz8Nw1Ty6Hb3Mc5Gf0Js7Ae2Ud9xZ";
const STRONG_B: &str = "Wm4Zr8Tq2Xk6Pv1Ny9Lh3Bs7Df5Gj0Cu8Ea4Io2";
const STRONG_C: &str = "e5c8a1f4d7b0e3c6a9f2d5b8e1c4a7f0d3b6e9c2";

/// Runs `tessera config check` with only `vars` (and PATH) in the environment, in an empty
/// temporary directory (so no stray `.env` is read), or in `cwd` when given.
fn config_check(vars: &[(&str, &str)], cwd: Option<&std::path::Path>) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BINARY);
    command
        .args(["config", "check"])
        .env_clear()
        .current_dir(cwd.unwrap_or(dir.path()));
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().expect("run tessera")
}

fn assert_config_error(output: &Output, var: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{var}: exit status, stderr {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    assert!(lines[0].starts_with(&format!("error: {var}: ")), "{stderr}");
    assert!(
        lines[0].len() > format!("error: {var}: ").len(),
        "the rule is named: {stderr}"
    );
}

#[test]
fn invalid_configuration_values_exit_2_with_one_line_naming_the_variable() {
    let long = "k".repeat(40);
    let cases: [(&[(&str, &str)], &str); 6] = [
        (
            &[("SECRET_KEY", "too-short-secret"), ("REFRESH_SECRET_KEY", &long)],
            "SECRET_KEY",
        ),
        (
            &[("COOKIE_SAMESITE", "none"), ("COOKIE_SECURE", "false")],
            "COOKIE_SAMESITE",
        ),
        (&[("CORS_ORIGINS", "*")], "CORS_ORIGINS"),
        (&[("RATE_LIMIT_LOGIN", "bogus")], "RATE_LIMIT_LOGIN"),
        (&[("ALGORITHM", "none")], "ALGORITHM"),
        (&[("COOKIE_SAMESITE", "sideways")], "COOKIE_SAMESITE"),
    ];
    for (vars, var) in cases {
        let output = config_check(vars, None);
        assert_config_error(&output, var);
        assert!(output.stdout.is_empty(), "{var}: nothing on stdout");
    }
    // The short secret is never echoed.
    let output = config_check(
        &[("SECRET_KEY", "too-short-secret"), ("REFRESH_SECRET_KEY", &long)],
        None,
    );
    assert!(!String::from_utf8_lossy(&output.stderr).contains("too-short-secret"));
}

#[test]
fn invalid_values_in_a_dot_env_file_are_reported_the_same_way() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), "RATE_LIMIT_API=lots\n").unwrap();
    let output = config_check(&[], Some(dir.path()));
    assert_config_error(&output, "RATE_LIMIT_API");
}

#[test]
fn a_valid_configuration_prints_the_effective_values_with_secrets_redacted() {
    let secret = "access-secret-value-0123456789abcdefghij";
    let refresh = "refresh-secret-value-0123456789abcdefghij";
    let output = config_check(
        &[
            ("SECRET_KEY", secret),
            ("REFRESH_SECRET_KEY", refresh),
            ("COOKIE_SAMESITE", "strict"),
        ],
        None,
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stdout {stdout} stderr {stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("SECRET_KEY=[redacted, {} bytes]", secret.len())),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("REFRESH_SECRET_KEY=[redacted, {} bytes]", refresh.len())),
        "{stdout}"
    );
    assert!(stdout.lines().any(|l| l == "COOKIE_SAMESITE=strict"), "{stdout}");
    assert!(stdout.lines().any(|l| l == "ALGORITHM=HS256"), "{stdout}");
    assert!(stdout.contains("# configuration is valid"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(secret) && !text.contains(refresh),
            "a secret was printed: {text}"
        );
        assert!(
            !text.contains("access-secret") && !text.contains("refresh-secret"),
            "part of a secret was printed: {text}"
        );
    }

    // With no secrets at all, the managed key ring is used: no default secret exists.
    let output = config_check(&[], None);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.lines().any(|l| l.starts_with("SECRET_KEY=(unset")), "{stdout}");
}

#[cfg(not(feature = "aws"))]
#[test]
fn aws_secret_id_without_the_aws_feature_exits_2_naming_the_variable() {
    let long = "k".repeat(40);
    let output = config_check(
        &[
            ("SECRET_KEY_AWS_SECRET_ID", "prod/tessera/secret-key"),
            ("REFRESH_SECRET_KEY", &long),
        ],
        None,
    );
    assert_config_error(&output, "SECRET_KEY_AWS_SECRET_ID");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim_end(),
        "error: SECRET_KEY_AWS_SECRET_ID: this build has no AWS support; rebuild with --features aws"
    );
}

/// Secret sources and key settings (S3, S4): each error path exits 2 naming its variable, and
/// never echoes the secret.
#[test]
fn secret_sources_and_key_settings_exit_2_naming_the_variable() {
    // Fixed random secrets: weak ones (e.g. one repeated character) are refused on their own.
    let long = STRONG_A.to_owned();
    let refresh = STRONG_B.to_owned();
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-secret");
    let missing = missing.to_str().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{long}\n")).unwrap();
    let secret_file = secret_file.to_str().unwrap();
    let short_master = "short-master-key";
    let short_previous = "short-previous-secret";
    let previous = format!("{STRONG_C},{short_previous}");
    let cases: [(&[(&str, &str)], &str); 6] = [
        // Shorter than 32 bytes (the 16-byte case above is HS256's minimum too; this is 31).
        (
            &[("SECRET_KEY", &long[..31]), ("REFRESH_SECRET_KEY", &refresh)],
            "SECRET_KEY",
        ),
        // A secret file that does not exist.
        (
            &[("SECRET_KEY_FILE", missing), ("REFRESH_SECRET_KEY", &refresh)],
            "SECRET_KEY_FILE",
        ),
        // Two sources for one secret.
        (
            &[
                ("SECRET_KEY", &long),
                ("SECRET_KEY_FILE", secret_file),
                ("REFRESH_SECRET_KEY", &refresh),
            ],
            "SECRET_KEY",
        ),
        (&[("MASTER_KEY", short_master)], "MASTER_KEY"),
        (
            &[
                ("SECRET_KEY", &long),
                ("REFRESH_SECRET_KEY", &refresh),
                ("PREVIOUS_SECRET_KEYS", &previous),
            ],
            "PREVIOUS_SECRET_KEYS",
        ),
        // A key must reach every instance (one reload) before it signs: at least two reloads.
        (
            &[("KEY_RELOAD_SECONDS", "5"), ("KEY_PUBLISH_DELAY", "9")],
            "KEY_PUBLISH_DELAY",
        ),
    ];
    for (vars, var) in cases {
        let output = config_check(vars, None);
        assert_config_error(&output, var);
        assert!(output.stdout.is_empty(), "{var}: nothing on stdout");
        let stderr = String::from_utf8_lossy(&output.stderr);
        for secret in [long.as_str(), &long[..31], &refresh, short_master, short_previous] {
            assert!(!stderr.contains(secret), "{var}: a secret was printed: {stderr}");
        }
    }
    // The boundaries are accepted: a 32-byte secret read from a file, KEY_PUBLISH_DELAY of
    // exactly twice KEY_RELOAD_SECONDS, and 0 (sign at once, for a compromised key).
    for vars in [
        &[("SECRET_KEY_FILE", secret_file), ("REFRESH_SECRET_KEY", &refresh)][..],
        &[("SECRET_KEY", &long[..32]), ("REFRESH_SECRET_KEY", &refresh)][..],
        &[("KEY_RELOAD_SECONDS", "5"), ("KEY_PUBLISH_DELAY", "10")][..],
        &[("KEY_PUBLISH_DELAY", "0")][..],
    ] {
        let output = config_check(vars, None);
        assert_eq!(
            output.status.code(),
            Some(0),
            "{vars:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

// --- The seed's .env (issue 21) ------------------------------------------------------------

/// The seed chapter's `Settings` class ("生产级配置") written as a `.env`: every variable, the
/// seed's defaults and spellings (Python's `True`, `INFO`, the list literal unquoted, strings
/// quoted as in the class). SECRET_KEY and DATABASE_URL have no default there: a seed user's
/// values stand in.
fn seed_dot_env() -> String {
    format!(
        r#"# 生产级配置: the seed's Settings, as python-dotenv reads it.

# JWT配置
SECRET_KEY="{STRONG_A}"
REFRESH_SECRET_KEY='{STRONG_B}'
ALGORITHM="HS256"
ACCESS_TOKEN_EXPIRE_MINUTES=15
REFRESH_TOKEN_EXPIRE_DAYS=7

# 数据库配置
DATABASE_URL=sqlite:///./app.db

# Redis配置
REDIS_URL="redis://localhost:6379/0"

# 安全配置
COOKIE_SECURE=True
COOKIE_SAMESITE="lax"
CORS_ORIGINS=["https://app.example.com"]

# 限流配置
RATE_LIMIT_LOGIN="5/minute"
RATE_LIMIT_REGISTER="3/hour"
RATE_LIMIT_API="100/hour"

# 日志配置
LOG_LEVEL="INFO"
LOG_FORMAT="json"
"#
    )
}

/// `tessera config check` in a fresh directory holding `dot_env` as `.env`. The directory is
/// returned (canonical, as the process sees it) so that the caller can check paths in it.
fn check_dot_env(dot_env: &str) -> (Output, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".env"), dot_env).unwrap();
    let output = config_check(&[], Some(dir.path()));
    let canonical = dir.path().canonicalize().unwrap();
    (output, dir, canonical)
}

/// The `NAME=value` lines of a successful `config check`.
fn effective_values(output: &Output) -> Vec<String> {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stdout {stdout} stderr {stderr}");
    stdout.lines().map(str::to_owned).collect()
}

fn assert_has_line(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l == expected),
        "no line {expected:?} in:\n{}",
        lines.join("\n")
    );
}

#[test]
fn the_seed_settings_as_a_dot_env_resolve_as_the_seed_means_them() {
    // Arrange / Act
    let (output, _dir, cwd) = check_dot_env(&seed_dot_env());
    // Assert
    let lines = effective_values(&output);
    for expected in [
        format!("SECRET_KEY=[redacted, {} bytes]", STRONG_A.len()),
        format!("REFRESH_SECRET_KEY=[redacted, {} bytes]", STRONG_B.len()),
        "ALGORITHM=HS256".to_owned(),
        "ACCESS_TOKEN_EXPIRE_MINUTES=15".to_owned(),
        "ACCESS_TOKEN_EXPIRE_SECONDS=900".to_owned(),
        "REFRESH_TOKEN_EXPIRE_DAYS=7".to_owned(),
        format!("DATABASE_URL=sqlite:{}", cwd.join("app.db").display()),
        "REDIS_URL=redis://localhost:6379/0".to_owned(),
        "COOKIE_SECURE=true".to_owned(),
        "COOKIE_SAMESITE=lax".to_owned(),
        "CORS_ORIGINS=[\"https://app.example.com\"]".to_owned(),
        "RATE_LIMIT_LOGIN=5/minute".to_owned(),
        "RATE_LIMIT_REGISTER=3/hour".to_owned(),
        "RATE_LIMIT_API=100/hour".to_owned(),
        "LOG_LEVEL=info".to_owned(),
        "LOG_FORMAT=json".to_owned(),
        // Secure cookies, so the prefixed names by default.
        "COOKIE_PREFIXES=on".to_owned(),
    ] {
        assert_has_line(&lines, &expected);
    }
    // Grouped by concern, as declared.
    for heading in [
        "# server",
        "# database",
        "# keys and secrets",
        "# cookies and browsers",
        "# logging",
    ] {
        assert_has_line(&lines, heading);
    }
    let printed = lines.join("\n");
    assert!(
        !printed.contains(STRONG_A) && !printed.contains(STRONG_B),
        "a secret was printed"
    );
}

/// Issue 21, row 1: the seed's own CORS_ORIGINS default, unquoted.
#[test]
fn the_seed_cors_origins_default_unquoted_is_a_json_list() {
    let (output, _dir, _) = check_dot_env("CORS_ORIGINS=[\"https://app.example.com\"]\n");
    assert_has_line(&effective_values(&output), "CORS_ORIGINS=[\"https://app.example.com\"]");
}

/// Issue 21, row 2: a JSON list with a space after the comma, unquoted.
#[test]
fn an_unquoted_json_list_with_spaces_is_one_value() {
    let (output, _dir, _) = check_dot_env("CORS_ORIGINS=[\"https://a.example.com\", \"https://b.example.com\"]\n");
    assert_has_line(
        &effective_values(&output),
        "CORS_ORIGINS=[\"https://a.example.com\", \"https://b.example.com\"]",
    );
}

/// Issue 21, row 3: limits syntax with spaces, unquoted.
#[test]
fn an_unquoted_rate_limit_with_spaces_is_read_to_the_end_of_the_line() {
    let (output, _dir, _) = check_dot_env("RATE_LIMIT_LOGIN=5 per minute # the seed's limit\n");
    assert_has_line(&effective_values(&output), "RATE_LIMIT_LOGIN=5/minute");
}

/// Issue 21, row 4: SQLAlchemy's three slashes are relative to the working directory; the
/// database is created there, not at the filesystem root.
#[test]
fn sqlite_with_three_slashes_is_relative_to_the_working_directory() {
    let (output, dir, cwd) = check_dot_env("DATABASE_URL=sqlite:///./app.db\n");
    assert_has_line(
        &effective_values(&output),
        &format!("DATABASE_URL=sqlite:{}", cwd.join("app.db").display()),
    );
    let (output, _other, _) = check_dot_env("DATABASE_URL=sqlite:////var/lib/tessera/app.db\n");
    assert_has_line(
        &effective_values(&output),
        "DATABASE_URL=sqlite:/var/lib/tessera/app.db",
    );

    // `tessera migrate` creates the file in the working directory.
    let mut command = Command::new(BINARY);
    command.arg("migrate").env_clear().current_dir(dir.path());
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    let migrate = command.output().unwrap();
    assert_eq!(
        migrate.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(
        dir.path().join("app.db").is_file(),
        "app.db is not in the working directory"
    );

    // In memory is refused: nothing would survive a restart.
    let (output, _dir, _) = check_dot_env("DATABASE_URL=sqlite:///:memory:\n");
    assert_config_error(&output, "DATABASE_URL");
    assert!(String::from_utf8_lossy(&output.stderr).contains("not durable"));
}

/// Issue 21, row 5: SQLAlchemy driver suffixes are accepted and ignored.
#[test]
fn sqlalchemy_driver_suffixes_are_accepted_and_ignored() {
    for (url, expected) in [
        ("postgresql+asyncpg://user@host/db", "postgresql://user@host/db"),
        ("postgresql+psycopg2://user@host/db", "postgresql://user@host/db"),
        (
            "postgresql+psycopg://user:pw@host:5432/db",
            "postgresql://user:[redacted]@host:5432/db",
        ),
    ] {
        let (output, _dir, _) = check_dot_env(&format!("DATABASE_URL={url}\n"));
        assert_has_line(&effective_values(&output), &format!("DATABASE_URL={expected}"));
    }
    let (output, _dir, cwd) = check_dot_env("DATABASE_URL=sqlite+aiosqlite:///./app.db\n");
    assert_has_line(
        &effective_values(&output),
        &format!("DATABASE_URL=sqlite:{}", cwd.join("app.db").display()),
    );
}

#[test]
fn an_unparseable_dot_env_line_exits_2_naming_its_line_number() {
    let (output, _dir, _) = check_dot_env("# settings\nLOG_LEVEL=INFO\n\nSECRET_KEY=\"unterminated\n");
    assert_config_error(&output, "ENV_FILE");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(".env line 4: "), "{stderr}");
    assert!(!stderr.contains("unterminated"), "the value was printed: {stderr}");
}

/// See: issue 13, finding 7. Each weak secret names the variable and the rule.
#[test]
fn weak_secrets_exit_2_naming_the_variable_and_the_rule() {
    let repeated = "a".repeat(40);
    for (vars, var, rule) in [
        (
            vec![("SECRET_KEY", repeated.as_str()), ("REFRESH_SECRET_KEY", STRONG_B)],
            "SECRET_KEY",
            "is one character repeated",
        ),
        (
            vec![
                ("SECRET_KEY", STRONG_A),
                (
                    "REFRESH_SECRET_KEY",
                    "your-refresh-secret-key-change-this-in-production",
                ),
            ],
            "REFRESH_SECRET_KEY",
            "placeholder",
        ),
        (
            vec![("MASTER_KEY", "your-secret-key-change-this-in-production")],
            "MASTER_KEY",
            "placeholder",
        ),
        (
            vec![("MASTER_KEY", "abcdefghijklmnopqrstuvwxyz0123456789")],
            "MASTER_KEY",
            "too predictable",
        ),
    ] {
        let output = config_check(&vars, None);
        assert_config_error(&output, var);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(rule), "{var}: {stderr}");
    }
}
