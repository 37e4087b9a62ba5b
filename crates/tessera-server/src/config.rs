//! Configuration (S11): the seed's environment variable names and defaults, plus Tessera's own.
//!
//! Loading has two stages. The raw stage is a map of variables (the process environment, with
//! a `.env` file filling in what the environment does not set). [`Config::from_vars`] then
//! parses and checks every value once, at start-up: an invalid value stops the process with
//! exit code 2 and one line naming the variable and the rule it breaks. Nothing downstream
//! re-parses configuration.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Serialize;
use tessera_core::Algorithm;
use tessera_core::limits::RateLimitSpec;
use tessera_core::password::PasswordParams;
use zeroize::Zeroizing;

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

/// A trusted proxy network (TRUSTED_PROXIES entry): an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    /// Network address.
    pub addr: std::net::IpAddr,
    /// Prefix length in bits.
    pub prefix: u8,
}

impl IpNet {
    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for IpNet {
    type Err = ();

    fn from_str(text: &str) -> Result<IpNet, ()> {
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr: std::net::IpAddr = addr.trim().parse().map_err(|_| ())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.trim().parse::<u8>().map_err(|_| ())?,
            None => max,
        };
        if prefix > max {
            return Err(());
        }
        Ok(IpNet { addr, prefix })
    }
}

impl fmt::Display for IpNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
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
    /// `__Host-`/`__Secure-` cookie names (COOKIE_PREFIXES; interim until the config rewrite).
    pub cookie_prefixes: bool,
}

/// A variable map: the environment, with `.env` underneath.
pub type Vars = HashMap<String, String>;

/// Reads the process environment, filling gaps from `.env` in the working directory when the
/// file exists. Variables already in the environment win, as with python-dotenv's default.
pub fn vars_from_environment() -> Result<Vars, ConfigError> {
    let mut vars: Vars = HashMap::new();
    match dotenvy::from_path_iter(".env") {
        Ok(iter) => {
            for item in iter {
                let (key, value) = item.map_err(|e| invalid("ENV_FILE", format!(".env could not be parsed: {e}")))?;
                vars.insert(key, value);
            }
        }
        Err(e) if e.not_found() => {}
        Err(e) => return Err(invalid("ENV_FILE", format!(".env could not be read: {e}"))),
    }
    vars.extend(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))));
    Ok(vars)
}

struct Reader<'a> {
    vars: &'a Vars,
}

impl Reader<'_> {
    /// The trimmed value, `None` when unset or empty.
    fn get(&self, var: &str) -> Option<&str> {
        self.vars.get(var).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn parse_int<T>(&self, var: &'static str, default: T, min: T, max: T) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.get(var) else { return Ok(default) };
        let value: T = raw
            .parse()
            .map_err(|_| invalid(var, format!("must be a whole number from {min} to {max} (got {raw:?})")))?;
        if value < min || value > max {
            return Err(invalid(var, format!("must be from {min} to {max} (got {value})")));
        }
        Ok(value)
    }

    fn parse_bool(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(raw) = self.get(var) else { return Ok(default) };
        match raw.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            _ => Err(invalid(var, format!("must be true or false (got {raw:?})"))),
        }
    }

    fn parse_limit(&self, var: &'static str, default: &str) -> Result<RateLimitSpec, ConfigError> {
        self.get(var)
            .unwrap_or(default)
            .parse()
            .map_err(|e: tessera_core::limits::LimitParseError| invalid(var, e.to_string()))
    }

    /// A secret from `VAR`, else from the file named by `VAR_FILE`, else from AWS Secrets Manager
    /// when `VAR_AWS_SECRET_ID` is set ([`crate::secrets`]). At most one source may be set.
    fn secret(&self, var: &'static str, file_var: &'static str) -> Result<Option<Secret>, ConfigError> {
        let aws = crate::secrets::aws_secret_id(self.vars, var, &[var, file_var])?;
        let mut source = var;
        let secret = match (self.get(var), self.get(file_var)) {
            (Some(_), Some(_)) => return Err(invalid(var, format!("set either {var} or {file_var}, not both"))),
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
        Ok(Some(secret))
    }
}

impl Config {
    /// Parses and checks every variable. The first invalid one is reported.
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let r = Reader { vars };

        let bind_raw = r.get("BIND_ADDR").unwrap_or("127.0.0.1:8000");
        let bind: SocketAddr = bind_raw.parse().map_err(|_| {
            invalid(
                "BIND_ADDR",
                format!("must be host:port, e.g. 127.0.0.1:8000 (got {bind_raw:?})"),
            )
        })?;

        let metrics_addr = match r.get("METRICS_ADDR") {
            None => None,
            Some(raw) => Some(raw.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    "METRICS_ADDR",
                    format!("must be host:port, e.g. 127.0.0.1:9100 (got {raw:?})"),
                )
            })?),
        };
        if metrics_addr.is_some_and(|m| m == bind && m.port() != 0) {
            return Err(invalid("METRICS_ADDR", "must differ from BIND_ADDR".to_owned()));
        }

        let data_dir = PathBuf::from(r.get("DATA_DIR").unwrap_or("./data"));
        let database = match r.get("DATABASE_URL") {
            None => Database::Sqlite(data_dir.join("tessera.db")),
            Some(url) => parse_database_url(url)?,
        };
        let redis_url = match r.get("REDIS_URL") {
            None => None,
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                Some(ServiceUrl(url.to_owned()))
            }
            Some(_) => {
                return Err(invalid(
                    "REDIS_URL",
                    "must start with redis:// (e.g. redis://127.0.0.1:6379/0)",
                ));
            }
        };
        if redis_url.is_none() && r.parse_bool("TOKEN_CACHE_REDIS", false)? {
            return Err(invalid(
                "TOKEN_CACHE_REDIS",
                "needs REDIS_URL (the shared layer lives in Redis)",
            ));
        }
        let redis_prefix = r.get("REDIS_KEY_PREFIX").unwrap_or("tessera:").to_owned();
        let trusted_proxies = match r.get("TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(|item| {
                    item.parse::<IpNet>().map_err(|()| {
                        invalid(
                            "TRUSTED_PROXIES",
                            format!("{item:?} is not an IP address or CIDR network like 10.0.0.0/8"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
        };

        let algorithm_raw = r.get("ALGORITHM").unwrap_or("HS256");
        let algorithm: Algorithm = algorithm_raw
            .parse()
            .map_err(|e: tessera_core::jws::UnknownAlgorithm| invalid("ALGORITHM", e.to_string()))?;

        let secret_key = r.secret("SECRET_KEY", "SECRET_KEY_FILE")?;
        let refresh_secret_key = r.secret("REFRESH_SECRET_KEY", "REFRESH_SECRET_KEY_FILE")?;
        if let Some(secret) = &secret_key {
            if !algorithm.is_symmetric() {
                return Err(invalid(
                    "SECRET_KEY",
                    format!(
                        "is an HMAC secret and cannot be used with ALGORITHM={algorithm}; unset it and Tessera manages {algorithm} keys itself"
                    ),
                ));
            }
            let min = tessera_core::keys::min_hmac_secret_len(algorithm);
            if secret.expose().len() < min {
                return Err(invalid(
                    "SECRET_KEY",
                    format!("must be at least {min} bytes for {algorithm}"),
                ));
            }
            if refresh_secret_key.is_none() {
                return Err(invalid(
                    "REFRESH_SECRET_KEY",
                    "must be set when SECRET_KEY is set (or unset both for managed keys)",
                ));
            }
        }
        if let (Some(access), Some(refresh)) = (&secret_key, &refresh_secret_key)
            && access == refresh
        {
            return Err(invalid("REFRESH_SECRET_KEY", "must differ from SECRET_KEY"));
        }
        if refresh_secret_key.is_some() && secret_key.is_none() && algorithm.is_symmetric() {
            return Err(invalid(
                "SECRET_KEY",
                "must be set when REFRESH_SECRET_KEY is set (or unset both for managed keys)",
            ));
        }

        let access_ttl_secs = match r.get("ACCESS_TOKEN_EXPIRE_SECONDS") {
            Some(_) => r.parse_int("ACCESS_TOKEN_EXPIRE_SECONDS", 900, 1, 86_400)?,
            None => r.parse_int("ACCESS_TOKEN_EXPIRE_MINUTES", 15, 1, 1_440)? * 60,
        };
        let refresh_ttl_secs = r.parse_int("REFRESH_TOKEN_EXPIRE_DAYS", 7i64, 1, 365)? * 86_400;

        let cookie_secure = r.parse_bool("COOKIE_SECURE", true)?;
        let samesite_raw = r.get("COOKIE_SAMESITE").unwrap_or("lax");
        let cookie_samesite = match samesite_raw.to_ascii_lowercase().as_str() {
            "lax" => SameSite::Lax,
            "strict" => SameSite::Strict,
            "none" => SameSite::None,
            _ => {
                return Err(invalid(
                    "COOKIE_SAMESITE",
                    format!("must be lax, strict or none (got {samesite_raw:?})"),
                ));
            }
        };
        if cookie_samesite == SameSite::None && !cookie_secure {
            return Err(invalid(
                "COOKIE_SAMESITE",
                "none requires COOKIE_SECURE=true (browsers drop SameSite=None cookies without Secure)",
            ));
        }

        let cors_origins = parse_origins(r.get("CORS_ORIGINS"))?;

        let log_level_raw = r.get("LOG_LEVEL").unwrap_or("INFO");
        let log_level = match log_level_raw.to_ascii_lowercase().as_str() {
            "trace" => "trace",
            "debug" => "debug",
            "info" => "info",
            "warn" | "warning" => "warn",
            "error" | "critical" => "error",
            _ => {
                return Err(invalid(
                    "LOG_LEVEL",
                    format!("must be TRACE, DEBUG, INFO, WARNING or ERROR (got {log_level_raw:?})"),
                ));
            }
        }
        .to_owned();
        let log_format = match r.get("LOG_FORMAT").unwrap_or("json").to_ascii_lowercase().as_str() {
            "json" => LogFormat::Json,
            "text" => LogFormat::Text,
            other => return Err(invalid("LOG_FORMAT", format!("must be json or text (got {other:?})"))),
        };
        let token_delivery = match r.get("TOKEN_DELIVERY").unwrap_or("both").to_ascii_lowercase().as_str() {
            "cookie" => TokenDelivery::Cookie,
            "body" => TokenDelivery::Body,
            "both" => TokenDelivery::Both,
            other => {
                return Err(invalid(
                    "TOKEN_DELIVERY",
                    format!("must be cookie, body or both (got {other:?})"),
                ));
            }
        };

        let defaults = PasswordParams::default();
        let password_params = PasswordParams {
            memory_kib: r.parse_int("PASSWORD_HASH_MEMORY_KIB", defaults.memory_kib, 8, 4 * 1024 * 1024)?,
            iterations: r.parse_int("PASSWORD_HASH_ITERATIONS", defaults.iterations, 1, 100)?,
            parallelism: r.parse_int("PASSWORD_HASH_PARALLELISM", defaults.parallelism, 1, 64)?,
        };
        if password_params.memory_kib < 8 * password_params.parallelism {
            return Err(invalid(
                "PASSWORD_HASH_MEMORY_KIB",
                "must be at least 8 KiB per lane of PASSWORD_HASH_PARALLELISM",
            ));
        }
        let key_reload_secs: u64 = r.parse_int("KEY_RELOAD_SECONDS", 5, 1, 300)?;
        let key_publish_delay_secs: i64 = r.parse_int("KEY_PUBLISH_DELAY", 3_600, 0, 30 * 86_400)?;
        if key_publish_delay_secs > 0 && key_publish_delay_secs < key_reload_secs as i64 * 2 {
            return Err(invalid(
                "KEY_PUBLISH_DELAY",
                format!(
                    "must be 0 or at least twice KEY_RELOAD_SECONDS ({key_reload_secs} s), so every instance knows a key before it signs"
                ),
            ));
        }
        // Off by default for HMAC (operators rotate their own secrets), monthly for key pairs.
        let key_rotation_interval_secs = match r.get("KEY_ROTATION_INTERVAL").map(str::to_ascii_lowercase).as_deref() {
            Some("off" | "0" | "never") => None,
            None if algorithm.is_symmetric() => None,
            None => Some(30 * 86_400),
            Some(_) => Some(r.parse_int("KEY_ROTATION_INTERVAL", 0, 60, 3_650 * 86_400)?),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Half the cores by default: a login flood must leave CPU for token-verified requests (B8).
        let default_workers = cores.div_ceil(2).max(1);

        let config = Config {
            bind,
            metrics_addr,
            data_dir,
            database,
            algorithm,
            secret_key,
            refresh_secret_key,
            access_ttl_secs,
            refresh_ttl_secs,
            cookie_secure,
            cookie_samesite,
            cors_origins,
            rate_limit_login: r.parse_limit("RATE_LIMIT_LOGIN", "5/minute")?,
            rate_limit_register: r.parse_limit("RATE_LIMIT_REGISTER", "3/hour")?,
            rate_limit_api: r.parse_limit("RATE_LIMIT_API", "100/hour")?,
            rate_limit_login_account: r.parse_limit("RATE_LIMIT_LOGIN_ACCOUNT", "10/minute;50/hour")?,
            redis_url,
            redis_prefix,
            trusted_proxies,
            revocation_poll_millis: r.parse_int("REVOCATION_POLL_MILLIS", 500, 50, 60_000)?,
            token_cache_size: r.parse_int("TOKEN_CACHE_SIZE", 10_000, 0, 10_000_000)?,
            token_cache_redis: r.parse_bool("TOKEN_CACHE_REDIS", false)?,
            master_key: r.secret("MASTER_KEY", "MASTER_KEY_FILE")?,
            key_publish_delay_secs,
            key_rotation_interval_secs,
            key_reload_secs,
            previous_secret_keys: parse_secret_list(&r, "PREVIOUS_SECRET_KEYS")?,
            previous_refresh_secret_keys: parse_secret_list(&r, "PREVIOUS_REFRESH_SECRET_KEYS")?,
            log_level,
            log_format,
            token_delivery,
            refresh_reuse_grace_secs: r.parse_int("REFRESH_REUSE_GRACE_SECONDS", 10, 0, 300)?,
            issuer: r.get("TOKEN_ISSUER").unwrap_or("tessera").to_owned(),
            audience: r.get("TOKEN_AUDIENCE").unwrap_or("tessera-api").to_owned(),
            leeway_secs: r.parse_int("TOKEN_LEEWAY_SECONDS", 10, 0, 120)?,
            password_params,
            hash_workers: r.parse_int("HASH_WORKERS", default_workers, 1, 256)?,
            hash_queue: r.parse_int("HASH_QUEUE_SIZE", 32, 1, 100_000)?,
            max_body_bytes: r.parse_int("MAX_BODY_BYTES", 64 * 1024, 1024, 16 * 1024 * 1024)?,
            request_timeout_secs: r.parse_int("REQUEST_TIMEOUT_SECONDS", 30, 1, 600)?,
            cookie_prefixes: false,
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

    /// The effective configuration as printable lines, secrets redacted (`tessera config check`).
    pub fn redacted_summary(&self) -> Vec<(&'static str, String)> {
        let secret = |s: &Option<Secret>, managed: &str| match s {
            Some(secret) => format!("[redacted, {} bytes]", secret.expose().len()),
            None => managed.to_owned(),
        };
        vec![
            ("BIND_ADDR", self.bind.to_string()),
            (
                "METRICS_ADDR",
                self.metrics_addr
                    .map_or_else(|| "(unset: /metrics on BIND_ADDR)".to_owned(), |a| a.to_string()),
            ),
            ("DATA_DIR", self.data_dir.display().to_string()),
            ("DATABASE_URL", self.database.to_string()),
            (
                "REDIS_URL",
                self.redis_url
                    .as_ref()
                    .map_or_else(|| "(unset: in-process state)".to_owned(), ToString::to_string),
            ),
            ("REDIS_KEY_PREFIX", self.redis_prefix.clone()),
            (
                "TRUSTED_PROXIES",
                format!(
                    "{:?}",
                    self.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>()
                ),
            ),
            ("RATE_LIMIT_LOGIN_ACCOUNT", self.rate_limit_login_account.to_string()),
            ("REVOCATION_POLL_MILLIS", self.revocation_poll_millis.to_string()),
            ("TOKEN_CACHE_SIZE", self.token_cache_size.to_string()),
            ("TOKEN_CACHE_REDIS", self.token_cache_redis.to_string()),
            (
                "MASTER_KEY",
                self.master_key.as_ref().map_or_else(
                    || "(unset: stored private keys are not sealed)".to_owned(),
                    |s| format!("[redacted, {} bytes]", s.expose().len()),
                ),
            ),
            ("KEY_PUBLISH_DELAY", self.key_publish_delay_secs.to_string()),
            (
                "KEY_ROTATION_INTERVAL",
                self.key_rotation_interval_secs
                    .map_or_else(|| "off".to_owned(), |s| s.to_string()),
            ),
            ("KEY_RELOAD_SECONDS", self.key_reload_secs.to_string()),
            (
                "PREVIOUS_SECRET_KEYS",
                format!("[{} redacted]", self.previous_secret_keys.len()),
            ),
            (
                "PREVIOUS_REFRESH_SECRET_KEYS",
                format!("[{} redacted]", self.previous_refresh_secret_keys.len()),
            ),
            ("ALGORITHM", self.algorithm.to_string()),
            (
                "SECRET_KEY",
                secret(&self.secret_key, "(unset: managed key ring in the database)"),
            ),
            (
                "REFRESH_SECRET_KEY",
                secret(&self.refresh_secret_key, "(unset: managed key ring in the database)"),
            ),
            ("ACCESS_TOKEN_EXPIRE_SECONDS", self.access_ttl_secs.to_string()),
            (
                "REFRESH_TOKEN_EXPIRE_DAYS",
                (self.refresh_ttl_secs / 86_400).to_string(),
            ),
            ("TOKEN_DELIVERY", format!("{:?}", self.token_delivery).to_lowercase()),
            ("TOKEN_ISSUER", self.issuer.clone()),
            ("TOKEN_AUDIENCE", self.audience.clone()),
            ("TOKEN_LEEWAY_SECONDS", self.leeway_secs.to_string()),
            ("REFRESH_REUSE_GRACE_SECONDS", self.refresh_reuse_grace_secs.to_string()),
            ("COOKIE_SECURE", self.cookie_secure.to_string()),
            ("COOKIE_SAMESITE", self.cookie_samesite.as_str().to_lowercase()),
            ("CORS_ORIGINS", format!("{:?}", self.cors_origins)),
            ("RATE_LIMIT_LOGIN", self.rate_limit_login.to_string()),
            ("RATE_LIMIT_REGISTER", self.rate_limit_register.to_string()),
            ("RATE_LIMIT_API", self.rate_limit_api.to_string()),
            ("LOG_LEVEL", self.log_level.clone()),
            ("LOG_FORMAT", format!("{:?}", self.log_format).to_lowercase()),
            (
                "PASSWORD_HASH",
                format!(
                    "argon2id m={} KiB, t={}, p={}",
                    self.password_params.memory_kib, self.password_params.iterations, self.password_params.parallelism
                ),
            ),
            ("HASH_WORKERS", self.hash_workers.to_string()),
            ("HASH_QUEUE_SIZE", self.hash_queue.to_string()),
            ("MAX_BODY_BYTES", self.max_body_bytes.to_string()),
            ("REQUEST_TIMEOUT_SECONDS", self.request_timeout_secs.to_string()),
        ]
    }
}

/// A list of previous secrets: a JSON list of strings or a comma-separated list, each at least
/// 32 bytes.
fn parse_secret_list(r: &Reader<'_>, var: &'static str) -> Result<Vec<Secret>, ConfigError> {
    let Some(raw) = r.get(var) else { return Ok(Vec::new()) };
    let items: Vec<String> = if raw.starts_with('[') {
        serde_json::from_str(raw)
            .map_err(|_| invalid(var, "must be a JSON list of strings or a comma-separated list"))?
    } else {
        raw.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
    items
        .into_iter()
        .map(|item| {
            if item.len() < MIN_SECRET_BYTES {
                Err(invalid(
                    var,
                    format!("every entry must be at least {MIN_SECRET_BYTES} bytes"),
                ))
            } else {
                Ok(Secret::new(item.into_bytes()))
            }
        })
        .collect()
}

fn parse_database_url(url: &str) -> Result<Database, ConfigError> {
    if let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
        let path = rest.split('?').next().unwrap_or_default();
        if path.is_empty() || path == ":memory:" {
            return Err(invalid(
                "DATABASE_URL",
                "needs a file path, e.g. sqlite:///var/lib/tessera/tessera.db",
            ));
        }
        return Ok(Database::Sqlite(PathBuf::from(path)));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Database::Postgres(url.to_owned()));
    }
    Err(invalid(
        "DATABASE_URL",
        "must start with sqlite: or postgres:// (e.g. sqlite://./data/tessera.db)",
    ))
}

/// CORS_ORIGINS as a JSON list (`["https://a.example"]`) or a comma list.
fn parse_origins(raw: Option<&str>) -> Result<Vec<String>, ConfigError> {
    let Some(raw) = raw else { return Ok(Vec::new()) };
    let items: Vec<String> = if raw.starts_with('[') {
        serde_json::from_str(raw).map_err(|_| {
            invalid(
                "CORS_ORIGINS",
                "must be a JSON list of strings or a comma-separated list",
            )
        })?
    } else {
        raw.split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect()
    };
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
            && origin.parse::<axum::http::HeaderValue>().is_ok();
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
        let long = "k".repeat(32);
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
        std::fs::write(&path, format!("{}\n", "s".repeat(40))).unwrap();
        let long = "r".repeat(32);
        let config = Config::from_vars(&vars(&[
            ("SECRET_KEY_FILE", path.to_str().unwrap()),
            ("REFRESH_SECRET_KEY", &long),
        ]))
        .unwrap();
        assert_eq!(config.secret_key.as_ref().unwrap().expose().len(), 40);
        let printed = format!("{config:?} {:?}", config.redacted_summary());
        assert!(!printed.contains("ssss"), "{printed}");
        assert!(!printed.contains("rrrr"), "{printed}");
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
}
