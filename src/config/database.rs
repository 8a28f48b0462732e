//! The database: the URL (never shown with its password) and the pool.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::{ConfigError, env_lookup, millis, parse_in_range, parse_or};

/// What `atomic-signup migrate` needs, and the pool settings of `serve`.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    pub max_connections: u32,
    /// `statement_timeout` of the service's connections (not of `migrate`'s).
    pub statement_timeout: Duration,
    /// How long a request waits for a pooled connection before answering 503.
    pub acquire_timeout: Duration,
}

/// A parsed `DATABASE_URL`. Its `Debug` shows user, host, port and database, never the password.
#[derive(Clone)]
pub struct DatabaseUrl(PgConnectOptions);

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let o = &self.0;
        write!(
            f,
            "postgres://{}:[redacted]@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or("")
        )
    }
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name: "DATABASE_URL",
            reason: reason.to_owned(),
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(invalid("must start with postgres:// or postgresql://"));
        }
        // The parser's own message may quote parts of the URL: do not pass it on.
        let options = PgConnectOptions::from_str(url)
            .map_err(|_| invalid("not a valid Postgres connection URL"))?;
        Ok(Self(options.application_name("atomic-signup")))
    }

    /// For callers that already hold parsed options (the test harness).
    pub fn from_options(options: PgConnectOptions) -> Self {
        Self(options.application_name("atomic-signup"))
    }

    pub fn connect_options(&self) -> PgConnectOptions {
        self.0.clone()
    }
}

impl DatabaseSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&env_lookup)
    }

    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = get("DATABASE_URL").ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
        })?;
        Ok(Self {
            url: DatabaseUrl::parse(&url)?,
            max_connections: parse_or(get, "DATABASE_MAX_CONNECTIONS", 10, |v| {
                parse_in_range(v, 1, 1000)
            })?,
            statement_timeout: parse_or(
                get,
                "STATEMENT_TIMEOUT_MS",
                Duration::from_millis(5000),
                millis(3_600_000),
            )?,
            acquire_timeout: parse_or(
                get,
                "DATABASE_ACQUIRE_TIMEOUT_MS",
                Duration::from_millis(2000),
                millis(3_600_000),
            )?,
        })
    }

    /// The service's pool. Connections are made on demand, so the service starts (and answers
    /// 503) while the database is still down, and recovers by itself when it comes back.
    pub fn pool(&self) -> PgPool {
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(self.url.connect_options().options([(
                "statement_timeout",
                format!("{}ms", self.statement_timeout.as_millis()),
            )]))
    }

    /// One connection, for `migrate`.
    pub async fn connect_one(&self) -> Result<PgPool, sqlx::Error> {
        PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(self.url.connect_options())
            .await
    }
}
