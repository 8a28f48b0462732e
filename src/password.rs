//! argon2id password hashing in the PHC form GoTrue verifies:
//! `$argon2id$v=19$m=<KiB>,t=<iterations>,p=<lanes>$<salt>$<hash>`, salt and hash in standard
//! base64 without padding (`docs/gotrue-rows.md`, "Password hashes").
//!
//! A hash is tens of milliseconds of one core and `m` KiB of memory. It never runs on an async
//! worker: one dedicated thread per core takes jobs from a bounded queue, and each thread hashes
//! into one memory buffer allocated once at start. So at most one hash per core runs at a time,
//! memory stays at cores × m KiB whatever the load (no allocator growth from 19 MiB allocations
//! on ever-changing threads), and when the queue is full a signup is refused at once
//! ([`HashError::Overloaded`], answered 503) instead of queueing without limit.

use std::fmt;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{Output, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

use crate::config::HashSettings;
use crate::domain::Password;
use crate::observe;

/// An encoded argon2id PHC string, as a [`SecretString`]: its `Debug` does not show it.
#[derive(Clone, Debug)]
pub struct PasswordHash(SecretString);

impl PasswordHash {
    pub fn as_str(&self) -> &str {
        self.0.expose_secret()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("argon2 failed: {0}")]
    Argon2(String),
    /// The queue is full: the service is at capacity (answered 503 `overloaded`).
    #[error("the password hashing queue is full")]
    Overloaded,
    #[error("the hashing threads are gone")]
    Closed,
}

/// Random salt bytes per hash (argon2's recommendation; GoTrue accepts any non-empty salt).
const SALT_LEN: usize = 16;

struct HashJob {
    password: Password,
    queued_at: Instant,
    reply: oneshot::Sender<Hashed>,
}

/// A hashing thread's answer: the hash, how long the job waited for the thread, how long the
/// hash took.
struct Hashed {
    result: Result<PasswordHash, HashError>,
    waited: Duration,
    took: Duration,
}

/// Why the hashing threads could not be started.
#[derive(Debug, thiserror::Error)]
pub enum HasherError {
    #[error("invalid argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error("cannot start a hashing thread: {0}")]
    Spawn(std::io::Error),
}

/// The front of the hashing threads; cheap to clone. The threads end when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Hasher {
    jobs: Sender<HashJob>,
}

impl Hasher {
    /// `threads` hashing threads, and room for `queue` waiting signups.
    pub fn new(settings: HashSettings, threads: usize, queue: usize) -> Result<Self, HasherError> {
        let params = settings.params().map_err(HasherError::Params)?;
        let (jobs, rx) = crossbeam_channel::bounded::<HashJob>(queue.max(1));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("argon2-{i}"))
                .spawn(move || hash_worker(&rx, params))
                .map_err(HasherError::Spawn)?;
        }
        Ok(Self { jobs })
    }

    /// One hashing thread per core, `queue_per_core` waiting signups per core.
    pub fn for_this_machine(
        settings: HashSettings,
        queue_per_core: usize,
    ) -> Result<Self, HasherError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Self::new(settings, cores, cores * queue_per_core)
    }

    /// Hashes on one of the hashing threads; its span says how long the job waited for a thread
    /// and how long the hash took (and, in traces, has one child for each).
    #[tracing::instrument(
        name = "password_hash",
        skip_all,
        fields(hash.wait_ms = tracing::field::Empty, hash.duration_ms = tracing::field::Empty)
    )]
    pub async fn hash(&self, password: &Password) -> Result<PasswordHash, HashError> {
        let (reply, answer) = oneshot::channel();
        let job = HashJob {
            password: password.clone(),
            queued_at: Instant::now(),
            reply,
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Err(HashError::Overloaded),
            Err(TrySendError::Disconnected(_)) => return Err(HashError::Closed),
        }
        metrics::gauge!(observe::HASH_QUEUE_DEPTH).set(self.jobs.len() as f64);
        let hashed = answer.await.map_err(|_| HashError::Closed)?;
        // In traces: the wait for a hashing thread and the hash, as two children.
        let end = std::time::SystemTime::now();
        let hashing_from = end - hashed.took;
        crate::traces::record_child(
            "password_hash_wait",
            hashing_from - hashed.waited,
            hashing_from,
        );
        crate::traces::record_child("argon2id", hashing_from, end);
        let span = tracing::Span::current();
        span.record("hash.wait_ms", hashed.waited.as_secs_f64() * 1000.0);
        span.record("hash.duration_ms", hashed.took.as_secs_f64() * 1000.0);
        hashed.result
    }
}

/// A fixed password, hashed (and the hash thrown away) where a request must take as long as one
/// that hashed a real password.
pub fn dummy_password() -> &'static Password {
    static DUMMY: std::sync::OnceLock<Password> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        Password::parse("timing-equaliser-password".to_owned())
            .unwrap_or_else(|_| unreachable!("a valid constant password"))
    })
}

/// Niceness of the hashing threads: they yield the CPU to the short work (HTTP, the signup
/// statement, Postgres itself on the same host), so a saturated service keeps its transactions
/// short and finishes signups instead of starting hashes.
const HASH_THREAD_NICE: i32 = 10;

/// One hashing thread: one `m` KiB buffer for its whole life, reused by every hash.
fn hash_worker(jobs: &Receiver<HashJob>, params: Params) {
    lower_priority();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let mut memory = vec![Block::default(); params.block_count()];
    let prefix = format!(
        "$argon2id$v=19$m={},t={},p={}",
        params.m_cost(),
        params.t_cost(),
        params.p_cost()
    );
    while let Ok(job) = jobs.recv() {
        metrics::gauge!(observe::HASH_QUEUE_DEPTH).set(jobs.len() as f64);
        if job.reply.is_closed() {
            continue; // the request is gone (client disconnected, timed out): skip the work
        }
        let waited = job.queued_at.elapsed();
        metrics::histogram!(observe::HASH_WAIT).record(waited.as_secs_f64());
        let started = Instant::now();
        let result = hash_one(&argon2, &prefix, &mut memory, &job.password);
        let took = started.elapsed();
        metrics::histogram!(observe::HASH_DURATION).record(took.as_secs_f64());
        let _ = job.reply.send(Hashed {
            result,
            waited,
            took,
        });
    }
}

#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid and setpriority on the calling thread only; failure leaves the priority.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        if libc::setpriority(libc::PRIO_PROCESS, tid, HASH_THREAD_NICE) != 0 {
            tracing::debug!("could not lower the hashing thread's priority");
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn hash_one(
    argon2: &Argon2<'_>,
    prefix: &str,
    memory: &mut [Block],
    password: &Password,
) -> Result<PasswordHash, HashError> {
    let fail = |e: &dyn fmt::Display| HashError::Argon2(e.to_string());
    let mut salt = [0u8; SALT_LEN];
    OsRng.fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2
        .hash_password_into_with_memory(
            password.expose_secret().as_bytes(),
            &salt,
            &mut out,
            memory,
        )
        .map_err(|e| fail(&e))?;
    // Both encoded in the PHC "B64": standard alphabet, no padding.
    let salt = SaltString::encode_b64(&salt).map_err(|e| fail(&e))?;
    let hash = Output::new(&out).map_err(|e| fail(&e))?;
    Ok(PasswordHash(SecretString::from(format!(
        "{prefix}${}${hash}",
        salt.as_str()
    ))))
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
        let hasher = Hasher::new(settings, 2, 8).unwrap();
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

    #[tokio::test]
    async fn a_full_queue_refuses_at_once() {
        let settings = HashSettings {
            memory_kib: 8192,
            iterations: 4,
            parallelism: 1,
        };
        let hasher = Hasher::new(settings, 1, 2).unwrap();
        let password = Password::parse("correct horse battery".into()).unwrap();
        let results = futures_join(&hasher, &password, 20).await;
        let overloaded = results
            .iter()
            .filter(|r| matches!(r, Err(HashError::Overloaded)))
            .count();
        let hashed = results.iter().filter(|r| r.is_ok()).count();
        assert!(overloaded >= 10, "{overloaded} refused");
        assert!(hashed >= 2, "{hashed} hashed");
        assert_eq!(overloaded + hashed, 20);
    }

    async fn futures_join(
        hasher: &Hasher,
        password: &Password,
        n: usize,
    ) -> Vec<Result<PasswordHash, HashError>> {
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let hasher = hasher.clone();
                let password = password.clone();
                tokio::spawn(async move { hasher.hash(&password).await })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    }
}
