//! The confirmation outbox's SQL. Rows are written by the signup function (same transaction as
//! the user); here they are claimed and settled by the worker (`crate::outbox`).

use sqlx::PgConnection;
use uuid::Uuid;

use super::StoreError;

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
    /// The signup's W3C traceparent, when it was traced.
    pub trace_context: Option<String>,
}

/// The oldest due pending row no one else holds, locked in `conn`'s open transaction.
pub async fn claim_next(
    conn: &mut PgConnection,
) -> Result<Option<ClaimedConfirmation>, StoreError> {
    // The function (its live definition: migrations/README.md) selects the oldest due pending
    // row `for update of o skip locked`, joined to auth.users for the email; the row's own
    // columns it does not return (the trace, migration 0021) are read beside it.
    Ok(sqlx::query_as!(
        ClaimedConfirmation,
        r#"select c.id as "id!", c.user_id as "user_id!", c.email, c.attempts as "attempts!",
                  o.trace_context
           from atomic_signup.claim_confirmation() c
           join atomic_signup.confirmation_outbox o on o.id = c.id"#
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// The delivery states of an outbox table (`$table`, a literal): a claimed row is marked sent,
/// rescheduled after `delay`, or marked failed, each counting its attempt; and the backlog. Both
/// outboxes have these columns (`crate::store::hook_outbox` uses them too).
macro_rules! delivery_states {
    ($table:literal) => {
        pub async fn mark_sent(
            conn: &mut sqlx::PgConnection,
            id: i64,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query!(
                "update " + $table + " \
                 set status = 'sent', attempts = attempts + 1, sent_at = now(), last_error = null \
                 where id = $1",
                id
            )
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        pub async fn reschedule(
            conn: &mut sqlx::PgConnection,
            id: i64,
            delay: std::time::Duration,
            error: &str,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query!(
                "update " + $table + " \
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

        pub async fn mark_failed(
            conn: &mut sqlx::PgConnection,
            id: i64,
            error: &str,
        ) -> Result<(), $crate::store::StoreError> {
            sqlx::query!(
                "update " + $table + " \
                 set status = 'failed', attempts = attempts + 1, failed_at = now(), last_error = $2 \
                 where id = $1",
                id,
                error
            )
            .execute(&mut *conn)
            .await?;
            Ok(())
        }

        /// Pending rows (the backlog gauge, read at each metrics scrape).
        pub async fn pending_count(
            db: &$crate::store::Database,
        ) -> Result<i64, $crate::store::StoreError> {
            Ok($crate::store::unit!(db, |conn| {
                sqlx::query_scalar!(
                    r#"select count(*) as "pending!" from "# + $table + r#" where status = 'pending'"#
                )
                .fetch_one(conn)
                .await
            })?)
        }
    };
}
pub(crate) use delivery_states;

delivery_states!("atomic_signup.confirmation_outbox");
