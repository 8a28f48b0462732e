//! The confirmation outbox worker's settings.

use std::time::Duration;

use rand::Rng;

use super::ConfigError;
use super::parse::{Lookup, millis, parse_in_range, parse_or};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxSettings {
    /// After this many failed attempts a row is marked failed.
    pub max_attempts: u32,
    /// First retry delay; doubles with each attempt, up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// How often an idle worker looks for due rows (a signup in this process wakes it at once).
    pub poll_interval: Duration,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            max_attempts: 10,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            poll_interval: Duration::from_secs(1),
        }
    }
}

impl OutboxSettings {
    /// OUTBOX_MAX_ATTEMPTS, OUTBOX_BACKOFF_BASE_MS, OUTBOX_BACKOFF_MAX_MS, OUTBOX_POLL_INTERVAL_MS.
    pub(super) fn from_lookup(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        let ms = millis(86_400_000);
        let d = Self::default();
        Ok(Self {
            max_attempts: parse_or(get, "OUTBOX_MAX_ATTEMPTS", d.max_attempts, |v| {
                parse_in_range(v, 1, 1000)
            })?,
            backoff_base: parse_or(get, "OUTBOX_BACKOFF_BASE_MS", d.backoff_base, &ms)?,
            backoff_max: parse_or(get, "OUTBOX_BACKOFF_MAX_MS", d.backoff_max, &ms)?,
            poll_interval: parse_or(get, "OUTBOX_POLL_INTERVAL_MS", d.poll_interval, &ms)?,
        })
    }

    /// Delay before attempt `attempt + 1`, after `attempt` failures (1-based): base·2^(attempt−1),
    /// capped, with "equal jitter" (a random point in the upper half) so replicas spread out.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .backoff_base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(30));
        let capped = exp.min(self.backoff_max);
        let half = capped / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}
