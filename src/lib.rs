//! atomic-signup: a Supabase signup that never leaves an orphaned auth user.
//!
//! One signup, from the socket to the commit:
//! [`routes::signup`] (HTTP in and out) → [`signup`] (the service: parse the request into a
//! [`domain::NewUser`], Idempotency-Key, captcha, [`password`] hash off the async workers, and
//! [`store::signup`], the one SQL transaction).

pub mod answer;
pub mod captcha;
pub mod check;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod gotrue;
pub mod healthcheck;
pub mod hooks;
pub mod idempotency;
pub mod observe;
pub mod outbox;
pub mod password;
pub mod repair;
pub mod routes;
pub mod server;
pub mod signup;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod traces;
