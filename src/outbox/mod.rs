//! The confirmation-mail worker: delivers `atomic_signup.confirmation_outbox` rows through
//! GoTrue's `/resend`.
//!
//! Each delivery runs in its own transaction: claim one due row with `FOR UPDATE SKIP LOCKED`,
//! call `/resend`, then mark the row sent, or reschedule it (exponential backoff with jitter, or
//! GoTrue's `Retry-After` on 429), or after `OUTBOX_MAX_ATTEMPTS` mark it failed. The row stays
//! locked during the call, so replicas never send the same row twice at once; if the process dies,
//! the transaction aborts and the row is pending again for the next worker, at once.
//! Delivery is at least once: a crash between GoTrue's 200 and our commit sends the mail again.
//!
//! The after_user_created hook's calls are delivered the same way ([`hook`]).

pub mod hook;

use std::sync::Arc;
use std::time::Duration;

use crate::store::Database;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::config::OutboxSettings;
use crate::gotrue::{GoTrueClient, GoTrueError};
use crate::observe;
use crate::store::StoreError;
use crate::store::outbox::{self as sql, ClaimedConfirmation};

#[derive(Clone)]
pub struct Worker {
    pool: Database,
    gotrue: GoTrueClient,
    settings: OutboxSettings,
    wake: Arc<Notify>,
}

impl Worker {
    pub fn new(
        pool: Database,
        gotrue: GoTrueClient,
        settings: OutboxSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            pool,
            gotrue,
            settings,
            wake,
        }
    }

    /// Delivers until `shutdown` is cancelled; a delivery under way is finished first.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!("confirmation outbox worker started");
        let (wake, poll) = (Arc::clone(&self.wake), self.settings.poll_interval);
        deliver_until(&shutdown, &wake, poll, || self.deliver_one()).await;
        tracing::info!("confirmation outbox worker stopped");
    }

    /// Handles one due row, if there is one. `Ok(false)`: nothing was due. The row stays
    /// locked by this transaction until its outcome is written: committed after the GoTrue call.
    pub async fn deliver_one(&self) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let result = self.deliver_in(tx.conn()).await;
        let delivered = tx.end(result).await?;
        if delivered == Some(true) {
            metrics::counter!(observe::OUTBOX_SENT).increment(1);
            tracing::info!("confirmation email requested");
        }
        Ok(delivered.is_some())
    }

    /// Claims a due row in `conn`'s transaction and settles it: `None` when nothing was due,
    /// `Some(true)` when GoTrue took the resend, `Some(false)` when it failed (rescheduled or
    /// given up).
    async fn deliver_in(&self, conn: &mut sqlx::PgConnection) -> Result<Option<bool>, StoreError> {
        let Some(job) = sql::claim_next(conn).await? else {
            return Ok(None);
        };
        let span = tracing::info_span!("outbox", outbox_id = job.id, user_id = %job.user_id);
        if let Some(trace) = &job.trace_context {
            crate::traces::link_to(&span, trace);
        }
        async move {
            let result = match &job.email {
                Some(email) => self.gotrue.resend_signup(email).await,
                None => Err(GoTrueError::Unavailable("the user has no email".into())),
            };
            match result {
                Ok(()) => {
                    sql::mark_sent(conn, job.id).await?;
                    Ok(Some(true))
                }
                Err(err) => {
                    self.settle_failure(conn, &job, &err).await?;
                    Ok(Some(false))
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn settle_failure(
        &self,
        tx: &mut sqlx::PgConnection,
        job: &ClaimedConfirmation,
        err: &GoTrueError,
    ) -> Result<(), StoreError> {
        let error = err.to_string();
        let retry_after = match err {
            GoTrueError::RateLimited {
                retry_after: Some(v),
                ..
            } => retry_after_seconds(v),
            _ => None,
        };
        match next_step(&self.settings, job.attempts, retry_after) {
            NextStep::GiveUp { attempts } => {
                sql::mark_failed(tx, job.id, &error).await?;
                metrics::counter!(observe::OUTBOX_FAILED).increment(1);
                tracing::error!(attempts, error = %error, "confirmation email could not be sent; giving up");
            }
            NextStep::RetryIn { attempts, delay } => {
                sql::reschedule(tx, job.id, delay, &error).await?;
                metrics::counter!(observe::OUTBOX_RETRIED).increment(1);
                tracing::warn!(attempts, retry_in_ms = delay.as_millis() as u64, error = %error, "confirmation email failed; will retry");
            }
        }
        Ok(())
    }
}

/// What becomes of a row whose attempt failed (`attempts`: counting this one).
#[derive(Debug, PartialEq, Eq)]
enum NextStep {
    /// OUTBOX_MAX_ATTEMPTS reached: marked failed.
    GiveUp { attempts: u32 },
    /// Tried again after `delay`: the receiver's Retry-After, or the backoff.
    RetryIn { attempts: u32, delay: Duration },
}

fn next_step(
    settings: &OutboxSettings,
    attempts_before: i32,
    retry_after: Option<Duration>,
) -> NextStep {
    let attempts = u32::try_from(attempts_before)
        .unwrap_or(0)
        .saturating_add(1);
    if attempts >= settings.max_attempts {
        NextStep::GiveUp { attempts }
    } else {
        let delay = retry_after.unwrap_or_else(|| settings.backoff(attempts));
        NextStep::RetryIn { attempts, delay }
    }
}

/// Runs `deliver_one` (`Ok(true)`: it handled a row) until `shutdown` is cancelled, at once
/// again after a row, else when woken or after `poll`; a database error is logged and waited out
/// like an empty queue.
async fn deliver_until<F, Fut>(
    shutdown: &CancellationToken,
    wake: &Notify,
    poll: Duration,
    mut deliver_one: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<bool, StoreError>>,
{
    while !shutdown.is_cancelled() {
        let idle = match deliver_one().await {
            Ok(worked) => !worked,
            Err(err) => {
                tracing::warn!(error = %err, "outbox: database error; will retry");
                true
            }
        };
        if idle {
            tokio::select! {
                () = shutdown.cancelled() => {},
                () = wake.notified() => {},
                () = tokio::time::sleep(poll) => {},
            }
        }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by GoTrue).
fn retry_after_seconds(value: &reqwest::header::HeaderValue) -> Option<Duration> {
    value
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let s = OutboxSettings {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            ..OutboxSettings::default()
        };
        for _ in 0..100 {
            let d1 = s.backoff(1);
            assert!(
                d1 >= Duration::from_millis(50) && d1 <= Duration::from_millis(100),
                "{d1:?}"
            );
            let d3 = s.backoff(3);
            assert!(
                d3 >= Duration::from_millis(200) && d3 <= Duration::from_millis(400),
                "{d3:?}"
            );
            let d30 = s.backoff(30);
            assert!(
                d30 >= Duration::from_millis(500) && d30 <= Duration::from_millis(1000),
                "{d30:?}"
            );
        }
        assert!(s.backoff(u32::MAX) <= Duration::from_millis(1000));
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let v = reqwest::header::HeaderValue::from_static(" 7 ");
        assert_eq!(retry_after_seconds(&v), Some(Duration::from_secs(7)));
        let v = reqwest::header::HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(retry_after_seconds(&v), None);
    }
}
