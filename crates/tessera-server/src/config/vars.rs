//! Every configuration variable, declared once (A3).
//!
//! One [`Var`] per variable holds its name, its concern ([`Group`]), its default, the rule its
//! value must follow, the help text and how `config check` prints the effective value. That one
//! declaration feeds the parser ([`super::Config::from_vars`] reads each variable through its
//! `Var`: the name in errors, the literal default, the numeric range or the choices), `tessera
//! config check` (the groups, the names and the redacted values, in this order) and README.md's
//! configuration tables ([`markdown_tables`], kept equal to README by a test). The model is
//! ripgrep's `flags/defs.rs`, where one `Flag` impl feeds parsing, `--help` and the man page.
//!
//! The `declare!` macro makes each entry a constant named after the variable itself, so the
//! parser writes `r.int(&vars::KEY_RELOAD_SECONDS)` and cannot misspell a name, and it puts
//! every entry in [`VARS`] so nothing declared can be left out of `config check` or README.

use std::fmt::Write as _;

use super::{Config, Database, Secret};

/// The concern a variable belongs to: its heading in `config check` and in README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Listening, proxies and connection limits.
    Server,
    /// Where users, sessions and keys are stored.
    Database,
    /// Redis: state shared between instances.
    Redis,
    /// Token lifetimes, claims, delivery and the verified-claims cache.
    Tokens,
    /// Signing keys and configured secrets.
    Keys,
    /// Cookies and browsers (CORS).
    Cookies,
    /// Rate limits.
    Limits,
    /// Password hashing.
    Hashing,
    /// Logs.
    Logging,
    /// The gateway: the built-in reverse proxy (G1) and forward auth (G2).
    Gateway,
    /// Mail: verification, email change and password reset links (C2).
    Mail,
    /// The hosted pages' branding (C4).
    Pages,
}

impl Group {
    /// The heading, as printed by `config check` (`# server`) and in README (`### Server`).
    pub fn title(self) -> &'static str {
        match self {
            Group::Server => "Server",
            Group::Database => "Database",
            Group::Redis => "Redis",
            Group::Tokens => "Tokens",
            Group::Keys => "Keys and secrets",
            Group::Cookies => "Cookies and browsers",
            Group::Limits => "Rate limits",
            Group::Hashing => "Password hashing",
            Group::Logging => "Logging",
            Group::Gateway => "Gateway",
            Group::Mail => "Mail",
            Group::Pages => "Hosted pages",
        }
    }
}

/// What applies when a variable is unset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// A literal value, parsed by the variable's rule exactly as if it had been set.
    Literal(&'static str),
    /// The variable is optional; the text says what being unset means.
    Unset(&'static str),
    /// Computed at start-up from other values; the text says how.
    Derived(&'static str),
}

impl DefaultValue {
    /// The literal default, if there is one.
    pub fn literal(self) -> Option<&'static str> {
        match self {
            DefaultValue::Literal(value) => Some(value),
            DefaultValue::Unset(_) | DefaultValue::Derived(_) => None,
        }
    }

    /// The README cell.
    pub fn markdown(self) -> String {
        match self {
            DefaultValue::Literal(value) => format!("`{value}`"),
            DefaultValue::Unset(meaning) => format!("unset: {meaning}"),
            DefaultValue::Derived(how) => how.to_owned(),
        }
    }
}

/// The rule a value must follow. The parser takes the numeric range and the choices from here;
/// the other kinds name the parser that applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A whole number from `min` to `max`, inclusive.
    Int {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`), any case.
    Bool,
    /// One of these words, any case; `aliases` map other accepted spellings onto them.
    Choice {
        /// The accepted words, as documented.
        options: &'static [&'static str],
        /// Other spellings and the option each one means.
        aliases: &'static [(&'static str, &'static str)],
    },
    /// `host:port`.
    Address,
    /// Free text.
    Text,
    /// slowapi/limits syntax (`5/minute;100/day`, `100 per hour`).
    RateLimit,
    /// A secret of at least [`super::MIN_SECRET_BYTES`] bytes, not weak
    /// ([`super::strength`]), from the variable, `<NAME>_FILE` or `<NAME>_AWS_SECRET_ID`.
    Secret,
    /// A JSON list of strings or a comma list, each entry a [`Rule::Secret`].
    SecretList,
    /// A JSON list or a comma list of origins.
    Origins,
    /// A comma list of IP addresses or CIDR networks.
    Networks,
    /// `sqlite:` (SQLAlchemy's and Tessera's forms) or `postgres(ql)://`.
    DatabaseUrl,
    /// `redis://` or `rediss://`.
    RedisUrl,
    /// Seconds from `min` to `max`, or `off` (also `0`, `never`).
    Interval {
        /// Shortest accepted period.
        min: i64,
        /// Longest accepted period.
        max: i64,
    },
}

/// One configuration variable: everything known about it, in one place.
#[derive(Debug, Clone, Copy)]
pub struct Var {
    /// The environment variable's name.
    pub name: &'static str,
    /// `<NAME>_FILE`: where a [`Rule::Secret`] may be read from instead.
    pub file_var: &'static str,
    /// `<NAME>_AWS_SECRET_ID`: the AWS Secrets Manager id a [`Rule::Secret`] may come from.
    pub aws_var: &'static str,
    /// Its concern.
    pub group: Group,
    /// What applies when it is unset.
    pub default: DefaultValue,
    /// The rule its value follows.
    pub rule: Rule,
    /// What it does, for operators (README's "meaning" column).
    pub help: &'static str,
    /// The effective value as `config check` prints it, secrets redacted.
    pub show: fn(&Config) -> String,
}

/// Declares each variable as a constant named after it, and lists them all in [`VARS`].
macro_rules! declare {
    ($(
        $(#[$doc:meta])*
        $name:ident {
            group: $group:expr,
            default: $default:expr,
            rule: $rule:expr,
            show: $show:expr,
            help: $help:expr $(,)?
        }
    )*) => {
        $(
            $(#[$doc])*
            pub const $name: Var = Var {
                name: stringify!($name),
                file_var: concat!(stringify!($name), "_FILE"),
                aws_var: concat!(stringify!($name), "_AWS_SECRET_ID"),
                group: $group,
                default: $default,
                rule: $rule,
                help: $help,
                show: $show,
            };
        )*

        /// Every variable, grouped by concern, in `config check` and README order.
        pub static VARS: &[Var] = &[$($name),*];
    };
}

fn redacted(secret: Option<&Secret>, unset: &str) -> String {
    secret.map_or_else(
        || unset.to_owned(),
        |s| format!("[redacted, {} bytes]", s.expose().len()),
    )
}

fn show_database(config: &Config) -> String {
    match &config.database {
        // The path SQLite will open, resolved against the working directory (SQLAlchemy's
        // three-slash form is relative, so the operator sees where the file really is).
        Database::Sqlite(path) => {
            format!(
                "sqlite:{}",
                std::path::absolute(path).unwrap_or_else(|_| path.clone()).display()
            )
        }
        Database::Postgres(_) => config.database.to_string(),
    }
}

declare! {
    /// Listen address.
    BIND_ADDR {
        group: Group::Server,
        default: DefaultValue::Literal("127.0.0.1:8000"),
        rule: Rule::Address,
        show: |c| c.bind.to_string(),
        help: "listen address (`tessera serve --bind` overrides it)",
    }
    /// Separate listen address for `/metrics`.
    METRICS_ADDR {
        group: Group::Server,
        default: DefaultValue::Unset("`/metrics` on `BIND_ADDR`"),
        rule: Rule::Address,
        show: |c| c.metrics_addr.map_or_else(|| "(unset: /metrics on BIND_ADDR)".to_owned(), |a| a.to_string()),
        help: "separate listen address for `GET /metrics` (e.g. `127.0.0.1:9100`); when set, the main listener answers `/metrics` with 404, so metrics need not be public",
    }
    /// Proxies whose forwarding headers are believed.
    TRUSTED_PROXIES {
        group: Group::Server,
        default: DefaultValue::Unset("no proxy is trusted"),
        rule: Rule::Networks,
        show: |c| format!("{:?}", c.trusted_proxies.iter().map(ToString::to_string).collect::<Vec<_>>()),
        help: "comma list of proxy addresses/CIDRs whose `X-Forwarded-For` / `Forwarded` is believed (right-most untrusted hop = client)",
    }
    /// Largest request body.
    MAX_BODY_BYTES {
        group: Group::Server,
        default: DefaultValue::Literal("65536"),
        rule: Rule::Int { min: 1024, max: 16 * 1024 * 1024 },
        show: |c| c.max_body_bytes.to_string(),
        help: "larger bodies get 413",
    }
    /// Per-request timeout.
    REQUEST_TIMEOUT_SECONDS {
        group: Group::Server,
        default: DefaultValue::Literal("30"),
        rule: Rule::Int { min: 1, max: 600 },
        show: |c| c.request_timeout_secs.to_string(),
        help: "slower requests get 408",
    }
    /// Time a client has to send the request head.
    HEADER_READ_TIMEOUT_SECS {
        group: Group::Server,
        default: DefaultValue::Literal("10"),
        rule: Rule::Int { min: 1, max: 300 },
        show: |c| c.header_read_timeout.as_secs().to_string(),
        help: "seconds a client has to send the request line and headers; slower connections are closed",
    }
    /// Keep-alive idle timeout.
    IDLE_TIMEOUT_SECS {
        group: Group::Server,
        default: DefaultValue::Literal("60"),
        rule: Rule::Int { min: 1, max: 3600 },
        show: |c| c.idle_timeout.as_secs().to_string(),
        help: "seconds a keep-alive connection may stay idle before it is closed",
    }
    /// Concurrent connections.
    MAX_CONNECTIONS {
        group: Group::Server,
        default: DefaultValue::Literal("4096"),
        rule: Rule::Int { min: 1, max: 1_000_000 },
        show: |c| c.max_connections.to_string(),
        help: "concurrent connections accepted; beyond it new connections are refused",
    }

    /// Directory of the embedded database.
    DATA_DIR {
        group: Group::Database,
        default: DefaultValue::Literal("./data"),
        rule: Rule::Text,
        show: |c| c.data_dir.display().to_string(),
        help: "where the embedded database lives",
    }
    /// The database.
    DATABASE_URL {
        group: Group::Database,
        default: DefaultValue::Derived("`sqlite:$DATA_DIR/tessera.db`"),
        rule: Rule::DatabaseUrl,
        show: show_database,
        help: "`postgresql://user:pass@host:5432/db` (or `postgres://`), or an SQLite file: `sqlite:///relative/path.db` (SQLAlchemy: three slashes = relative to the working directory), `sqlite:////absolute/path.db`, or Tessera's `sqlite:<path>`; SQLAlchemy driver suffixes `+asyncpg`, `+psycopg2`, `+psycopg`, `+aiosqlite` are accepted and ignored; `:memory:` is refused (not durable). Migrations run at start; `config check` prints the resolved file path",
    }

    /// Redis, for state shared between instances.
    REDIS_URL {
        group: Group::Redis,
        default: DefaultValue::Unset("in-process state"),
        rule: Rule::RedisUrl,
        show: |c| c.redis_url.as_ref().map_or_else(|| "(unset: in-process state)".to_owned(), ToString::to_string),
        help: "`redis://host:6379/0`: shared rate limits and instant cross-instance revocation",
    }
    /// Prefix of Redis keys.
    REDIS_KEY_PREFIX {
        group: Group::Redis,
        default: DefaultValue::Literal("tessera:"),
        rule: Rule::Text,
        show: |c| c.redis_prefix.clone(),
        help: "prefix of every Redis key and channel",
    }
    /// Revocation poll interval.
    REVOCATION_POLL_MILLIS {
        group: Group::Redis,
        default: DefaultValue::Literal("500"),
        rule: Rule::Int { min: 50, max: 60_000 },
        show: |c| c.revocation_poll_millis.to_string(),
        help: "how often each instance re-reads revocations from the database, in milliseconds (the bound when pub/sub is down)",
    }

    /// Access-token algorithm.
    ALGORITHM {
        group: Group::Tokens,
        default: DefaultValue::Literal("HS256"),
        rule: Rule::Text,
        show: |c| c.algorithm.to_string(),
        help: "`HS256`, `HS384`, `HS512`, `EdDSA`, `ES256`, `RS256` (asymmetric keys are managed by Tessera)",
    }
    /// Algorithm of the identity keys (signed assertions for upstreams).
    IDENTITY_ALGORITHM {
        group: Group::Tokens,
        default: DefaultValue::Literal("ES256"),
        rule: Rule::Text,
        show: |c| c.identity_algorithm.to_string(),
        help: "`ES256`, `EdDSA` or `RS256`: signs the gateway's `X-Tessera-Assertion` (published in the JWK set, rotated like the access keys; always managed by Tessera)",
    }
    /// Access-token lifetime in minutes.
    ACCESS_TOKEN_EXPIRE_MINUTES {
        group: Group::Tokens,
        default: DefaultValue::Literal("15"),
        rule: Rule::Int { min: 1, max: 1_440 },
        show: |c| if c.access_ttl_secs % 60 == 0 {
            (c.access_ttl_secs / 60).to_string()
        } else {
            "(overridden by ACCESS_TOKEN_EXPIRE_SECONDS)".to_owned()
        },
        help: "access-token lifetime",
    }
    /// Access-token lifetime in seconds.
    ACCESS_TOKEN_EXPIRE_SECONDS {
        group: Group::Tokens,
        default: DefaultValue::Unset("`ACCESS_TOKEN_EXPIRE_MINUTES` applies"),
        rule: Rule::Int { min: 1, max: 86_400 },
        show: |c| c.access_ttl_secs.to_string(),
        help: "access-token lifetime in seconds; overrides `ACCESS_TOKEN_EXPIRE_MINUTES`",
    }
    /// Refresh-token lifetime.
    REFRESH_TOKEN_EXPIRE_DAYS {
        group: Group::Tokens,
        default: DefaultValue::Literal("7"),
        rule: Rule::Int { min: 1, max: 365 },
        show: |c| (c.refresh_ttl_secs / 86_400).to_string(),
        help: "refresh-token lifetime",
    }
    /// Where tokens go.
    TOKEN_DELIVERY {
        group: Group::Tokens,
        default: DefaultValue::Literal("both"),
        rule: Rule::Choice { options: &["cookie", "body", "both"], aliases: &[] },
        show: |c| format!("{:?}", c.token_delivery).to_lowercase(),
        help: "`cookie`, `body` or `both`. With `both`, the login/refresh JSON body also carries the tokens, readable by page script: for a browser-only deployment set `cookie`, so an XSS cannot read them",
    }
    /// Reuse grace of a rotated refresh token.
    REFRESH_REUSE_GRACE_SECONDS {
        group: Group::Tokens,
        default: DefaultValue::Literal("10"),
        rule: Rule::Int { min: 0, max: 300 },
        show: |c| c.refresh_reuse_grace_secs.to_string(),
        help: "how long a just-rotated refresh token may be presented again (concurrent tabs)",
    }
    /// `iss` claim.
    TOKEN_ISSUER {
        group: Group::Tokens,
        default: DefaultValue::Literal("tessera"),
        rule: Rule::Text,
        show: |c| c.issuer.clone(),
        help: "`iss` of issued tokens",
    }
    /// `aud` claim.
    TOKEN_AUDIENCE {
        group: Group::Tokens,
        default: DefaultValue::Literal("tessera-api"),
        rule: Rule::Text,
        show: |c| c.audience.clone(),
        help: "`aud` of issued tokens",
    }
    /// Clock skew tolerated.
    TOKEN_LEEWAY_SECONDS {
        group: Group::Tokens,
        default: DefaultValue::Literal("10"),
        rule: Rule::Int { min: 0, max: 120 },
        show: |c| c.leeway_secs.to_string(),
        help: "clock skew tolerated on `exp`/`nbf`/`iat`",
    }
    /// Verified-claims cache size.
    TOKEN_CACHE_SIZE {
        group: Group::Tokens,
        default: DefaultValue::Literal("10000"),
        rule: Rule::Int { min: 0, max: 10_000_000 },
        show: |c| c.token_cache_size.to_string(),
        help: "verified-claims cache entries (S8); `0` turns it off",
    }
    /// Verified claims shared through Redis.
    TOKEN_CACHE_REDIS {
        group: Group::Tokens,
        default: DefaultValue::Literal("false"),
        rule: Rule::Bool,
        show: |c| c.token_cache_redis.to_string(),
        help: "also share verified claims through Redis (needs `REDIS_URL`), used for ES256/RS256 only (see docs/TOKEN_CACHE.md)",
    }

    /// HMAC secret of access tokens.
    SECRET_KEY {
        group: Group::Keys,
        default: DefaultValue::Unset("managed keys"),
        rule: Rule::Secret,
        show: |c| redacted(c.secret_key.as_ref(), "(unset: managed key ring in the database)"),
        help: "HMAC secret for access tokens: at least 32 bytes (48 for HS384, 64 for HS512), not weak (one repeated character or short pattern, a known placeholder, or an estimated entropy under 80 bits are refused: use `openssl rand -hex 32`). Also as `SECRET_KEY_FILE` or `SECRET_KEY_AWS_SECRET_ID`",
    }
    /// HMAC secret of refresh tokens.
    REFRESH_SECRET_KEY {
        group: Group::Keys,
        default: DefaultValue::Unset("managed keys"),
        rule: Rule::Secret,
        show: |c| redacted(c.refresh_secret_key.as_ref(), "(unset: managed key ring in the database)"),
        help: "HMAC secret for refresh tokens, same rules as `SECRET_KEY` and different from it. Also as `REFRESH_SECRET_KEY_FILE` or `REFRESH_SECRET_KEY_AWS_SECRET_ID`",
    }
    /// Earlier access secrets.
    PREVIOUS_SECRET_KEYS {
        group: Group::Keys,
        default: DefaultValue::Unset("no earlier secrets"),
        rule: Rule::SecretList,
        show: |c| format!("[{} redacted]", c.previous_secret_keys.len()),
        help: "earlier `SECRET_KEY` values (JSON or comma list, each following the `SECRET_KEY` rules) that keep verifying tokens signed before a secret change",
    }
    /// Earlier refresh secrets.
    PREVIOUS_REFRESH_SECRET_KEYS {
        group: Group::Keys,
        default: DefaultValue::Unset("no earlier secrets"),
        rule: Rule::SecretList,
        show: |c| format!("[{} redacted]", c.previous_refresh_secret_keys.len()),
        help: "earlier `REFRESH_SECRET_KEY` values, as `PREVIOUS_SECRET_KEYS`",
    }
    /// Seals stored private keys.
    MASTER_KEY {
        group: Group::Keys,
        default: DefaultValue::Unset("stored keys are not sealed"),
        rule: Rule::Secret,
        show: |c| redacted(c.master_key.as_ref(), "(unset: stored private keys are not sealed)"),
        help: "seals the private keys stored in the database (XChaCha20-Poly1305); same rules as `SECRET_KEY`. Also as `MASTER_KEY_FILE` or `MASTER_KEY_AWS_SECRET_ID`",
    }
    /// Delay between publishing and signing.
    KEY_PUBLISH_DELAY {
        group: Group::Keys,
        default: DefaultValue::Literal("3600"),
        rule: Rule::Int { min: 0, max: 30 * 86_400 },
        show: |c| c.key_publish_delay_secs.to_string(),
        help: "seconds between a rotation publishing a key (JWK set, verification) and that key signing; `0` or at least twice `KEY_RELOAD_SECONDS`",
    }
    /// Key table reload period.
    KEY_RELOAD_SECONDS {
        group: Group::Keys,
        default: DefaultValue::Literal("5"),
        rule: Rule::Int { min: 1, max: 300 },
        show: |c| c.key_reload_secs.to_string(),
        help: "how often every instance re-reads the key table",
    }
    /// Automatic rotation period.
    KEY_ROTATION_INTERVAL {
        group: Group::Keys,
        default: DefaultValue::Derived("off for HS*, 30 days for EdDSA/ES256/RS256"),
        rule: Rule::Interval { min: 60, max: 3_650 * 86_400 },
        show: |c| c.key_rotation_interval_secs.map_or_else(|| "off".to_owned(), |s| s.to_string()),
        help: "automatic rotation period in seconds, at least 60 (`off` to disable)",
    }

    /// `Secure` cookie attribute.
    COOKIE_SECURE {
        group: Group::Cookies,
        default: DefaultValue::Literal("true"),
        rule: Rule::Bool,
        show: |c| c.cookie_secure.to_string(),
        help: "`Secure` cookie attribute",
    }
    /// `SameSite` cookie attribute.
    COOKIE_SAMESITE {
        group: Group::Cookies,
        default: DefaultValue::Literal("lax"),
        rule: Rule::Choice { options: &["lax", "strict", "none"], aliases: &[] },
        show: |c| c.cookie_samesite.as_str().to_lowercase(),
        help: "`lax`, `strict`, `none` (needs `COOKIE_SECURE=true`)",
    }
    /// Cookie name prefixes.
    COOKIE_PREFIXES {
        group: Group::Cookies,
        default: DefaultValue::Literal("auto"),
        rule: Rule::Choice { options: &["auto", "on", "off"], aliases: &[] },
        show: |c| if c.cookie_prefixes { "on".to_owned() } else { "off".to_owned() },
        help: "`on`: cookies named `__Host-access_token` and `__Secure-refresh_token` (needs `COOKIE_SECURE=true`); `off`: the seed's `access_token` and `refresh_token`; `auto`: on when `COOKIE_SECURE=true`",
    }
    /// Browser origins allowed with credentials.
    CORS_ORIGINS {
        group: Group::Cookies,
        default: DefaultValue::Unset("no cross-origin calls with credentials"),
        rule: Rule::Origins,
        show: |c| format!("{:?}", c.cors_origins),
        help: "JSON list (`[\"https://app.example.com\"]`) or comma list of origins allowed with credentials; `*` is refused",
    }

    /// Login attempts per client IP.
    RATE_LIMIT_LOGIN {
        group: Group::Limits,
        default: DefaultValue::Literal("5/minute"),
        rule: Rule::RateLimit,
        show: |c| c.rate_limit_login.to_string(),
        help: "login attempts per client IP, slowapi/limits syntax: `5/minute;100/day`, `5 per minute`",
    }
    /// Registrations per client IP.
    RATE_LIMIT_REGISTER {
        group: Group::Limits,
        default: DefaultValue::Literal("3/hour"),
        rule: Rule::RateLimit,
        show: |c| c.rate_limit_register.to_string(),
        help: "registrations per client IP",
    }
    /// API calls per user (and per API key).
    RATE_LIMIT_API {
        group: Group::Limits,
        default: DefaultValue::Literal("100/hour"),
        rule: Rule::RateLimit,
        show: |c| c.rate_limit_api.to_string(),
        help: "calls per user (and per API key) to `/agent/*`, `/profile*`, `/sessions*`, `/api-keys*`",
    }
    /// Login attempts per account.
    RATE_LIMIT_LOGIN_ACCOUNT {
        group: Group::Limits,
        default: DefaultValue::Literal("10/minute;50/hour"),
        rule: Rule::RateLimit,
        show: |c| c.rate_limit_login_account.to_string(),
        help: "login attempts per account whatever the IP (a botnet cannot hammer one account)",
    }

    /// argon2id memory.
    PASSWORD_HASH_MEMORY_KIB {
        group: Group::Hashing,
        default: DefaultValue::Literal("19456"),
        rule: Rule::Int { min: 8, max: 4 * 1024 * 1024 },
        show: |c| c.password_params.memory_kib.to_string(),
        help: "argon2id memory in KiB (OWASP), at least 8 per lane; hashes with old parameters are upgraded at the next login",
    }
    /// argon2id passes.
    PASSWORD_HASH_ITERATIONS {
        group: Group::Hashing,
        default: DefaultValue::Literal("2"),
        rule: Rule::Int { min: 1, max: 100 },
        show: |c| c.password_params.iterations.to_string(),
        help: "argon2id passes",
    }
    /// argon2id lanes.
    PASSWORD_HASH_PARALLELISM {
        group: Group::Hashing,
        default: DefaultValue::Literal("1"),
        rule: Rule::Int { min: 1, max: 64 },
        show: |c| c.password_params.parallelism.to_string(),
        help: "argon2id lanes",
    }
    /// Hashing threads.
    HASH_WORKERS {
        group: Group::Hashing,
        default: DefaultValue::Derived("half the cores"),
        rule: Rule::Int { min: 1, max: 256 },
        show: |c| c.hash_workers.to_string(),
        help: "password-hashing threads",
    }
    /// Hashing jobs that may wait.
    HASH_QUEUE_SIZE {
        group: Group::Hashing,
        default: DefaultValue::Literal("32"),
        rule: Rule::Int { min: 1, max: 100_000 },
        show: |c| c.hash_queue.to_string(),
        help: "hashing jobs that may wait; beyond that, 503 with `Retry-After`",
    }

    /// Log level.
    LOG_LEVEL {
        group: Group::Logging,
        default: DefaultValue::Literal("INFO"),
        rule: Rule::Choice {
            options: &["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"],
            aliases: &[("WARN", "WARNING"), ("CRITICAL", "ERROR")],
        },
        show: |c| c.log_level.clone(),
        help: "`TRACE`, `DEBUG`, `INFO`, `WARNING`, `ERROR`",
    }
    /// Log format.
    LOG_FORMAT {
        group: Group::Logging,
        default: DefaultValue::Literal("json"),
        rule: Rule::Choice { options: &["json", "text"], aliases: &[] },
        show: |c| format!("{:?}", c.log_format).to_lowercase(),
        help: "`json` (one object per line) or `text`",
    }

    /// The built-in reverse proxy's routes (G1).
    UPSTREAMS {
        group: Group::Gateway,
        default: DefaultValue::Unset("no proxying; `POST /agent/chat` is the built-in echo"),
        rule: Rule::Text,
        show: |c| c.upstreams.iter().map(|u| format!("{}=http://{}{}", u.prefix, u.authority, u.base_path)).collect::<Vec<_>>().join(","),
        help: "comma list of `PREFIX=http://host:port/path/` with space-separated options `name=`, `scope=`, `rate=`, `max_body=`, `timeout=` (docs/GATEWAY.md)",
    }
    /// Time to open a connection to an upstream.
    GATEWAY_CONNECT_TIMEOUT_SECS {
        group: Group::Gateway,
        default: DefaultValue::Literal("5"),
        rule: Rule::Int { min: 1, max: 60 },
        show: |c| c.gateway_connect_timeout.as_secs().to_string(),
        help: "an upstream that does not accept in time gets the client a 502",
    }
    /// Time an upstream has to send its response headers.
    GATEWAY_RESPONSE_TIMEOUT_SECS {
        group: Group::Gateway,
        default: DefaultValue::Literal("60"),
        rule: Rule::Int { min: 1, max: 3_600 },
        show: |c| c.gateway_response_timeout.as_secs().to_string(),
        help: "default of an upstream's `timeout=`: no response headers in time is a 504",
    }
    /// Longest silence in a proxied stream.
    GATEWAY_IDLE_TIMEOUT_SECS {
        group: Group::Gateway,
        default: DefaultValue::Literal("300"),
        rule: Rule::Int { min: 1, max: 86_400 },
        show: |c| c.gateway_idle_timeout.as_secs().to_string(),
        help: "a proxied body (either way) that sends nothing for this long is cut",
    }
    /// Largest proxied request body.
    GATEWAY_MAX_BODY_BYTES {
        group: Group::Gateway,
        default: DefaultValue::Literal("10485760"),
        rule: Rule::Int { min: 1_024, max: 1_099_511_627_776 },
        show: |c| c.gateway_max_body_bytes.to_string(),
        help: "default of an upstream's `max_body=`; larger bodies get 413",
    }
    /// Domains a forward-auth return URL may point to.
    GATEWAY_DOMAINS {
        group: Group::Gateway,
        default: DefaultValue::Unset("no return URL: sign-in redirects carry no `rd`"),
        rule: Rule::Text,
        show: |c| c.gateway_domains.to_string(),
        help: "comma list of domains a forward-auth sign-in redirect may send the browser back to (`rd`): each covers itself and its subdomains, https only unless written `http://dev.example.com` (docs/GATEWAY.md)",
    }
    /// Forward-auth rules: host and path prefix -> required role or scope.
    GATEWAY_RULES {
        group: Group::Gateway,
        default: DefaultValue::Unset("any authenticated caller is allowed"),
        rule: Rule::Text,
        show: |c| c.gateway_rules.to_string(),
        help: "comma list of `<host or *><path prefix>=<requirement>`, the requirement `role:NAME`, `scope:SCOPE` or `authenticated`, e.g. `api.example.com/admin/=role:admin, */agent/=scope:agent:chat`; the first match decides, 403 when it is not met",
    }
    /// Where forward auth sends a browser without a session.
    GATEWAY_SIGNIN_URL {
        group: Group::Gateway,
        default: DefaultValue::Derived("`/signin` on the origin of the original request"),
        rule: Rule::Text,
        show: |c| c.gateway_signin_url.as_ref().map_or_else(|| "(unset: /signin on the original request's origin)".to_owned(), ToString::to_string),
        help: "absolute http(s) URL of the sign-in page forward auth redirects browsers to, with `rd=<original URL>` added; Tessera's hosted sign-in page follows `rd` back once signed in (docs/PAGES.md)",
    }
    /// `aud` of the assertions forward auth returns.
    GATEWAY_ASSERTION_AUDIENCE {
        group: Group::Gateway,
        default: DefaultValue::Derived("the original request's host"),
        rule: Rule::Text,
        show: |c| c.gateway_assertion_audience.clone().unwrap_or_else(|| "(unset: the original host)".to_owned()),
        help: "`aud` of the `X-Tessera-Assertion` returned by forward auth; unset, the host the original request was for",
    }
    /// `Domain` attribute of the session cookies.
    COOKIE_DOMAIN {
        group: Group::Gateway,
        default: DefaultValue::Unset("host-only cookies"),
        rule: Rule::Text,
        show: |c| c.cookie_domain.clone().unwrap_or_else(|| "(unset: host-only cookies)".to_owned()),
        help: "`Domain` attribute of the session cookies (e.g. `example.com`), so the subdomains behind forward auth share one sign-in; refused with `COOKIE_PREFIXES=on` (`__Host-` forbids `Domain`), and `auto` then means off",
    }

    /// The base of mailed links.
    PUBLIC_URL {
        group: Group::Mail,
        default: DefaultValue::Derived("`http://$BIND_ADDR`"),
        rule: Rule::Text,
        show: |c| c.public_url.to_string(),
        help: "the address people reach Tessera at (`https://auth.example.com`): the base of every link in a mail (reset, verification). Never taken from a request's `Host` header; set it whenever mail is on",
    }
    /// The SMTP server.
    SMTP_URL {
        group: Group::Mail,
        default: DefaultValue::Unset("mails are written as files to `$DATA_DIR/mail/`"),
        rule: Rule::Text,
        show: |c| c.mail.smtp_url.as_ref().map_or_else(|| format!("(unset: files in {})", c.mail.dir.display()), ToString::to_string),
        help: "`smtps://user:password@smtp.example.com:465` (TLS from the start) or `smtp://host:587` (STARTTLS when offered; add `?tls=required` to insist). Sends are queued and retried with backoff; requests never wait for them",
    }
    /// The sender.
    SMTP_FROM {
        group: Group::Mail,
        default: DefaultValue::Derived("`no-reply@<host of PUBLIC_URL>`"),
        rule: Rule::Text,
        show: |c| c.mail.from.to_string(),
        help: "the `From` of every mail: `Tessera <no-reply@example.com>`",
    }
    /// SMTP timeout.
    SMTP_TIMEOUT_SECS {
        group: Group::Mail,
        default: DefaultValue::Literal("10"),
        rule: Rule::Int { min: 1, max: 300 },
        show: |c| c.mail.smtp_timeout.as_secs().to_string(),
        help: "one SMTP exchange gives up after this many seconds (then the send is retried later)",
    }
    /// Email verification.
    EMAIL_VERIFICATION {
        group: Group::Mail,
        default: DefaultValue::Literal("optional"),
        rule: Rule::Choice { options: &["required", "optional", "off"], aliases: &[] },
        show: |c| c.email_verification.as_str().to_owned(),
        help: "`optional`: sign-up mails a verification link; `required`: also refuses login (403 `email_not_verified`) until it is followed; `off`: no verification mail",
    }
    /// Mails per address.
    RATE_LIMIT_MAIL_ADDRESS {
        group: Group::Mail,
        default: DefaultValue::Literal("3/10minute;10/day"),
        rule: Rule::RateLimit,
        show: |c| c.mail.rate_limit_address.to_string(),
        help: "mails sent to one address (reset, verification); over it, requests still get the same answer but nothing is sent",
    }
    /// Mail requests per IP.
    RATE_LIMIT_MAIL_IP {
        group: Group::Mail,
        default: DefaultValue::Literal("10/minute;50/hour"),
        rule: Rule::RateLimit,
        show: |c| c.mail.rate_limit_ip.to_string(),
        help: "requests that send mail (`/password/forgot`, `/email/verify/resend`, `/account/email`) from one IP; over it, 429",
    }

    /// The product's name on the hosted pages and in mails.
    PRODUCT_NAME {
        group: Group::Pages,
        default: DefaultValue::Literal("Tessera"),
        rule: Rule::Text,
        show: |c| c.product_name.clone(),
        help: "the name the hosted pages (`/signin`, `/account/settings`, ...) and every mail show: 1 to 64 characters, no control characters (escaped wherever it is written)",
    }
    /// The brand colour of the hosted pages.
    BRAND_COLOR {
        group: Group::Pages,
        default: DefaultValue::Literal("#2f5bd3"),
        rule: Rule::Text,
        show: |c| c.brand_color.clone(),
        help: "`#rgb` or `#rrggbb`: buttons, links and focus rings of the hosted pages (served as `GET /pages/theme.css`)",
    }
    /// The logo of the hosted pages.
    BRAND_LOGO_URL {
        group: Group::Pages,
        default: DefaultValue::Unset("no logo, the product name only"),
        rule: Rule::Text,
        show: |c| c.brand_logo.as_ref().map_or_else(|| "(unset: no logo)".to_owned(), |l| l.src.clone()),
        help: "an `https://` URL (its origin is added to the pages' `img-src`) or a same-origin path (`/static/logo.svg`) of the logo shown beside the product name",
    }
}

/// README's configuration section, generated from [`VARS`]: one table per [`Group`].
pub fn markdown_tables() -> String {
    let mut out = String::new();
    let mut current = None;
    for var in VARS {
        if current != Some(var.group) {
            current = Some(var.group);
            // Writing to a String cannot fail.
            let _ = write!(
                out,
                "{}### {}\n\n| variable | default | meaning |\n|---|---|---|\n",
                if out.is_empty() { "" } else { "\n" },
                var.group.title()
            );
        }
        let _ = writeln!(out, "| `{}` | {} | {} |", var.name, var.default.markdown(), var.help);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    #[test]
    fn names_are_unique_and_each_group_is_listed_in_one_run() {
        // Arrange
        let mut names: Vec<&str> = VARS.iter().map(|v| v.name).collect();
        let mut groups: Vec<Group> = Vec::new();
        // Act
        for var in VARS {
            if groups.last() != Some(&var.group) {
                assert!(
                    !groups.contains(&var.group),
                    "{:?} is split around {}",
                    var.group,
                    var.name
                );
                groups.push(var.group);
            }
        }
        names.sort_unstable();
        names.dedup();
        // Assert
        assert_eq!(names.len(), VARS.len(), "a variable is declared twice");
        assert_eq!(SECRET_KEY.file_var, "SECRET_KEY_FILE");
        assert_eq!(MASTER_KEY.aws_var, "MASTER_KEY_AWS_SECRET_ID");
        assert!(
            MASTER_KEY
                .aws_var
                .ends_with(crate::config::secrets::AWS_SECRET_ID_SUFFIX)
        );
        // The help states the strength threshold the code applies.
        let threshold = format!("{:.0} bits", super::super::strength::MIN_ESTIMATED_BITS);
        assert!(SECRET_KEY.help.contains(&threshold), "{}", SECRET_KEY.help);
    }

    #[test]
    fn every_literal_default_is_accepted_and_gives_the_same_configuration_as_unset() {
        // Arrange: every literal default set explicitly.
        let explicit: Vars = VARS
            .iter()
            .filter_map(|v| v.default.literal().map(|d| (v.name.to_owned(), d.to_owned())))
            .collect();
        // Act
        let unset = Config::from_vars(&Vars::new()).unwrap();
        let set = Config::from_vars(&explicit).unwrap();
        // Assert
        assert_eq!(set.redacted_summary(), unset.redacted_summary());
    }

    #[test]
    fn every_integer_rule_is_enforced_at_its_bounds() {
        for var in VARS {
            let (Rule::Int { min, max } | Rule::Interval { min, max }) = var.rule else {
                continue;
            };
            // Settings that depend on another are checked with that one out of the way.
            let mut base = Vars::new();
            if var.name == KEY_PUBLISH_DELAY.name || var.name == KEY_RELOAD_SECONDS.name {
                base.insert(KEY_PUBLISH_DELAY.name.to_owned(), "0".to_owned());
            }
            for (value, accepted) in [(min, true), (max, true), (min - 1, false), (max + 1, false)] {
                let mut vars = base.clone();
                vars.insert(var.name.to_owned(), value.to_string());
                if var.name == PASSWORD_HASH_PARALLELISM.name {
                    vars.insert(PASSWORD_HASH_MEMORY_KIB.name.to_owned(), (8 * max).to_string());
                }
                let result = Config::from_vars(&vars);
                match result {
                    Ok(_) => assert!(accepted, "{}={value} was accepted", var.name),
                    Err(error) => {
                        assert!(!accepted, "{}={value} was refused: {error}", var.name);
                        assert_eq!(error.var, var.name, "{error}");
                    }
                }
            }
        }
    }

    /// README's configuration tables are exactly the declarations. After changing a
    /// declaration, run this test with `TESSERA_BLESS_README=1` to rewrite them.
    #[test]
    fn readme_configuration_tables_match_the_declarations() {
        const BEGIN: &str = "<!-- configuration tables: generated from crates/tessera-server/src/config/vars.rs -->\n";
        const END: &str = "<!-- end of configuration tables -->";
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let start = readme.find(BEGIN).expect("README has the begin marker") + BEGIN.len();
        let end = readme[start..].find(END).expect("README has the end marker") + start;
        let expected = format!("\n{}\n", markdown_tables());
        if std::env::var_os("TESSERA_BLESS_README").is_some() {
            std::fs::write(path, format!("{}{expected}{}", &readme[..start], &readme[end..])).unwrap();
            return;
        }
        let actual = &readme[start..end];
        // Every row names a declared variable, with its declared default.
        for row in actual.lines().filter(|l| l.starts_with("| `")) {
            let name = row.trim_start_matches("| `").split('`').next().unwrap_or_default();
            let var = VARS.iter().find(|v| v.name == name);
            let var = var.unwrap_or_else(|| panic!("README row for an undeclared variable: {row}"));
            let default = row.split(" | ").nth(1).unwrap_or_default();
            assert_eq!(default, var.default.markdown(), "README default of {name}");
        }
        assert_eq!(
            actual, expected,
            "README's configuration tables differ from the declarations; rerun with TESSERA_BLESS_README=1"
        );
    }
}
