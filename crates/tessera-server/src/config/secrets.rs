//! The third source of a secret (S3): AWS Secrets Manager, after `<NAME>` and `<NAME>_FILE`.
//!
//! `<NAME>_AWS_SECRET_ID` (e.g. `SECRET_KEY_AWS_SECRET_ID=prod/tessera/secret-key`, a name or
//! an ARN) makes [`crate::config`] fetch `<NAME>` from Secrets Manager at start-up. It serves
//! every secret that the configuration reads (SECRET_KEY, REFRESH_SECRET_KEY, MASTER_KEY, ...):
//! the hook is in the configuration's secret reader, not per name. At most one source may be
//! set for one name.
//!
//! The client lives behind the `aws` cargo feature, off by default so that the default build
//! carries neither the AWS SDK nor aws-lc. Without it a configured secret id is a configuration
//! error ("this build has no AWS support"), never silently ignored.
//!
//! With the feature, the region comes from AWS_REGION, else AWS_DEFAULT_REGION; AWS_ENDPOINT_URL
//! overrides the endpoint (a local stand-in in tests); credentials come from the SDK's default
//! chain (environment, profile, web identity, container, instance metadata), or from
//! AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN when only `.env` sets them.
//! The call is bounded ([`CONNECT_TIMEOUT`], [`OPERATION_TIMEOUT`]): a dead endpoint stops
//! start-up within seconds. The value is `SecretString` (trailing newlines dropped, as for secret
//! files) or else `SecretBinary`. It is never logged or put in an error; errors name the
//! `<NAME>_AWS_SECRET_ID` variable and the secret id, which is not secret.
//!
//! [`crate::config::Config::from_vars`] is synchronous and may run inside an async runtime, so
//! the SDK call runs on a small current-thread runtime on its own short-lived thread, created
//! only when a secret id is configured.

use std::time::Duration;

use super::{ConfigError, Secret, Vars};

/// Suffix of the variable that names a secret in AWS Secrets Manager: `<NAME>_AWS_SECRET_ID`.
pub const AWS_SECRET_ID_SUFFIX: &str = "_AWS_SECRET_ID";

/// Longest wait for a TCP/TLS connection to Secrets Manager.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest wait for the whole call, retries included.
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(5);

/// A secret configured in AWS Secrets Manager.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSecretId {
    /// The variable that names it (`<NAME>_AWS_SECRET_ID`): errors name this one.
    pub var: &'static str,
    /// The secret's name or ARN.
    pub id: String,
}

/// The trimmed value of `var`, `None` when unset or empty (as the configuration reads values).
fn get<'a>(vars: &'a Vars, var: &str) -> Option<&'a str> {
    vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The AWS secret configured in `id_var` (`<NAME>_AWS_SECRET_ID`, from the secret's declaration
/// in [`crate::config::vars`]), if any. `other_sources` are the variables of the other sources of
/// the same secret (`<NAME>`, `<NAME>_FILE`): setting one of them as well is an error.
pub fn aws_secret_id(
    vars: &Vars,
    id_var: &'static str,
    other_sources: &[&str],
) -> Result<Option<AwsSecretId>, ConfigError> {
    let Some(id) = get(vars, id_var) else { return Ok(None) };
    let var = id_var;
    if let Some(other) = other_sources.iter().find(|other| get(vars, other).is_some()) {
        return Err(ConfigError {
            var,
            rule: format!(
                "{other} is set too; set only one of {}, or {var}",
                other_sources.join(", ")
            ),
        });
    }
    Ok(Some(AwsSecretId { var, id: id.to_owned() }))
}

impl AwsSecretId {
    /// Fetches the secret's value. Blocks for at most about [`OPERATION_TIMEOUT`]. `vars` supply
    /// the region, endpoint and (when set there) credentials. The caller checks the length.
    pub fn fetch(&self, vars: &Vars) -> Result<Secret, ConfigError> {
        #[cfg(feature = "aws")]
        {
            aws::fetch(self, vars)
        }
        #[cfg(not(feature = "aws"))]
        {
            let _ = vars;
            Err(ConfigError {
                var: self.var,
                rule: "this build has no AWS support; rebuild with --features aws".to_owned(),
            })
        }
    }
}

#[cfg(feature = "aws")]
mod aws {
    use aws_config::BehaviorVersion;
    use aws_config::retry::RetryConfig;
    use aws_config::timeout::TimeoutConfig;
    use aws_sdk_secretsmanager::config::{Credentials, Region};
    use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
    use aws_sdk_secretsmanager::operation::get_secret_value::GetSecretValueError;

    use super::{AwsSecretId, CONNECT_TIMEOUT, OPERATION_TIMEOUT, get};
    use super::{ConfigError, Secret, Vars};

    /// Where and as whom to call. Holds credentials: no `Debug`.
    struct Settings {
        region: Option<String>,
        endpoint: Option<String>,
        credentials: Option<Credentials>,
    }

    impl Settings {
        fn from_vars(vars: &Vars) -> Settings {
            let region = get(vars, "AWS_REGION").or_else(|| get(vars, "AWS_DEFAULT_REGION"));
            let credentials = match (get(vars, "AWS_ACCESS_KEY_ID"), get(vars, "AWS_SECRET_ACCESS_KEY")) {
                (Some(key_id), Some(secret)) => Some(Credentials::new(
                    key_id,
                    secret,
                    get(vars, "AWS_SESSION_TOKEN").map(str::to_owned),
                    None,
                    "tessera-config",
                )),
                _ => None,
            };
            Settings {
                region: region.map(str::to_owned),
                endpoint: get(vars, "AWS_ENDPOINT_URL").map(str::to_owned),
                credentials,
            }
        }
    }

    pub(super) fn fetch(secret: &AwsSecretId, vars: &Vars) -> Result<Secret, ConfigError> {
        let settings = Settings::from_vars(vars);
        let fail = |rule: String| ConfigError { var: secret.var, rule };
        // Its own thread: the caller may be inside a runtime, where `block_on` would panic.
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| fail(format!("could not start the AWS client: {e}")))?;
                    runtime.block_on(get_secret_value(secret, settings))
                })
                .join()
                .unwrap_or_else(|_| Err(fail("the AWS client failed unexpectedly".to_owned())))
        })
    }

    async fn get_secret_value(secret: &AwsSecretId, settings: Settings) -> Result<Secret, ConfigError> {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .operation_timeout(OPERATION_TIMEOUT)
            .build();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .timeout_config(timeouts)
            .retry_config(RetryConfig::standard().with_max_attempts(2));
        if let Some(region) = settings.region {
            loader = loader.region(Region::new(region));
        }
        if let Some(endpoint) = settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(credentials) = settings.credentials {
            loader = loader.credentials_provider(credentials);
        }
        let sdk = loader.load().await;
        if sdk.region().is_none() {
            return Err(ConfigError {
                var: secret.var,
                rule: "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)".to_owned(),
            });
        }
        let client = aws_sdk_secretsmanager::Client::new(&sdk);
        let mut output = client
            .get_secret_value()
            .secret_id(&secret.id)
            .send()
            .await
            .map_err(|error| ConfigError {
                var: secret.var,
                rule: describe(&secret.id, &error).replace(['\r', '\n'], " "),
            })?;
        // Moved out, not copied: the only other copy is the SDK's response buffer.
        if let Some(mut text) = output.secret_string.take() {
            while text.ends_with(['\r', '\n']) {
                text.pop();
            }
            return Ok(Secret::new(text.into_bytes()));
        }
        if let Some(blob) = output.secret_binary.take() {
            return Ok(Secret::new(blob.into_inner()));
        }
        Err(ConfigError {
            var: secret.var,
            rule: format!("AWS secret {:?} has no SecretString or SecretBinary value", secret.id),
        })
    }

    /// One short line about a failed call. Never contains the secret (the call failed).
    fn describe(id: &str, error: &SdkError<GetSecretValueError>) -> String {
        match error {
            SdkError::DispatchFailure(failure) => {
                let reason = failure.as_connector_error().map(|c| innermost(c)).unwrap_or_default();
                if failure.is_timeout() {
                    format!(
                        "AWS Secrets Manager unreachable: no connection within {} s",
                        CONNECT_TIMEOUT.as_secs()
                    )
                } else if failure.is_io() {
                    format!("AWS Secrets Manager unreachable: {reason}")
                } else if reason.contains("credentials") {
                    // The SDK's chain lists every provider it tried, over several lines.
                    "no AWS credentials found (environment, profile, web identity, container or instance role)"
                        .to_owned()
                } else {
                    format!("AWS Secrets Manager call failed: {reason}")
                }
            }
            SdkError::TimeoutError(_) => format!(
                "AWS Secrets Manager unreachable: no answer within {} s",
                OPERATION_TIMEOUT.as_secs()
            ),
            SdkError::ResponseError(_) => "AWS Secrets Manager sent a response that could not be read".to_owned(),
            SdkError::ConstructionFailure(_) => {
                format!("could not build the AWS request: {}", innermost(error))
            }
            SdkError::ServiceError(context) => {
                let service = context.err();
                let status = context.raw().status().as_u16();
                let code = service.code().unwrap_or_default();
                let what = format!("HTTP {status}{}{code}", if code.is_empty() { "" } else { " " });
                // A 401/403 whose body is not understood (e.g. a proxy's) is a refusal too.
                let denied = status == 401
                    || status == 403
                    || code.contains("AccessDenied")
                    || [
                        "UnrecognizedClientException",
                        "InvalidSignatureException",
                        "ExpiredTokenException",
                    ]
                    .contains(&code);
                match service {
                    GetSecretValueError::ResourceNotFoundException(_) => {
                        format!("AWS secret {id:?} not found (check the name and AWS_REGION)")
                    }
                    _ if denied => {
                        format!("access to AWS secret {id:?} denied ({what}): check the credentials and IAM policy")
                    }
                    _ => format!(
                        "AWS Secrets Manager refused secret {id:?}: {what}: {}",
                        service.message().unwrap_or_default()
                    ),
                }
            }
            _ => format!("AWS Secrets Manager call failed: {}", innermost(error)),
        }
    }

    /// The deepest cause's message, first line only, e.g. "Connection refused (os error 111)".
    fn innermost(error: &(dyn std::error::Error + 'static)) -> String {
        let mut current = error;
        while let Some(source) = current.source() {
            current = source;
        }
        let text = current.to_string();
        text.lines().next().unwrap_or_default().trim().to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn the_id_variable_is_derived_from_any_secret_name() {
        let v = vars(&[("MASTER_KEY_AWS_SECRET_ID", " prod/master ")]);
        let found = aws_secret_id(&v, "MASTER_KEY_AWS_SECRET_ID", &["MASTER_KEY", "MASTER_KEY_FILE"]);
        assert_eq!(
            found,
            Ok(Some(AwsSecretId {
                var: "MASTER_KEY_AWS_SECRET_ID",
                id: "prod/master".to_owned()
            }))
        );
        assert_eq!(aws_secret_id(&v, "SECRET_KEY_AWS_SECRET_ID", &["SECRET_KEY"]), Ok(None));
        assert_eq!(
            aws_secret_id(
                &vars(&[("SECRET_KEY_AWS_SECRET_ID", "  ")]),
                "SECRET_KEY_AWS_SECRET_ID",
                &[]
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_second_source_for_the_same_name_is_an_error() {
        let v = vars(&[("SECRET_KEY_FILE", "/run/secrets/k"), ("SECRET_KEY_AWS_SECRET_ID", "x")]);
        let Err(error) = aws_secret_id(&v, "SECRET_KEY_AWS_SECRET_ID", &["SECRET_KEY", "SECRET_KEY_FILE"]) else {
            unreachable!("two sources must be refused");
        };
        assert_eq!(error.var, "SECRET_KEY_AWS_SECRET_ID");
        assert!(error.rule.contains("SECRET_KEY_FILE is set too"), "{}", error.rule);
    }

    #[cfg(not(feature = "aws"))]
    #[test]
    fn without_the_feature_a_configured_id_is_refused() {
        let id = AwsSecretId {
            var: "SECRET_KEY_AWS_SECRET_ID",
            id: "prod/tessera/secret-key".to_owned(),
        };
        let Err(error) = id.fetch(&Vars::new()) else {
            unreachable!("no AWS support in this build");
        };
        assert_eq!(
            error.to_string(),
            "SECRET_KEY_AWS_SECRET_ID: this build has no AWS support; rebuild with --features aws"
        );
    }
}
