//! `POST /api/auth/signup`: request → [`NewUser`] → argon2id hash → one transaction → 201.
//!
//! With CONCEAL_EXISTING_EMAILS=true a new and an existing email get the same 202 after the same
//! work (the hash is computed either way; for an existing email the insert fails on the unique
//! index and writes nothing), so the answer does not tell whether an email is registered.
//!
//! DISABLE_SIGNUP, the password policy and the captcha (CAPTCHA_PROVIDER) apply as GoTrue applies
//! them to its own signups, with GoTrue's error codes.
//!
//! With an `Idempotency-Key` header the key is claimed before the hash ([`crate::idempotency`])
//! and completed with the answer inside the signup transaction; a repeat of the same request
//! gets that answer again with `Idempotent-Replayed: true`.

use std::net::{IpAddr, SocketAddr};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppState, JsonObject};
use crate::captcha::CaptchaError;
use crate::domain::{NewUser, SignupForm, ValidationErrors};
use crate::error::{ApiError, ErrorResponse};
use crate::idempotency::{self, HeldKey, IdempotencyKey, NextAction};
use crate::observe;
use crate::store::signup::{self as transaction, KeyCompletion, SignupError, UserRecord};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer replayed for a repeated Idempotency-Key.
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The signup request (documentation of the body; parsed field by field so that every bad
/// field is reported).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SignupRequest {
    /// Display name: trimmed, 1–100 characters, no control characters.
    #[schema(example = "Ada Lovelace")]
    name: String,
    /// Trimmed and lower-cased; ASCII only, at most 254 bytes.
    #[schema(example = "ada@example.com")]
    email: String,
    /// At most 256 characters, kept as typed; PASSWORD_MIN_LENGTH (default 8) and
    /// PASSWORD_REQUIRED_CHARACTERS apply.
    #[schema(example = "correct horse battery")]
    password: String,
    /// One of SIGNUP_ROLES (exact match).
    #[schema(example = "Creator")]
    role: String,
    /// With CAPTCHA_PROVIDER set: the captcha widget's token.
    captcha_token: Option<String>,
    /// supabase-js's shape: `{"captcha_token": "…"}` (either field may carry the token).
    gotrue_meta_security: Option<serde_json::Value>,
}

/// The answer of CONCEAL_EXISTING_EMAILS=true, for new and registered emails alike.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConcealedResponse {
    #[schema(example = "confirmation_sent")]
    pub status: &'static str,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SignupResponse {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub onboarding_completed: bool,
    pub email_confirmed: bool,
}

#[utoipa::path(post, path = "/api/auth/signup", tag = "auth",
    request_body(content = SignupRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1–255 printable ASCII characters. A retry with the same key and the same request \
            (same validated fields) within 24 h gets the first answer again, without a new user.")),
    responses(
        (status = 201, description = "User, identity and profile committed in one transaction (or, with `Idempotent-Replayed: true`, the stored answer of the first request with this Idempotency-Key)", body = SignupResponse,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))),
        (status = 202, description = "CONCEAL_EXISTING_EMAILS=true: same answer for new and registered emails", body = ConcealedResponse),
        (status = 400, description = "`invalid_json`: malformed JSON, or not an object; `invalid_idempotency_key`; `captcha_failed` (CAPTCHA_PROVIDER set: no `captcha_token`, or the provider refused it)", body = ErrorResponse),
        (status = 409, description = "`email_taken`; or `request_in_progress` (a request with this Idempotency-Key is still running; `Retry-After: 1`)", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`: body over 16 KiB", body = ErrorResponse),
        (status = 415, description = "`unsupported_media_type`: not application/json", body = ErrorResponse),
        (status = 422, description = "`validation_failed`, one entry per bad field; `weak_password`: the password fails PASSWORD_MIN_LENGTH / PASSWORD_REQUIRED_CHARACTERS (`weak_password.reasons`, and every bad field in `fields`); `signup_disabled` (DISABLE_SIGNUP=true); `idempotency_key_reused`: the key was used for a different request", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: over RATE_LIMIT_SIGNUP_PER_MINUTE for this client IP", body = ErrorResponse,
            headers(("Retry-After" = String, description = "seconds"))),
        (status = 500, description = "`internal`", body = ErrorResponse),
        (status = 503, description = "`overloaded` (hash queue full) or `request_timeout` (REQUEST_TIMEOUT_S passed; the signup may still commit) or `captcha_unavailable` (the captcha provider is down or slow), with `Retry-After: 1`; or `database_unavailable`", body = ErrorResponse,
            headers(("Retry-After" = String, description = "seconds to wait"))),
    ))]
#[tracing::instrument(name = "signup", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let client_ip = state.client_ip.resolve(&headers, Some(peer));
    let result = match (idempotency_key(&headers), body) {
        (Ok(key), Ok(body)) => signup_answer(&state, client_ip, key, body).await,
        (Err(rejected), _) | (_, Err(rejected)) => Err(rejected),
    };
    let outcome = match &result {
        Ok(response) => response
            .extensions()
            .get::<Outcome>()
            .map_or("created", |o| o.0),
        Err(err) => err.code(),
    };
    metrics::counter!(observe::SIGNUP_OUTCOMES, "outcome" => outcome).increment(1);
    metrics::histogram!(observe::SIGNUP_DURATION).record(started.elapsed().as_secs_f64());
    result
}

/// The optional `Idempotency-Key` header.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::InvalidIdempotencyKey(
            "must be sent once".to_owned(),
        ));
    }
    IdempotencyKey::parse(value.as_bytes())
        .map(Some)
        .map_err(ApiError::InvalidIdempotencyKey)
}

/// The signup's answer: parse, claim the key, captcha, create the user, settle the key.
async fn signup_answer(
    state: &AppState,
    client_ip: Option<IpAddr>,
    key: Option<IdempotencyKey>,
    mut body: JsonObject,
) -> Result<Response, ApiError> {
    if state.settings.disable_signup {
        return Err(ApiError::SignupDisabled);
    }
    let mut errors = ValidationErrors::default();
    let captcha_token = body.take_captcha_token(&mut errors);
    let [name, email, password, role] =
        body.string_fields(["name", "email", "password", "role"], &mut errors);
    let form = SignupForm {
        name,
        email,
        password,
        role,
    };
    let user = NewUser::parse(form, &state.settings.signup, errors)?;

    // With a key: claim it before any work, or answer at once (replay, reused, in progress).
    let held = match key {
        None => None,
        Some(key) => {
            let fingerprint = state.idempotency.secret.fingerprint(&user);
            match idempotency::try_processing(&state.pool, &state.idempotency, key, &fingerprint)
                .await?
            {
                NextAction::StartProcessing(held) => Some(held),
                NextAction::ReturnSavedResponse { status, body } => {
                    tracing::info!("idempotent replay");
                    return replay(status, body);
                }
            }
        }
    };
    // The captcha before any hashing (a replay above needs none: its token was spent already).
    let created = match check_captcha(state, captcha_token.as_deref(), client_ip).await {
        Ok(()) => create_user(state, &user, held.as_ref()).await,
        Err(err) => Err(err),
    };
    finish(held, created).await
}

/// With CAPTCHA_PROVIDER set: the token must be there and the provider must accept it.
async fn check_captcha(
    state: &AppState,
    token: Option<&str>,
    client_ip: Option<IpAddr>,
) -> Result<(), ApiError> {
    let Some(captcha) = &state.captcha else {
        return Ok(());
    };
    let Some(token) = token else {
        return Err(ApiError::CaptchaFailed("no captcha_token found".to_owned()));
    };
    match captcha.verify(token, client_ip).await {
        Ok(()) => Ok(()),
        Err(CaptchaError::Refused(codes)) => Err(ApiError::CaptchaFailed(if codes.is_empty() {
            "the captcha was not accepted".to_owned()
        } else {
            codes.join(", ")
        })),
        Err(err) => Err(ApiError::CaptchaUnavailable(err)),
    }
}

/// What the signup transaction came to.
enum Created {
    /// Committed (with the key's answer, if any).
    Committed(Response),
    /// CONCEAL_EXISTING_EMAILS: the email was taken; nothing committed, the concealed answer is
    /// sent anyway (no earlier than `until`, the time a commit would have taken at least).
    ConcealedTaken {
        response: Response,
        until: tokio::time::Instant,
    },
    /// Concealed and committed: the answer leaves no earlier than `until`.
    ConcealedCommitted {
        response: Response,
        until: tokio::time::Instant,
    },
}

/// Hash, then THE transaction (which also completes the key, if any).
async fn create_user(
    state: &AppState,
    user: &NewUser,
    key: Option<&HeldKey>,
) -> Result<Created, ApiError> {
    // Hash before the transaction: a pooled connection is held for one round trip, not a hash.
    let password_hash = state.hasher.hash(&user.password).await?;

    let user_id = Uuid::new_v4();
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    let mut body = SignupResponse {
        user_id,
        email: user.email.as_str().to_owned(),
        name: user.name.as_str().to_owned(),
        role: user.role.as_str().to_owned(),
        // Filled in from the profile the transaction wrote (here and in the stored answer).
        onboarding_completed: false,
        email_confirmed: !state.settings.require_email_confirmation,
    };
    let conceal = state.settings.conceal_existing_emails;
    let status = if conceal {
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    // With a key: the answer stored with it, committed with the signup.
    let stored = match key {
        None => None,
        Some(_) if conceal => Some(concealed_json()?),
        Some(_) => {
            Some(serde_json::to_value(&body).map_err(|e| ApiError::internal("answer to JSON", e))?)
        }
    };
    // Concealment: the answer leaves no earlier than this, whether the email was new (commit)
    // or taken (rollback), so the two cannot be told apart by their timing.
    let until = tokio::time::Instant::now() + state.settings.conceal_min_duration;
    let created = transaction::create_user(
        &state.pool,
        UserRecord {
            user_id,
            user,
            password_hash: &password_hash,
            email_confirmed: !state.settings.require_email_confirmation,
            idempotency: key.zip(stored.as_ref()).map(|(held, body)| KeyCompletion {
                key: held.key(),
                claim: held.claim(),
                status: status.as_u16(),
                body,
            }),
        },
    )
    .await;

    match created {
        Ok(created) => {
            tracing::info!("user signed up");
            if state.settings.require_email_confirmation {
                state.outbox_wake.notify_one();
            }
            if conceal {
                let response = (status, Json(CONCEALED)).into_response();
                return Ok(Created::ConcealedCommitted { response, until });
            }
            body.onboarding_completed = created.onboarding_completed;
            body.email_confirmed = created.email_confirmed_at.is_some();
            // Through a JSON value, as a replay is (from the stored jsonb): one key order, so
            // the first answer and its replays are the same bytes.
            let body =
                serde_json::to_value(&body).map_err(|e| ApiError::internal("answer to JSON", e))?;
            Ok(Created::Committed((status, Json(body)).into_response()))
        }
        Err(SignupError::EmailTaken) if conceal => {
            tracing::info!("signup for a taken email concealed");
            let response = (status, Json(CONCEALED)).into_response();
            Ok(Created::ConcealedTaken { response, until })
        }
        Err(err) => Err(err.into()),
    }
}

/// Settles the key (kept with the committed answer, completed with the concealed one, or given
/// back), holds a concealed answer until its time, and answers.
async fn finish(
    held: Option<HeldKey>,
    created: Result<Created, ApiError>,
) -> Result<Response, ApiError> {
    match (created, held) {
        (Ok(Created::Committed(response)), held) => {
            if let Some(held) = held {
                held.completed();
            }
            Ok(with_outcome(response, "created"))
        }
        (Ok(Created::ConcealedCommitted { response, until }), held) => {
            if let Some(held) = held {
                held.completed();
            }
            tokio::time::sleep_until(until).await;
            Ok(with_outcome(response, "concealed"))
        }
        (Ok(Created::ConcealedTaken { response, until }), held) => {
            // The key keeps the same concealed answer as a new email's, so a retry replays it
            // the same way.
            if let Some(held) = held {
                held.complete(StatusCode::ACCEPTED.as_u16(), &concealed_json()?)
                    .await?;
            }
            tokio::time::sleep_until(until).await;
            Ok(with_outcome(response, "concealed"))
        }
        (Err(err), held) => {
            // Nothing committed: give the key back so that a retry runs again.
            if let Some(held) = held {
                held.release().await;
            }
            Err(err)
        }
    }
}

/// The stored answer of the first request with this key, again.
fn replay(status: u16, body: serde_json::Value) -> Result<Response, ApiError> {
    let status =
        StatusCode::from_u16(status).map_err(|e| ApiError::internal("a stored status", e))?;
    let mut response = (status, Json(body)).into_response();
    response
        .headers_mut()
        .insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(with_outcome(response, "replayed"))
}

/// The signup outcome for the metrics, set where it is known (not guessed from the answer).
#[derive(Debug, Clone, Copy)]
struct Outcome(&'static str);

fn with_outcome(mut response: Response, outcome: &'static str) -> Response {
    response.extensions_mut().insert(Outcome(outcome));
    response
}

const CONCEALED: ConcealedResponse = ConcealedResponse {
    status: "confirmation_sent",
};

fn concealed_json() -> Result<serde_json::Value, ApiError> {
    serde_json::to_value(CONCEALED).map_err(|e| ApiError::internal("answer to JSON", e))
}
