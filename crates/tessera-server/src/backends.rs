//! Health of the shared Redis backend and the switch to local state when it is down (B9).
//!
//! Losing Redis must neither open doors nor lose data: rate limits fall back to this instance's
//! own counters (still enforced, per instance), revocations keep flowing through the database
//! poll, and one warning is logged when Redis goes and one line when it comes back. A monitor
//! pings Redis every second, so recovery needs no restart and requests never wait on a dead
//! Redis: while it is marked down, they do not try it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tessera_core::store::StoreError;
use tessera_store::redis_bus::RedisBus;

/// Whether Redis is usable right now, and the bus to it.
pub struct RedisHealth {
    bus: RedisBus,
    is_up: AtomicBool,
    /// How many times Redis went down (exported as a metric).
    outages: AtomicU64,
}

impl RedisHealth {
    /// Tracks `bus`, assumed down until the first successful ping.
    pub fn new(bus: RedisBus) -> Arc<RedisHealth> {
        Arc::new(RedisHealth {
            bus,
            is_up: AtomicBool::new(false),
            outages: AtomicU64::new(0),
        })
    }

    /// The bus.
    pub fn bus(&self) -> &RedisBus {
        &self.bus
    }

    /// Whether requests should use Redis.
    pub fn is_up(&self) -> bool {
        self.is_up.load(Ordering::Relaxed)
    }

    /// How many outages since start.
    pub fn outages(&self) -> u64 {
        self.outages.load(Ordering::Relaxed)
    }

    /// Marks Redis down after a failed operation; logs once per outage.
    pub fn report_failure(&self, error: &StoreError) {
        if self.is_up.swap(false, Ordering::Relaxed) {
            self.outages.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                event = "backend_degraded",
                backend = "redis",
                error = %error,
                "redis unavailable: rate limits and revocations fall back to local state"
            );
        }
    }

    fn report_success(&self) {
        if !self.is_up.swap(true, Ordering::Relaxed) {
            tracing::info!(
                event = "backend_recovered",
                backend = "redis",
                "redis available: shared state resumed"
            );
        }
    }

    /// One health check now.
    pub async fn check(&self) -> bool {
        match self.bus.ping().await {
            Ok(()) => {
                self.report_success();
                true
            }
            Err(error) => {
                // The very first check also announces the degraded start.
                if self.outages.load(Ordering::Relaxed) == 0 && !self.is_up() {
                    self.outages.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(event = "backend_degraded", backend = "redis", error = %error, "redis unavailable at start: using local state");
                } else {
                    self.report_failure(&error);
                }
                false
            }
        }
    }

    /// Pings Redis every `interval`, for as long as the process runs.
    pub fn spawn_monitor(self: &Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        let health = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                health.check().await;
            }
        })
    }
}
