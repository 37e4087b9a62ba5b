//! `GET /metrics` (S10) and the HTTP request metrics middleware.

use crate::clock::Stopwatch;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use tessera_core::store::StorageFault;

use super::AppState;

/// `GET /metrics`.
pub fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Refreshes the state-mirroring gauges, then renders every metric.
async fn metrics(State(state): State<AppState>) -> Response {
    let metrics = &state.metrics;
    match state.sessions.count_active(state.clock.now()).await {
        Ok(count) => {
            metrics.active_tokens.set(count);
            metrics.backend_up.with_label_values(&["database"]).set(1);
        }
        Err(_) => metrics.backend_up.with_label_values(&["database"]).set(0),
    }
    metrics
        .hash_queue_depth
        .set(i64::try_from(state.accounts.hashing().queue_depth()).unwrap_or(i64::MAX));
    metrics
        .hash_queue_capacity
        .set(i64::try_from(state.config.hash_queue).unwrap_or(i64::MAX));
    if let Some(redis) = &state.redis {
        metrics
            .backend_up
            .with_label_values(&["redis"])
            .set(i64::from(redis.is_up()));
        metrics
            .backend_outages
            .with_label_values(&["redis"])
            .set(i64::try_from(redis.outages()).unwrap_or(i64::MAX));
    }
    let mut response = metrics.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}

/// Counts and times every request by method, matched route (never the raw path, so ids in
/// paths cannot blow up the label set) and status.
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = Stopwatch::start();
    // Only the standard methods become label values: a client can send any token as a
    // method, and each would be a new time series.
    let method = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    };
    let route = request.extensions().get::<MatchedPath>().cloned();
    let response = next.run(request).await;
    if let Some(fault) = response.extensions().get::<StorageFault>() {
        state.metrics.storage_errors.with_label_values(&[fault.as_str()]).inc();
    }
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    // Pre-resolved series: no label hashing, no route or status string per request.
    let series = state.metrics.http_series(method, route, response.status().as_u16());
    series.requests.inc();
    series.duration.observe(started.elapsed().as_secs_f64());
    response
}
