//! The service's integration tests, in one binary (`cargo test --test api`): each module spawns
//! its own service in process (`support::TestApp`) or the real binary (`support::ServiceProcess`)
//! on a database of its own, so the modules run in parallel.
//!
//! Three suites are binaries of their own, for a reason: `tests/faults/` (it pauses and restarts
//! Postgres containers and loads the machine), `tests/browser/` (headless Chromium processes) and
//! `tests/timing.rs` (it measures answer times, which must not share the CPU with other tests).
//!
//! Metrics are process-wide (one recorder per process), so a test that reads a metric's value
//! runs the real binary, which has its own.

#[path = "../support/mod.rs"]
mod support;

mod check;
mod cors;
mod docs;
mod external_users;
mod hooks;
mod idempotency;
mod login;
mod logs;
mod migrations;
mod operations;
mod outbox;
mod pooler;
mod profile;
mod protections;
mod repair;
mod security;
mod signup;
mod surface;
mod traces;
