//! The database: the URL (never shown with its password) and the pool.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

use super::ConfigError;
use super::parse::{Lookup, env_lookup, millis, parse_in_range, parse_or, required};

/// How DATABASE_URL reaches Postgres: directly or through a session-mode pooler (one server
/// connection per client connection), or through a transaction-mode pooler (Supavisor's port
/// 6543, PgBouncer `pool_mode = transaction`), where the server connection changes between
/// transactions: no prepared statements are cached and no session state is relied on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    Session,
    Transaction,
}

impl PoolMode {
    fn parse(v: &str) -> Result<Self, String> {
        match v.to_ascii_lowercase().as_str() {
            "session" => Ok(Self::Session),
            "transaction" => Ok(Self::Transaction),
            _ => Err("expected session or transaction".to_owned()),
        }
    }
}

/// Supavisor's (and Supabase's PgBouncer's) transaction-mode port.
pub const SUPABASE_TRANSACTION_POOLER_PORT: u16 = 6543;

/// What `atomic-signup migrate` needs, and the pool settings of `serve`.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: DatabaseUrl,
    /// DATABASE_POOL_MODE.
    pub pool_mode: PoolMode,
    /// MIGRATE_DATABASE_URL: a direct or session-mode URL for `migrate` (it takes a session
    /// advisory lock), when DATABASE_URL goes through a transaction pooler.
    pub migrate_url: Option<DatabaseUrl>,
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
    pub fn parse(name: &'static str, url: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::Invalid {
            name,
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

    pub fn from_lookup(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        let url = required(get, "DATABASE_URL", |v| {
            DatabaseUrl::parse("DATABASE_URL", v)
        })?;
        let migrate_url = get("MIGRATE_DATABASE_URL")
            .filter(|v| !v.trim().is_empty())
            .map(|v| DatabaseUrl::parse("MIGRATE_DATABASE_URL", &v))
            .transpose()?;
        Ok(Self {
            url,
            pool_mode: parse_or(
                get,
                "DATABASE_POOL_MODE",
                PoolMode::Session,
                PoolMode::parse,
            )?,
            migrate_url,
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
    ///
    /// Session mode sets `statement_timeout` once per connection (a startup parameter).
    /// Transaction mode caches no prepared statements and sends no startup parameter a pooler may
    /// refuse (`options`, `extra_float_digits`); the store sets the timeout in each transaction.
    pub fn pool(&self) -> PgPool {
        let options = self.url.connect_options();
        let options = match self.pool_mode {
            PoolMode::Session => options.options([(
                "statement_timeout",
                format!("{}ms", self.statement_timeout.as_millis()),
            )]),
            PoolMode::Transaction => options.statement_cache_capacity(0).extra_float_digits(None),
        };
        PgPoolOptions::new()
            .max_connections(self.max_connections)
            .acquire_timeout(self.acquire_timeout)
            .connect_lazy_with(options)
    }

    /// The URL `migrate` may use: MIGRATE_DATABASE_URL when set, else DATABASE_URL unless that
    /// goes through a transaction pooler. `migrate` holds a session advisory lock while it
    /// applies the migrations; through a transaction pooler the lock would stay on a server
    /// connection the pooler hands to others (later runs wait on it forever) while the
    /// migrations run on whichever connection comes next. So it refuses, naming what to use.
    pub fn migration_url(&self) -> Result<&DatabaseUrl, String> {
        if let Some(url) = &self.migrate_url {
            return Ok(url);
        }
        let why = if self.pool_mode == PoolMode::Transaction {
            "DATABASE_POOL_MODE=transaction".to_owned()
        } else if self.url.0.get_port() == SUPABASE_TRANSACTION_POOLER_PORT {
            format!(
                "DATABASE_URL's port {SUPABASE_TRANSACTION_POOLER_PORT} is Supabase's transaction pooler"
            )
        } else {
            return Ok(&self.url);
        };
        Err(self.refuse_migration(&why))
    }

    /// Why `migrate` will not run through this URL (`why`), and what to use instead.
    pub fn refuse_migration(&self, why: &str) -> String {
        let variable = if self.migrate_url.is_some() {
            "MIGRATE_DATABASE_URL"
        } else {
            "DATABASE_URL"
        };
        format!(
            "migrate needs a direct or session-mode connection (it holds a session advisory lock), \
             and {why} ({variable}): set MIGRATE_DATABASE_URL to the direct connection (on hosted \
             Supabase db.<project-ref>.supabase.co:5432) or the session pooler (the pooler host on \
             port 5432)"
        )
    }

    /// One connection to `url`, for `migrate`.
    pub async fn connect_one(url: &DatabaseUrl) -> Result<PgPool, sqlx::Error> {
        PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(url.connect_options())
            .await
    }
}
