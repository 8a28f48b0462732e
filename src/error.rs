//! The one place where errors become HTTP: status code + JSON body
//! `{"error": {"code", "message", "fields"?}}` with a stable `code`.
//!
//! Internal detail (SQL errors, task failures) is logged here, never sent.

use std::collections::BTreeMap;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::ValidationErrors;
use crate::gotrue::GoTrueError;
use crate::password::HashError;
use crate::store::StoreError;
use crate::store::signup::SignupError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("the request body is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error(transparent)]
    Validation(#[from] ValidationErrors),
    #[error("an account with this email address already exists")]
    EmailTaken,
    /// DISABLE_SIGNUP=true (GoTrue's GOTRUE_DISABLE_SIGNUP, and its answer).
    #[error("Signups not allowed for this instance")]
    SignupDisabled,
    /// No captcha token, or the provider refused it (GoTrue's `captcha_failed`).
    #[error("captcha protection: request disallowed ({0})")]
    CaptchaFailed(String),
    /// The captcha provider could not be asked (down, timed out, nonsense): never a silent pass.
    #[error("the captcha could not be verified; try again shortly")]
    CaptchaUnavailable(#[source] crate::captcha::CaptchaError),
    /// GoTrue's before_user_created hook refused the signup: its status and its message.
    #[error("{message}")]
    HookRejected { status: StatusCode, message: String },
    /// The hook did not answer within its timeout.
    #[error("the signup could not be checked in time; try again shortly")]
    HookUnavailable,
    #[error("the Idempotency-Key header {0}")]
    InvalidIdempotencyKey(String),
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
    #[error("a request with this Idempotency-Key is still being processed; retry in a moment")]
    RequestInProgress,
    #[error("Invalid login credentials")]
    InvalidCredentials,
    #[error("Please verify your email before logging in")]
    EmailNotConfirmed,
    #[error("Too many requests; try again later")]
    RateLimited { retry_after: Option<HeaderValue> },
    /// GoTrue unreachable, failing or answering nonsense; the cause is logged, never sent.
    #[error("the authentication service is unavailable")]
    AuthUnavailable(#[source] GoTrueError),
    #[error("the authentication service did not answer in time")]
    AuthTimeout,
    #[error("login is not configured on this service (SUPABASE_URL / SUPABASE_ANON_KEY)")]
    LoginNotConfigured,
    #[error("no such route")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("the service is at capacity; retry in a moment")]
    Overloaded,
    #[error("the request took too long and was cut off; retry in a moment")]
    RequestTimeout,
    /// The cause is logged, never sent.
    #[error("the database is unavailable")]
    DatabaseUnavailable(#[source] StoreError),
    /// The cause is logged, never sent.
    #[error("internal error: {context}")]
    Internal {
        context: &'static str,
        #[source]
        source: BoxError,
    },
}

/// Every error answer: `{"error": {"code", "message", "fields"?}}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": "validation_failed", "message": "some fields are invalid",
    "fields": {"email": "must be a valid email address"}}}))]
pub struct ErrorResponse {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Stable error code: invalid_json, unsupported_media_type, payload_too_large,
    /// validation_failed, weak_password, signup_disabled, captcha_failed, captcha_unavailable,
    /// email_taken, invalid_idempotency_key, idempotency_key_reused,
    /// request_in_progress, invalid_credentials, email_not_confirmed,
    /// rate_limited, auth_unavailable, auth_timeout, login_not_configured, not_found,
    /// method_not_allowed, overloaded, request_timeout, database_unavailable, internal,
    /// hook_rejected, hook_unavailable.
    pub code: &'static str,
    /// Human-readable; may change. Never contains internal detail.
    pub message: String,
    /// With validation_failed and weak_password: one message per bad field.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<BTreeMap<String, String>>,
    /// With weak_password (as GoTrue): why the password failed the policy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weak_password: Option<WeakPassword>,
}

/// GoTrue's `weak_password` object.
#[derive(Debug, Serialize, ToSchema)]
pub struct WeakPassword {
    /// `length`, `characters`.
    pub reasons: Vec<&'static str>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::InvalidJson(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Validation(_) | Self::SignupDisabled => StatusCode::UNPROCESSABLE_ENTITY,
            Self::CaptchaFailed(_) => StatusCode::BAD_REQUEST,
            Self::EmailTaken | Self::RequestInProgress => StatusCode::CONFLICT,
            Self::InvalidIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            Self::IdempotencyKeyReused => StatusCode::UNPROCESSABLE_ENTITY,
            Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::EmailNotConfirmed => StatusCode::FORBIDDEN,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::AuthUnavailable(_) => StatusCode::BAD_GATEWAY,
            Self::AuthTimeout => StatusCode::GATEWAY_TIMEOUT,
            Self::LoginNotConfigured => StatusCode::SERVICE_UNAVAILABLE,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::DatabaseUnavailable(_)
            | Self::Overloaded
            | Self::RequestTimeout
            | Self::CaptchaUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            Self::HookRejected { status, .. } => *status,
            Self::HookUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The stable, documented error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidJson(_) => "invalid_json",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Validation(errors) if !errors.weak_password_reasons().is_empty() => {
                "weak_password"
            }
            Self::Validation(_) => "validation_failed",
            Self::SignupDisabled => "signup_disabled",
            Self::CaptchaFailed(_) => "captcha_failed",
            Self::CaptchaUnavailable(_) => "captcha_unavailable",
            Self::EmailTaken => "email_taken",
            Self::InvalidIdempotencyKey(_) => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::RequestInProgress => "request_in_progress",
            Self::InvalidCredentials => "invalid_credentials",
            Self::EmailNotConfirmed => "email_not_confirmed",
            Self::RateLimited { .. } => "rate_limited",
            Self::AuthUnavailable(_) => "auth_unavailable",
            Self::AuthTimeout => "auth_timeout",
            Self::LoginNotConfigured => "login_not_configured",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::DatabaseUnavailable(_) => "database_unavailable",
            Self::Overloaded => "overloaded",
            Self::RequestTimeout => "request_timeout",
            Self::Internal { .. } => "internal",
            Self::HookRejected { .. } => "hook_rejected",
            Self::HookUnavailable => "hook_unavailable",
        }
    }

    fn public_message(&self) -> String {
        match self {
            Self::Validation(errors) if !errors.weak_password_reasons().is_empty() => {
                "the password does not meet the password policy".to_owned()
            }
            Self::Validation(_) => "some fields are invalid".to_owned(),
            Self::DatabaseUnavailable(_) => {
                "the service cannot reach its database right now; try again shortly".to_owned()
            }
            Self::Internal { .. } => "an unexpected error occurred".to_owned(),
            Self::AuthUnavailable(_) => {
                "the authentication service is unavailable; try again shortly".to_owned()
            }
            other => other.to_string(),
        }
    }
}

/// Any error, as a cause kept inside an [`ApiError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl ApiError {
    /// An unexpected failure while doing `context`, keeping `source` (and its chain) for the log.
    pub fn internal(context: &'static str, source: impl Into<BoxError>) -> Self {
        Self::Internal {
            context,
            source: source.into(),
        }
    }
}

/// An error and all its causes, `: `-separated (zero2prod's `error_chain_fmt`).
struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(err) = cause {
            write!(f, ": {err}")?;
            cause = err.source();
        }
        Ok(())
    }
}

impl From<crate::idempotency::IdempotencyError> for ApiError {
    fn from(err: crate::idempotency::IdempotencyError) -> Self {
        use crate::idempotency::IdempotencyError;
        match err {
            IdempotencyError::Reused => Self::IdempotencyKeyReused,
            IdempotencyError::InProgress => Self::RequestInProgress,
            IdempotencyError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            // The whole chain of causes, once, here.
            Self::Internal { .. } => {
                tracing::error!(code = self.code(), error = %Chain(&self), "request failed")
            }
            Self::DatabaseUnavailable(_)
            | Self::AuthUnavailable(_)
            | Self::CaptchaUnavailable(_) => {
                tracing::warn!(code = self.code(), error = %Chain(&self), "request failed")
            }
            Self::AuthTimeout | Self::LoginNotConfigured | Self::RequestTimeout => {
                tracing::warn!(code = self.code(), "request failed")
            }
            _ => tracing::info!(code = self.code(), "request rejected"),
        }
        let (fields, weak_password) = match &self {
            Self::Validation(errors) => (
                Some(errors.fields().clone()),
                Some(errors.weak_password_reasons())
                    .filter(|r| !r.is_empty())
                    .map(|reasons| WeakPassword {
                        reasons: reasons.to_vec(),
                    }),
            ),
            _ => (None, None),
        };
        let body = ErrorResponse {
            error: ErrorBody {
                code: self.code(),
                message: self.public_message(),
                fields,
                weak_password,
            },
        };
        let mut response = (self.status(), Json(body)).into_response();
        match &self {
            Self::RateLimited {
                retry_after: Some(value),
            } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, value.clone());
            }
            Self::Overloaded
            | Self::RequestTimeout
            | Self::RequestInProgress
            | Self::CaptchaUnavailable(_)
            | Self::HookUnavailable => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        response
    }
}

impl From<crate::signup::SignupFailure> for ApiError {
    fn from(err: crate::signup::SignupFailure) -> Self {
        use crate::signup::SignupFailure;
        match err {
            SignupFailure::Disabled => Self::SignupDisabled,
            SignupFailure::Invalid(errors) => errors.into(),
            SignupFailure::CaptchaRefused(why) => Self::CaptchaFailed(why),
            SignupFailure::CaptchaUnavailable(e) => Self::CaptchaUnavailable(e),
            SignupFailure::Idempotency(e) => e.into(),
            SignupFailure::Hash(e) => e.into(),
            SignupFailure::Transaction(e) => e.into(),
            SignupFailure::Answer(e) => Self::internal("the signup's answer", e),
            SignupFailure::HookInvalid(e) => Self::internal("the before_user_created hook", e),
        }
    }
}

impl From<SignupError> for ApiError {
    fn from(err: SignupError) -> Self {
        match err {
            SignupError::EmailTaken => Self::EmailTaken,
            SignupError::KeyLost => Self::RequestInProgress,
            SignupError::HookRejected { status, message } => Self::HookRejected {
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                message,
            },
            SignupError::HookTimedOut => Self::HookUnavailable,
            err @ SignupError::HookFailed(_) => Self::internal("the before_user_created hook", err),
            SignupError::Store(e) => e.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::AuthenticationFailed(e) => {
                tracing::error!(
                    error = %e,
                    "database authentication failed: check the user and password of DATABASE_URL"
                );
                Self::DatabaseUnavailable(StoreError::AuthenticationFailed(e))
            }
            err @ StoreError::Unavailable(_) => Self::DatabaseUnavailable(err),
            err @ (StoreError::Database(_) | StoreError::Invalid(_)) => {
                Self::internal("a database call", err)
            }
        }
    }
}

impl From<GoTrueError> for ApiError {
    fn from(err: GoTrueError) -> Self {
        match err {
            GoTrueError::InvalidCredentials => Self::InvalidCredentials,
            GoTrueError::EmailNotConfirmed => Self::EmailNotConfirmed,
            // Answered like a wrong password (routes::login hashes once to match the timing).
            GoTrueError::UserBanned => Self::InvalidCredentials,
            GoTrueError::RateLimited { retry_after, .. } => Self::RateLimited { retry_after },
            GoTrueError::Timeout => Self::AuthTimeout,
            err @ GoTrueError::Unavailable(_) => Self::AuthUnavailable(err),
        }
    }
}

impl From<HashError> for ApiError {
    fn from(err: HashError) -> Self {
        match err {
            HashError::Overloaded => Self::Overloaded,
            other => Self::internal("password hashing", other),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// The codes `ApiError::code` can answer, read from its match arms in this file.
    fn codes_in_code_fn() -> BTreeSet<String> {
        let source = include_str!("error.rs");
        let start = source.find("pub fn code(&self)").expect("ApiError::code");
        let end = start
            + source[start..]
                .find("fn public_message")
                .expect("the function after code()");
        // Every string literal in it is a code.
        source[start..end]
            .split('"')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_documented_codes_are_the_codes_answered() {
        let codes = codes_in_code_fn();
        assert!(codes.len() > 20, "{codes:?}");
        // ErrorBody's doc comment: the list the OpenAPI document shows.
        let source = include_str!("error.rs");
        let doc_start = source.find("/// Stable error code:").expect("the doc");
        let doc_end = doc_start + source[doc_start..].find("pub code:").expect("the field");
        let documented: BTreeSet<String> = source[doc_start..doc_end]
            .replace("/// Stable error code:", "")
            .replace("///", "")
            .split([',', '.', '\n'])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect();
        assert_eq!(
            codes, documented,
            "ErrorBody's doc comment vs ApiError::code"
        );
        // And the reference a reader looks them up in.
        let api = include_str!("../docs/api.md");
        for code in &codes {
            assert!(
                api.contains(&format!("`{code}`")),
                "docs/api.md does not mention `{code}`"
            );
        }
    }
}
