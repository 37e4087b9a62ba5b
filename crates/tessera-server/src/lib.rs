//! Tessera's server: HTTP API, configuration, telemetry and the operator CLI.
//!
//! # Layout
//!
//! - [`config`]: environment and `.env` into a checked [`config::Config`] (S11).
//! - [`state`]: [`state::AppState`], shared by handlers, and token issuing/verifying.
//! - [`keys`]: configured secrets or the managed key ring, loaded at start (S3, B1).
//! - [`auth`]: the [`auth::AuthUser`] extractor: Bearer or cookie, denylist, CSRF (S1, S2, B3).
//! - [`http`]: routes per feature and the middleware stack.
//! - [`error`], [`i18n`]: the unified error format in English and Chinese (S5).
//! - [`extract`]: body, client-address and user-agent extractors.
//! - [`cookies`]: the token cookies (S1).
//! - [`hashing`]: the bounded password-hashing pool (B8).
//! - [`telemetry`]: logging set-up (S6).
//! - [`cli`]: `tessera serve`, `tessera config check`.

pub mod auth;
pub mod cli;
pub mod config;
pub mod cookies;
pub mod error;
pub mod extract;
pub mod hashing;
pub mod http;
pub mod i18n;
pub mod keys;
pub mod state;
pub mod telemetry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use rand::RngCore;
use rand::rngs::OsRng;
use tessera_core::jwt::Validation;
use tessera_core::password::{PasswordHasher, PasswordPolicy};
use tessera_core::store::{Denylist, SessionStore};
use tessera_store::memory::MemoryDenylist;
use tessera_store::sqlite::SqliteStore;
use tokio::net::TcpListener;

use crate::config::{Config, Database};
use crate::hashing::HashPool;
use crate::state::{AppState, Inner, unix_now};

/// A built application: the router and its state, ready to serve.
pub struct App {
    /// The router with all middleware.
    pub router: axum::Router,
    /// The shared state.
    pub state: AppState,
}

/// Opens the stores, loads the keys, starts the hashing pool and builds the router.
pub async fn build(config: Config) -> anyhow::Result<App> {
    let store = match &config.database {
        Database::Sqlite(path) => Arc::new(
            SqliteStore::open(path)
                .await
                .with_context(|| format!("could not open the database at {}", path.display()))?,
        ),
    };
    let keys = keys::load(&config, store.as_ref()).await?;

    let denylist = Arc::new(MemoryDenylist::new());
    // Sessions revoked within the last access lifetime may still have live access tokens:
    // reload them so a restart does not bring those tokens back (B3).
    let now = unix_now();
    let horizon = now - config.access_ttl_secs - config.leeway_secs;
    for (sid, revoked_at) in store.revoked_since(horizon).await? {
        denylist.revoke_session(&sid, revoked_at + config.access_ttl_secs + config.leeway_secs, now);
    }

    let mut dummy_salt = [0u8; 16];
    OsRng.fill_bytes(&mut dummy_salt);
    let hasher = PasswordHasher::new(config.password_params, &dummy_salt)?;
    let hashing =
        HashPool::start(hasher, config.hash_workers, config.hash_queue).context("could not start hashing threads")?;

    let mut validation = Validation::new(config.issuer.clone(), config.audience.clone());
    validation.leeway_secs = config.leeway_secs;
    let state = AppState(Arc::new(Inner {
        users: store.clone(),
        sessions: store.clone(),
        key_store: store,
        denylist,
        keys,
        hashing,
        policy: PasswordPolicy::default(),
        validation,
        config,
    }));
    Ok(App {
        router: http::router(state.clone()),
        state,
    })
}

/// Serves `app` on `listener` until `shutdown` completes, then drains in-flight requests.
pub async fn serve(
    app: App,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = app.router.into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
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
