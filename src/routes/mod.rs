//! HTTP: one file per endpoint. Each extracts the request, calls the domain and the store, and
//! answers; errors go through [`crate::error::ApiError`].

pub mod client_ip;
mod health;
mod json;
pub mod login;
pub mod openapi;
pub mod signup;

use std::sync::Arc;

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::sync::Notify;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_http::timeout::TimeoutLayer;

use crate::domain::{FingerprintSecret, RoleSet};
use crate::error::ApiError;
use crate::gotrue::GoTrueClient;
use crate::observe;
use crate::password::Hasher;

pub use client_ip::ClientIp;
pub use json::JsonObject;

/// What every handler may use. Cheap to clone (pool, hasher and role set are shared).
#[derive(Clone)]
pub struct AppState {
    pub pool: PgPool,
    pub hasher: Hasher,
    pub signup_roles: RoleSet,
    pub require_email_confirmation: bool,
    pub conceal_existing_emails: bool,
    /// `None` when SUPABASE_URL / GOTRUE_URL is not configured: login answers 503.
    pub gotrue: Option<GoTrueClient>,
    /// Wakes the outbox worker after a signup that queued a confirmation email.
    pub outbox_wake: Arc<Notify>,
    pub metrics: PrometheusHandle,
    /// How the client's IP is found (socket, or X-Forwarded-For behind a trusted proxy).
    pub client_ip: ClientIp,
    pub idempotency: Idempotency,
}

/// Idempotency-Key handling of signup.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub secret: FingerprintSecret,
    /// How long a claimed key stays locked to its request if that request dies without
    /// releasing it: longer than any request can run (request timeout + statement timeout).
    pub lease: Duration,
}

/// Per-client-IP request limits of the auth routes (0 = none), and the whole-request timeout.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub signup_per_minute: u32,
    pub login_per_minute: u32,
    pub request_timeout: Duration,
}

pub fn router(state: AppState, limits: Limits) -> Router {
    let client_ip = state.client_ip;
    Router::new()
        .route(
            "/api/auth/signup",
            rate_limited(post(signup::signup), limits.signup_per_minute, client_ip),
        )
        .route(
            "/api/auth/login",
            rate_limited(post(login::login), limits.login_per_minute, client_ip),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // tower-http's timeout answers a bare 408, a status no handler uses; it is turned into
        // the JSON 503 `request_timeout` right outside it.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            limits.request_timeout,
        ))
        .layer(middleware::map_response(request_timeout_answer))
        .layer(middleware::from_fn(observe::track_requests))
        .with_state(state)
}

/// The answer of a request cut off by the whole-request timeout (see [`router`]).
async fn request_timeout_answer(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        ApiError::RequestTimeout.into_response()
    } else {
        response
    }
}

/// `per_minute` requests per client IP (a burst of that many, then one more every 60/n s); over
/// it, 429 `rate_limited` with `Retry-After`.
fn rate_limited(
    route: MethodRouter<AppState>,
    per_minute: u32,
    client_ip: ClientIp,
) -> MethodRouter<AppState> {
    if per_minute == 0 {
        return route;
    }
    let config = GovernorConfigBuilder::default()
        .key_extractor(client_ip)
        .period(Duration::from_millis(
            (60_000 / u64::from(per_minute)).max(1),
        ))
        .burst_size(per_minute)
        .finish();
    let Some(config) = config else {
        // Unreachable: period and burst are both at least 1.
        tracing::error!(per_minute, "invalid rate limit; route left unlimited");
        return route;
    };
    route.layer(GovernorLayer::new(config).error_handler(|err| {
        match err {
            GovernorError::TooManyRequests { wait_time, .. } => ApiError::RateLimited {
                retry_after: Some(HeaderValue::from(wait_time.max(1))),
            }
            .into_response(),
            other => ApiError::Internal(format!("rate limiter: {other}")).into_response(),
        }
    }))
}
