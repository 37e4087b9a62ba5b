//! Liveness and readiness (B11).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use tessera_core::store::StoreError;

use super::AppState;
use super::error::{AppError, AppResult};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
pub(super) struct Readiness {
    /// `ready`, or `degraded` when Redis is down (the server runs on local state).
    #[schema(value_type = String, pattern = "^(ready|degraded)$")]
    status: &'static str,
    /// Always `up` in a 200 (a down database is a 503).
    #[schema(value_type = String, pattern = "^up$")]
    database: &'static str,
    /// `up`, `down` or `disabled` (no REDIS_URL).
    #[schema(value_type = String, pattern = "^(up|down|disabled)$")]
    redis: &'static str,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "Liveness: the process is up.", body = Health)),
)]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// The process can serve: the database answers, and takes writes again after a write found
/// its storage full or read-only (503 `storage_unavailable` until then). Without Redis it still serves, on local
/// state, and says so: `"status": "degraded"` (B9).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Readiness: the database answers.", body = Readiness),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn readyz(State(state): State<AppState>) -> AppResult<Json<Readiness>> {
    // A probe must get its answer quickly, whatever the pool's acquire timeout.
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), state.users.ping()).await;
    match ping {
        Ok(Ok(())) => {}
        // The database answers but cannot store data: not ready until a write probe commits
        // again (the store probes on every check while the failure lasts).
        Ok(Err(StoreError::StorageUnavailable { fault, detail })) => {
            return Err(AppError::StorageUnavailable { fault, detail });
        }
        Ok(Err(e)) => {
            return Err(AppError::Unavailable {
                retry_after: 5,
                reason: format!("database not ready: {e}"),
            });
        }
        Err(_) => {
            return Err(AppError::Unavailable {
                retry_after: 5,
                reason: "database ping timed out".into(),
            });
        }
    }
    let redis = match &state.redis {
        None => "disabled",
        Some(health) if health.is_up() => "up",
        Some(_) => "down",
    };
    let status = if redis == "down" { "degraded" } else { "ready" };
    Ok(Json(Readiness {
        status,
        database: "up",
        redis,
    }))
}
