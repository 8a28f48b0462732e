//! The after_user_created hook's worker: delivers `atomic_signup.hook_outbox` rows, written by
//! the signup transaction, to the hook.
//!
//! As the mail worker: one transaction per delivery claims a due row (`FOR UPDATE SKIP LOCKED`,
//! so replicas never call the hook for one user at once), calls the hook, and marks the row sent,
//! or reschedules it with backoff, or after OUTBOX_MAX_ATTEMPTS marks it failed. A crash before
//! the commit leaves the row pending for the next worker: delivery is at least once, and every
//! attempt for a user carries the same `webhook-id` (the input's `metadata.uuid`).
//!
//! - A Postgres function hook runs in the claiming transaction, as the service's role, under
//!   GoTrue's 2 s, behind a savepoint: what it writes commits together with "sent", exactly once.
//! - An HTTP hook is called as the before hook is (`crate::hooks`: signed, 5 s, 3 attempts).
//!
//! A hook that answers `{"error": …}` (or 400/401) failed: the user exists either way, so the
//! call is tried again, as for a hook that could not be reached.

use std::sync::Arc;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{NextStep, deliver_until, next_step};
use crate::config::OutboxSettings;
use crate::hooks::{HookTarget, Verdict};
use crate::observe;
use crate::store::hook_outbox::{self as sql, ClaimedHookCall, PgCall};
use crate::store::{Database, StoreError};

#[derive(Clone)]
pub struct HookWorker {
    db: Database,
    hook: HookTarget,
    settings: OutboxSettings,
    wake: Arc<Notify>,
}

impl HookWorker {
    pub fn new(
        db: Database,
        hook: HookTarget,
        settings: OutboxSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            db,
            hook,
            settings,
            wake,
        }
    }

    /// Delivers until `shutdown` is cancelled; a delivery under way is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("after_user_created hook worker started");
        let (wake, poll) = (Arc::clone(&self.wake), self.settings.poll_interval);
        deliver_until(&shutdown, &wake, poll, || self.deliver_one()).await;
        tracing::info!("after_user_created hook worker stopped");
    }

    /// Handles one due row, if there is one (`Ok(false)`: nothing was due).
    pub async fn deliver_one(&self) -> Result<bool, StoreError> {
        let mut tx = self.db.begin().await?;
        let result = self.deliver_in(tx.conn()).await;
        let delivered = tx.end(result).await?;
        if delivered == Some(true) {
            metrics::counter!(observe::HOOK_DELIVERED).increment(1);
            tracing::info!("after_user_created hook told");
        }
        Ok(delivered.is_some())
    }

    /// Claims a due row in `conn`'s transaction and settles it: `None` when nothing was due,
    /// `Some(true)` when the hook took the call, `Some(false)` when it failed.
    async fn deliver_in(&self, conn: &mut sqlx::PgConnection) -> Result<Option<bool>, StoreError> {
        let Some(job) = sql::claim_next(conn).await? else {
            return Ok(None);
        };
        let span = tracing::info_span!("hook_outbox", outbox_id = job.id, user_id = %job.user_id);
        if let Some(trace) = &job.trace_context {
            crate::traces::link_to(&span, trace);
        }
        async move {
            match self.call(conn, &job).await? {
                Ok(()) => {
                    sql::mark_sent(conn, job.id).await?;
                    Ok(Some(true))
                }
                Err(error) => {
                    self.settle_failure(conn, &job, &error).await?;
                    Ok(Some(false))
                }
            }
        }
        .instrument(span)
        .await
    }

    /// Calls the hook for `job`: `Ok(Err(why))` when the hook failed or refused.
    async fn call(
        &self,
        conn: &mut sqlx::PgConnection,
        job: &ClaimedHookCall,
    ) -> Result<Result<(), String>, StoreError> {
        let answer = match &self.hook {
            HookTarget::Pg(hook) => {
                match sql::call_pg_hook(
                    conn,
                    &hook.function,
                    &job.input,
                    hook.timeout,
                    self.db.statement_timeout(),
                )
                .await?
                {
                    PgCall::Answered(answer) => match crate::hooks::refusal(answer.as_ref()) {
                        None => Verdict::Accept,
                        Some((status, message)) => Verdict::Refuse { status, message },
                    },
                    PgCall::Failed(why) => return Ok(Err(why)),
                }
            }
            HookTarget::Http(hook) => {
                match hook.call_as(&job.input, &job.webhook_id.to_string()).await {
                    Ok(verdict) => verdict,
                    Err(err) => return Ok(Err(err.to_string())),
                }
            }
        };
        Ok(match answer {
            Verdict::Accept => Ok(()),
            Verdict::Refuse { status, message } => {
                Err(format!("the hook answered an error ({status}): {message}"))
            }
        })
    }

    async fn settle_failure(
        &self,
        tx: &mut sqlx::PgConnection,
        job: &ClaimedHookCall,
        error: &str,
    ) -> Result<(), StoreError> {
        match next_step(&self.settings, job.attempts, None) {
            NextStep::GiveUp { attempts } => {
                sql::mark_failed(tx, job.id, error).await?;
                metrics::counter!(observe::HOOK_FAILED).increment(1);
                tracing::error!(attempts, error = %error, "after_user_created hook could not be told; giving up");
            }
            NextStep::RetryIn { attempts, delay } => {
                sql::reschedule(tx, job.id, delay, error).await?;
                metrics::counter!(observe::HOOK_RETRIED).increment(1);
                tracing::warn!(attempts, retry_in_ms = delay.as_millis() as u64, error = %error, "after_user_created hook failed; will retry");
            }
        }
        Ok(())
    }
}
