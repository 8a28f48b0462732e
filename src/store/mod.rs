//! SQL only. Nothing outside this module writes SQL.

pub mod idempotency;
pub mod outbox;
pub mod profiles;
pub mod schema;
pub mod signup;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The migrations in `migrations/`, embedded in the binary: the same files `sqlx migrate run`
/// applies.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}

/// A failed query, sorted into "try again later" (503) and "a bug or a broken schema" (500).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable: {0}")]
    Unavailable(#[source] sqlx::Error),
    #[error("query failed: {0}")]
    Database(#[source] sqlx::Error),
    #[error("unexpected answer from the database: {0}")]
    Invalid(&'static str),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            Self::Unavailable(err)
        } else {
            Self::Database(err)
        }
    }
}

/// True for errors that mean "the database cannot be reached or cannot serve us right now"
/// (answered 503), as opposed to a bug or a broken schema (answered 500).
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08") // connection exception
                || code.starts_with("53") // insufficient resources (too many connections, …)
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "57014")
            // admin/crash shutdown, cannot connect now, statement timeout
        }),
        _ => false,
    }
}
