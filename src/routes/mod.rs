//! HTTP: one file per endpoint. Each extracts the request, calls the domain and the store, and
//! answers; errors go through [`crate::error::ApiError`].

pub mod health;
mod json;
pub mod login;
pub mod openapi;
pub mod signup;

use std::sync::Arc;

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use sqlx::PgPool;
use tokio::sync::Notify;

use crate::domain::RoleSet;
use crate::error::ApiError;
use crate::gotrue::GoTrueClient;
use crate::observe;
use crate::password::Hasher;

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
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/auth/signup", post(signup::signup))
        .route("/api/auth/login", post(login::login))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn(observe::track_requests))
        .with_state(state)
}
