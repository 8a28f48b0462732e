//! The periodic purge of Idempotency-Keys older than 24 h.

use std::time::Duration;

use crate::store::Database;
use tokio_util::sync::CancellationToken;

use super::persistence;

/// Purges expired keys now and then every `interval`, until `stop`. Replicas may all run it:
/// the delete is idempotent.
pub async fn purge_expired_keys(pool: Database, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        match persistence::purge_expired(&pool).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired idempotency keys deleted"),
            Err(err) => tracing::warn!(error = %err, "expired idempotency keys not purged"),
        }
    }
}
