//! `POST /api/auth/signup`: request → [`NewUser`] → argon2id hash → one transaction → 201.
//!
//! With CONCEAL_EXISTING_EMAILS=true a new and an existing email get the same 202 after the same
//! work (the hash is computed either way; for an existing email the insert fails on the unique
//! index and writes nothing), so the answer does not tell whether an email is registered.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppState, JsonObject};
use crate::domain::{NewUser, SignupForm, ValidationErrors};
use crate::error::{ApiError, ErrorResponse};
use crate::observe;
use crate::store::signup::{NewAccount, SignupError, create_account};

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
    /// 8–256 characters, kept as typed.
    #[schema(example = "correct horse battery")]
    password: String,
    /// One of SIGNUP_ROLES (exact match).
    #[schema(example = "Creator")]
    role: String,
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
    responses(
        (status = 201, description = "User, identity and profile committed in one transaction", body = SignupResponse),
        (status = 202, description = "CONCEAL_EXISTING_EMAILS=true: same answer for new and registered emails", body = ConcealedResponse),
        (status = 400, description = "`invalid_json`: malformed JSON, or not an object", body = ErrorResponse),
        (status = 409, description = "`email_taken`", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`: body over 16 KiB", body = ErrorResponse),
        (status = 415, description = "`unsupported_media_type`: not application/json", body = ErrorResponse),
        (status = 422, description = "`validation_failed`, one entry per bad field", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: over RATE_LIMIT_SIGNUP_PER_MINUTE for this client IP", body = ErrorResponse,
            headers(("Retry-After" = String, description = "seconds"))),
        (status = 500, description = "`internal`", body = ErrorResponse),
        (status = 503, description = "`overloaded` (hash queue full) or `request_timeout` (REQUEST_TIMEOUT_S passed; the signup may still commit), both with `Retry-After: 1`; or `database_unavailable`", body = ErrorResponse,
            headers(("Retry-After" = String, description = "seconds to wait"))),
    ))]
#[tracing::instrument(name = "signup", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn signup(
    State(state): State<AppState>,
    body: Result<JsonObject, ApiError>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let result = match body {
        Ok(body) => sign_up(&state, body).await,
        Err(rejected) => Err(rejected),
    };
    let outcome = match &result {
        Ok(response) if response.status() == StatusCode::ACCEPTED => "concealed",
        Ok(_) => "created",
        Err(err) => err.code(),
    };
    metrics::counter!(observe::SIGNUP_OUTCOMES, "outcome" => outcome).increment(1);
    metrics::histogram!(observe::SIGNUP_DURATION).record(started.elapsed().as_secs_f64());
    result
}

async fn sign_up(state: &AppState, body: JsonObject) -> Result<Response, ApiError> {
    let mut errors = ValidationErrors::default();
    let [name, email, password, role] =
        body.string_fields(["name", "email", "password", "role"], &mut errors);
    let form = SignupForm {
        name,
        email,
        password,
        role,
    };
    let user = NewUser::parse(form, &state.signup_roles, errors)?;

    // Hash before the transaction: a pooled connection is held for one round trip, not a hash.
    let password_hash = state.hasher.hash(&user.password).await?;

    let user_id = Uuid::new_v4();
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    let created = create_account(
        &state.pool,
        NewAccount {
            user_id,
            user: &user,
            password_hash: &password_hash,
            email_confirmed: !state.require_email_confirmation,
        },
    )
    .await;

    if state.conceal_existing_emails {
        match created {
            Ok(_) => {
                tracing::info!("user signed up");
                state.outbox_wake.notify_one();
            }
            Err(SignupError::EmailTaken) => tracing::info!("signup for a taken email concealed"),
            Err(err) => return Err(err.into()),
        }
        return Ok(concealed_answer());
    }

    let created = created?;
    tracing::info!("user signed up");
    if state.require_email_confirmation {
        state.outbox_wake.notify_one();
    }
    let body = SignupResponse {
        user_id,
        email: user.email.as_str().to_owned(),
        name: user.name.as_str().to_owned(),
        role: user.role.as_str().to_owned(),
        onboarding_completed: created.onboarding_completed,
        email_confirmed: created.email_confirmed_at.is_some(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The one answer of concealing mode, for new and existing emails alike.
fn concealed_answer() -> Response {
    let body = ConcealedResponse {
        status: "confirmation_sent",
    };
    (StatusCode::ACCEPTED, Json(body)).into_response()
}
