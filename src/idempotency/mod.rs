//! `Idempotency-Key` on signup, end to end: a retry with the same key and the same request gets
//! the first answer again instead of a second signup. All state lives in Postgres, so every
//! replica behaves the same.
//!
//! - [`IdempotencyKey`], [`FingerprintSecret`] (value types in `domain`): the header's value and
//!   the request fingerprint (HMAC under IDEMPOTENCY_SECRET).
//! - [`try_processing`]: claims the key before any work; the [`NextAction`] says whether to do
//!   the work (holding the key) or to send a stored answer.
//! - [`HeldKey`]: the claim. The signup transaction completes it with the answer
//!   ([`HeldKey::completion`], see `store::signup`); a failed signup releases it; a cancelled
//!   request releases it from `Drop`.
//! - [`persistence`]: the SQL calls; [`purge`]: deletes keys after 24 h.
//!
//! A request that died without releasing (crash, timeout) leaves a claim whose lease runs out;
//! the next request with that key takes it over. If the dead request's transaction commits after
//! all, it finds its claim gone and rolls back: never two users.

mod persistence;
mod purge;

use std::time::Duration;

use crate::store::Database;
use uuid::Uuid;

pub use crate::domain::{FingerprintSecret, IdempotencyKey, MAX_KEY_LEN, MIN_SECRET_BYTES};
pub use purge::purge_expired_keys;

use crate::store::StoreError;
use crate::store::signup::KeyCompletion;
use persistence::Claim;
pub use persistence::StoredAnswer;

/// How keys are handled.
#[derive(Clone, Debug)]
pub struct Idempotency {
    /// Keys the request fingerprints (IDEMPOTENCY_SECRET).
    pub secret: FingerprintSecret,
    /// How long a claimed key stays locked to its request if that request dies without
    /// releasing it: longer than any request can run (request timeout + statement timeout).
    pub lease: Duration,
}

/// What to do with a request that carries a key.
#[derive(Debug)]
pub enum NextAction {
    /// This request holds the key now: do the work, then settle the key.
    StartProcessing(HeldKey),
    /// The same request already succeeded: send its stored answer again.
    ReturnSavedResponse(StoredAnswer),
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    /// The key was used for a different request.
    #[error("the idempotency key was used for a different request")]
    Reused,
    /// A request with this key is still running.
    #[error("a request with this idempotency key is in progress")]
    InProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Claims `key` for a request with this `fingerprint`, or says why not.
pub async fn try_processing(
    pool: &Database,
    settings: &Idempotency,
    key: IdempotencyKey,
    fingerprint: &[u8],
) -> Result<NextAction, IdempotencyError> {
    let claim = Uuid::new_v4();
    match persistence::claim(pool, key.as_str(), fingerprint, claim, settings.lease).await? {
        Claim::Claimed => Ok(NextAction::StartProcessing(HeldKey {
            pool: pool.clone(),
            key,
            claim,
            armed: true,
        })),
        Claim::Replay(stored) => Ok(NextAction::ReturnSavedResponse(stored)),
        Claim::Mismatch => Err(IdempotencyError::Reused),
        Claim::InProgress => Err(IdempotencyError::InProgress),
    }
}

/// A claimed key. Released when the work fails; if the request is dropped midway (timeout,
/// client gone) the release is sent from `Drop`, and failing that the key's lease runs out.
#[derive(Debug)]
pub struct HeldKey {
    pool: Database,
    key: IdempotencyKey,
    claim: Uuid,
    armed: bool,
}

impl HeldKey {
    /// What the signup transaction needs to complete this key with the answer `status` and
    /// `body`: the key, and this request's claim (the key is completed only if the request still
    /// holds it).
    pub fn completion(&self, status: u16, body: serde_json::Value) -> KeyCompletion<'_> {
        KeyCompletion {
            key: self.key.as_str(),
            claim: self.claim,
            status,
            body,
        }
    }

    /// The signup transaction committed, and with it the key's answer: nothing left to do.
    pub fn committed_with_signup(mut self) {
        self.armed = false;
    }

    /// Stores the answer `status`/`body` with the key, outside the work's transaction (a
    /// concealed signup of a registered email, whose transaction rolled back). `false` when the
    /// request no longer held the key (it is then left alone).
    pub async fn store_answer(
        mut self,
        status: u16,
        body: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let completed =
            persistence::complete(&self.pool, self.key.as_str(), self.claim, status, body).await;
        // Completed, or lost to another request: nothing to release. On an error the key is
        // released from Drop, so that a retry runs again.
        if completed.is_ok() {
            self.armed = false;
        }
        completed
    }

    /// Nothing committed: gives the key back so that a retry runs again.
    pub async fn release(mut self) {
        self.armed = false;
        if let Err(err) = persistence::release(&self.pool, self.key.as_str(), self.claim).await {
            tracing::warn!(error = %err, "idempotency key not released; its lease will run out");
        }
    }
}

impl Drop for HeldKey {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // The request was cancelled. If its transaction is still running, it either commits
        // first (the release then finds the key completed and does nothing) or finds its claim
        // gone and rolls back: never a signup without its stored answer.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pool, key, claim) = (self.pool.clone(), self.key.clone(), self.claim);
            runtime.spawn(async move {
                if let Err(err) = persistence::release(&pool, key.as_str(), claim).await {
                    tracing::warn!(error = %err, "idempotency key of a cancelled request not released");
                }
            });
        }
    }
}
