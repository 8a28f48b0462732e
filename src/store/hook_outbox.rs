//! The after_user_created hook's outbox (`atomic_signup.hook_outbox`). Rows are written by the
//! signup transaction (`enqueue_after_user_created`, with the hook's input); here they are
//! claimed, the hook called in the claiming transaction, and the row settled
//! (`crate::outbox::hook`).

use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use super::{QUERY_CANCELED, StoreError, set_local_statement_timeout};

/// A claimed row, locked (`FOR UPDATE SKIP LOCKED`) by the claiming transaction until it ends.
#[derive(Debug, Clone)]
pub struct ClaimedHookCall {
    pub id: i64,
    pub user_id: Uuid,
    /// The `webhook-id` of every attempt for this user, and the input's `metadata.uuid`.
    pub webhook_id: Uuid,
    pub input: serde_json::Value,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The signup's W3C traceparent, when it was traced.
    pub trace_context: Option<String>,
}

/// The oldest due pending row no one else holds, locked in `conn`'s open transaction.
pub async fn claim_next(conn: &mut PgConnection) -> Result<Option<ClaimedHookCall>, StoreError> {
    Ok(sqlx::query_as!(
        ClaimedHookCall,
        "select id, user_id, webhook_id, input, attempts, trace_context \
         from atomic_signup.hook_outbox \
         where status = 'pending' and next_attempt_at <= now() \
         order by next_attempt_at, id \
         limit 1 \
         for update skip locked"
    )
    .fetch_optional(&mut *conn)
    .await?)
}

/// How a Postgres function hook's call went.
pub enum PgCall {
    /// It returned (its answer, which may still carry `{"error": …}`).
    Answered(Option<serde_json::Value>),
    /// It raised, or ran out of its time: `why`, for the row's `last_error`.
    Failed(String),
}

/// Calls `function` (`"schema"."function"`, checked identifiers) with `input` in `conn`'s
/// transaction, under `timeout`, behind a savepoint: what the function writes commits with the
/// row's outcome, and a function that raises leaves the transaction usable (back at the
/// savepoint) for the row to be rescheduled.
pub async fn call_pg_hook(
    conn: &mut PgConnection,
    function: &str,
    input: &serde_json::Value,
    timeout: Duration,
    statement_timeout: Duration,
) -> Result<PgCall, StoreError> {
    sqlx::query("savepoint hook").execute(&mut *conn).await?;
    set_local_statement_timeout(conn, timeout).await?;
    let called: Result<Option<serde_json::Value>, sqlx::Error> =
        sqlx::query_scalar(&format!("select {function}($1::jsonb)"))
            .bind(input)
            .fetch_one(&mut *conn)
            .await;
    let outcome = match called {
        Ok(answer) => {
            sqlx::query("release savepoint hook")
                .execute(&mut *conn)
                .await?;
            PgCall::Answered(answer)
        }
        Err(err) if super::is_unavailable(&err) => return Err(err.into()),
        Err(err) => {
            sqlx::query("rollback to savepoint hook")
                .execute(&mut *conn)
                .await?;
            PgCall::Failed(match &err {
                sqlx::Error::Database(e) if e.code().as_deref() == Some(QUERY_CANCELED) => {
                    format!("the function ran longer than {} ms", timeout.as_millis())
                }
                sqlx::Error::Database(e) => {
                    format!(
                        "the function failed: {}",
                        e.message().chars().take(500).collect::<String>()
                    )
                }
                _ => "the function could not be called".to_owned(),
            })
        }
    };
    set_local_statement_timeout(conn, statement_timeout).await?;
    Ok(outcome)
}

super::outbox::delivery_states!("atomic_signup.hook_outbox");
