//! Idempotency-Key on signup: the fingerprint secret and the purge interval.

use std::time::Duration;

use super::ConfigError;
use super::parse::{Lookup, parse_or, required, seconds};
use crate::domain::FingerprintSecret;

/// Idempotency-Key on signup.
#[derive(Debug, Clone)]
pub struct IdempotencySettings {
    /// Keys the request fingerprints; the same on every replica (IDEMPOTENCY_SECRET).
    pub secret: FingerprintSecret,
    /// How often expired keys (older than 24 h) are deleted.
    pub purge_interval: Duration,
}

impl IdempotencySettings {
    /// IDEMPOTENCY_SECRET (required), IDEMPOTENCY_PURGE_INTERVAL_S.
    pub(super) fn from_lookup(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        let name = "IDEMPOTENCY_SECRET";
        let secret = required(get, name, |v| {
            FingerprintSecret::parse(v).map_err(|reason| ConfigError::Invalid { name, reason })
        })?;
        let purge_interval = parse_or(
            get,
            "IDEMPOTENCY_PURGE_INTERVAL_S",
            Duration::from_secs(3600),
            seconds(86_400),
        )?;
        Ok(Self {
            secret,
            purge_interval,
        })
    }
}
