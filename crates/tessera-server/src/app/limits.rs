//! Rate limiting (S7, B7): per client IP on login and registration, per account on login, per
//! user (or per API key) on the API routes. Counters live in Redis when REDIS_URL is set (exact and atomic across
//! instances) and in this process otherwise, or while Redis is down.

use std::sync::Arc;

use tessera_core::limits::{Decision, RateLimitSpec};
use tessera_core::store::RateLimiter;

use super::App;
use super::error::Error;
use crate::backends::RedisHealth;
use crate::clock::SharedClock;

/// The limiters: shared (Redis) when configured and up, else local.
pub struct RateLimits {
    shared: Option<(Arc<dyn RateLimiter>, Arc<RedisHealth>)>,
    local: Arc<dyn RateLimiter>,
    clock: SharedClock,
}

impl RateLimits {
    /// Limits with a local limiter and, optionally, a shared one guarded by `health`.
    pub fn new(
        local: Arc<dyn RateLimiter>,
        shared: Option<(Arc<dyn RateLimiter>, Arc<RedisHealth>)>,
        clock: SharedClock,
    ) -> RateLimits {
        RateLimits { shared, local, clock }
    }

    /// Counts one request for `key` under `spec`.
    pub async fn hit(&self, key: &str, spec: &RateLimitSpec) -> Decision {
        let now = self.clock.now_millis();
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

impl App {
    /// Counts a request in `bucket` for `key` and turns a refusal into
    /// [`Error::RateLimited`], logging the security event and counting it.
    pub async fn enforce_limit(
        &self,
        bucket: &'static str,
        key: &str,
        spec: &RateLimitSpec,
        ip: &str,
    ) -> Result<Decision, Error> {
        let decision = self.limits.hit(&format!("{bucket}:{key}"), spec).await;
        if decision.allowed {
            Ok(decision)
        } else {
            self.metrics.rate_limited.with_label_values(&[bucket]).inc();
            tracing::warn!(
                event = "rate_limited",
                route = bucket,
                ip_address = %ip,
                limit = %decision.limit,
                retry_after = decision.retry_after_secs,
                "rate limit exceeded"
            );
            Err(Error::RateLimited(decision))
        }
    }

    /// Counts an API request against RATE_LIMIT_API: per user for an access token, per key for
    /// an API key (G3: each key has its own budget, its own limit when it was given one, the
    /// owner's sessions keep theirs); then a key's quota, if it has one.
    pub async fn enforce_api_limit(
        &self,
        user_id: i64,
        api_key: Option<&crate::api_key_cache::CachedKey>,
        ip: &str,
    ) -> Result<Decision, Error> {
        let Some(key) = api_key else {
            return self
                .enforce_limit("api", &user_id.to_string(), &self.config.rate_limit_api, ip)
                .await;
        };
        let spec = key.rate_limit.as_ref().unwrap_or(&self.config.rate_limit_api);
        let decision = self.enforce_limit("api", &key.id, spec, ip).await?;
        if let Some(quota) = &key.quota {
            let used = self.limits.hit(&format!("quota:{}", key.id), quota).await;
            if !used.allowed {
                self.metrics.rate_limited.with_label_values(&["quota"]).inc();
                tracing::warn!(
                    event = "quota_exceeded",
                    user_id,
                    key_id = %key.id,
                    ip_address = %ip,
                    limit = %used.limit,
                    reset_at = used.reset_at,
                    retry_after = used.retry_after_secs,
                    "API key quota used up"
                );
                return Err(Error::QuotaExceeded(used));
            }
        }
        Ok(decision)
    }
}
