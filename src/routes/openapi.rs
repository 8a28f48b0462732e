//! `GET /openapi.json`: the OpenAPI 3.1 document, generated from the handlers' annotations.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use utoipa::{IntoResponses, OpenApi};

use super::{AppState, health, login, signup};
use crate::domain::ProfileSchema;
use crate::error::{ErrorBody, ErrorResponse};
use crate::signup::{ConcealedResponse, SignupResponseDoc};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "atomic-signup",
        description = "Supabase signup that never leaves an orphaned auth user: auth.users, \
                       auth.identities and public.profiles in one SQL transaction; login through GoTrue."
    ),
    paths(
        signup::signup,
        login::login,
        health::healthz,
        health::readyz,
        health::metrics,
        openapi_json
    ),
    components(schemas(
        signup::SignupRequest,
        SignupResponseDoc,
        ConcealedResponse,
        login::LoginRequest,
        login::LoginResponse,
        login::SessionBody,
        login::UserBody,
        login::ProfileBody,
        health::Readiness,
        health::ReadinessChecks,
        ErrorResponse,
        ErrorBody
    )),
    tags(
        (name = "auth", description = "Signup and login"),
        (name = "operations", description = "Health, readiness, metrics, this document")
    )
)]
pub struct ApiDoc;

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This OpenAPI 3.1 document", body = Object)))]
pub async fn openapi_json(State(state): State<AppState>) -> Json<Value> {
    Json(Value::clone(&state.openapi))
}

/// The document, with the profile's fields (PROFILE_SCHEMA_PATH) in the signup's request and
/// answer, as declared: a frontend's generated client has them typed. Built once at startup.
pub fn document(profile: &ProfileSchema) -> Result<Value, serde_json::Error> {
    let mut doc = serde_json::to_value(ApiDoc::openapi())?;
    let schemas = &mut doc["components"]["schemas"];
    let profile_body = &mut schemas["ProfileBody"]["properties"];
    for field in profile.fields() {
        profile_body[&field.name] = field.schema.clone();
    }
    for (name, always_there) in [("SignupRequest", false), ("SignupResponse", true)] {
        let schema = &mut schemas[name];
        for field in profile.fields() {
            schema["properties"][&field.name] = field.schema.clone();
            // In the answer, a field with a default is always there too.
            let required = field.required || (always_there && field.default.is_some());
            if required {
                match schema["required"].as_array_mut() {
                    Some(list) => list.push(json!(field.name)),
                    None => schema["required"] = json!([field.name]),
                }
            }
        }
    }
    Ok(doc)
}

/// The answers of `POST /api/auth/signup`.
#[derive(IntoResponses)]
#[allow(dead_code)] // documentation only
pub enum SignupResponses {
    #[response(
        status = 201,
        description = "User, identity and profile committed in one transaction (or, with \
            `Idempotent-Replayed: true`, the stored answer of the first request with this \
            Idempotency-Key)",
        headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer"))
    )]
    Created(SignupResponseDoc),
    #[response(
        status = 202,
        description = "CONCEAL_EXISTING_EMAILS=true: same answer for new and registered emails"
    )]
    Concealed(ConcealedResponse),
    #[response(
        status = 400,
        description = "`invalid_json`: malformed JSON, or not an object; \
            `invalid_idempotency_key`; `captcha_failed` (CAPTCHA_PROVIDER set: no \
            `captcha_token`, or the provider refused it)"
    )]
    BadRequest(ErrorResponse),
    #[response(
        status = 409,
        description = "`email_taken`; or `request_in_progress` (a request with this \
            Idempotency-Key is still running; `Retry-After: 1`)"
    )]
    Conflict(ErrorResponse),
    #[response(status = 413, description = "`payload_too_large`: body over 16 KiB")]
    PayloadTooLarge(ErrorResponse),
    #[response(
        status = 415,
        description = "`unsupported_media_type`: not application/json"
    )]
    UnsupportedMediaType(ErrorResponse),
    #[response(
        status = 422,
        description = "`validation_failed`, one entry per bad field (at most five unknown \
            fields named); `weak_password`: the password fails PASSWORD_MIN_LENGTH / \
            PASSWORD_REQUIRED_CHARACTERS (`weak_password.reasons`, and every bad field in \
            `fields`); `signup_disabled` (DISABLE_SIGNUP=true); `idempotency_key_reused`: the \
            key was used for a different request"
    )]
    Unprocessable(ErrorResponse),
    #[response(
        status = 429,
        description = "`rate_limited`: over RATE_LIMIT_SIGNUP_PER_MINUTE for this client IP",
        headers(("Retry-After" = String, description = "seconds"))
    )]
    RateLimited(ErrorResponse),
    #[response(
        status = 500,
        description = "`internal`; or `hook_rejected`, the before_user_created hook's refusal, \
            with the status the hook gave (any 4xx or 5xx, 500 when it gave none)"
    )]
    Internal(ErrorResponse),
    #[response(
        status = 503,
        description = "`overloaded` (hash queue full) or `request_timeout` (REQUEST_TIMEOUT_S \
            passed; the signup may still commit) or `captcha_unavailable` (the captcha provider \
            is down or slow) or `hook_unavailable` (the before_user_created hook ran past its \
            timeout), with `Retry-After: 1`; or `database_unavailable`",
        headers(("Retry-After" = String, description = "seconds to wait"))
    )]
    Unavailable(ErrorResponse),
}
