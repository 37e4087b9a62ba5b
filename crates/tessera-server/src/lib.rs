//! Tessera's server: HTTP API, configuration, telemetry and the operator CLI.
//!
//! # Layout
//!
//! Three layers, each importing only the ones below it (checked by `tests/api/layers.rs`):
//!
//! - [`http`]: the only module that knows axum: routes per feature, extractors, cookies, the
//!   unified error format in English and Chinese (S5), the middleware stack.
//! - [`app`]: the application services (A1): register, login, refresh, logout, sessions,
//!   authentication, rate limits, account administration. Plain Rust, no HTTP.
//! - Infrastructure the services use: [`config`] (S11; with `config::secrets`, S3), [`keys`] (S3, B1),
//!   [`hashing`] (B8), [`revocation`] (B3, B9), [`backends`] (B9), [`token_cache`] (S8),
//!   [`api_key_cache`] (G3), [`metrics`] (S10), [`telemetry`] (S6), [`clock`] (A4); [`release`]:
//!   `--version` and the man pages and completions of the packages.
//!
//! [`cli`] runs `tessera serve`, `config check`, `keys`, `users`, `migrate` on top of the
//! services; this file composes everything: [`build`] and [`serve`].

pub mod api_key_cache;
pub mod app;
pub mod backends;
pub mod cli;
pub mod clock;
pub mod config;
pub mod hashing;
pub mod http;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod release;
pub mod revocation;
pub mod telemetry;
pub mod token_cache;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rand::RngCore;
use rand::rngs::OsRng;
use tessera_core::jwt::Validation;
use tessera_core::password::{PasswordHasher, PasswordPolicy};

use tessera_core::store::{ApiKeyStore, EmailTokenStore, KeyStore, MfaStore, RateLimiter, SessionStore, UserStore};
use tessera_store::breaker;
use tessera_store::memory::MemoryRateLimiter;
use tessera_store::postgres::PgStore;
use tessera_store::redis::RedisRateLimiter;
use tessera_store::redis_bus::RedisBus;
use tessera_store::sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::app::App;
use crate::app::accounts::Accounts;
use crate::app::limits::RateLimits;
use crate::backends::RedisHealth;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, Database};
use crate::hashing::HashPool;
use crate::http::AppState;
pub use crate::http::serve::ConnectionLimits;
use crate::metrics::Metrics;
use crate::revocation::Revocations;
use crate::token_cache::{RedisTokenCache, TokenCache};

/// A built server: the router and the application behind it, ready to serve.
pub struct Built {
    /// The router with all middleware.
    pub router: http::Router,
    /// The application (the handlers' state).
    pub state: AppState,
}

/// The stores behind one database.
struct Stores {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    keys: Arc<dyn KeyStore>,
    api_keys: Arc<dyn ApiKeyStore>,
    email_tokens: Arc<dyn EmailTokenStore>,
    mfa: Arc<dyn MfaStore>,
}

/// One database's store under each of its trait objects.
type StoreHandles = (
    Arc<dyn UserStore>,
    Arc<dyn SessionStore>,
    Arc<dyn KeyStore>,
    Arc<dyn ApiKeyStore>,
    Arc<dyn EmailTokenStore>,
    Arc<dyn MfaStore>,
);

/// How often the breaker's probe pings a database found unavailable (see
/// [`tessera_store::breaker`]).
pub const DATABASE_PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Opens the stores of `database`, each behind the same circuit breaker: once a call finds the
/// database unavailable, calls fail at once (503) until a background ping succeeds.
async fn open_stores(database: &Database) -> anyhow::Result<Stores> {
    let (users, sessions, keys, api_keys, email_tokens, mfa): StoreHandles = match database {
        Database::Sqlite(path) => {
            let store = Arc::new(
                SqliteStore::open(path)
                    .await
                    .with_context(|| format!("could not open the database at {}", path.display()))?,
            );
            (
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store,
            )
        }
        Database::Postgres(url) => {
            let store = Arc::new(
                PgStore::connect(url)
                    .await
                    .with_context(|| format!("could not connect to DATABASE_URL {database}"))?,
            );
            (
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store.clone(),
                store,
            )
        }
    };
    let guarded = breaker::guard(users, sessions, keys, DATABASE_PROBE_INTERVAL);
    Ok(Stores {
        users: guarded.users,
        sessions: guarded.sessions,
        keys: guarded.keys,
        api_keys: Arc::new(breaker::Guarded::new(api_keys, Arc::clone(&guarded.breaker))),
        email_tokens: Arc::new(breaker::Guarded::new(email_tokens, Arc::clone(&guarded.breaker))),
        mfa: Arc::new(breaker::Guarded::new(mfa, guarded.breaker)),
    })
}

/// Opens the account and session stores of a database (for `tessera users ...`; runs
/// migrations like `serve`).
pub async fn open_account_stores(database: &Database) -> anyhow::Result<(Arc<dyn UserStore>, Arc<dyn SessionStore>)> {
    let stores = open_stores(database).await?;
    Ok((stores.users, stores.sessions))
}

/// Opens the account, session and second-factor stores of a database (for `tessera users ...`,
/// `users mfa reset` included; runs migrations like `serve`).
pub async fn open_user_admin_stores(
    database: &Database,
) -> anyhow::Result<(Arc<dyn UserStore>, Arc<dyn SessionStore>, Arc<dyn MfaStore>)> {
    let stores = open_stores(database).await?;
    Ok((stores.users, stores.sessions, stores.mfa))
}

/// Opens every store of a database: users, sessions, signing keys, API keys (for
/// `tessera service-accounts` and `tessera api-keys`; runs migrations like `serve`).
pub async fn open_operator_stores(
    database: &Database,
) -> anyhow::Result<(
    Arc<dyn UserStore>,
    Arc<dyn SessionStore>,
    Arc<dyn KeyStore>,
    Arc<dyn ApiKeyStore>,
)> {
    let stores = open_stores(database).await?;
    Ok((stores.users, stores.sessions, stores.keys, stores.api_keys))
}

/// Opens the key store of a database (for `tessera keys ...`; runs migrations like `serve`).
pub async fn open_key_store(database: &Database) -> anyhow::Result<Arc<dyn KeyStore>> {
    Ok(open_stores(database).await?.keys)
}

/// Opens the stores, loads the keys, connects Redis (if configured), starts the hashing pool
/// and the background tasks, and builds the router, on the system clock.
pub async fn build(config: Config) -> anyhow::Result<Built> {
    build_with_clock(config, SystemClock::shared()).await
}

/// [`build`] on a given clock (tests pass a [`clock::ManualClock`]).
pub async fn build_with_clock(config: Config, clock: SharedClock) -> anyhow::Result<Built> {
    let stores = open_stores(&config.database).await?;
    build_on(config, stores, clock).await
}

/// [`build`] on a store the caller opened instead of `config.database`: the storage tests keep
/// the store (its pool) to make the running server's database full or read-only.
pub async fn build_with_store<S>(config: Config, store: Arc<S>) -> anyhow::Result<Built>
where
    S: UserStore + SessionStore + KeyStore + ApiKeyStore + EmailTokenStore + MfaStore + 'static,
{
    let stores = Stores {
        users: store.clone(),
        sessions: store.clone(),
        keys: store.clone(),
        api_keys: store.clone(),
        email_tokens: store.clone(),
        mfa: store,
    };
    build_on(config, stores, SystemClock::shared()).await
}

async fn build_on(config: Config, stores: Stores, clock: SharedClock) -> anyhow::Result<Built> {
    let keys = keys::load(&config, stores.keys.clone(), clock.now()).await?;

    let redis = match &config.redis_url {
        Some(url) => {
            let bus = RedisBus::new(url.expose(), &config.redis_prefix).context("REDIS_URL")?;
            let health = RedisHealth::new(bus);
            health.check().await;
            health.spawn_monitor(Duration::from_secs(1));
            Some(health)
        }
        None => None,
    };

    // Sessions revoked within the last access lifetime may still have live access tokens:
    // the denylist starts from them, then follows pub/sub and the database (B3).
    let denylist = Revocations::new(redis.clone(), clock.clone());
    denylist
        .start(
            stores.sessions.clone(),
            stores.api_keys.clone(),
            config.access_ttl_secs + config.leeway_secs,
            Duration::from_millis(config.revocation_poll_millis),
        )
        .await?;

    let shared_limiter = redis.as_ref().map(|health| {
        let limiter: Arc<dyn RateLimiter> = Arc::new(RedisRateLimiter::new(
            health.bus().manager(),
            config.redis_prefix.clone(),
        ));
        (limiter, Arc::clone(health))
    });
    let limits = RateLimits::new(Arc::new(MemoryRateLimiter::new()), shared_limiter, clock.clone());

    let shared_token_cache = match (&redis, config.token_cache_redis) {
        (Some(health), true) => RedisTokenCache::new(Arc::clone(health), &config.redis_prefix, &keys.cache_mac_key),
        _ => None,
    };

    let mut dummy_salt = [0u8; 16];
    OsRng.fill_bytes(&mut dummy_salt);
    let hasher = PasswordHasher::new(config.password_params, &dummy_salt)?;
    let hashing =
        HashPool::start(hasher, config.hash_workers, config.hash_queue).context("could not start hashing threads")?;

    let mut validation = Validation::new(config.issuer.clone(), config.audience.clone());
    validation.leeway_secs = config.leeway_secs;
    let accounts = Accounts::new(
        stores.users.clone(),
        stores.sessions.clone(),
        hashing,
        PasswordPolicy::default(),
        clock.clone(),
        config.access_ttl_secs + config.leeway_secs,
    );
    // Accounts created before emails were normalised (NFKC + case folding) get the normal form
    // now, so look-alike spellings cannot reach them as separate accounts.
    accounts
        .normalize_stored_emails()
        .await
        .context("could not normalise the stored email addresses")?;
    let metrics = Metrics::new().context("could not register metrics")?;
    let state = Arc::new(App {
        users: stores.users,
        sessions: stores.sessions,
        key_store: stores.keys,
        api_keys: stores.api_keys,
        key_usage: app::api_keys::UsageBuffer::default(),
        profiles: app::identity::ProfileCache::default(),
        assertions: app::identity::AssertionCache::default(),
        denylist,
        limits,
        redis,
        keys,
        accounts,
        validation,
        token_cache: TokenCache::new(config.token_cache_size),
        shared_token_cache,
        email_tokens: stores.email_tokens,
        mfa: stores.mfa,
        mailer: mail::Mailer::start(&config.mail, &metrics)?,
        metrics,
        config,
        clock,
    });
    state.spawn_key_reload();
    state.spawn_key_usage_flush();
    Ok(Built {
        router: http::router(state.clone()),
        state,
    })
}

/// Serves `app` on `listener` with the connection `limits` (see [`http::serve::serve`]) until
/// `shutdown` completes, then stops accepting and drains in-flight requests.
pub async fn serve(
    app: Built,
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    http::serve::serve(app.router, listener, limits, shutdown)
        .await
        .context("server error")
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
