//! The argon2id cost of password hashes and the hashing queue.

use argon2::Params;

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
}

/// Default of `HASH_QUEUE_PER_CORE`: signups that may wait for a hashing thread, per core.
pub const DEFAULT_QUEUE_PER_CORE: usize = 64;
