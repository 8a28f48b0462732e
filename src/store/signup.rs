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

use super::{Database, QUERY_CANCELED, StoreError, set_local_statement_timeout, unit};
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

/// A `before_user_created` Postgres function hook, called in the signup transaction before the
/// user is inserted, as the service's role, under its own statement timeout.
pub struct BeforeHook<'a> {
    /// `"schema"."function"` (both parts checked identifiers).
    pub function: &'a str,
    pub input: serde_json::Value,
    pub timeout: std::time::Duration,
}

/// With an `after_user_created` hook: the transaction also queues the hook's call
/// (`atomic_signup.hook_outbox`, delivered after the commit by `crate::outbox::hook`).
pub struct AfterHook {
    /// The client's address, for the hook's `metadata.ip_address`.
    pub client_ip: Option<std::net::IpAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignupError {
    #[error("the email address is already registered")]
    EmailTaken,
    /// The before_user_created hook refused the signup (GoTrue's `{"error": {"http_code",
    /// "message"}}`); nothing was committed.
    #[error("the before_user_created hook refused the signup")]
    HookRejected { status: u16, message: String },
    /// The hook did not finish within its timeout; nothing was committed.
    #[error("the before_user_created hook did not answer in time")]
    HookTimedOut,
    /// The hook raised an error (or could not be called); nothing was committed.
    #[error("the before_user_created hook failed: {0}")]
    HookFailed(#[source] sqlx::Error),
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

/// Writes `record` in one transaction (see the module's comment); with `before`, that hook is
/// called first in the same transaction, and its refusal or failure rolls everything back; with
/// `after`, the call of that hook is queued in the same transaction.
#[tracing::instrument(
    name = "signup_transaction",
    skip_all,
    fields(
        otel.kind = "client",
        db.system.name = "postgresql",
        db.operation.name = "SELECT",
        db.stored_procedure.name = "atomic_signup.create_user_idempotent",
    )
)]
pub async fn commit_signup(
    db: &Database,
    record: UserRecord<'_>,
    before: Option<BeforeHook<'_>>,
    after: Option<AfterHook>,
) -> Result<CreatedUser, SignupError> {
    let started = std::time::Instant::now();
    // With tracing on, the rows the signup queues keep its trace (migration 0021): that takes
    // an explicit transaction to set it in, as the hooks do.
    let trace = crate::traces::current_traceparent();
    let result = match (before, after, trace) {
        (None, None, None) => unit!(db, |conn| insert(conn, &record).await),
        (before, after, trace) => with_hooks(db, &record, before, after, trace).await,
    };
    metrics::histogram!(crate::observe::SIGNUP_TRANSACTION_DURATION)
        .record(started.elapsed().as_secs_f64());
    result
}

/// The before hook, the signup, and the after hook's queued call, in one transaction (with
/// `trace`, the signup's traceparent for the rows it queues).
async fn with_hooks(
    db: &Database,
    record: &UserRecord<'_>,
    before: Option<BeforeHook<'_>>,
    after: Option<AfterHook>,
    trace: Option<String>,
) -> Result<CreatedUser, SignupError> {
    let mut tx = db.begin().await.map_err(StoreError::from)?;
    let result = async {
        let conn = tx.conn();
        if let Some(trace) = trace {
            sqlx::query_scalar!(
                "select set_config('atomic_signup.traceparent', $1, true)",
                trace
            )
            .fetch_one(&mut *conn)
            .await?;
        }
        if let Some(hook) = before {
            ask_before_hook(conn, hook, db.statement_timeout()).await?;
        }
        let created = insert(conn, record).await?;
        if let Some(after) = after {
            sqlx::query!(
                "select atomic_signup.enqueue_after_user_created($1, $2)",
                record.user_id,
                after.client_ip.map(|ip| ip.to_string()),
            )
            .execute(&mut *conn)
            .await?;
        }
        Ok(created)
    }
    .await;
    tx.end(result).await
}

/// Calls the before_user_created function under its own statement timeout (then puts the
/// service's back): a refusal or a failure is an error, which rolls the transaction back.
async fn ask_before_hook(
    conn: &mut sqlx::PgConnection,
    hook: BeforeHook<'_>,
    statement_timeout: std::time::Duration,
) -> Result<(), SignupError> {
    set_local_statement_timeout(conn, hook.timeout)
        .await
        .map_err(|e| SignupError::Store(e.into()))?;
    let answer: Option<serde_json::Value> =
        sqlx::query_scalar(&format!("select {}($1::jsonb)", hook.function))
            .bind(&hook.input)
            .fetch_one(&mut *conn)
            .await
            .map_err(|err| match &err {
                sqlx::Error::Database(e) if e.code().as_deref() == Some(QUERY_CANCELED) => {
                    SignupError::HookTimedOut
                }
                _ if crate::store::is_unavailable(&err) => SignupError::Store(err.into()),
                _ => SignupError::HookFailed(err),
            })?;
    if let Some((status, message)) = crate::hooks::refusal(answer.as_ref()) {
        return Err(SignupError::HookRejected { status, message });
    }
    set_local_statement_timeout(conn, statement_timeout)
        .await
        .map_err(|e| SignupError::Store(e.into()))
}

/// The signup statement (see the module's comment).
async fn insert(
    conn: &mut sqlx::PgConnection,
    record: &UserRecord<'_>,
) -> Result<CreatedUser, SignupError> {
    let key = record.idempotency;
    let status = key
        .map(|k| i16::try_from(k.status))
        .transpose()
        .map_err(|_| StoreError::Invalid("an HTTP status beyond smallint"))?;
    let profile = serde_json::Value::Object(record.user.profile.as_map().clone());
    Ok(sqlx::query_as!(
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
    .await?)
}
