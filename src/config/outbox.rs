//! The confirmation outbox worker's settings.

use std::time::Duration;

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
