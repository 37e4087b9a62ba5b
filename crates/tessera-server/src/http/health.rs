//! Liveness and readiness (B11).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tessera_core::store::StoreError;

use super::AppState;
use super::error::{AppError, ErrorCode, RenderedError};
use super::i18n::Lang;

/// `Retry-After` of a not-ready answer.
const READYZ_RETRY_AFTER_SECS: u64 = 5;

/// The health routes.
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
/// its storage full or read-only (503 `storage_unavailable` until a write probe commits).
/// Without Redis it still serves, on local state, and says so: `"status": "degraded"` (B9).
/// When the database does not answer, the 503 names what is down in `details`:
/// `{"database": "down", "redis": "up"|"down"|"disabled"}`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Readiness: the database answers.", body = Readiness),
        (status = 503, response = super::openapi::Unavailable),
    ),
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let redis = match &state.redis {
        None => "disabled",
        Some(health) if health.is_up() => "up",
        Some(_) => "down",
    };
    // A probe must get its answer quickly, whatever the pool's acquire timeout (and at once
    // while the database's circuit breaker is open).
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), state.users.ping()).await;
    let reason = match ping {
        Ok(Ok(())) => {
            let status = if redis == "down" { "degraded" } else { "ready" };
            return Json(Readiness {
                status,
                database: "up",
                redis,
            })
            .into_response();
        }
        // The database answers but cannot store data: not ready until a write probe commits
        // again (the store probes on every check while the failure lasts).
        Ok(Err(StoreError::StorageUnavailable { fault, detail })) => {
            return AppError::StorageUnavailable { fault, detail }.into_response();
        }
        Ok(Err(e)) => format!("database not ready: {e}"),
        Err(_) => "database ping timed out".to_owned(),
    };
    tracing::warn!(event = "not_ready", reason = %reason, redis, "not ready: the database is down");
    let mut response = RenderedError {
        details: Some(json!({ "database": "down", "redis": redis })),
        ..RenderedError::plain(ErrorCode::ServiceUnavailable)
    }
    .into_response_in(Lang::En);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(READYZ_RETRY_AFTER_SECS));
    response
}
