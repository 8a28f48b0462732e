//! THE signup transaction.
//!
//! One statement, `select … from atomic_signup.create_user_idempotent(…)`, sent in autocommit
//! mode: Postgres runs it as one transaction, in one round trip (in transaction-pool mode it runs
//! inside an explicit transaction instead, see [`super::Tx`]). The function checks its
//! arguments, calls `create_user`, which inserts `auth.users`, `auth.identities`, GoTrue's audit
//! row, the outbox row and `public.profiles` in that order, and with an Idempotency-Key
//! completes the key; if anything fails, none of the rows exists. Which migration holds each
//! function's live definition: migrations/README.md.
//!
//! Duplicates are detected by the database, not by a SELECT first: the unique index on
//! `auth.users.email` makes exactly one of two concurrent signups with one email win, and the
//! other gets a unique violation, answered 409.

use uuid::Uuid;

use super::{Database, StoreError, unit};
use crate::domain::NewUser;
use crate::password::PasswordHash;

/// The unique indexes GoTrue puts on `auth.users.email` (the first is current; older projects may
/// still have the second).
const EMAIL_UNIQUE_INDEXES: [&str; 2] = ["users_email_partial_key", "users_email_key"];

/// SQLSTATE raised by create_user_idempotent when the request no longer holds its key.
const KEY_LOST: &str = "AS409";

/// What the transaction writes: the user, its identity and profile (from the parsed
/// [`NewUser`] and the hash), and the key's answer.
pub struct UserRecord<'a> {
    pub user_id: Uuid,
    pub user: &'a NewUser,
    pub password_hash: &'a PasswordHash,
    /// `true` when REQUIRE_EMAIL_CONFIRMATION=false: the email counts as confirmed at once.
    pub email_confirmed: bool,
    /// With an Idempotency-Key: the claimed key, completed with the answer in the same
    /// transaction.
    pub idempotency: Option<&'a KeyCompletion<'a>>,
}

/// A claimed Idempotency-Key and the answer to store with it, as given; the function stores the
/// profile's `onboarding_completed` beside it.
pub struct KeyCompletion<'a> {
    pub key: &'a str,
    pub claim: Uuid,
    pub status: u16,
    pub body: serde_json::Value,
}

/// What the transaction returns of the rows it wrote (the answer reports it; the rest of the
/// answer is known before the transaction, `email_confirmed` included: the user is confirmed
/// exactly when `UserRecord::email_confirmed` says so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedUser {
    pub onboarding_completed: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("the email address is already registered")]
    EmailTaken,
    /// The request's Idempotency-Key lease ran out and another request took the key over;
    /// nothing was committed.
    #[error("the idempotency key was taken over by another request")]
    KeyLost,
    /// Anything else: unavailable (503) or a failed statement (500), as for every query.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SignupError {
    fn from(err: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &err
            && db.is_unique_violation()
            && db
                .constraint()
                .is_some_and(|c| EMAIL_UNIQUE_INDEXES.contains(&c))
        {
            return Self::EmailTaken;
        }
        if let sqlx::Error::Database(db) = &err
            && db.code().as_deref() == Some(KEY_LOST)
        {
            return Self::KeyLost;
        }
        Self::Store(err.into())
    }
}

/// Writes `record` in one transaction (see the module's comment).
pub async fn commit_signup(
    db: &Database,
    record: UserRecord<'_>,
) -> Result<CreatedUser, SignupError> {
    let started = std::time::Instant::now();
    let key = record.idempotency;
    let status = key
        .map(|k| i16::try_from(k.status))
        .transpose()
        .map_err(|_| StoreError::Invalid("an HTTP status beyond smallint"))?;
    let profile = serde_json::Value::Object(record.user.profile.as_map().clone());
    let result = unit!(db, |conn| sqlx::query_as!(
        CreatedUser,
        r#"select out_onboarding_completed as "onboarding_completed!"
           from atomic_signup.create_user_idempotent($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"#,
        record.user_id,
        record.user.email.as_str(),
        record.password_hash.as_str(),
        record.user.role.as_str(),
        record.email_confirmed,
        &profile,
        key.map(|k| k.key),
        key.map(|k| k.claim),
        status,
        key.map(|k| &k.body),
    )
    .fetch_one(conn)
    .await);
    metrics::histogram!(crate::observe::SIGNUP_TRANSACTION_DURATION)
        .record(started.elapsed().as_secs_f64());
    Ok(result?)
}
