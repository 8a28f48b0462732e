//! argon2id password hashing in the PHC form GoTrue verifies:
//! `$argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<hash>`, salt and hash in standard
//! base64 without padding (`../shared/gotrue-facts.md`, section 4).
//!
//! A hash is tens of milliseconds of one core. It runs on tokio's blocking pool, never on an async
//! worker, and at most one hash per core runs at a time (a semaphore), so a burst of signups queues
//! here instead of starving the rest of the service.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use argon2::password_hash::SaltString;
use argon2::password_hash::rand_core::OsRng;
use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use tokio::sync::Semaphore;

use crate::domain::Password;
use crate::observe;

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

/// An encoded argon2id PHC string. Its `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl PasswordHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash([redacted])")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2 failed: {0}")]
    Argon2(String),
    #[error("the hashing task did not finish: {0}")]
    Task(#[from] tokio::task::JoinError),
    #[error("the hashing queue is closed")]
    Closed,
}

#[derive(Clone)]
pub struct Hasher {
    argon2: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    completed: Arc<AtomicU64>,
}

impl Hasher {
    /// `concurrency` hashes at most at a time; use [`Hasher::for_this_machine`] in the service.
    pub fn new(settings: HashSettings, concurrency: usize) -> Result<Self, argon2::Error> {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, settings.params()?);
        Ok(Self {
            argon2: Arc::new(argon2),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            completed: Arc::new(AtomicU64::new(0)),
        })
    }

    /// One hash per core at a time.
    pub fn for_this_machine(settings: HashSettings) -> Result<Self, argon2::Error> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(settings, cores)
    }

    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        // The permit moves into the blocking task: if the request is dropped while hashing, the
        // permit is released only when the hash really ends, so never more than `concurrency`
        // hashes run.
        let queued = std::time::Instant::now();
        let depth = metrics::gauge!(observe::HASH_QUEUE_DEPTH);
        depth.increment(1.0);
        let permit = Arc::clone(&self.permits).acquire_owned().await;
        depth.decrement(1.0);
        let permit = permit.map_err(|_| HashError::Closed)?;
        metrics::histogram!(observe::HASH_WAIT).record(queued.elapsed().as_secs_f64());
        let argon2 = Arc::clone(&self.argon2);
        let completed = Arc::clone(&self.completed);
        let password = password.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = std::time::Instant::now();
            let salt = SaltString::generate(&mut OsRng);
            let hash = argon2
                .hash_password(password.expose_secret().as_bytes(), &salt)
                .map(|hash| PasswordHash(hash.to_string()))
                .map_err(|e| HashError::Argon2(e.to_string()));
            completed.fetch_add(1, Ordering::Relaxed);
            metrics::histogram!(observe::HASH_DURATION).record(started.elapsed().as_secs_f64());
            hash
        })
        .await?
    }

    /// Hashes computed so far by this hasher (and its clones).
    pub fn hashes_completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_in_gotrue_phc_form_and_verifies() {
        let settings = HashSettings {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
        };
        let hasher = Hasher::new(settings, 2).unwrap();
        let password = Password::parse("correct horse battery".into()).unwrap();
        let hash = hasher.hash(&password).await.unwrap();
        assert!(
            hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{}",
            hash.as_str()
        );
        let parsed = argon2::PasswordHash::new(hash.as_str()).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse battery", &parsed)
                .is_ok()
        );
        assert!(
            Argon2::default()
                .verify_password(b"wrong", &parsed)
                .is_err()
        );
        assert!(!format!("{hash:?}").contains("argon2"));
    }
}
