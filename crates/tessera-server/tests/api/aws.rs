//! Secrets from AWS Secrets Manager (S3, feature `aws`), against moto's server mode as a local
//! stand-in (not a mocked client): the real SDK, HTTP and JSON protocol, on a loopback port.
//!
//! Needs TESSERA_MOTO_SERVER, the path of moto's `moto_server` (`pip install 'moto[server]'`;
//! `.ci/run` installs it in `.venv-ci`). Without it these tests skip, unless
//! TESSERA_REQUIRE_SERVICES=1 (CI), where they fail.

#![cfg(feature = "aws")]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::primitives::Blob;

const BINARY: &str = env!("CARGO_BIN_EXE_tessera");
const REGION: &str = "us-east-1";

/// moto's server on a free loopback port, killed on drop.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts moto, or `None` (skip) when TESSERA_MOTO_SERVER is unset outside CI. `open_actions`:
/// how many requests moto serves before it enforces IAM authentication (unknown keys are then
/// refused); `None` never enforces it.
fn start_moto(open_actions: Option<u32>) -> Option<Moto> {
    let Some(program) = std::env::var_os("TESSERA_MOTO_SERVER") else {
        crate::services::unavailable("TESSERA_MOTO_SERVER is not set (e.g. .venv-ci/bin/moto_server)");
        return None;
    };
    let port = free_port();
    let mut command = Command::new(&program);
    if let Some(count) = open_actions {
        command.env("INITIAL_NO_AUTH_ACTION_COUNT", count.to_string());
    }
    let child = command
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {}: {e}", program.to_string_lossy()));
    let moto = Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    };
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {address} within 60 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(moto)
}

enum Value<'a> {
    Text(&'a str),
    Binary(&'a [u8]),
}

/// Creates secrets through the real SDK.
fn create_secrets(endpoint: &str, secrets: &[(&str, Value<'_>)]) {
    let config = aws_sdk_secretsmanager::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .build();
    let client = aws_sdk_secretsmanager::Client::from_conf(config);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        for (name, value) in secrets {
            let request = client.create_secret().name(*name);
            let request = match value {
                Value::Text(text) => request.secret_string(*text),
                Value::Binary(bytes) => request.secret_binary(Blob::new(bytes.to_vec())),
            };
            request.send().await.unwrap_or_else(|e| panic!("create {name}: {e:?}"));
        }
    });
}

/// `tessera config check` with only `vars`, fake credentials, the region and PATH set, in an
/// empty directory. Instance metadata is disabled: nothing may leave the loopback.
fn config_check(vars: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(BINARY);
    command
        .args(["config", "check"])
        .env_clear()
        .current_dir(dir.path())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .env("AWS_EC2_METADATA_DISABLED", "true");
    if let Some(path) = std::env::var_os("PATH") {
        command.env("PATH", path);
    }
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().unwrap()
}

/// Exit code 2 and exactly one stderr line, starting with `error: <var>: ` and containing `text`.
fn assert_one_line_error(output: &Output, var: &str, text: &str) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{var}: stderr {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr: {stderr}");
    assert!(lines[0].starts_with(&format!("error: {var}: ")), "{stderr}");
    assert!(lines[0].contains(text), "expected {text:?} in {stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout");
    stderr
}

#[test]
fn aws_secrets_are_fetched_and_used_but_never_printed() {
    let Some(moto) = start_moto(None) else { return };
    let access = "aws-access-secret-0123456789abcdefghijklmnop";
    let refresh: &[u8] = b"aws-refresh-secret-binary-0123456789abcdef";
    create_secrets(
        &moto.endpoint,
        &[
            // A trailing newline (as from `--secret-string file://key`) is not part of it.
            ("prod/tessera/secret-key", Value::Text(&format!("{access}\n"))),
            ("prod/tessera/refresh-secret-key", Value::Binary(refresh)),
        ],
    );
    let output = config_check(&[
        ("SECRET_KEY_AWS_SECRET_ID", "prod/tessera/secret-key"),
        ("REFRESH_SECRET_KEY_AWS_SECRET_ID", "prod/tessera/refresh-secret-key"),
        ("AWS_ENDPOINT_URL", &moto.endpoint),
    ]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "stdout {stdout} stderr {stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("SECRET_KEY=[redacted, {} bytes]", access.len())),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("REFRESH_SECRET_KEY=[redacted, {} bytes]", refresh.len())),
        "{stdout}"
    );
    for text in [&stdout, &stderr] {
        assert!(!text.contains("aws-access-secret"), "a secret was printed: {text}");
        assert!(!text.contains("aws-refresh-secret"), "a secret was printed: {text}");
    }
}

#[test]
fn aws_secret_failures_exit_2_with_one_line_naming_the_variable() {
    let Some(moto) = start_moto(None) else { return };
    // A strong secret (weak ones are refused before AWS is asked for the other one).
    let long = "q7Lx2Vd9Kp4Rz8Nw1Ty6Hb3Mc5Gf0Js7Ae2Ud9xZ".to_owned();
    create_secrets(&moto.endpoint, &[("prod/tessera/short", Value::Text("tiny-secret"))]);

    // Nothing listens on the port: fails fast, not after the SDK's default timeouts.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let output = config_check(&[
        ("SECRET_KEY_AWS_SECRET_ID", "prod/tessera/secret-key"),
        ("REFRESH_SECRET_KEY", &long),
        ("AWS_ENDPOINT_URL", &closed),
    ]);
    assert_one_line_error(&output, "SECRET_KEY_AWS_SECRET_ID", "AWS Secrets Manager unreachable: ");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );

    let output = config_check(&[
        ("SECRET_KEY_AWS_SECRET_ID", "prod/tessera/no-such-secret"),
        ("REFRESH_SECRET_KEY", &long),
        ("AWS_ENDPOINT_URL", &moto.endpoint),
    ]);
    assert_one_line_error(&output, "SECRET_KEY_AWS_SECRET_ID", "not found");

    let output = config_check(&[
        ("SECRET_KEY", &long),
        ("REFRESH_SECRET_KEY_AWS_SECRET_ID", "prod/tessera/short"),
        ("AWS_ENDPOINT_URL", &moto.endpoint),
    ]);
    let stderr = assert_one_line_error(
        &output,
        "REFRESH_SECRET_KEY_AWS_SECRET_ID",
        "must be at least 32 bytes (got 11)",
    );
    assert!(
        !stderr.contains("tiny-secret"),
        "the short secret was printed: {stderr}"
    );

    // Two sources for one name.
    let output = config_check(&[
        ("SECRET_KEY", &long),
        ("SECRET_KEY_AWS_SECRET_ID", "prod/tessera/short"),
        ("REFRESH_SECRET_KEY", &format!("{long}x")),
        ("AWS_ENDPOINT_URL", &moto.endpoint),
    ]);
    assert_one_line_error(&output, "SECRET_KEY_AWS_SECRET_ID", "set only one of");
}

#[test]
fn aws_access_denied_exits_2_with_one_line_naming_the_variable() {
    // One request (creating the secret) goes through; then moto checks credentials, and the
    // fake key is unknown to its IAM.
    let Some(moto) = start_moto(Some(1)) else { return };
    create_secrets(
        &moto.endpoint,
        &[("prod/tessera/guarded", Value::Text(&"g".repeat(40)))],
    );
    let output = config_check(&[
        ("SECRET_KEY_AWS_SECRET_ID", "prod/tessera/guarded"),
        ("REFRESH_SECRET_KEY", &"l".repeat(40)),
        ("AWS_ENDPOINT_URL", &moto.endpoint),
    ]);
    let stderr = assert_one_line_error(&output, "SECRET_KEY_AWS_SECRET_ID", "denied");
    assert!(!stderr.contains("gggg"), "the secret was printed: {stderr}");
}
