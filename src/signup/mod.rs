//! The signup service: one signup from a parsed form to its outcome, knowing nothing of HTTP.
//!
//! [`SignupService::sign_up`] runs, in order: DISABLE_SIGNUP → parse the form into a
//! [`NewUser`] → claim the `Idempotency-Key` (or return the stored answer) → captcha → argon2id
//! hash → THE transaction ([`store::signup::commit_signup`], which also completes the key) →
//! settle the key → hold a concealed answer until its time. It returns one [`SignupOutcome`];
//! `routes::signup` turns it into HTTP.
//!
//! With CONCEAL_EXISTING_EMAILS=true a new and an existing email get the same answer after the
//! same work (the hash is computed either way; for an existing email the insert fails on the
//! unique index and writes nothing), no earlier than CONCEAL_MIN_DURATION_MS after the
//! transaction started, so neither the answer nor its timing tells whether an email is
//! registered.

mod answer;
mod hook;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use uuid::Uuid;

pub use answer::{
    AnswerError, CONCEALED, ConcealedResponse, SignupResponse, SignupResponseDoc,
    to_json as answer_json,
};

use crate::captcha::{CaptchaError, CaptchaVerifier};
use crate::domain::{NewUser, SignupForm, SignupRules, ValidationErrors};
use crate::hooks::{HookError, HookTarget, Verdict};
use crate::idempotency::{
    self, HeldKey, Idempotency, IdempotencyError, IdempotencyKey, NextAction,
};
use crate::password::{HashError, Hasher};
use crate::store::Database;
use crate::store::signup::{self as store_signup, BeforeHook, SignupError, UserRecord};

/// What the service needs; built once at startup.
pub struct SignupService {
    pub db: Database,
    pub hasher: Hasher,
    /// `None` when CAPTCHA_PROVIDER is not set.
    pub captcha: Option<CaptchaVerifier>,
    pub idempotency: Idempotency,
    /// Wakes the outbox worker after a signup that queued a confirmation email.
    pub outbox_wake: Arc<Notify>,
    /// With an after_user_created hook (HOOK_AFTER_USER_CREATED_*): each signup queues the
    /// hook's call in its transaction, and wakes the hook's worker with this after the commit.
    pub after_user_created: Option<Arc<Notify>>,
    pub rules: SignupRules,
    pub policy: SignupPolicy,
    /// GoTrue's before_user_created hook (HOOK_BEFORE_USER_CREATED_*): a Postgres function is
    /// called inside the signup transaction, an HTTP hook before the password is hashed, like
    /// the captcha.
    pub before_user_created: Option<HookTarget>,
}

/// The settings that decide how a signup goes.
#[derive(Debug, Clone, Copy)]
pub struct SignupPolicy {
    /// DISABLE_SIGNUP
    pub disabled: bool,
    /// REQUIRE_EMAIL_CONFIRMATION
    pub require_email_confirmation: bool,
    /// CONCEAL_EXISTING_EMAILS
    pub conceal_existing_emails: bool,
    /// CONCEAL_MIN_DURATION_MS
    pub conceal_min_duration: Duration,
}

/// One signup request as the edge read it: the form's fields, the problems found while reading
/// them (unknown fields, wrong JSON types), the captcha token and the client's address.
pub struct SignupInput {
    pub form: SignupForm,
    pub errors: ValidationErrors,
    pub captcha_token: Option<String>,
    pub client_ip: Option<IpAddr>,
    pub key: Option<IdempotencyKey>,
}

/// How a signup ended, when it did not fail.
#[derive(Debug)]
pub enum SignupOutcome {
    /// User, identity and profile committed; this is the answer (also stored with the key).
    Created(SignupResponse),
    /// CONCEAL_EXISTING_EMAILS: the same answer for a new and a registered email.
    Concealed,
    /// The request repeats an earlier one with the same `Idempotency-Key`: its stored answer.
    Replayed {
        status: u16,
        body: serde_json::Value,
    },
}

impl SignupOutcome {
    /// The HTTP status the answer carries (also stored with an Idempotency-Key).
    pub fn status(&self) -> u16 {
        match self {
            Self::Created(_) => 201,
            Self::Concealed => 202,
            Self::Replayed { status, .. } => *status,
        }
    }
}

/// Why a signup failed; `error.rs` maps each to HTTP.
#[derive(Debug, thiserror::Error)]
pub enum SignupFailure {
    #[error("signups are disabled")]
    Disabled,
    #[error(transparent)]
    Invalid(#[from] ValidationErrors),
    /// No token, or the provider refused it (its error codes, or a reason).
    #[error("the captcha was not accepted: {0}")]
    CaptchaRefused(String),
    #[error(transparent)]
    CaptchaUnavailable(CaptchaError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error(transparent)]
    Transaction(#[from] SignupError),
    /// A stored answer that cannot be written (a bug).
    #[error("{0}")]
    Answer(#[from] answer::AnswerError),
    /// The HTTP hook answered what neither GoTrue nor the service can use.
    #[error("the before_user_created hook failed: {0}")]
    HookInvalid(#[source] HookError),
}

/// What the transaction came to, and when a concealed answer may leave: CONCEAL_MIN_DURATION_MS
/// after the transaction started, whether the email was new (commit) or taken (rollback), so the
/// two cannot be told apart by their timing.
enum Written {
    Committed {
        body: SignupResponse,
        until: tokio::time::Instant,
    },
    /// CONCEAL_EXISTING_EMAILS and the email was taken: nothing written.
    ConcealedEmailTaken { until: tokio::time::Instant },
}

impl SignupService {
    pub async fn sign_up(&self, input: SignupInput) -> Result<SignupOutcome, SignupFailure> {
        if self.policy.disabled {
            return Err(SignupFailure::Disabled);
        }
        let user = NewUser::parse(input.form, &self.rules, input.errors)?;
        // With a key: claim it before any work, or answer at once (replay, reused, in progress).
        let held = match input.key {
            None => None,
            Some(key) => {
                let fingerprint = self.idempotency.secret.fingerprint(&user);
                match idempotency::try_processing(&self.db, &self.idempotency, key, &fingerprint)
                    .await?
                {
                    NextAction::StartProcessing(held) => Some(held),
                    NextAction::ReturnSavedResponse(stored) => {
                        tracing::info!("idempotent replay");
                        let (status, body) = answer::replayed(stored)?;
                        return Ok(SignupOutcome::Replayed { status, body });
                    }
                }
            }
        };
        // The captcha, then an HTTP before_user_created hook, before any hashing (a replay above
        // needs neither: its token was spent, its hook asked).
        let user_id = Uuid::new_v4();
        tracing::Span::current().record("user_id", tracing::field::display(user_id));
        let written = match self
            .check_captcha(input.captcha_token.as_deref(), input.client_ip)
            .await
        {
            Ok(()) => match self.ask_http_hook(user_id, &user, input.client_ip).await {
                Ok(()) => {
                    self.hash_and_write(user_id, &user, held.as_ref(), input.client_ip)
                        .await
                }
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        self.settle(held, written).await
    }

    /// With an HTTP before_user_created hook: it must accept the user about to be created.
    async fn ask_http_hook(
        &self,
        user_id: Uuid,
        user: &NewUser,
        client_ip: Option<IpAddr>,
    ) -> Result<(), SignupFailure> {
        let Some(HookTarget::Http(hook)) = &self.before_user_created else {
            return Ok(());
        };
        let input = hook::before_user_created_input(
            user_id,
            user,
            client_ip,
            time::OffsetDateTime::now_utc(),
        );
        match hook.call(&input).await {
            Ok(Verdict::Accept) => Ok(()),
            Ok(Verdict::Refuse { status, message }) => {
                Err(SignupError::HookRejected { status, message }.into())
            }
            Err(HookError::Unavailable) => Err(SignupError::HookTimedOut.into()),
            Err(err @ HookError::Invalid(_)) => Err(SignupFailure::HookInvalid(err)),
        }
    }

    /// With CAPTCHA_PROVIDER set: the token must be there and the provider must accept it.
    async fn check_captcha(
        &self,
        token: Option<&str>,
        client_ip: Option<IpAddr>,
    ) -> Result<(), SignupFailure> {
        let Some(captcha) = &self.captcha else {
            return Ok(());
        };
        let Some(token) = token else {
            return Err(SignupFailure::CaptchaRefused(
                "no captcha_token found".to_owned(),
            ));
        };
        match captcha.verify(token, client_ip).await {
            Ok(()) => Ok(()),
            Err(CaptchaError::Refused(codes)) if codes.is_empty() => Err(
                SignupFailure::CaptchaRefused("the captcha was not accepted".to_owned()),
            ),
            Err(CaptchaError::Refused(codes)) => {
                Err(SignupFailure::CaptchaRefused(codes.join(", ")))
            }
            Err(err) => Err(SignupFailure::CaptchaUnavailable(err)),
        }
    }

    /// Hash, then THE transaction, which also completes the key with the answer, if any.
    async fn hash_and_write(
        &self,
        user_id: Uuid,
        user: &NewUser,
        key: Option<&HeldKey>,
        client_ip: Option<IpAddr>,
    ) -> Result<Written, SignupFailure> {
        // Hash before the transaction: a pooled connection is held for one round trip, not a hash.
        let password_hash = self.hasher.hash(&user.password).await?;
        let email_confirmed = !self.policy.require_email_confirmation;
        let conceal = self.policy.conceal_existing_emails;
        // The answer but for what only the transaction knows (SignupResponse::written): stored
        // like this with a key, next to the transaction's facts.
        let body = SignupResponse::new(user_id, user, email_confirmed);
        // With a key: the answer stored with it, committed with the signup.
        let stored = match key {
            None => None,
            Some(held) if conceal => Some(held.completion(202, answer::concealed_json()?)),
            Some(held) => Some(held.completion(201, answer::to_json(&body)?)),
        };
        let hook = match &self.before_user_created {
            Some(HookTarget::Pg(hook)) => Some(hook),
            _ => None,
        }
        .map(|hook| BeforeHook {
            function: &hook.function,
            input: hook::before_user_created_input(
                user_id,
                user,
                client_ip,
                time::OffsetDateTime::now_utc(),
            ),
            timeout: hook.timeout,
        });
        let after = self
            .after_user_created
            .as_ref()
            .map(|_| store_signup::AfterHook { client_ip });
        let until = tokio::time::Instant::now() + self.policy.conceal_min_duration;
        let written = store_signup::commit_signup(
            &self.db,
            UserRecord {
                user_id,
                user,
                password_hash: &password_hash,
                email_confirmed,
                idempotency: stored.as_ref(),
            },
            hook,
            after,
        )
        .await;
        match written {
            Ok(row) => {
                tracing::info!("user signed up");
                if self.policy.require_email_confirmation {
                    self.outbox_wake.notify_one();
                }
                if let Some(wake) = &self.after_user_created {
                    wake.notify_one();
                }
                let body = body.written(row.onboarding_completed);
                Ok(Written::Committed { body, until })
            }
            Err(SignupError::EmailTaken) if conceal => {
                tracing::info!("signup for a taken email concealed");
                Ok(Written::ConcealedEmailTaken { until })
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Settles the key (kept with the committed answer, given the concealed answer, or given
    /// back), holds a concealed answer until its time, and says how the signup ended.
    async fn settle(
        &self,
        held: Option<HeldKey>,
        written: Result<Written, SignupFailure>,
    ) -> Result<SignupOutcome, SignupFailure> {
        match written {
            Ok(Written::Committed { body, until }) => {
                if let Some(held) = held {
                    held.committed_with_signup();
                }
                if self.policy.conceal_existing_emails {
                    tokio::time::sleep_until(until).await;
                    return Ok(SignupOutcome::Concealed);
                }
                Ok(SignupOutcome::Created(body))
            }
            Ok(Written::ConcealedEmailTaken { until }) => {
                // The key keeps the same concealed answer as a new email's, so a retry replays
                // it the same way.
                if let Some(held) = held {
                    held.store_answer(202, &answer::concealed_json()?)
                        .await
                        .map_err(IdempotencyError::Store)?;
                }
                tokio::time::sleep_until(until).await;
                Ok(SignupOutcome::Concealed)
            }
            Err(err) => {
                // Nothing committed: give the key back so that a retry runs again.
                if let Some(held) = held {
                    held.release().await;
                }
                Err(err)
            }
        }
    }
}
