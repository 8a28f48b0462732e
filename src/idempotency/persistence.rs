//! Idempotency keys' SQL: claim before the work, give back after a failure, complete a concealed
//! answer, purge after 24 h. Completing a key with a new user's answer happens inside the signup
//! transaction (`store::signup`). Where each function is defined now: migrations/README.md.

use std::time::Duration;

use sqlx::postgres::types::PgInterval;
use uuid::Uuid;

use crate::store::{Database, StoreError, unit};

/// How long a key is kept after its first use.
pub const KEY_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// What the claim found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key is this request's now (until `release` or the signup commits).
    Claimed,
    /// The same request already succeeded: send its answer again.
    Replay(StoredAnswer),
    /// The key was used for a different request.
    Mismatch,
    /// A request with this key is still running.
    InProgress,
}

fn interval(d: Duration) -> PgInterval {
    PgInterval {
        months: 0,
        days: 0,
        microseconds: i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
    }
}

/// What a completed key holds: the answer as the service built it, and what the signup
/// transaction wrote that a new user's answer reports (`None` when no user was created, and for
/// keys completed before the column existed, whose body already carries it).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: serde_json::Value,
    pub onboarding_completed: Option<bool>,
}

/// What `claim_idempotency_key` answers.
struct ClaimRow {
    outcome: String,
    response_status: Option<i16>,
    response_body: Option<serde_json::Value>,
    onboarding_completed: Option<bool>,
}

/// Claims `key` for the request `claim` (a fresh id), with a lease of `lease`.
pub async fn claim(
    db: &Database,
    key: &str,
    fingerprint: &[u8],
    claim: Uuid,
    lease: Duration,
) -> Result<Claim, StoreError> {
    let row = unit!(db, |conn| sqlx::query_as!(
        ClaimRow,
        r#"select outcome as "outcome!", response_status, response_body, onboarding_completed
           from atomic_signup.claim_idempotency_key($1, $2, $3, $4, $5)"#,
        key,
        fingerprint,
        claim,
        interval(lease),
        interval(KEY_TTL),
    )
    .fetch_one(conn)
    .await)?;
    Ok(match row.outcome.as_str() {
        "claimed" => Claim::Claimed,
        "replay" => match (row.response_status, row.response_body) {
            (Some(status), Some(body)) => Claim::Replay(StoredAnswer {
                status: u16::try_from(status)
                    .map_err(|_| StoreError::Invalid("a stored status below zero"))?,
                body,
                onboarding_completed: row.onboarding_completed,
            }),
            _ => return Err(StoreError::Invalid("a completed key without its answer")),
        },
        "mismatch" => Claim::Mismatch,
        "in_progress" => Claim::InProgress,
        _ => {
            return Err(StoreError::Invalid(
                "unknown outcome of claim_idempotency_key",
            ));
        }
    })
}

/// Gives a claimed key back after a failed signup, so that a retry runs again. A no-op when the
/// request no longer holds it.
pub async fn release(db: &Database, key: &str, claim: Uuid) -> Result<(), StoreError> {
    unit!(db, |conn| sqlx::query!(
        "select atomic_signup.release_idempotency_key($1, $2)",
        key,
        claim
    )
    .execute(conn)
    .await)?;
    Ok(())
}

/// Completes a claimed key with an answer, outside the signup transaction: for a concealed
/// signup of a registered email, whose transaction rolled back. `false` when the request no
/// longer held the key.
pub async fn complete(
    db: &Database,
    key: &str,
    claim: Uuid,
    status: u16,
    body: &serde_json::Value,
) -> Result<bool, StoreError> {
    let status = i16::try_from(status).map_err(|_| StoreError::Invalid("an HTTP status"))?;
    Ok(unit!(db, |conn| sqlx::query_scalar!(
        r#"select atomic_signup.complete_idempotency_key($1, $2, $3, $4) as "completed!""#,
        key,
        claim,
        status,
        body
    )
    .fetch_one(conn)
    .await)?)
}

/// Deletes the keys older than [`KEY_TTL`]; returns how many.
pub async fn purge_expired(db: &Database) -> Result<i64, StoreError> {
    Ok(unit!(db, |conn| sqlx::query_scalar!(
        r#"select atomic_signup.purge_idempotency_keys() as "n!""#
    )
    .fetch_one(conn)
    .await)?)
}
