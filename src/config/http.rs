//! The HTTP side: listeners, connection limits, timeouts, rate limits, the client's address.

use std::net::SocketAddr;
use std::time::Duration;

use super::ConfigError;
use super::parse::{
    Lookup, count, env_lookup, parse_bool, parse_in_range, parse_or, parse_socket_addr, seconds,
};

/// The HTTP settings, as [`super::Settings`] keeps them (see there for each).
pub(super) struct HttpSettings {
    pub bind_addr: SocketAddr,
    pub metrics_bind_addr: Option<SocketAddr>,
    pub header_read_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub rate_limit_prune_interval: Duration,
    pub shutdown_timeout: Duration,
    pub request_timeout: Duration,
    pub rate_limit_signup_per_minute: u32,
    pub rate_limit_login_per_minute: u32,
    pub trust_forwarded_for: bool,
}

impl HttpSettings {
    /// `conceal`: CONCEAL_EXISTING_EMAILS, which keeps the metrics listener on loopback.
    pub(super) fn from_lookup(get: &Lookup<'_>, conceal: bool) -> Result<Self, ConfigError> {
        let per_minute = |v: &str| parse_in_range(v, 0, 60_000);
        Ok(Self {
            bind_addr: bind_addr(get)?,
            metrics_bind_addr: metrics_bind_addr(get, conceal)?,
            header_read_timeout: parse_or(
                get,
                "HTTP_HEADER_READ_TIMEOUT_S",
                Duration::from_secs(10),
                seconds(3600),
            )?,
            max_connections: parse_or(get, "HTTP_MAX_CONNECTIONS", 1024, count(1, 1_000_000))?,
            max_connections_per_ip: parse_or(
                get,
                "HTTP_MAX_CONNECTIONS_PER_IP",
                64,
                count(0, 1_000_000),
            )?,
            rate_limit_prune_interval: parse_or(
                get,
                "RATE_LIMIT_PRUNE_INTERVAL_S",
                Duration::from_secs(60),
                seconds(86_400),
            )?,
            shutdown_timeout: parse_or(
                get,
                "SHUTDOWN_TIMEOUT_S",
                Duration::from_secs(30),
                seconds(3600),
            )?,
            request_timeout: parse_or(
                get,
                "REQUEST_TIMEOUT_S",
                Duration::from_secs(15),
                seconds(3600),
            )?,
            rate_limit_signup_per_minute: parse_or(
                get,
                "RATE_LIMIT_SIGNUP_PER_MINUTE",
                20,
                per_minute,
            )?,
            rate_limit_login_per_minute: parse_or(
                get,
                "RATE_LIMIT_LOGIN_PER_MINUTE",
                60,
                per_minute,
            )?,
            trust_forwarded_for: parse_or(get, "TRUST_FORWARDED_FOR", false, parse_bool)?,
        })
    }
}

/// BIND_ADDR: where `serve` listens (and where `healthcheck` looks).
pub fn bind_addr(get: &Lookup<'_>) -> Result<SocketAddr, ConfigError> {
    parse_or(
        get,
        "BIND_ADDR",
        SocketAddr::from(([0, 0, 0, 0], 8000)),
        parse_socket_addr,
    )
}

/// [`bind_addr`] from the process environment.
pub fn bind_addr_from_env() -> Result<SocketAddr, ConfigError> {
    bind_addr(&env_lookup)
}

/// METRICS_BIND_ADDR (set but empty: metrics off) and METRICS_ALLOW_PUBLIC: with concealment
/// on, a non-loopback address needs the operator's say-so.
fn metrics_bind_addr(get: &Lookup<'_>, conceal: bool) -> Result<Option<SocketAddr>, ConfigError> {
    let addr = match get("METRICS_BIND_ADDR") {
        Some(v) if v.trim().is_empty() => None,
        v => Some(parse_or(
            &|_| v.clone(),
            "METRICS_BIND_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 9100)),
            parse_socket_addr,
        )?),
    };
    let allow_public = parse_or(get, "METRICS_ALLOW_PUBLIC", false, parse_bool)?;
    if conceal && !allow_public && addr.is_some_and(|addr| !addr.ip().is_loopback()) {
        return Err(ConfigError::Invalid {
            name: "METRICS_BIND_ADDR",
            reason: "with CONCEAL_EXISTING_EMAILS=true the metrics must stay on a loopback \
                     address: the outbox and confirmation counters move only for new emails, \
                     so whoever reads them tells new from registered addresses. Use \
                     127.0.0.1:9100, leave it empty (metrics off), or set \
                     METRICS_ALLOW_PUBLIC=true if only your monitoring can reach this address"
                .to_owned(),
        });
    }
    Ok(addr)
}
