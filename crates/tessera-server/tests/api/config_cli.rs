//! `tessera config check` (S11, B13): invalid values exit 2 with one line naming the variable;
//! a valid configuration prints, secrets redacted.

use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");

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
    let long = "k".repeat(40);
    let refresh = "r".repeat(40);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-secret");
    let missing = missing.to_str().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{long}\n")).unwrap();
    let secret_file = secret_file.to_str().unwrap();
    let short_master = "short-master-key";
    let short_previous = "short-previous-secret";
    let previous = format!("{},{short_previous}", "p".repeat(40));
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
