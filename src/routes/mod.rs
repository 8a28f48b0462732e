//! HTTP: one file per endpoint. Each extracts the request, calls the domain and the store, and
//! answers; errors go through [`crate::error::ApiError`].

pub mod client_ip;
pub mod cors;
pub mod health;
mod json;
pub mod login;
pub mod openapi;
pub mod signup;
pub mod unread_body;

use std::sync::Arc;

use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_http::timeout::TimeoutLayer;

use crate::config::Settings;
use crate::error::ApiError;
use crate::gotrue::GoTrueClient;
use crate::observe;
use crate::signup::SignupService;
use crate::store::Database;

pub use client_ip::ClientIp;
pub use json::JsonObject;

/// What every handler may use. Cheap to clone (everything is shared).
#[derive(Clone)]
pub struct AppState {
    /// Everything configured, read where it is needed (not copied field by field).
    pub settings: Arc<Settings>,
    pub db: Database,
    /// The signup service (everything a signup needs).
    pub signup: Arc<SignupService>,
    /// `None` when SUPABASE_URL / GOTRUE_URL is not configured: login answers 503.
    pub gotrue: Option<GoTrueClient>,
    pub metrics: PrometheusHandle,
    /// `GET /openapi.json`'s document, with the profile's fields (built once).
    pub openapi: Arc<serde_json::Value>,
    /// How the client's IP is found (socket, or X-Forwarded-For behind a trusted proxy).
    pub client_ip: ClientIp,
    /// Recent durations of failed logins of known users (see `login`).
    pub failed_logins: Arc<login::FailedLoginTimes>,
    /// The last readiness probe, shared by every `/readyz` caller.
    pub readiness: Arc<health::ReadinessProbe>,
}

/// The API router (rate limits and request timeout from the settings), and the rate limiters'
/// tables (to be pruned by [`RateLimitTables::prune`]).
pub fn router(state: AppState) -> (Router, RateLimitTables) {
    let client_ip = state.client_ip;
    let settings = Arc::clone(&state.settings);
    let mut tables = RateLimitTables::default();
    let signup = tables.limited(
        "/api/auth/signup",
        post(signup::signup),
        settings.rate_limit_signup_per_minute,
        client_ip,
    );
    let login = tables.limited(
        "/api/auth/login",
        post(login::login),
        settings.rate_limit_login_per_minute,
        client_ip,
    );
    let router = Router::new()
        .route("/api/auth/signup", signup)
        .route("/api/auth/login", login)
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        // tower-http's timeout answers a bare 408, a status no handler uses; it is turned into
        // the JSON 503 `request_timeout` right outside it.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            settings.request_timeout,
        ))
        .layer(middleware::map_response(request_timeout_answer))
        .layer(middleware::from_fn(observe::track_requests))
        .layer(middleware::from_fn(security_headers))
        .with_state(state);
    (router, tables)
}

/// The metrics listener's router (METRICS_BIND_ADDR): `GET /metrics`, nothing else. Kept off the
/// API port: the figures move with signups of new emails, which concealed mode must not show.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(health::metrics))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// `X-Content-Type-Options: nosniff` on every answer; `Cache-Control: no-store` on everything
/// under `/api/auth/` (login answers carry tokens; no cache may keep an answer).
async fn security_headers(request: Request, next: Next) -> Response {
    let auth = request.uri().path().starts_with("/api/auth/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if auth {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The answer of a request cut off by the whole-request timeout (see [`router`]).
async fn request_timeout_answer(response: Response) -> Response {
    if response.status() == StatusCode::REQUEST_TIMEOUT {
        ApiError::RequestTimeout.into_response()
    } else {
        response
    }
}

/// The per-client tables of the rate limiters. Each holds one entry per client address seen in
/// the last minute; [`RateLimitTables::prune`] drops the entries of clients whose bucket is full
/// again, so the tables cannot grow without bound.
#[derive(Default)]
pub struct RateLimitTables(Vec<(&'static str, PruneTable)>);

/// Prunes one limiter's table and returns how many clients it still holds.
type PruneTable = Box<dyn Fn() -> usize + Send + Sync>;

impl RateLimitTables {
    /// `per_minute` requests per client IP (a burst of that many, then one more every 60/n s);
    /// over it, 429 `rate_limited` with `Retry-After`. 0 = no limit.
    fn limited(
        &mut self,
        route_path: &'static str,
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
        let limiter = Arc::clone(config.limiter());
        self.0.push((
            route_path,
            Box::new(move || {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                limiter.len()
            }),
        ));
        route.layer(GovernorLayer::new(config).error_handler(|err| {
            match err {
                GovernorError::TooManyRequests { wait_time, .. } => ApiError::RateLimited {
                    retry_after: Some(HeaderValue::from(wait_time.max(1))),
                }
                .into_response(),
                other => ApiError::internal("the rate limiter", other).into_response(),
            }
        }))
    }

    /// Drops the clients whose bucket is full again; records each table's size in the gauge
    /// `atomic_signup_rate_limit_clients{route}`.
    pub fn prune(&self) {
        for (route, prune) in &self.0 {
            let clients = prune();
            metrics::gauge!(observe::RATE_LIMIT_CLIENTS, "route" => *route).set(clients as f64);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
