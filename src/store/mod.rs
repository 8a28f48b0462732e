//! SQL only. Nothing outside this module writes SQL.

pub mod outbox;
pub mod profiles;
pub mod schema_check;
pub mod signup;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The migrations in `migrations/`, embedded in the binary: the same files `sqlx migrate run`
/// applies.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}

/// `select 1`: the database answers (readiness).
pub async fn ping(pool: &PgPool) -> Result<(), StoreError> {
    sqlx::query("select 1").execute(pool).await?;
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
