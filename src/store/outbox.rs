//! The confirmation outbox's SQL. Rows are written by the signup function (same transaction as
//! the user); here they are claimed and settled by the worker (`crate::outbox`).

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use super::{Database, StoreError, unit};

/// A claimed row: locked (`FOR UPDATE SKIP LOCKED`) by the transaction that claimed it until
/// that transaction ends, so no other worker or replica can take it meanwhile.
#[derive(Debug, Clone)]
pub struct ClaimedConfirmation {
    pub id: i64,
    pub user_id: Uuid,
    /// The user's current email (NULL only if someone cleared it outside this service).
    pub email: Option<String>,
    /// Attempts made before this one.
    pub attempts: i32,
}

/// The oldest due pending row no one else holds, locked in `conn`'s open transaction.
pub async fn claim_next(
    conn: &mut PgConnection,
) -> Result<Option<ClaimedConfirmation>, StoreError> {
    // The function (its live definition: migrations/README.md) selects the oldest due pending
    // row `for update of o skip locked`, joined to auth.users for the email.
    Ok(sqlx::query_as!(
        ClaimedConfirmation,
        r#"select id as "id!", user_id as "user_id!", email, attempts as "attempts!"
           from atomic_signup.claim_confirmation()"#
    )
    .fetch_optional(&mut *conn)
    .await?)
}

pub async fn mark_sent(conn: &mut PgConnection, id: i64) -> Result<(), StoreError> {
    sqlx::query!(
        "update atomic_signup.confirmation_outbox \
         set status = 'sent', attempts = attempts + 1, sent_at = now(), last_error = null \
         where id = $1",
        id
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn reschedule(
    conn: &mut PgConnection,
    id: i64,
    delay: Duration,
    error: &str,
) -> Result<(), StoreError> {
    sqlx::query!(
        "update atomic_signup.confirmation_outbox \
         set attempts = attempts + 1, last_error = $2, \
             next_attempt_at = now() + make_interval(secs => $3) \
         where id = $1",
        id,
        error,
        delay.as_secs_f64()
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn mark_failed(conn: &mut PgConnection, id: i64, error: &str) -> Result<(), StoreError> {
    sqlx::query!(
        "update atomic_signup.confirmation_outbox \
         set status = 'failed', attempts = attempts + 1, failed_at = now(), last_error = $2 \
         where id = $1",
        id,
        error
    )
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Pending rows (the outbox backlog gauge, read at each metrics scrape).
pub async fn pending_count(db: &Database) -> Result<i64, StoreError> {
    Ok(unit!(db, |conn| {
        sqlx::query_scalar!(
        r#"select count(*) as "pending!" from atomic_signup.confirmation_outbox where status = 'pending'"#
    )
    .fetch_one(conn)
    .await
    })?)
}
