//! Tessera's server: HTTP API, configuration, telemetry and the operator CLI.
//!
//! # Layout
//!
//! - [`config`]: environment and `.env` into a checked [`config::Config`] (S11).
//! - [`secrets`]: secrets from AWS Secrets Manager (`<NAME>_AWS_SECRET_ID`, feature `aws`) (S3).
//! - [`state`]: [`state::AppState`], shared by handlers, and token issuing/verifying.
//! - [`keys`]: configured secrets or the managed key ring, loaded at start (S3, B1).
//! - [`accounts`]: account rules, hashing and insert shared by POST /register and the CLI.
//! - [`auth`]: the [`auth::AuthUser`] extractor: Bearer or cookie, denylist, CSRF (S1, S2, B3).
//! - [`http`]: routes per feature and the middleware stack.
//! - [`error`], [`i18n`]: the unified error format in English and Chinese (S5).
//! - [`extract`]: body, client-address and user-agent extractors.
//! - [`cookies`]: the token cookies (S1).
//! - [`hashing`]: the bounded password-hashing pool (B8).
//! - [`rate_limit`]: per-IP, per-account and per-user limits (S7, B7).
//! - [`revocation`]: the denylist, shared through Redis pub/sub and the database (B3, B9).
//! - [`backends`]: Redis health and the fallback to local state (B9).
//! - [`token_cache`]: the in-process cache of verified claims (S8).
//! - [`metrics`]: the Prometheus registry of this instance (S10).
//! - [`telemetry`]: logging set-up (S6).
//! - [`serve`]: the accept loop: connection cap, timeouts, lingering close (issue 13).
//! - [`cli`]: `tessera serve`, `config check`, `keys`, `users`, `migrate`.

pub mod accounts;
pub mod auth;
pub mod backends;
pub mod cli;
pub mod config;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod hashing;
pub mod http;
pub mod i18n;
pub mod keys;
pub mod metrics;
pub mod rate_limit;
pub mod revocation;
pub mod secrets;
pub mod serve;
pub mod state;
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

use tessera_core::store::{KeyStore, RateLimiter, SessionStore, UserStore};
use tessera_store::breaker;
use tessera_store::memory::MemoryRateLimiter;
use tessera_store::postgres::PgStore;
use tessera_store::redis::RedisRateLimiter;
use tessera_store::redis_bus::RedisBus;
use tessera_store::sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::backends::RedisHealth;
use crate::config::{Config, Database};
use crate::hashing::HashPool;
use crate::metrics::Metrics;
use crate::rate_limit::RateLimits;
use crate::revocation::Revocations;
pub use crate::serve::ConnectionLimits;
use crate::state::{AppState, Inner};
use crate::token_cache::{RedisTokenCache, TokenCache};

/// A built application: the router and its state, ready to serve.
pub struct App {
    /// The router with all middleware.
    pub router: axum::Router,
    /// The shared state.
    pub state: AppState,
}

/// The stores behind one database.
struct Stores {
    users: Arc<dyn UserStore>,
    sessions: Arc<dyn SessionStore>,
    keys: Arc<dyn KeyStore>,
}

/// How often the breaker's probe pings a database found unavailable (see
/// [`tessera_store::breaker`]).
pub const DATABASE_PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// Opens the stores of `database`, each behind the same circuit breaker: once a call finds the
/// database unavailable, calls fail at once (503) until a background ping succeeds.
async fn open_stores(database: &Database) -> anyhow::Result<Stores> {
    let (users, sessions, keys): (Arc<dyn UserStore>, Arc<dyn SessionStore>, Arc<dyn KeyStore>) = match database {
        Database::Sqlite(path) => {
            let store = Arc::new(
                SqliteStore::open(path)
                    .await
                    .with_context(|| format!("could not open the database at {}", path.display()))?,
            );
            (store.clone(), store.clone(), store)
        }
        Database::Postgres(url) => {
            let store = Arc::new(
                PgStore::connect(url)
                    .await
                    .with_context(|| format!("could not connect to DATABASE_URL {database}"))?,
            );
            (store.clone(), store.clone(), store)
        }
    };
    let guarded = breaker::guard(users, sessions, keys, DATABASE_PROBE_INTERVAL);
    Ok(Stores {
        users: guarded.users,
        sessions: guarded.sessions,
        keys: guarded.keys,
    })
}

/// Opens the account and session stores of a database (for `tessera users ...`; runs
/// migrations like `serve`).
pub async fn open_account_stores(database: &Database) -> anyhow::Result<(Arc<dyn UserStore>, Arc<dyn SessionStore>)> {
    let stores = open_stores(database).await?;
    Ok((stores.users, stores.sessions))
}

/// Opens the key store of a database (for `tessera keys ...`; runs migrations like `serve`).
pub async fn open_key_store(database: &Database) -> anyhow::Result<Arc<dyn KeyStore>> {
    Ok(open_stores(database).await?.keys)
}

/// Opens the stores, loads the keys, connects Redis (if configured), starts the hashing pool
/// and the background tasks, and builds the router.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let stores = open_stores(&config.database).await?;
    let keys = keys::load(&config, stores.keys.clone()).await?;

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
    let denylist = Revocations::new(redis.clone());
    denylist
        .start(
            stores.sessions.clone(),
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
    let limits = RateLimits::new(Arc::new(MemoryRateLimiter::new()), shared_limiter);

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
    let state = AppState(Arc::new(Inner {
        users: stores.users,
        sessions: stores.sessions,
        key_store: stores.keys,
        denylist,
        limits,
        redis,
        keys,
        hashing,
        policy: PasswordPolicy::default(),
        validation,
        token_cache: TokenCache::new(config.token_cache_size),
        shared_token_cache,
        metrics: Metrics::new().context("could not register metrics")?,
        config,
    }));
    keys::spawn_reload(state.clone());
    Ok(App {
        router: http::router(state.clone()),
        state,
    })
}

/// Serves `app` on `listener` with the connection `limits` (see [`serve::serve`]) until
/// `shutdown` completes, then stops accepting and drains in-flight requests.
pub async fn serve(
    app: App,
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve::serve(app.router, listener, limits, shutdown)
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
