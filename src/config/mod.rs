//! Settings from the environment (and `.env`, loaded by `main`), validated once at startup.
//!
//! A missing or malformed variable is an error that names it. The database password never
//! appears in `Debug` output or in an error message.
//!
//! One file per concern, each parsing its own variables (`from_lookup`); this file only assembles
//! them into [`Settings`]. Settings are plain values: nothing here depends on a module that does
//! I/O.

mod captcha;
mod cors;
mod database;
mod env_file;
mod gotrue;
mod hashing;
mod hooks;
mod http;
mod idempotency;
mod outbox;
mod parse;
mod signup;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;
use std::time::Duration;

pub use captcha::{CaptchaProvider, CaptchaSettings};
pub use cors::{CorsOrigins, CorsSettings};
pub use database::{DatabaseSettings, DatabaseUrl, PoolMode, SUPABASE_TRANSACTION_POOLER_PORT};
pub use env_file::load_dotenv;
pub use gotrue::GoTrueSettings;
pub use hashing::{DEFAULT_QUEUE_PER_CORE, HashSettings};
pub use hooks::{Hook, HookSettings, WebhookSecret};
pub use http::{bind_addr, bind_addr_from_env};
pub use idempotency::IdempotencySettings;
pub use outbox::OutboxSettings;
pub use parse::Lookup;
pub use signup::{
    external_users, external_users_from_env, profile_from_env, profile_schema, profile_table,
    signup_roles, signup_roles_from_env,
};

use crate::domain::SignupRules;
use parse::env_lookup;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is required but not set")]
    Missing { name: &'static str },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Everything `atomic-signup serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub bind_addr: SocketAddr,
    /// Roles a signup may ask for, the password policy and the email domains.
    pub signup: SignupRules,
    /// DISABLE_SIGNUP: every signup answers 422 `signup_disabled` (login keeps working).
    pub disable_signup: bool,
    /// Captcha on signup; `None` = off.
    pub captcha: Option<CaptchaSettings>,
    pub require_email_confirmation: bool,
    /// Answer 202 for new and existing emails alike (needs REQUIRE_EMAIL_CONFIRMATION=true).
    pub conceal_existing_emails: bool,
    /// With concealment: the signup transaction step (and a taken email's rollback) takes at
    /// least this long, so a new email's commit cannot be told from a taken email's rollback.
    pub conceal_min_duration: Duration,
    /// The metrics listener (`GET /metrics`); `None` = metrics not served.
    pub metrics_bind_addr: Option<SocketAddr>,
    /// A request head must arrive within this; also how long an idle keep-alive connection lasts.
    pub http_header_read_timeout: Duration,
    /// Open client connections at most.
    pub http_max_connections: usize,
    /// Open connections per client address (IPv6: per /64) at most; 0 = no bound (behind a
    /// proxy, every connection comes from the proxy's address).
    pub http_max_connections_per_ip: usize,
    /// How often the rate limiters forget clients whose bucket is full again.
    pub rate_limit_prune_interval: Duration,
    pub argon2: HashSettings,
    /// Signups that may wait for a hashing thread, per core; beyond that, 503 `overloaded`.
    pub hash_queue_per_core: usize,
    /// After SIGTERM/SIGINT, how long in-flight requests and the outbox worker may take.
    pub shutdown_timeout: Duration,
    /// A request still unanswered after this gets 503 `request_timeout`.
    pub request_timeout: Duration,
    /// Requests per minute per client IP (0 = no limit).
    pub rate_limit_signup_per_minute: u32,
    pub rate_limit_login_per_minute: u32,
    /// Take the client IP from `X-Forwarded-For` (behind a trusted proxy only).
    pub trust_forwarded_for: bool,
    /// GoTrue, for login and for confirmation emails; `None` when not configured.
    pub gotrue: Option<GoTrueSettings>,
    pub idempotency: IdempotencySettings,
    pub outbox: OutboxSettings,
    /// Browser frontends on other origins.
    pub cors: CorsSettings,
    /// GoTrue's auth hooks on user creation (HOOK_*_USER_CREATED_*).
    pub hooks: HookSettings,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&env_lookup)
    }

    /// Reads every variable through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        let database = DatabaseSettings::from_lookup(get)?;
        let signup = signup::SignupSettings::from_lookup(get)?;
        let http = http::HttpSettings::from_lookup(get, signup.conceal_existing_emails)?;
        Ok(Self {
            database,
            bind_addr: http.bind_addr,
            signup: signup.rules,
            disable_signup: signup.disabled,
            captcha: CaptchaSettings::from_lookup(get)?,
            require_email_confirmation: signup.require_email_confirmation,
            conceal_existing_emails: signup.conceal_existing_emails,
            conceal_min_duration: signup.conceal_min_duration,
            metrics_bind_addr: http.metrics_bind_addr,
            http_header_read_timeout: http.header_read_timeout,
            http_max_connections: http.max_connections,
            http_max_connections_per_ip: http.max_connections_per_ip,
            rate_limit_prune_interval: http.rate_limit_prune_interval,
            argon2: HashSettings::from_lookup(get)?,
            hash_queue_per_core: hashing::queue_per_core(get)?,
            shutdown_timeout: http.shutdown_timeout,
            request_timeout: http.request_timeout,
            rate_limit_signup_per_minute: http.rate_limit_signup_per_minute,
            rate_limit_login_per_minute: http.rate_limit_login_per_minute,
            trust_forwarded_for: http.trust_forwarded_for,
            gotrue: GoTrueSettings::from_lookup(get)?,
            idempotency: IdempotencySettings::from_lookup(get)?,
            outbox: OutboxSettings::from_lookup(get)?,
            cors: CorsSettings::from_lookup(get)?,
            hooks: HookSettings::from_lookup(get)?,
        })
    }
}
