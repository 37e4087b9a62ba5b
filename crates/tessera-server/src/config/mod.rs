//! Configuration (S11): the seed's environment variable names and defaults, plus Tessera's own.
//!
//! Loading has two stages. The raw stage is a map of variables (the process environment, with
//! a `.env` file filling in what the environment does not set, read as python-dotenv reads it:
//! [`dotenv`]). [`Config::from_vars`] then parses and checks every value once, at start-up: an
//! invalid value stops the process with exit code 2 and one line naming the variable and the
//! rule it breaks. Nothing downstream re-parses configuration.
//!
//! Each variable is declared once, in [`vars`] (name, group, default, rule, help, how `config
//! check` shows it); the parser, `tessera config check` and README's tables all come from there.
//! [`Config`] itself stays flat (`config.cookie_secure`), so code that reads it does not care
//! how the variables are grouped. Configured secrets must not be weak ([`strength`]).

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use tessera_core::Algorithm;
use tessera_core::gateway::{AbsoluteUrl, Domains, Rules};
use tessera_core::limits::RateLimitSpec;
use tessera_core::password::PasswordParams;
use zeroize::Zeroizing;

pub mod dotenv;
pub mod gateway;
pub mod mail;
pub mod pages;
pub mod secrets;
pub mod strength;
pub mod vars;

pub use vars::{VARS, Var};

/// Minimum length of SECRET_KEY and REFRESH_SECRET_KEY, in bytes (S3).
pub const MIN_SECRET_BYTES: usize = 32;

/// A configuration value that is wrong: which variable, and what rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {rule}")]
pub struct ConfigError {
    /// The variable's name.
    pub var: &'static str,
    /// The rule, in words an operator can act on.
    pub rule: String,
}

fn invalid(var: &'static str, rule: impl Into<String>) -> ConfigError {
    ConfigError { var, rule: rule.into() }
}

/// Secret bytes: zeroed on drop, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// Wraps secret bytes.
    pub fn new(bytes: Vec<u8>) -> Secret {
        Secret(Zeroizing::new(bytes))
    }

    /// The secret bytes. Callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// SameSite cookie attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SameSite {
    /// `SameSite=Lax` (default): sent on top-level navigations, not on cross-site subrequests.
    Lax,
    /// `SameSite=Strict`.
    Strict,
    /// `SameSite=None`: cross-site; requires `Secure`.
    None,
}

impl SameSite {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}

/// Where tokens go in login and refresh responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenDelivery {
    /// HttpOnly cookies only (browsers).
    Cookie,
    /// JSON body only (API clients).
    Body,
    /// Both (default).
    Both,
}

impl TokenDelivery {
    /// Whether tokens are set as cookies.
    pub fn uses_cookies(self) -> bool {
        matches!(self, TokenDelivery::Cookie | TokenDelivery::Both)
    }

    /// Whether tokens are returned in the JSON body.
    pub fn uses_body(self) -> bool {
        matches!(self, TokenDelivery::Body | TokenDelivery::Both)
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line (default).
    Json,
    /// Human-readable text.
    Text,
}

/// Which database holds users, sessions and keys.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// An SQLite file (the embedded default).
    Sqlite(PathBuf),
    /// A PostgreSQL URL, shared by every instance. May hold a password: printed redacted.
    Postgres(String),
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            Database::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Database({self})")
    }
}

/// A URL with its password (if any) replaced, for logs and `config check`.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "[redacted]".to_owned();
    };
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            let masked = if userinfo.contains(':') {
                format!("{user}:[redacted]")
            } else {
                user.to_owned()
            };
            // Query parameters may carry passwords too (e.g. ?password=): drop them.
            let path = tail.split('?').next().unwrap_or_default();
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => format!("{scheme}://{authority}{}", tail.split('?').next().unwrap_or_default()),
    }
}

/// A connection URL that may carry a password: `Debug` and `Display` redact it.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// A URL as given (tests and programmatic set-up; the variables are checked by
    /// [`Config::from_vars`]).
    pub fn new(url: impl Into<String>) -> ServiceUrl {
        ServiceUrl(url.into())
    }

    /// The URL itself, for connecting. Callers must not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.0))
    }
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceUrl({self})")
    }
}

/// A trusted proxy network (TRUSTED_PROXIES entry), on the `ipnet` crate: `10.0.0.0/8`,
/// `::1/128`, or a bare address (a single host).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet(ipnet::IpNet);

impl IpNet {
    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what
    /// a dual-stack listener reports for IPv4 peers) match IPv4 networks.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        self.0.contains(&ip)
    }
}

impl std::str::FromStr for IpNet {
    type Err = ();

    fn from_str(text: &str) -> Result<IpNet, ()> {
        let text = text.trim();
        if text.contains('/') {
            text.parse::<ipnet::IpNet>().map(IpNet).map_err(|_| ())
        } else {
            text.parse::<std::net::IpAddr>()
                .map(|addr| IpNet(ipnet::IpNet::from(addr)))
                .map_err(|_| ())
        }
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// The effective, checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (BIND_ADDR, `--bind`).
    pub bind: SocketAddr,
    /// Separate listen address for `GET /metrics` (METRICS_ADDR). When set, the main listener
    /// does not serve /metrics, so it need not be public.
    pub metrics_addr: Option<SocketAddr>,
    /// Time a client has to send the request head (HEADER_READ_TIMEOUT_SECS).
    pub header_read_timeout: Duration,
    /// How long a keep-alive connection may stay idle (IDLE_TIMEOUT_SECS).
    pub idle_timeout: Duration,
    /// Concurrent connections accepted; beyond it new ones are refused (MAX_CONNECTIONS).
    pub max_connections: usize,
    /// Directory for the embedded database (DATA_DIR).
    pub data_dir: PathBuf,
    /// Database (DATABASE_URL).
    pub database: Database,
    /// Shared state for many instances (REDIS_URL); `None` keeps limits and revocations in-process.
    pub redis_url: Option<ServiceUrl>,
    /// Prefix of every Redis key and channel (REDIS_KEY_PREFIX), so deployments can share a Redis.
    pub redis_prefix: String,
    /// Proxies whose X-Forwarded-For / Forwarded headers are believed (TRUSTED_PROXIES).
    pub trusted_proxies: Vec<IpNet>,
    /// Login attempts per account, whatever the IP (RATE_LIMIT_LOGIN_ACCOUNT, B7).
    pub rate_limit_login_account: RateLimitSpec,
    /// How often revocations are re-read from the database, in milliseconds: the bound on
    /// cross-instance revocation when pub/sub is unavailable (REVOCATION_POLL_MILLIS).
    pub revocation_poll_millis: u64,
    /// Entries in the in-process cache of verified token claims; 0 disables it (TOKEN_CACHE_SIZE).
    pub token_cache_size: usize,
    /// Also share verified claims through Redis, for ES256/RS256 only (TOKEN_CACHE_REDIS).
    pub token_cache_redis: bool,
    /// Seals private keys stored in the database (MASTER_KEY, _FILE or AWS); `None` stores them
    /// unsealed in the private database.
    pub master_key: Option<Secret>,
    /// Seconds between a rotation publishing a key and that key signing (KEY_PUBLISH_DELAY).
    pub key_publish_delay_secs: i64,
    /// Automatic rotation period in seconds (KEY_ROTATION_INTERVAL); `None` = off.
    pub key_rotation_interval_secs: Option<i64>,
    /// How often every instance re-reads the key table (KEY_RELOAD_SECONDS).
    pub key_reload_secs: u64,
    /// Earlier SECRET_KEY values that still verify (PREVIOUS_SECRET_KEYS).
    pub previous_secret_keys: Vec<Secret>,
    /// Earlier REFRESH_SECRET_KEY values that still verify (PREVIOUS_REFRESH_SECRET_KEYS).
    pub previous_refresh_secret_keys: Vec<Secret>,
    /// Access-token algorithm (ALGORITHM).
    pub algorithm: Algorithm,
    /// Identity-assertion algorithm (IDENTITY_ALGORITHM): always asymmetric.
    pub identity_algorithm: Algorithm,
    /// HMAC secret for access tokens (SECRET_KEY or SECRET_KEY_FILE); `None` = managed keys.
    pub secret_key: Option<Secret>,
    /// HMAC secret for refresh tokens (REFRESH_SECRET_KEY or REFRESH_SECRET_KEY_FILE).
    pub refresh_secret_key: Option<Secret>,
    /// Access-token lifetime in seconds (ACCESS_TOKEN_EXPIRE_MINUTES, or _SECONDS).
    pub access_ttl_secs: i64,
    /// Refresh-token lifetime in seconds (REFRESH_TOKEN_EXPIRE_DAYS).
    pub refresh_ttl_secs: i64,
    /// `Secure` cookie attribute (COOKIE_SECURE).
    pub cookie_secure: bool,
    /// `SameSite` cookie attribute (COOKIE_SAMESITE).
    pub cookie_samesite: SameSite,
    /// Cookie names `__Host-access_token` / `__Secure-refresh_token` instead of the seed's
    /// `access_token` / `refresh_token` (COOKIE_PREFIXES, resolved: `auto` follows
    /// COOKIE_SECURE).
    pub cookie_prefixes: bool,
    /// Origins allowed to call the API from a browser with credentials (CORS_ORIGINS).
    pub cors_origins: Vec<String>,
    /// Login attempts per client IP (RATE_LIMIT_LOGIN).
    pub rate_limit_login: RateLimitSpec,
    /// Registrations per client IP (RATE_LIMIT_REGISTER).
    pub rate_limit_register: RateLimitSpec,
    /// API calls per user (RATE_LIMIT_API).
    pub rate_limit_api: RateLimitSpec,
    /// Log level directive (LOG_LEVEL).
    pub log_level: String,
    /// Log format (LOG_FORMAT).
    pub log_format: LogFormat,
    /// Cookie, body or both (TOKEN_DELIVERY).
    pub token_delivery: TokenDelivery,
    /// Seconds a just-replaced refresh token may still be presented (REFRESH_REUSE_GRACE_SECONDS).
    pub refresh_reuse_grace_secs: i64,
    /// `iss` of issued tokens (TOKEN_ISSUER).
    pub issuer: String,
    /// `aud` of issued tokens (TOKEN_AUDIENCE).
    pub audience: String,
    /// Clock skew tolerated on exp/nbf/iat (TOKEN_LEEWAY_SECONDS).
    pub leeway_secs: i64,
    /// argon2id parameters (PASSWORD_HASH_MEMORY_KIB, _ITERATIONS, _PARALLELISM).
    pub password_params: PasswordParams,
    /// Password hashing threads (HASH_WORKERS).
    pub hash_workers: usize,
    /// Hashing jobs that may wait; beyond this, 503 (HASH_QUEUE_SIZE).
    pub hash_queue: usize,
    /// Largest request body in bytes (MAX_BODY_BYTES).
    pub max_body_bytes: usize,
    /// Per-request timeout in seconds (REQUEST_TIMEOUT_SECONDS).
    pub request_timeout_secs: u64,
    /// The gateway's upstreams (UPSTREAMS).
    pub upstreams: Vec<gateway::Upstream>,
    /// GATEWAY_CONNECT_TIMEOUT_SECS.
    pub gateway_connect_timeout: Duration,
    /// GATEWAY_RESPONSE_TIMEOUT_SECS.
    pub gateway_response_timeout: Duration,
    /// GATEWAY_IDLE_TIMEOUT_SECS.
    pub gateway_idle_timeout: Duration,
    /// GATEWAY_MAX_BODY_BYTES.
    pub gateway_max_body_bytes: u64,
    /// Domains a forward-auth return URL (`rd`) may point to (GATEWAY_DOMAINS, G2).
    pub gateway_domains: Domains,
    /// Forward-auth rules: host and path prefix -> required role or scope (GATEWAY_RULES).
    pub gateway_rules: Rules,
    /// The sign-in page forward auth redirects browsers to (GATEWAY_SIGNIN_URL); `None` = `/signin`
    /// on the original request's origin.
    pub gateway_signin_url: Option<AbsoluteUrl>,
    /// `aud` of forward auth's assertions (GATEWAY_ASSERTION_AUDIENCE); `None` = the original
    /// request's host.
    pub gateway_assertion_audience: Option<String>,
    /// `Domain` attribute of the session cookies (COOKIE_DOMAIN); `None` = host-only.
    pub cookie_domain: Option<String>,
    /// The base of every link Tessera mails (PUBLIC_URL).
    pub public_url: mail::PublicUrl,
    /// Whether accounts must prove their address (EMAIL_VERIFICATION).
    pub email_verification: mail::EmailVerification,
    /// How mail leaves (SMTP_URL, SMTP_FROM, ...).
    pub mail: mail::MailConfig,
    /// The product's name on the hosted pages and in mails (PRODUCT_NAME).
    pub product_name: String,
    /// The hosted pages' brand colour, `#rgb` or `#rrggbb` (BRAND_COLOR).
    pub brand_color: String,
    /// The hosted pages' logo (BRAND_LOGO_URL).
    pub brand_logo: Option<pages::BrandLogo>,
}

/// A variable map: the environment, with `.env` underneath.
pub type Vars = HashMap<String, String>;

/// Reads the process environment, filling gaps from `.env` in the working directory when the
/// file exists. Variables already in the environment win, as with python-dotenv's default.
/// The file is read with python-dotenv's rules ([`dotenv`]).
pub fn vars_from_environment() -> Result<Vars, ConfigError> {
    let environment: Vars = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut vars: Vars = HashMap::new();
    match std::fs::read_to_string(".env") {
        Ok(text) => {
            let assignments =
                dotenv::parse(&text, &environment).map_err(|e| invalid("ENV_FILE", format!(".env {e}")))?;
            vars.extend(assignments);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(invalid("ENV_FILE", format!(".env could not be read: {}", e.kind()))),
    }
    vars.extend(environment);
    Ok(vars)
}

/// Reads variables through their declarations ([`vars::Var`]): the name for errors, the
/// literal default, the range or the choices.
struct Reader<'a> {
    vars: &'a Vars,
}

impl Reader<'_> {
    /// The trimmed value, `None` when unset or empty.
    fn get(&self, var: &Var) -> Option<&str> {
        self.get_name(var.name)
    }

    fn get_name(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    /// The value, else the declared literal default.
    fn value(&self, var: &Var) -> Option<&str> {
        self.get(var).or(var.default.literal())
    }

    /// A whole number within the declared range; `None` when unset with no literal default.
    fn int_opt<T: TryFrom<i64>>(&self, var: &Var) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.value(var) else { return Ok(None) };
        let (min, max) = match var.rule {
            vars::Rule::Int { min, max } | vars::Rule::Interval { min, max } => (min, max),
            _ => (i64::MIN, i64::MAX),
        };
        let value: i64 = raw.parse().map_err(|_| {
            invalid(
                var.name,
                format!("must be a whole number from {min} to {max} (got {raw:?})"),
            )
        })?;
        if value < min || value > max {
            return Err(invalid(var.name, format!("must be from {min} to {max} (got {value})")));
        }
        T::try_from(value)
            .map(Some)
            .map_err(|_| invalid(var.name, format!("must be from {min} to {max} (got {value})")))
    }

    /// A whole number within the declared range, the declared default when unset.
    fn int<T: TryFrom<i64>>(&self, var: &Var) -> Result<T, ConfigError> {
        self.int_opt(var)?
            .ok_or_else(|| invalid(var.name, "must be set (it has no default)"))
    }

    fn bool(&self, var: &Var) -> Result<bool, ConfigError> {
        let raw = self.value(var).unwrap_or("false");
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(var.name, format!("must be true or false (got {raw:?})"))),
        }
    }

    /// One of the declared options (any case, aliases resolved), as declared.
    fn choice(&self, var: &Var) -> Result<&'static str, ConfigError> {
        let vars::Rule::Choice { options, aliases } = var.rule else {
            return Err(invalid(var.name, "is not declared as a choice"));
        };
        let raw = self.value(var).unwrap_or_default();
        let found = options.iter().find(|o| o.eq_ignore_ascii_case(raw)).or_else(|| {
            aliases
                .iter()
                .find(|(a, _)| a.eq_ignore_ascii_case(raw))
                .map(|(_, o)| o)
        });
        found.copied().ok_or_else(|| {
            let (last, rest) = options.split_last().unwrap_or((&"", &[]));
            invalid(var.name, format!("must be {} or {last} (got {raw:?})", rest.join(", ")))
        })
    }

    fn limit(&self, var: &Var) -> Result<RateLimitSpec, ConfigError> {
        self.value(var)
            .unwrap_or_default()
            .parse()
            .map_err(|e: tessera_core::limits::LimitParseError| invalid(var.name, e.to_string()))
    }

    fn address(&self, var: &Var, example: &str) -> Result<Option<SocketAddr>, ConfigError> {
        let Some(raw) = self.value(var) else { return Ok(None) };
        raw.parse()
            .map(Some)
            .map_err(|_| invalid(var.name, format!("must be host:port, e.g. {example} (got {raw:?})")))
    }

    /// A secret from `VAR`, else from the file named by `VAR_FILE`, else from AWS Secrets Manager
    /// when `VAR_AWS_SECRET_ID` is set ([`secrets`]). At most one source may be set. It
    /// must be long enough and not weak ([`strength`]).
    fn secret(&self, var: &Var) -> Result<Option<Secret>, ConfigError> {
        let (name, file_var) = (var.name, var.file_var);
        let aws = crate::config::secrets::aws_secret_id(self.vars, var.aws_var, &[name, file_var])?;
        let mut source = name;
        let secret = match (self.get_name(name), self.get_name(file_var)) {
            (Some(_), Some(_)) => return Err(invalid(name, format!("set either {name} or {file_var}, not both"))),
            (Some(value), None) => Secret::new(value.as_bytes().to_vec()),
            (None, Some(path)) => {
                let bytes = std::fs::read(path)
                    .map_err(|e| invalid(file_var, format!("cannot read secret file {path:?}: {}", e.kind())))?;
                // Secret files usually end with a newline; it is not part of the secret.
                let text = String::from_utf8(bytes).map_err(|_| invalid(file_var, "secret file must be UTF-8 text"))?;
                Secret::new(text.trim_end_matches(['\r', '\n']).as_bytes().to_vec())
            }
            (None, None) => match aws {
                Some(aws) => {
                    source = aws.var;
                    aws.fetch(self.vars)?
                }
                None => return Ok(None),
            },
        };
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(invalid(
                source,
                format!(
                    "must be at least {MIN_SECRET_BYTES} bytes (got {}); generate one with `openssl rand -hex 32`",
                    secret.expose().len()
                ),
            ));
        }
        if let Some(rule) = strength::weakness(secret.expose()) {
            return Err(invalid(source, rule));
        }
        Ok(Some(secret))
    }

    /// A list of previous secrets: a JSON list of strings or a comma-separated list, each at
    /// least 32 bytes and not weak.
    fn secret_list(&self, var: &Var) -> Result<Vec<Secret>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(Vec::new());
        };
        let items = parse_list(raw).map_err(|()| invalid(var.name, LIST_RULE))?;
        items
            .into_iter()
            .map(|item| {
                if item.len() < MIN_SECRET_BYTES {
                    return Err(invalid(
                        var.name,
                        format!("every entry must be at least {MIN_SECRET_BYTES} bytes"),
                    ));
                }
                if let Some(rule) = strength::weakness(item.as_bytes()) {
                    return Err(invalid(var.name, format!("an entry {rule}")));
                }
                Ok(Secret::new(item.into_bytes()))
            })
            .collect()
    }
}

impl Config {
    /// Whether `ip` is one of TRUSTED_PROXIES: the peers whose forwarding headers are believed
    /// (the client IP, the gateway's `X-Forwarded-*`, forward auth's original request).
    pub fn is_trusted_proxy(&self, ip: std::net::IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(ip))
    }

    /// Parses and checks every variable. The first invalid one is reported.
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let r = Reader { vars };

        let bind = r
            .address(&vars::BIND_ADDR, "127.0.0.1:8000")?
            .ok_or_else(|| invalid(vars::BIND_ADDR.name, "must be set"))?;
        let metrics_addr = r.address(&vars::METRICS_ADDR, "127.0.0.1:9100")?;
        if metrics_addr.is_some_and(|m| m == bind && m.port() != 0) {
            return Err(invalid(
                vars::METRICS_ADDR.name,
                "must differ from BIND_ADDR".to_owned(),
            ));
        }

        let data_dir = PathBuf::from(r.value(&vars::DATA_DIR).unwrap_or_default());
        let database = match r.get(&vars::DATABASE_URL) {
            None => Database::Sqlite(data_dir.join("tessera.db")),
            Some(url) => parse_database_url(url)?,
        };
        let redis_url = match r.get(&vars::REDIS_URL) {
            None => None,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Some(ServiceUrl(url.to_owned()))
            }
            Some(_) => {
                return Err(invalid(
                    vars::REDIS_URL.name,
                    "must start with redis:// (e.g. redis://127.0.0.1:6379/0)",
                ));
            }
        };
        let token_cache_redis = r.bool(&vars::TOKEN_CACHE_REDIS)?;
        if redis_url.is_none() && token_cache_redis {
            return Err(invalid(
                vars::TOKEN_CACHE_REDIS.name,
                "needs REDIS_URL (the shared layer lives in Redis)",
            ));
        }
        let redis_prefix = r.value(&vars::REDIS_KEY_PREFIX).unwrap_or_default().to_owned();
        let trusted_proxies = match r.get(&vars::TRUSTED_PROXIES) {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| {
                    item.parse::<IpNet>().map_err(|()| {
                        invalid(
                            vars::TRUSTED_PROXIES.name,
                            format!("{item:?} is not an IP address or CIDR network like 10.0.0.0/8"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };

        let algorithm: Algorithm = r
            .value(&vars::ALGORITHM)
            .unwrap_or_default()
            .parse()
            .map_err(|e: tessera_core::jws::UnknownAlgorithm| invalid(vars::ALGORITHM.name, e.to_string()))?;

        let identity_algorithm: Algorithm =
            r.value(&vars::IDENTITY_ALGORITHM).unwrap_or_default().parse().map_err(
                |e: tessera_core::jws::UnknownAlgorithm| invalid(vars::IDENTITY_ALGORITHM.name, e.to_string()),
            )?;
        if identity_algorithm.is_symmetric() {
            return Err(invalid(
                vars::IDENTITY_ALGORITHM.name,
                format!(
                    "{identity_algorithm} is an HMAC algorithm; assertions must be verifiable by anyone with the JWK set: use ES256, EdDSA or RS256"
                ),
            ));
        }

        let secret_key = r.secret(&vars::SECRET_KEY)?;
        let refresh_secret_key = r.secret(&vars::REFRESH_SECRET_KEY)?;
        if let Some(secret) = &secret_key {
            if !algorithm.is_symmetric() {
                return Err(invalid(
                    vars::SECRET_KEY.name,
                    format!(
                        "is an HMAC secret and cannot be used with ALGORITHM={algorithm}; unset it and Tessera manages {algorithm} keys itself"
                    ),
                ));
            }
            let min = tessera_core::keys::min_hmac_secret_len(algorithm);
            if secret.expose().len() < min {
                return Err(invalid(
                    vars::SECRET_KEY.name,
                    format!("must be at least {min} bytes for {algorithm}"),
                ));
            }
            if refresh_secret_key.is_none() {
                return Err(invalid(
                    vars::REFRESH_SECRET_KEY.name,
                    "must be set when SECRET_KEY is set (or unset both for managed keys)",
                ));
            }
        }
        if let (Some(access), Some(refresh)) = (&secret_key, &refresh_secret_key)
            && access == refresh
        {
            return Err(invalid(vars::REFRESH_SECRET_KEY.name, "must differ from SECRET_KEY"));
        }
        if refresh_secret_key.is_some() && secret_key.is_none() && algorithm.is_symmetric() {
            return Err(invalid(
                vars::SECRET_KEY.name,
                "must be set when REFRESH_SECRET_KEY is set (or unset both for managed keys)",
            ));
        }

        let access_ttl_secs: i64 = match r.int_opt(&vars::ACCESS_TOKEN_EXPIRE_SECONDS)? {
            Some(seconds) => seconds,
            None => r.int::<i64>(&vars::ACCESS_TOKEN_EXPIRE_MINUTES)? * 60,
        };
        let refresh_ttl_secs = r.int::<i64>(&vars::REFRESH_TOKEN_EXPIRE_DAYS)? * 86_400;

        let cookie_secure = r.bool(&vars::COOKIE_SECURE)?;
        let cookie_samesite = match r.choice(&vars::COOKIE_SAMESITE)? {
            "strict" => SameSite::Strict,
            "none" => SameSite::None,
            _ => SameSite::Lax,
        };
        if cookie_samesite == SameSite::None && !cookie_secure {
            return Err(invalid(
                vars::COOKIE_SAMESITE.name,
                "none requires COOKIE_SECURE=true (browsers drop SameSite=None cookies without Secure)",
            ));
        }
        let cookie_domain = match r.get(&vars::COOKIE_DOMAIN) {
            None => None,
            Some(domain) => {
                let domain = domain.strip_prefix('.').unwrap_or(domain);
                match tessera_core::gateway::parse_authority(domain) {
                    Ok((host, None)) if host.contains('.') => Some(host),
                    _ => {
                        return Err(invalid(
                            vars::COOKIE_DOMAIN.name,
                            format!("{domain:?} is not a domain name with a dot (like example.com)"),
                        ));
                    }
                }
            }
        };
        let cookie_prefixes = match r.choice(&vars::COOKIE_PREFIXES)? {
            "on" => true,
            "off" => false,
            // A `__Host-` cookie cannot carry `Domain`: shared cookies go without prefixes.
            _ => cookie_secure && cookie_domain.is_none(),
        };
        if cookie_prefixes && cookie_domain.is_some() {
            return Err(invalid(
                vars::COOKIE_PREFIXES.name,
                "on cannot be combined with COOKIE_DOMAIN (browsers refuse a __Host- cookie with a Domain attribute); use auto or off",
            ));
        }
        if cookie_prefixes && !cookie_secure {
            return Err(invalid(
                vars::COOKIE_PREFIXES.name,
                "on requires COOKIE_SECURE=true (browsers drop __Host- and __Secure- cookies without Secure)",
            ));
        }

        let cors_origins = parse_origins(r.get(&vars::CORS_ORIGINS))?;

        let gateway_domains = Domains::parse(r.get(&vars::GATEWAY_DOMAINS).unwrap_or_default())
            .map_err(|e| invalid(vars::GATEWAY_DOMAINS.name, e.to_string()))?;
        let gateway_rules = Rules::parse(r.get(&vars::GATEWAY_RULES).unwrap_or_default())
            .map_err(|e| invalid(vars::GATEWAY_RULES.name, e.to_string()))?;
        let gateway_signin_url = match r.get(&vars::GATEWAY_SIGNIN_URL) {
            None => None,
            Some(url) => Some(AbsoluteUrl::parse(url.trim()).map_err(|e| {
                invalid(
                    vars::GATEWAY_SIGNIN_URL.name,
                    format!("must be an absolute http(s) URL like https://auth.example.com/ ({e})"),
                )
            })?),
        };
        let gateway_assertion_audience = r
            .get(&vars::GATEWAY_ASSERTION_AUDIENCE)
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned);

        let public_url = mail::public_url(&r, bind)?;
        let mail_config = mail::mail(&r, &data_dir, &public_url)?;
        let (product_name, brand_color, brand_logo) = pages::branding(&r)?;

        let log_level = match r.choice(&vars::LOG_LEVEL)? {
            "TRACE" => "trace",
            "DEBUG" => "debug",
            "WARNING" => "warn",
            "ERROR" => "error",
            _ => "info",
        }
        .to_owned();
        let log_format = match r.choice(&vars::LOG_FORMAT)? {
            "text" => LogFormat::Text,
            _ => LogFormat::Json,
        };
        let token_delivery = match r.choice(&vars::TOKEN_DELIVERY)? {
            "cookie" => TokenDelivery::Cookie,
            "body" => TokenDelivery::Body,
            _ => TokenDelivery::Both,
        };

        let password_params = PasswordParams {
            memory_kib: r.int(&vars::PASSWORD_HASH_MEMORY_KIB)?,
            iterations: r.int(&vars::PASSWORD_HASH_ITERATIONS)?,
            parallelism: r.int(&vars::PASSWORD_HASH_PARALLELISM)?,
        };
        if password_params.memory_kib < 8 * password_params.parallelism {
            return Err(invalid(
                vars::PASSWORD_HASH_MEMORY_KIB.name,
                "must be at least 8 KiB per lane of PASSWORD_HASH_PARALLELISM",
            ));
        }
        let key_reload_secs: u64 = r.int(&vars::KEY_RELOAD_SECONDS)?;
        let key_publish_delay_secs: i64 = r.int(&vars::KEY_PUBLISH_DELAY)?;
        if key_publish_delay_secs > 0 && key_publish_delay_secs < key_reload_secs as i64 * 2 {
            return Err(invalid(
                vars::KEY_PUBLISH_DELAY.name,
                format!(
                    "must be 0 or at least twice KEY_RELOAD_SECONDS ({key_reload_secs} s), so every instance knows a key before it signs"
                ),
            ));
        }
        // Off by default for HMAC (operators rotate their own secrets), monthly for key pairs.
        let key_rotation_interval_secs = match r
            .get(&vars::KEY_ROTATION_INTERVAL)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("off" | "0" | "never") => None,
            None if algorithm.is_symmetric() => None,
            None => Some(30 * 86_400),
            Some(_) => r.int_opt(&vars::KEY_ROTATION_INTERVAL)?,
        };
        let hash_workers = match r.int_opt(&vars::HASH_WORKERS)? {
            Some(workers) => workers,
            // Half the cores by default: a login flood must leave CPU for token-verified
            // requests (B8).
            None => std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .div_ceil(2)
                .max(1),
        };

        let gateway_response_timeout = Duration::from_secs(r.int(&vars::GATEWAY_RESPONSE_TIMEOUT_SECS)?);
        let gateway_max_body_bytes: u64 = r.int(&vars::GATEWAY_MAX_BODY_BYTES)?;
        let upstreams = gateway::parse_upstreams(
            r.get(&vars::UPSTREAMS).unwrap_or_default(),
            gateway::UpstreamDefaults {
                max_body_bytes: gateway_max_body_bytes,
                response_timeout: gateway_response_timeout,
            },
        )
        .map_err(|why| invalid(vars::UPSTREAMS.name, why))?;

        let config = Config {
            bind,
            metrics_addr,
            header_read_timeout: Duration::from_secs(r.int(&vars::HEADER_READ_TIMEOUT_SECS)?),
            idle_timeout: Duration::from_secs(r.int(&vars::IDLE_TIMEOUT_SECS)?),
            max_connections: r.int(&vars::MAX_CONNECTIONS)?,
            data_dir,
            database,
            algorithm,
            identity_algorithm,
            secret_key,
            refresh_secret_key,
            access_ttl_secs,
            refresh_ttl_secs,
            cookie_secure,
            cookie_samesite,
            cookie_prefixes,
            cors_origins,
            rate_limit_login: r.limit(&vars::RATE_LIMIT_LOGIN)?,
            rate_limit_register: r.limit(&vars::RATE_LIMIT_REGISTER)?,
            rate_limit_api: r.limit(&vars::RATE_LIMIT_API)?,
            rate_limit_login_account: r.limit(&vars::RATE_LIMIT_LOGIN_ACCOUNT)?,
            redis_url,
            redis_prefix,
            trusted_proxies,
            revocation_poll_millis: r.int(&vars::REVOCATION_POLL_MILLIS)?,
            token_cache_size: r.int(&vars::TOKEN_CACHE_SIZE)?,
            token_cache_redis,
            master_key: r.secret(&vars::MASTER_KEY)?,
            key_publish_delay_secs,
            key_rotation_interval_secs,
            key_reload_secs,
            previous_secret_keys: r.secret_list(&vars::PREVIOUS_SECRET_KEYS)?,
            previous_refresh_secret_keys: r.secret_list(&vars::PREVIOUS_REFRESH_SECRET_KEYS)?,
            log_level,
            log_format,
            token_delivery,
            refresh_reuse_grace_secs: r.int(&vars::REFRESH_REUSE_GRACE_SECONDS)?,
            issuer: r.value(&vars::TOKEN_ISSUER).unwrap_or_default().to_owned(),
            audience: r.value(&vars::TOKEN_AUDIENCE).unwrap_or_default().to_owned(),
            leeway_secs: r.int(&vars::TOKEN_LEEWAY_SECONDS)?,
            password_params,
            hash_workers,
            hash_queue: r.int(&vars::HASH_QUEUE_SIZE)?,
            max_body_bytes: r.int(&vars::MAX_BODY_BYTES)?,
            request_timeout_secs: r.int(&vars::REQUEST_TIMEOUT_SECONDS)?,
            upstreams,
            gateway_connect_timeout: Duration::from_secs(r.int(&vars::GATEWAY_CONNECT_TIMEOUT_SECS)?),
            gateway_response_timeout,
            gateway_idle_timeout: Duration::from_secs(r.int(&vars::GATEWAY_IDLE_TIMEOUT_SECS)?),
            gateway_max_body_bytes,
            gateway_domains,
            gateway_rules,
            gateway_signin_url,
            gateway_assertion_audience,
            cookie_domain,
            email_verification: mail::email_verification(&r)?,
            mail: mail_config,
            public_url,
            product_name,
            brand_color,
            brand_logo,
        };
        Ok(config)
    }

    /// A configuration for tests: SQLite in `data_dir`, cookies without `Secure` (plain HTTP on
    /// loopback), cheap password hashing, and generous rate limits.
    pub fn for_tests(data_dir: &std::path::Path) -> Config {
        let mut vars = Vars::new();
        vars.insert("DATA_DIR".into(), data_dir.display().to_string());
        vars.insert("BIND_ADDR".into(), "127.0.0.1:0".into());
        vars.insert("COOKIE_SECURE".into(), "false".into());
        vars.insert("PASSWORD_HASH_MEMORY_KIB".into(), "256".into());
        vars.insert("PASSWORD_HASH_ITERATIONS".into(), "1".into());
        vars.insert("RATE_LIMIT_LOGIN".into(), "1000/minute".into());
        vars.insert("RATE_LIMIT_REGISTER".into(), "1000/minute".into());
        vars.insert("RATE_LIMIT_API".into(), "10000/minute".into());
        vars.insert("RATE_LIMIT_LOGIN_ACCOUNT".into(), "1000/minute".into());
        match Config::from_vars(&vars) {
            Ok(config) => config,
            Err(e) => unreachable!("test configuration is valid: {e}"),
        }
    }

    /// The effective configuration as `NAME=value` pairs in declaration order, secrets redacted
    /// (`tessera config check`; [`VARS`] gives each one's group).
    pub fn redacted_summary(&self) -> Vec<(&'static str, String)> {
        VARS.iter().map(|var| (var.name, (var.show)(self))).collect()
    }
}

/// The rule of list-valued variables.
const LIST_RULE: &str = "must be a JSON list of strings or a comma-separated list";

/// A JSON list of strings (`["a", "b"]`, as pydantic reads a `list` setting) or a comma list.
fn parse_list(raw: &str) -> Result<Vec<String>, ()> {
    if raw.starts_with('[') {
        serde_json::from_str(raw).map_err(|_| ())
    } else {
        Ok(raw
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect())
    }
}

/// SQLAlchemy's driver suffixes, accepted and ignored (Tessera has its own drivers).
const SQLITE_DRIVERS: &[&str] = &["aiosqlite", "pysqlite"];
/// See [`SQLITE_DRIVERS`].
const POSTGRES_DRIVERS: &[&str] = &["asyncpg", "psycopg2", "psycopg", "psycopg2cffi", "pg8000"];

/// DATABASE_URL in Tessera's forms (`sqlite:<path>`, `sqlite://<relative path>`,
/// `postgres://`) and SQLAlchemy's (`sqlite:///relative.db`, `sqlite:////absolute.db`,
/// `postgresql://`, driver suffixes such as `+asyncpg`).
fn parse_database_url(url: &str) -> Result<Database, ConfigError> {
    let var = vars::DATABASE_URL.name;
    let unknown = || {
        invalid(
            var,
            "must start with sqlite: or postgres:// (e.g. sqlite:///./data/tessera.db or postgresql://user@host/db)",
        )
    };
    let (scheme, rest) = url.split_once(':').ok_or_else(unknown)?;
    let (base, driver) = match scheme.split_once('+') {
        Some((base, driver)) => (base, Some(driver)),
        None => (scheme, None),
    };
    let known_drivers = match base.to_ascii_lowercase().as_str() {
        "sqlite" => SQLITE_DRIVERS,
        "postgres" | "postgresql" => POSTGRES_DRIVERS,
        _ => return Err(unknown()),
    };
    if let Some(driver) = driver
        && !known_drivers.contains(&driver)
    {
        return Err(invalid(
            var,
            format!(
                "driver +{driver} is not known; Tessera ignores SQLAlchemy's driver suffixes +{} (or write {base}: without one)",
                known_drivers.join(", +")
            ),
        ));
    }
    if known_drivers == POSTGRES_DRIVERS {
        // The driver suffix means nothing to Tessera's own PostgreSQL client.
        return Ok(Database::Postgres(format!("{base}:{rest}")));
    }
    // SQLite. SQLAlchemy: `sqlite:///x` is the relative path x, `sqlite:////x` the absolute /x.
    // Tessera: `sqlite://x` (x not starting with a slash) and `sqlite:x` are the path x.
    let path = rest.split('?').next().unwrap_or_default();
    let path = match path.strip_prefix("///") {
        Some(after) => after,
        None => path.strip_prefix("//").unwrap_or(path),
    };
    if path == ":memory:" || path.starts_with("file::memory:") {
        return Err(invalid(
            var,
            "an in-memory SQLite database is not durable (every user and session is lost at restart); give a file, e.g. sqlite:///./data/tessera.db",
        ));
    }
    if path.is_empty() {
        return Err(invalid(
            var,
            "needs a file path, e.g. sqlite:///./data/tessera.db (relative) or sqlite:////var/lib/tessera/tessera.db (absolute)",
        ));
    }
    Ok(Database::Sqlite(PathBuf::from(path)))
}

/// CORS_ORIGINS as a JSON list (`["https://a.example"]`) or a comma list.
fn parse_origins(raw: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    let items = parse_list(raw).map_err(|()| invalid("CORS_ORIGINS", LIST_RULE))?;
    for origin in &items {
        if origin == "*" {
            return Err(invalid(
                "CORS_ORIGINS",
                "\"*\" cannot be used with credentials (cookies); list the origins, e.g. https://app.example.com",
            ));
        }
        let is_origin = (origin.starts_with("https://") || origin.starts_with("http://"))
            && !origin
                .trim_end_matches('/')
                .split_once("://")
                .is_some_and(|(_, rest)| rest.contains('/') || rest.is_empty())
            && origin.bytes().all(|b| b.is_ascii_graphic());
        if !is_origin {
            return Err(invalid(
                "CORS_ORIGINS",
                format!("{origin:?} is not an origin like https://app.example.com"),
            ));
        }
    }
    Ok(items.into_iter().map(|o| o.trim_end_matches('/').to_owned()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fixed random secrets (from `openssl rand`): test secrets must pass the strength rules.
    const STRONG_32: &str = "3f9c1e7a5b2d8046c9e1f3a7b5d20864";
    const STRONG_A: &str = "q7Lx2Vd9Kp4Rz8Nw1Ty6Hb3Mc5Gf0Js7Ae2Ud9";
    const STRONG_B: &str = "Wm4Zr8Tq2Xk6Pv1Ny9Lh3Bs7Df5Gj0Cu8Ea4Io2";
    const STRONG_C: &str = "e5c8a1f4d7b0e3c6a9f2d5b8e1c4a7f0d3b6e9c2";

    fn vars(pairs: &[(&str, &str)]) -> Vars {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn error_for(pairs: &[(&str, &str)]) -> ConfigError {
        Config::from_vars(&vars(pairs)).unwrap_err()
    }

    #[test]
    fn empty_environment_gives_the_seed_defaults() {
        let config = Config::from_vars(&Vars::new()).unwrap();
        assert_eq!(config.bind.to_string(), "127.0.0.1:8000");
        assert_eq!(config.algorithm, Algorithm::HS256);
        assert_eq!(config.access_ttl_secs, 900);
        assert_eq!(config.refresh_ttl_secs, 7 * 86_400);
        assert!(config.cookie_secure);
        assert_eq!(config.cookie_samesite, SameSite::Lax);
        assert_eq!(config.rate_limit_login.to_string(), "5/minute");
        assert_eq!(config.rate_limit_register.to_string(), "3/hour");
        assert_eq!(config.rate_limit_api.to_string(), "100/hour");
        assert_eq!(config.log_level, "info");
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.token_delivery, TokenDelivery::Both);
        assert_eq!(config.refresh_reuse_grace_secs, 10);
        assert!(config.secret_key.is_none());
        assert_eq!(config.database, Database::Sqlite(PathBuf::from("./data/tessera.db")));
    }

    #[test]
    fn each_invalid_value_names_its_variable() {
        let long = STRONG_32.to_owned();
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (
                vec![("SECRET_KEY", "short"), ("REFRESH_SECRET_KEY", &long)],
                "SECRET_KEY",
            ),
            (vec![("SECRET_KEY", &long)], "REFRESH_SECRET_KEY"),
            (
                vec![("SECRET_KEY", &long), ("REFRESH_SECRET_KEY", &long)],
                "REFRESH_SECRET_KEY",
            ),
            (vec![("COOKIE_SAMESITE", "sideways")], "COOKIE_SAMESITE"),
            (
                vec![("COOKIE_SAMESITE", "none"), ("COOKIE_SECURE", "false")],
                "COOKIE_SAMESITE",
            ),
            (vec![("CORS_ORIGINS", "*")], "CORS_ORIGINS"),
            (vec![("CORS_ORIGINS", "[\"*\"]")], "CORS_ORIGINS"),
            (vec![("CORS_ORIGINS", "app.example.com")], "CORS_ORIGINS"),
            (vec![("RATE_LIMIT_LOGIN", "5 per fortnight")], "RATE_LIMIT_LOGIN"),
            (vec![("RATE_LIMIT_API", "lots")], "RATE_LIMIT_API"),
            (vec![("ALGORITHM", "none")], "ALGORITHM"),
            (vec![("ALGORITHM", "PS256")], "ALGORITHM"),
            (
                vec![("ACCESS_TOKEN_EXPIRE_MINUTES", "0")],
                "ACCESS_TOKEN_EXPIRE_MINUTES",
            ),
            (
                vec![("ACCESS_TOKEN_EXPIRE_MINUTES", "ten")],
                "ACCESS_TOKEN_EXPIRE_MINUTES",
            ),
            (vec![("REFRESH_TOKEN_EXPIRE_DAYS", "-1")], "REFRESH_TOKEN_EXPIRE_DAYS"),
            (vec![("COOKIE_SECURE", "maybe")], "COOKIE_SECURE"),
            (vec![("LOG_LEVEL", "loud")], "LOG_LEVEL"),
            (vec![("LOG_FORMAT", "xml")], "LOG_FORMAT"),
            (vec![("BIND_ADDR", "localhost")], "BIND_ADDR"),
            (vec![("METRICS_ADDR", "9100")], "METRICS_ADDR"),
            (
                vec![("BIND_ADDR", "127.0.0.1:8000"), ("METRICS_ADDR", "127.0.0.1:8000")],
                "METRICS_ADDR",
            ),
            (vec![("TOKEN_DELIVERY", "pigeon")], "TOKEN_DELIVERY"),
            (vec![("DATABASE_URL", "mysql://x")], "DATABASE_URL"),
            (vec![("REDIS_URL", "http://x")], "REDIS_URL"),
            (vec![("ALGORITHM", "EdDSA"), ("SECRET_KEY", &long)], "SECRET_KEY"),
            (vec![("SECRET_KEY_FILE", "/nonexistent/secret")], "SECRET_KEY_FILE"),
        ];
        for (pairs, var) in cases {
            let error = error_for(&pairs);
            assert_eq!(error.var, var, "{pairs:?} -> {error}");
            assert!(error.to_string().starts_with(&format!("{var}: ")), "{error}");
        }
    }

    #[test]
    fn secrets_are_read_from_files_and_never_printed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, format!("{STRONG_C}\n")).unwrap();
        let long = STRONG_32.to_owned();
        let config = Config::from_vars(&vars(&[
            ("SECRET_KEY_FILE", path.to_str().unwrap()),
            ("REFRESH_SECRET_KEY", &long),
        ]))
        .unwrap();
        assert_eq!(config.secret_key.as_ref().unwrap().expose().len(), 40);
        let printed = format!("{config:?} {:?}", config.redacted_summary());
        assert!(!printed.contains(&STRONG_C[..8]), "{printed}");
        assert!(!printed.contains(&STRONG_32[..8]), "{printed}");
    }

    #[test]
    fn cors_origins_accept_json_and_comma_lists() {
        let config = Config::from_vars(&vars(&[(
            "CORS_ORIGINS",
            "[\"https://a.example\", \"http://localhost:3000\"]",
        )]))
        .unwrap();
        assert_eq!(config.cors_origins, vec!["https://a.example", "http://localhost:3000"]);
        let config = Config::from_vars(&vars(&[("CORS_ORIGINS", "https://a.example/, https://b.example")])).unwrap();
        assert_eq!(config.cors_origins, vec!["https://a.example", "https://b.example"]);
    }

    #[test]
    fn urls_are_printed_without_passwords() {
        assert_eq!(
            redact_url("postgres://app:hunter2@db:5432/tessera"),
            "postgres://app:[redacted]@db:5432/tessera"
        );
        assert_eq!(
            redact_url("redis://:s3cret@cache:6379/0"),
            "redis://:[redacted]@cache:6379/0"
        );
        assert_eq!(redact_url("postgres://db/tessera?password=x"), "postgres://db/tessera");
        assert_eq!(redact_url("redis://cache:6379"), "redis://cache:6379");
        let config = Config::from_vars(&vars(&[
            ("DATABASE_URL", "postgres://app:hunter2@db/t"),
            ("REDIS_URL", "redis://:pw@r:6379"),
        ]))
        .unwrap();
        let printed = format!("{config:?} {:?}", config.redacted_summary());
        assert!(!printed.contains("hunter2") && !printed.contains(":pw@"), "{printed}");
    }

    #[test]
    fn identity_algorithm_is_asymmetric() {
        assert_eq!(
            Config::from_vars(&vars(&[])).unwrap().identity_algorithm,
            Algorithm::ES256
        );
        for ok in ["EdDSA", "RS256", "ES256"] {
            let config = Config::from_vars(&vars(&[("IDENTITY_ALGORITHM", ok)])).unwrap();
            assert_eq!(config.identity_algorithm.to_string(), ok);
        }
        for bad in ["HS256", "none", "es256"] {
            assert_eq!(
                error_for(&[("IDENTITY_ALGORITHM", bad)]).var,
                "IDENTITY_ALGORITHM",
                "{bad}"
            );
        }
    }

    #[test]
    fn trusted_proxies_parse_as_networks() {
        let config = Config::from_vars(&vars(&[("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1, ::1, fd00::/8")])).unwrap();
        let nets = &config.trusted_proxies;
        assert!(nets[0].contains("10.1.2.3".parse().unwrap()));
        assert!(!nets[0].contains("11.0.0.1".parse().unwrap()));
        assert!(nets[1].contains("127.0.0.1".parse().unwrap()));
        assert!(nets[1].contains("::ffff:127.0.0.1".parse().unwrap()));
        assert!(nets[2].contains("::1".parse().unwrap()));
        assert!(nets[3].contains("fd12::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "nonsense", "::/129"] {
            assert_eq!(error_for(&[("TRUSTED_PROXIES", bad)]).var, "TRUSTED_PROXIES", "{bad}");
        }
        assert_eq!(error_for(&[("REDIS_URL", "localhost:6379")]).var, "REDIS_URL");
        assert_eq!(
            error_for(&[("RATE_LIMIT_LOGIN_ACCOUNT", "x")]).var,
            "RATE_LIMIT_LOGIN_ACCOUNT"
        );
    }

    #[test]
    fn access_lifetime_in_seconds_overrides_minutes() {
        let config = Config::from_vars(&vars(&[
            ("ACCESS_TOKEN_EXPIRE_SECONDS", "2"),
            ("ACCESS_TOKEN_EXPIRE_MINUTES", "30"),
        ]))
        .unwrap();
        assert_eq!(config.access_ttl_secs, 2);
    }

    /// See: issue 13, finding 7.
    #[test]
    fn weak_configured_secrets_are_refused_naming_the_variable_and_the_rule() {
        let weak: [(String, &str); 5] = [
            ("a".repeat(40), "is one character repeated"),
            ("your-secret-key-change-this-in-production".to_owned(), "placeholder"),
            (
                "your-refresh-secret-key-change-this-in-production".to_owned(),
                "placeholder",
            ),
            ("changeme".repeat(5), "repeats a 8-character pattern"),
            ("abcdefghijklmnopqrstuvwxyz0123456789".to_owned(), "too predictable"),
        ];
        let dir = tempfile::tempdir().unwrap();
        for (secret, rule) in &weak {
            let file = dir.path().join("weak");
            std::fs::write(&file, secret).unwrap();
            let file = file.to_str().unwrap();
            let list = format!("{STRONG_C},{secret}");
            let cases: [(Vec<(&str, &str)>, &str); 6] = [
                (
                    vec![("SECRET_KEY", secret), ("REFRESH_SECRET_KEY", STRONG_B)],
                    "SECRET_KEY",
                ),
                (
                    vec![("SECRET_KEY", STRONG_A), ("REFRESH_SECRET_KEY", secret)],
                    "REFRESH_SECRET_KEY",
                ),
                (
                    vec![("SECRET_KEY_FILE", file), ("REFRESH_SECRET_KEY", STRONG_B)],
                    "SECRET_KEY",
                ),
                (vec![("MASTER_KEY", secret)], "MASTER_KEY"),
                (
                    vec![
                        ("SECRET_KEY", STRONG_A),
                        ("REFRESH_SECRET_KEY", STRONG_B),
                        ("PREVIOUS_SECRET_KEYS", &list),
                    ],
                    "PREVIOUS_SECRET_KEYS",
                ),
                (
                    vec![
                        ("SECRET_KEY", STRONG_A),
                        ("REFRESH_SECRET_KEY", STRONG_B),
                        ("PREVIOUS_REFRESH_SECRET_KEYS", &list),
                    ],
                    "PREVIOUS_REFRESH_SECRET_KEYS",
                ),
            ];
            for (pairs, var) in cases {
                let error = error_for(&pairs);
                assert_eq!(error.var, var, "{secret}: {error}");
                assert!(error.rule.contains(rule), "{secret}: {error}");
                assert!(!error.to_string().contains(secret.as_str()), "echoed: {error}");
            }
        }
        // Strong secrets pass, from every source.
        let file = dir.path().join("strong");
        std::fs::write(&file, format!("{STRONG_C}\n")).unwrap();
        let config = Config::from_vars(&vars(&[
            ("SECRET_KEY_FILE", file.to_str().unwrap()),
            ("REFRESH_SECRET_KEY", STRONG_B),
            ("MASTER_KEY", STRONG_A),
            ("PREVIOUS_SECRET_KEYS", STRONG_32),
            ("PREVIOUS_REFRESH_SECRET_KEYS", &format!("[\"{STRONG_A}\"]")),
        ]))
        .unwrap();
        assert_eq!(config.secret_key.unwrap().expose(), STRONG_C.as_bytes());
        assert_eq!(config.previous_refresh_secret_keys.len(), 1);
    }

    #[test]
    fn connection_settings_have_their_defaults_and_parse() {
        let config = Config::from_vars(&Vars::new()).unwrap();
        assert_eq!(config.header_read_timeout, Duration::from_secs(10));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.max_connections, 4096);
        let config = Config::from_vars(&vars(&[
            ("HEADER_READ_TIMEOUT_SECS", "3"),
            ("IDLE_TIMEOUT_SECS", "3600"),
            ("MAX_CONNECTIONS", "1000000"),
        ]))
        .unwrap();
        assert_eq!(config.header_read_timeout, Duration::from_secs(3));
        assert_eq!(config.idle_timeout, Duration::from_secs(3600));
        assert_eq!(config.max_connections, 1_000_000);
        for (var, value) in [
            ("HEADER_READ_TIMEOUT_SECS", "0"),
            ("HEADER_READ_TIMEOUT_SECS", "301"),
            ("IDLE_TIMEOUT_SECS", "soon"),
            ("MAX_CONNECTIONS", "1000001"),
            ("MAX_CONNECTIONS", "-1"),
        ] {
            let error = error_for(&[(var, value)]);
            assert_eq!(error.var, var, "{value}: {error}");
        }
    }

    #[test]
    fn cookie_prefixes_follow_cookie_secure_unless_set() {
        let prefixes = |pairs: &[(&str, &str)]| Config::from_vars(&vars(pairs)).unwrap().cookie_prefixes;
        assert!(prefixes(&[]));
        assert!(!prefixes(&[("COOKIE_SECURE", "false")]));
        assert!(prefixes(&[("COOKIE_PREFIXES", "ON")]));
        assert!(!prefixes(&[("COOKIE_PREFIXES", "off")]));
        assert!(!prefixes(&[("COOKIE_PREFIXES", "auto"), ("COOKIE_SECURE", "0")]));
        let error = error_for(&[("COOKIE_PREFIXES", "on"), ("COOKIE_SECURE", "false")]);
        assert_eq!(error.var, "COOKIE_PREFIXES");
        assert!(error.rule.contains("COOKIE_SECURE=true"), "{error}");
        let error = error_for(&[("COOKIE_PREFIXES", "maybe")]);
        assert_eq!(
            error.to_string(),
            "COOKIE_PREFIXES: must be auto, on or off (got \"maybe\")"
        );
    }

    #[test]
    fn cookie_domain_is_refused_with_host_prefixes_and_turns_auto_prefixes_off() {
        // Arrange + Act
        let config = Config::from_vars(&vars(&[("COOKIE_DOMAIN", ".Example.com")])).unwrap();
        // Assert: auto (COOKIE_SECURE=true) resolves to no prefixes, as __Host- forbids Domain.
        assert_eq!(config.cookie_domain.as_deref(), Some("example.com"));
        assert!(!config.cookie_prefixes);
        let error = error_for(&[("COOKIE_DOMAIN", "example.com"), ("COOKIE_PREFIXES", "on")]);
        assert_eq!(error.var, "COOKIE_PREFIXES");
        assert!(error.rule.contains("__Host-"), "{error}");
        for bad in [
            "localhost",
            "example.com:443",
            "a b.com",
            "https://example.com",
            "ex%61mple.com",
        ] {
            assert_eq!(error_for(&[("COOKIE_DOMAIN", bad)]).var, "COOKIE_DOMAIN", "{bad}");
        }
    }

    #[test]
    fn gateway_settings_parse_and_name_their_variable_when_wrong() {
        let config = Config::from_vars(&vars(&[
            ("GATEWAY_DOMAINS", "example.com,http://dev.test"),
            (
                "GATEWAY_RULES",
                "api.example.com/admin/=role:admin, */agent/=scope:agent:chat",
            ),
            ("GATEWAY_SIGNIN_URL", "https://auth.example.com/signin"),
            ("GATEWAY_ASSERTION_AUDIENCE", "internal-apps"),
        ]))
        .unwrap();
        assert_eq!(config.gateway_domains.0.len(), 2);
        assert_eq!(config.gateway_rules.0.len(), 2);
        assert_eq!(
            config.gateway_signin_url.map(|u| u.to_string()).as_deref(),
            Some("https://auth.example.com/signin")
        );
        assert_eq!(config.gateway_assertion_audience.as_deref(), Some("internal-apps"));
        for (name, bad) in [
            ("GATEWAY_DOMAINS", "example.com/x"),
            ("GATEWAY_RULES", "*/admin=role:Admin"),
            ("GATEWAY_SIGNIN_URL", "/signin"),
            ("GATEWAY_SIGNIN_URL", "https://user@auth.example.com/"),
        ] {
            assert_eq!(error_for(&[(name, bad)]).var, name, "{bad}");
        }
    }

    /// See: issue 21 (SQLAlchemy's URL forms), and Tessera's own forms keep working.
    #[test]
    fn database_urls_in_sqlalchemy_and_tessera_forms() {
        let sqlite = |path: &str| Database::Sqlite(PathBuf::from(path));
        let postgres = |url: &str| Database::Postgres(url.to_owned());
        let cases = [
            ("sqlite:///./app.db", sqlite("./app.db")),
            ("sqlite:///relative/path.db", sqlite("relative/path.db")),
            ("sqlite:////absolute/path.db", sqlite("/absolute/path.db")),
            ("sqlite+aiosqlite:///./app.db", sqlite("./app.db")),
            ("sqlite:///./app.db?mode=rwc", sqlite("./app.db")),
            ("sqlite://./data/tessera.db", sqlite("./data/tessera.db")),
            ("sqlite:./data/tessera.db", sqlite("./data/tessera.db")),
            ("sqlite:/var/lib/tessera.db", sqlite("/var/lib/tessera.db")),
            ("postgresql://user@host/db", postgres("postgresql://user@host/db")),
            (
                "postgres://user:pw@host:5432/db",
                postgres("postgres://user:pw@host:5432/db"),
            ),
            (
                "postgresql+asyncpg://user@host/db",
                postgres("postgresql://user@host/db"),
            ),
            (
                "postgresql+psycopg2://user@host/db",
                postgres("postgresql://user@host/db"),
            ),
            (
                "postgresql+psycopg://user@host/db",
                postgres("postgresql://user@host/db"),
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(parse_database_url(url), Ok(expected), "{url}");
        }
        for (url, rule) in [
            ("sqlite:///:memory:", "not durable"),
            ("sqlite://", "needs a file path"),
            ("sqlite:", "needs a file path"),
            ("postgresql+mysqldb://h/db", "driver +mysqldb is not known"),
            ("mysql://h/db", "must start with sqlite: or postgres://"),
            ("nonsense", "must start with sqlite: or postgres://"),
        ] {
            let error = parse_database_url(url).unwrap_err();
            assert_eq!(error.var, "DATABASE_URL");
            assert!(error.rule.contains(rule), "{url}: {error}");
        }
    }
}
