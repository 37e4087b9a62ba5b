//! Cross-instance notifications over Redis pub/sub (B3, B9): when one instance revokes a
//! session or a token, every other instance hears about it within milliseconds and adds it to
//! its in-memory denylist, without a Redis round trip on every request.
//!
//! Pub/sub is fire-and-forget: a message published while an instance is disconnected is lost to
//! it. That is acceptable because it is only the fast path; the durable record of a revocation
//! is the database, which every instance re-reads on a short interval.

use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tessera_core::store::StoreError;
use tokio::task::JoinHandle;

/// Longest a single Redis operation may take before it counts as "Redis is down".
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(2);

fn unavailable(error: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("redis: {error}"))
}

/// A Redis connection for commands plus the means to subscribe to one channel.
#[derive(Clone)]
pub struct RedisBus {
    client: redis::Client,
    manager: ConnectionManager,
    channel: String,
}

impl std::fmt::Debug for RedisBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBus")
            .field("channel", &self.channel)
            .finish_non_exhaustive()
    }
}

impl RedisBus {
    /// A bus on `url` using channel `<prefix>events`. Connects lazily: creating it never blocks
    /// or fails because Redis is down.
    pub fn new(url: &str, prefix: &str) -> Result<RedisBus, StoreError> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OPERATION_TIMEOUT))
            .set_response_timeout(Some(OPERATION_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(unavailable)?;
        Ok(RedisBus {
            client,
            manager,
            channel: format!("{prefix}events"),
        })
    }

    /// A command connection (cheap to clone; reconnects by itself).
    pub fn manager(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// Whether Redis answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut connection = self.manager.clone();
        let reply = tokio::time::timeout(
            OPERATION_TIMEOUT,
            redis::cmd("PING").query_async::<String>(&mut connection),
        )
        .await
        .map_err(|_| unavailable("ping timed out"))?
        .map_err(unavailable)?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(unavailable(format!("unexpected PING reply {reply:?}")))
        }
    }

    /// Publishes `message` to every subscribed instance.
    pub async fn publish(&self, message: &str) -> Result<(), StoreError> {
        let mut connection = self.manager.clone();
        tokio::time::timeout(
            OPERATION_TIMEOUT,
            redis::cmd("PUBLISH")
                .arg(&self.channel)
                .arg(message)
                .query_async::<i64>(&mut connection),
        )
        .await
        .map_err(|_| unavailable("publish timed out"))?
        .map_err(unavailable)?;
        Ok(())
    }

    /// Subscribes in the background and calls `on_message` for every message, reconnecting
    /// (with a short back-off) whenever the connection drops. `on_connected` runs after every
    /// successful (re)subscription, so the caller can catch up on what it may have missed.
    pub fn subscribe(
        &self,
        on_message: impl Fn(String) + Send + Sync + 'static,
        on_connected: impl Fn() + Send + Sync + 'static,
    ) -> JoinHandle<()> {
        let client = self.client.clone();
        let channel = self.channel.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let subscribed = async {
                    let mut pubsub = client.get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                match tokio::time::timeout(OPERATION_TIMEOUT, subscribed).await {
                    Ok(Ok(mut pubsub)) => {
                        backoff = Duration::from_millis(100);
                        on_connected();
                        let mut messages = pubsub.on_message();
                        while let Some(message) = messages.next().await {
                            if let Ok(payload) = message.get_payload::<String>() {
                                on_message(payload);
                            }
                        }
                        tracing::warn!(channel = %channel, "redis subscription closed; reconnecting");
                    }
                    Ok(Err(error)) => tracing::debug!(%error, "redis subscribe failed"),
                    Err(_) => tracing::debug!("redis subscribe timed out"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        })
    }
}
