//! Rate limiting (S7, B7): per client IP on login and registration, per account on login, per
//! user on the API routes. Counters live in Redis when REDIS_URL is set (exact and atomic across
//! instances) and in this process otherwise, or while Redis is down.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tessera_core::limits::{Decision, RateLimitSpec};
use tessera_core::store::RateLimiter;

use crate::auth::AuthUser;
use crate::backends::RedisHealth;
use crate::error::AppError;
use crate::extract::ClientIp;
use crate::state::AppState;

/// The limiters: shared (Redis) when configured and up, else local.
pub struct RateLimits {
    shared: Option<(Arc<dyn RateLimiter>, Arc<RedisHealth>)>,
    local: Arc<dyn RateLimiter>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl RateLimits {
    /// Limits with a local limiter and, optionally, a shared one guarded by `health`.
    pub fn new(local: Arc<dyn RateLimiter>, shared: Option<(Arc<dyn RateLimiter>, Arc<RedisHealth>)>) -> RateLimits {
        RateLimits { shared, local }
    }

    /// Counts one request for `key` under `spec`.
    pub async fn hit(&self, key: &str, spec: &RateLimitSpec) -> Decision {
        let now = now_ms();
        if let Some((shared, health)) = &self.shared
            && health.is_up()
        {
            match shared.hit(key, spec, now).await {
                Ok(decision) => return decision,
                Err(error) => health.report_failure(&error),
            }
        }
        match self.local.hit(key, spec, now).await {
            Ok(decision) => decision,
            // The in-process limiter cannot fail; if it ever did, refuse rather than let
            // unlimited traffic through.
            Err(error) => {
                tracing::error!(%error, "local rate limiter failed; refusing");
                tessera_core::limits::decide(
                    spec,
                    &[tessera_core::limits::WindowCounts {
                        previous: u64::MAX / 2,
                        current: u64::MAX / 2,
                    }],
                    now,
                )
            }
        }
    }
}

/// The X-RateLimit-* headers of a decision (and Retry-After when refused).
pub fn headers(decision: &Decision) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-ratelimit-limit", decision.limit.count.to_string());
    set("x-ratelimit-remaining", decision.remaining.to_string());
    set("x-ratelimit-reset", decision.reset_at.to_string());
    if !decision.allowed {
        set("retry-after", decision.retry_after_secs.to_string());
    }
    headers
}

/// Counts a request and turns a refusal into the 429 error, logging the security event.
pub async fn enforce(
    state: &AppState,
    bucket: &'static str,
    key: &str,
    spec: &RateLimitSpec,
    ip: &str,
) -> Result<Decision, AppError> {
    let decision = state.limits.hit(&format!("{bucket}:{key}"), spec).await;
    if decision.allowed {
        Ok(decision)
    } else {
        state.metrics.rate_limited.with_label_values(&[bucket]).inc();
        tracing::warn!(
            event = "rate_limited",
            route = bucket,
            ip_address = %ip,
            limit = %decision.limit,
            retry_after = decision.retry_after_secs,
            "rate limit exceeded"
        );
        Err(AppError::RateLimited(decision))
    }
}

/// Middleware for the API routes: authenticates (the handler's `AuthUser` then comes from the
/// request extensions, verified once) and counts the request against RATE_LIMIT_API per user.
pub async fn api_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let user = match AuthUser::from_request_parts(&mut parts, &state).await {
        Ok(user) => user,
        Err(error) => return error.into_response(),
    };
    let ClientIp(ip) = ClientIp::from_request_parts(&mut parts, &state)
        .await
        .unwrap_or_else(|e| match e {});
    let decision = match enforce(
        &state,
        "api",
        &user.claims.user_id.to_string(),
        &state.config.rate_limit_api,
        &ip,
    )
    .await
    {
        Ok(decision) => decision,
        Err(error) => return error.into_response(),
    };
    parts.extensions.insert(user);
    let mut response = next.run(Request::from_parts(parts, body)).await;
    response.headers_mut().extend(headers(&decision));
    response
}
