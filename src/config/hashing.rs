//! The argon2id cost of password hashes and the hashing queue.

use argon2::Params;

use super::ConfigError;
use super::parse::{Lookup, count, parse_in_range, parse_or};

/// argon2id cost. Defaults are OWASP's (19 MiB, 2 iterations, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashSettings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashSettings {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl HashSettings {
    /// GoTrue's verifier rejects hashes above these (m ≤ 1 GiB, t ≤ 20, p ≤ 16).
    pub const MAX_MEMORY_KIB: u32 = 1_048_576;
    pub const MAX_ITERATIONS: u32 = 20;
    pub const MAX_PARALLELISM: u32 = 16;

    pub fn params(&self) -> Result<Params, argon2::Error> {
        Params::new(self.memory_kib, self.iterations, self.parallelism, None)
    }

    /// ARGON2_MEMORY_KIB, ARGON2_ITERATIONS, ARGON2_PARALLELISM, within GoTrue's limits and
    /// accepted by argon2 together.
    pub(super) fn from_lookup(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        let d = Self::default();
        let settings = Self {
            memory_kib: parse_or(get, "ARGON2_MEMORY_KIB", d.memory_kib, |v| {
                parse_in_range(v, 8, Self::MAX_MEMORY_KIB)
            })?,
            iterations: parse_or(get, "ARGON2_ITERATIONS", d.iterations, |v| {
                parse_in_range(v, 1, Self::MAX_ITERATIONS)
            })?,
            parallelism: parse_or(get, "ARGON2_PARALLELISM", d.parallelism, |v| {
                parse_in_range(v, 1, Self::MAX_PARALLELISM)
            })?,
        };
        settings.params().map_err(|e| ConfigError::Invalid {
            name: "ARGON2_MEMORY_KIB",
            reason: format!("rejected by argon2 with these ARGON2_* values: {e}"),
        })?;
        Ok(settings)
    }
}

/// HASH_QUEUE_PER_CORE
pub(super) fn queue_per_core(get: &Lookup<'_>) -> Result<usize, ConfigError> {
    parse_or(
        get,
        "HASH_QUEUE_PER_CORE",
        DEFAULT_QUEUE_PER_CORE,
        count(1, 100_000),
    )
}

/// Default of `HASH_QUEUE_PER_CORE`: signups that may wait for a hashing thread, per core.
pub const DEFAULT_QUEUE_PER_CORE: usize = 64;
