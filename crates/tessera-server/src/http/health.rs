//! Liveness and readiness (B11).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::error::{AppError, AppResult};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// The process is up.
async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can serve: the database answers. Without Redis it still serves, on local
/// state, and says so: `"status": "degraded"` (B9).
async fn readyz(State(state): State<AppState>) -> AppResult<Json<Value>> {
    // A probe must get its answer quickly, whatever the pool's acquire timeout.
    let ping = tokio::time::timeout(std::time::Duration::from_secs(1), state.users.ping()).await;
    match ping {
        Ok(Ok(())) => {}
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
    Ok(Json(json!({ "status": status, "database": "up", "redis": redis })))
}
