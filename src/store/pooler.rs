//! Whether a connection string goes through a transaction-mode pooler.

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{Connection, PgExecutor};

/// True when two client connections to `options` are served by one server connection, or a
/// client connection's server connection changes between two statements: what a
/// transaction-mode pooler (PgBouncer `pool_mode = transaction`, Supavisor's port 6543) does and
/// a direct connection or a session-mode pooler never does. PgBouncer hands out its most recently
/// used server connection first, so the second client meets the first one's backend. A pooler
/// that keeps idle server connections apart could escape this probe; none is known.
///
/// Pooler-safe: unnamed statements, no startup parameter a pooler refuses.
pub async fn behind_transaction_pooler(options: &PgConnectOptions) -> Result<bool, sqlx::Error> {
    let options = options
        .clone()
        .statement_cache_capacity(0)
        .extra_float_digits(None);
    let mut a = PgConnection::connect_with(&options).await?;
    let mut b = PgConnection::connect_with(&options).await?;
    let a1 = backend(&mut a).await?;
    let b1 = backend(&mut b).await?;
    let a2 = backend(&mut a).await?;
    let b2 = backend(&mut b).await?;
    // Closing is a courtesy; the answer is known.
    let _ = a.close().await;
    let _ = b.close().await;
    Ok(a1 == b1 || a1 != a2 || b1 != b2)
}

async fn backend(conn: impl PgExecutor<'_>) -> Result<i32, sqlx::Error> {
    sqlx::query_scalar("select pg_backend_pid()")
        .persistent(false)
        .fetch_one(conn)
        .await
}
