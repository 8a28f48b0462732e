//! SQL only. Nothing outside this module writes SQL.

pub mod signup;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The migrations in `migrations/`, embedded in the binary: the same files `sqlx migrate run`
/// applies.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
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
