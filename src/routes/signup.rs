//! `POST /api/auth/signup`: the request's JSON and headers → [`crate::signup::SignupService`]
//! → the HTTP answer. What a signup does is the service's; this file only reads HTTP and writes
//! it.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa::ToSchema;

use super::{AppState, JsonObject};
use crate::domain::{SignupForm, ValidationErrors};
use crate::error::ApiError;
use crate::idempotency::IdempotencyKey;
use crate::observe;
use crate::signup::{CONCEALED, SignupInput, SignupOutcome};

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// Set on an answer replayed for a repeated Idempotency-Key.
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The signup request (documentation of the body; parsed field by field so that every bad
/// field is reported). The profile's fields (PROFILE_SCHEMA_PATH; by default `name`) are added
/// when the OpenAPI document is built (`routes::openapi`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct SignupRequest {
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

#[utoipa::path(post, path = "/api/auth/signup", tag = "auth",
    request_body(content = SignupRequest, content_type = "application/json"),
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1–255 printable ASCII characters. A retry with the same key and the same request \
            (same validated fields) within 24 h gets the first answer again, without a new user.")),
    responses(super::openapi::SignupResponses))]
#[tracing::instrument(name = "signup", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn signup(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<JsonObject, ApiError>,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let result = match (idempotency_key(&headers), body) {
        (Ok(key), Ok(body)) => {
            let client_ip = state.client_ip.resolve(&headers, Some(peer));
            let input = signup_input(body, key, client_ip);
            state.signup.sign_up(input).await.map_err(ApiError::from)
        }
        (Err(rejected), _) | (_, Err(rejected)) => Err(rejected),
    };
    let outcome = match &result {
        Ok(SignupOutcome::Created(_)) => "created",
        Ok(SignupOutcome::Concealed) => "concealed",
        Ok(SignupOutcome::Replayed { .. }) => "replayed",
        Err(err) => err.code(),
    };
    metrics::counter!(observe::SIGNUP_OUTCOMES, "outcome" => outcome).increment(1);
    metrics::histogram!(observe::SIGNUP_DURATION).record(started.elapsed().as_secs_f64());
    answer(result?)
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

/// The body's fields, as the service takes them.
fn signup_input(
    mut body: JsonObject,
    key: Option<IdempotencyKey>,
    client_ip: Option<std::net::IpAddr>,
) -> SignupInput {
    let mut errors = ValidationErrors::default();
    let captcha_token = body.take_captcha_token(&mut errors);
    let [email, password, role] =
        body.take_string_fields(["email", "password", "role"], &mut errors);
    SignupInput {
        form: SignupForm {
            email,
            password,
            role,
            // The rest: the profile schema reads the fields it declares and refuses the others.
            profile: body.0,
        },
        errors,
        captcha_token,
        client_ip,
        key,
    }
}

/// The outcome as HTTP: 201 with the new user, 202 concealed, or the stored answer again.
fn answer(outcome: SignupOutcome) -> Result<Response, ApiError> {
    let status = StatusCode::from_u16(outcome.status())
        .map_err(|e| ApiError::internal("a stored status", e))?;
    Ok(match outcome {
        // Through a JSON value, as a replay is (from the stored jsonb): one key order, so the
        // first answer and its replays are the same bytes.
        SignupOutcome::Created(body) => {
            let body = crate::signup::answer_json(&body)
                .map_err(|e| ApiError::internal("the signup's answer", e))?;
            (status, Json(body)).into_response()
        }
        SignupOutcome::Concealed => (status, Json(CONCEALED)).into_response(),
        SignupOutcome::Replayed { body, .. } => {
            let mut response = (status, Json(body)).into_response();
            response
                .headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            response
        }
    })
}
