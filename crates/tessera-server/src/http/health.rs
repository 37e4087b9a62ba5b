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

/// The process can serve: the database answers.
async fn readyz(State(state): State<AppState>) -> AppResult<Json<Value>> {
    state.users.ping().await.map_err(|e| AppError::Unavailable {
        retry_after: 5,
        reason: format!("database not ready: {e}"),
    })?;
    Ok(Json(json!({ "status": "ready" })))
}
