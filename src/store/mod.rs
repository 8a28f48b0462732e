//! SQL only. Nothing outside this module writes SQL.

pub mod catalog;
pub mod external_users;
pub mod hook_outbox;
pub mod inspect;
pub mod outbox;
pub mod pooler;
pub mod profile_columns;
pub mod profiles;
pub mod repair;
pub mod schema_check;
pub mod signup;
pub mod signup_roles;

use std::time::Duration;

use tracing::Instrument as _;

use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{PgPool, Postgres, Transaction};

use crate::config::{DatabaseSettings, PoolMode};

/// The service's pool, and how its statements get their `statement_timeout`: set once per
/// connection (session mode), or by each transaction for itself (transaction-pool mode, where
/// the server connection behind a client connection changes between transactions).
#[derive(Clone, Debug)]
pub struct Database {
    pool: PgPool,
    /// `Some` in transaction-pool mode.
    per_transaction_timeout: Option<Duration>,
    /// DATABASE_STATEMENT_TIMEOUT_MS, in either mode (a transaction that lowers it for one
    /// statement puts it back).
    statement_timeout: Duration,
}

impl Database {
    pub fn new(settings: &DatabaseSettings) -> Self {
        Self {
            pool: settings.pool(),
            per_transaction_timeout: (settings.pool_mode == PoolMode::Transaction)
                .then_some(settings.statement_timeout),
            statement_timeout: settings.statement_timeout,
        }
    }

    /// A [`Database`] on an operator command's own pool (`repair`: a direct connection, session
    /// mode).
    pub fn from_operator_pool(pool: PgPool, statement_timeout: Duration) -> Self {
        Self {
            pool,
            per_transaction_timeout: None,
            statement_timeout,
        }
    }

    /// The statement timeout every statement of the service runs under.
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    /// A transaction that holds through a transaction pooler (see [`Tx`]).
    pub async fn begin(&self) -> Result<Tx, sqlx::Error> {
        let Some(timeout) = self.per_transaction_timeout else {
            return Ok(Tx::Session(
                self.pool.begin().instrument(acquiring()).await?,
            ));
        };
        // Owned by the `Tx` before the first byte is sent: if this future is dropped half way,
        // the connection is closed rather than returned (see `Drop for Pooled`).
        let mut tx = Tx::Pooled(Pooled {
            conn: self.pool.acquire().instrument(acquiring()).await?,
            open: true,
        });
        // One round trip: the timeout for this transaction only, and a savepoint to come back to
        // if a statement fails (see `Tx::rollback`).
        let begin = format!(
            "BEGIN; SET LOCAL statement_timeout = {}; SAVEPOINT unit",
            timeout.as_millis()
        );
        sqlx::Executor::execute(tx.conn(), begin.as_str()).await?;
        Ok(tx)
    }

    /// True in transaction-pool mode: a statement must run in a [`Tx`] (see [`unit!`]).
    pub fn needs_transaction(&self) -> bool {
        self.per_transaction_timeout.is_some()
    }
}

/// A transaction. Through a transaction pooler its server connection goes to another client
/// when it ends, so it leaves nothing behind: it set its statement_timeout with `SET LOCAL`, and
/// it ends with `DEALLOCATE ALL` (sqlx names its prepared statements even with its statement
/// cache off; a name left on the server connection collides with the next client's, "prepared
/// statement sqlx_s_1 already exists"). After a failed statement it first returns to its
/// savepoint, since an aborted transaction runs nothing else. One that is dropped before it ends
/// (a cancelled request) closes its client connection: the pooler then discards the server
/// connection with its transaction and statements, where a queued `ROLLBACK` would have left the
/// statements behind.
pub enum Tx {
    Session(Transaction<'static, Postgres>),
    Pooled(Pooled),
}

/// A transaction-pool mode transaction's connection.
pub struct Pooled {
    conn: sqlx::pool::PoolConnection<Postgres>,
    open: bool,
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // Not ended (dropped mid-way, or its COMMIT / ROLLBACK failed): never hand this client
        // connection to another transaction.
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

impl Pooled {
    /// Statements in one round trip (the simple query protocol: nothing is prepared, so nothing
    /// is left behind; the first that fails ends the batch).
    async fn run_simple(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::Executor::execute(&mut *self.conn, sql).await?;
        Ok(())
    }
}

impl Tx {
    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        match self {
            Self::Session(tx) => tx,
            Self::Pooled(pooled) => &mut pooled.conn,
        }
    }

    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Session(tx) => tx.commit().await,
            Self::Pooled(mut pooled) => {
                pooled.run_simple("DEALLOCATE ALL; COMMIT").await?;
                pooled.open = false;
                Ok(())
            }
        }
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Session(tx) => tx.rollback().await,
            Self::Pooled(mut pooled) => {
                pooled
                    .run_simple("ROLLBACK TO SAVEPOINT unit; DEALLOCATE ALL; ROLLBACK")
                    .await?;
                pooled.open = false;
                Ok(())
            }
        }
    }

    /// Commits after `Ok`, rolls back after `Err` (whose error is the one returned).
    pub async fn end<T, E: From<sqlx::Error>>(self, result: Result<T, E>) -> Result<T, E> {
        match result {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(err) => {
                if let Err(rollback) = self.rollback().await {
                    tracing::warn!(error = %rollback, "rollback failed");
                }
                Err(err)
            }
        }
    }
}

/// Where statements run (see [`unit!`]): a pooled connection in session mode, a [`Tx`] in
/// transaction-pool mode, or a read-only transaction that is always rolled back (`check`'s
/// questions, which can change nothing even through a bug).
pub enum Unit {
    Connection(sqlx::pool::PoolConnection<Postgres>),
    Transaction(Tx),
    ReadOnly(Tx),
}

impl Unit {
    /// One statement with the statement timeout in force.
    pub async fn start(db: &Database) -> Result<Self, sqlx::Error> {
        Ok(if db.needs_transaction() {
            Self::Transaction(db.begin().await?)
        } else {
            Self::Connection(db.pool.acquire().instrument(acquiring()).await?)
        })
    }

    /// A transaction set `READ ONLY`, rolled back at its end whatever happened.
    pub async fn read_only(db: &Database) -> Result<Self, sqlx::Error> {
        let mut tx = db.begin().await?;
        sqlx::query("set transaction read only")
            .execute(tx.conn())
            .await?;
        Ok(Self::ReadOnly(tx))
    }

    pub fn conn(&mut self) -> &mut sqlx::PgConnection {
        match self {
            Self::Connection(conn) => conn,
            Self::Transaction(tx) | Self::ReadOnly(tx) => tx.conn(),
        }
    }

    /// Ends the transaction, if there is one: as `result` says, or by a rollback if read-only.
    pub async fn end<T, E: From<sqlx::Error>>(self, result: Result<T, E>) -> Result<T, E> {
        match self {
            Self::Connection(_) => result,
            Self::Transaction(tx) => tx.end(result).await,
            Self::ReadOnly(tx) => {
                if let Err(err) = tx.rollback().await {
                    tracing::warn!(error = %err, "rollback failed");
                }
                result
            }
        }
    }
}

/// Runs `$body` (an expression that awaits on the executor `$conn`) in a [`Unit`] and evaluates
/// to its `Result`: `unit!(db, |conn| …)` with the statement timeout in force (one round trip on
/// a pooled connection in session mode; in a transaction that sets the timeout first in
/// transaction-pool mode), `unit!(read_only db, |conn| …)` in a read-only transaction. A failure
/// to get the connection is that `Result`'s error (converted with `From<sqlx::Error>`), never a
/// return from the caller.
macro_rules! unit {
    (read_only $db:expr, |$conn:ident| $body:expr) => {
        $crate::store::unit!(@in $crate::store::Unit::read_only($db), |$conn| $body)
    };
    (@in $start:expr, |$conn:ident| $body:expr) => {
        async {
            let mut unit = $start.await?;
            let result = {
                let $conn = unit.conn();
                $body
            };
            unit.end(result).await
        }
        .await
    };
    ($db:expr, |$conn:ident| $body:expr) => {
        $crate::store::unit!(@in $crate::store::Unit::start($db), |$conn| $body)
    };
}
pub(crate) use unit;

/// The span of waiting for a pooled connection (in traces: time spent before any statement).
fn acquiring() -> tracing::Span {
    tracing::info_span!("db_acquire", db.system.name = "postgresql")
}

/// SQLSTATE of a statement cancelled by its statement_timeout.
pub(crate) const QUERY_CANCELED: &str = "57014";

/// Sets `statement_timeout` for the rest of `conn`'s transaction (or savepoint).
pub(crate) async fn set_local_statement_timeout(
    conn: &mut sqlx::PgConnection,
    timeout: Duration,
) -> Result<(), sqlx::Error> {
    sqlx::query(&format!(
        "set local statement_timeout = {}",
        timeout.as_millis()
    ))
    .execute(conn)
    .await?;
    Ok(())
}

/// The migrations in `migrations/`, embedded in the binary: the same files `sqlx migrate run`
/// applies.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}

/// `select 1`: the database answers (readiness).
pub async fn ping(db: &Database) -> Result<(), StoreError> {
    unit!(db, |conn| sqlx::query("select 1").execute(conn).await)?;
    Ok(())
}

/// A failed query, sorted into "try again later" (503) and "a bug or a broken schema" (500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    /// The database refused the service's credentials: unavailable to clients (503), and an
    /// operator must act (logged as an error).
    #[error("the database refused the service's login (authentication failed): {0}")]
    AuthenticationFailed(#[source] sqlx::Error),
    #[error("query failed: {0}")]
    Database(#[source] sqlx::Error),
    #[error("unexpected answer from the database: {0}")]
    Invalid(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_authentication_failure(&err) {
            Self::AuthenticationFailed(err)
        } else if is_unavailable(&err) {
            Self::Unavailable(err)
        } else {
            Self::Database(err)
        }
    }
}

/// True for errors that mean "the database went away, or is not accepting connections right
/// now" (answered 503), as opposed to a bug or a broken schema (answered 500).
///
/// `Protocol` is among them: while Postgres restarts, whatever stands between the service and it
/// (a pooler, a load balancer, Docker's port proxy) may accept the TCP connection and close it at
/// once, or answer the SSL request with a byte that is not Postgres'; sqlx reports that as a
/// protocol error ("unexpected response from SSLRequest: 0x00").
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources (too many connections, …)
                || code.starts_with("28") // invalid authorization (see is_authentication_failure)
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "57014")
            // admin/crash shutdown, cannot connect now, statement timeout
        }),
        _ => false,
    }
}

/// Wrong password or no such role (SQLSTATE class 28): the service's own configuration.
pub fn is_authentication_failure(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.code().is_some_and(|c| c.starts_with("28")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_cut_at_the_handshake_is_unavailable() {
        let err = sqlx::Error::Protocol("unexpected response from SSLRequest: 0x00".into());
        assert!(matches!(StoreError::from(err), StoreError::Unavailable(_)));
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert!(matches!(
            StoreError::from(sqlx::Error::Io(eof)),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            StoreError::from(sqlx::Error::PoolClosed),
            StoreError::Unavailable(_)
        ));
    }
}
