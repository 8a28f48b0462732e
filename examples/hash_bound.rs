//! The hash bound: argon2id hashes per second with the configured cost on all cores, measured
//! the way the service hashes (one hash per core at a time, through `Hasher`).
//!
//! cargo run --release --example hash_bound -- [seconds]   (ARGON2_* from the environment)

use std::time::{Duration, Instant};

use atomic_signup::config::HashSettings;
use atomic_signup::domain::Password;
use atomic_signup::password::Hasher;

#[tokio::main]
async fn main() {
    let seconds: f64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(5.0);
    let env = |name: &str, default: u32| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let d = HashSettings::default();
    let settings = HashSettings {
        memory_kib: env("ARGON2_MEMORY_KIB", d.memory_kib),
        iterations: env("ARGON2_ITERATIONS", d.iterations),
        parallelism: env("ARGON2_PARALLELISM", d.parallelism),
    };
    let hasher = Hasher::for_this_machine(settings, atomic_signup::config::DEFAULT_QUEUE_PER_CORE)
        .expect("valid argon2 settings");
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let password = Password::parse("correct horse battery staple".into()).expect("valid");
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let started = Instant::now();
    let workers: Vec<_> = (0..cores * 2)
        .map(|_| {
            let hasher = hasher.clone();
            let password = password.clone();
            tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    hasher.hash(&password).await.expect("hash");
                    done += 1;
                }
                done
            })
        })
        .collect();
    let mut hashes = 0;
    for w in workers {
        hashes += w.await.expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{{\"hashes_per_second\": {:.2}, \"hashes\": {hashes}, \"seconds\": {elapsed:.2}, \"cores\": {cores}, \"m\": {}, \"t\": {}, \"p\": {}}}",
        hashes as f64 / elapsed,
        settings.memory_kib,
        settings.iterations,
        settings.parallelism
    );
}
