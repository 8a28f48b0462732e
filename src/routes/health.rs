//! Health, readiness and metrics.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::AppState;
use crate::observe;
use crate::store;

/// How long each readiness check may take.
const READY_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /healthz`: the process is alive. No I/O.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive", body = Object, example = json!({"status": "ok"}))))]
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Readiness {
    /// `ready` or `unavailable`
    pub status: &'static str,
    /// Per dependency: `ok`, `unavailable`, or `not_configured` (GoTrue).
    pub checks: ReadinessChecks,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReadinessChecks {
    pub database: &'static str,
    pub gotrue: &'static str,
}

/// `GET /readyz`: `SELECT 1` within 1 s, and GoTrue's `/health` when login is configured; the
/// result is shared (see [`Readiness`]).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses(
    (status = 200, description = "Every dependency answers (as probed at most 1 s ago)", body = Readiness),
    (status = 503, description = "A dependency failed; `checks` says which", body = Readiness)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let checks = state.readiness.checks(&state).await;
    let ready = checks.database == "ok" && checks.gotrue != "unavailable";
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" },
        checks,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// The last readiness probe, shared by every caller of `/readyz`: the endpoint is open to anyone,
/// and each probe queries Postgres and calls GoTrue. At most one probe runs at a time, and a
/// result younger than [`ReadinessProbe::FRESH_FOR`] is answered as is, so no request rate turns
/// into more than one probe of each dependency per second.
#[derive(Default)]
pub struct ReadinessProbe {
    /// Held while a probe runs: callers that arrive meanwhile wait for its result.
    last: tokio::sync::Mutex<Option<(Instant, ReadinessChecks)>>,
}

impl ReadinessProbe {
    pub const FRESH_FOR: Duration = Duration::from_secs(1);

    async fn checks(&self, state: &AppState) -> ReadinessChecks {
        let mut last = self.last.lock().await;
        if let Some((at, checks)) = last.as_ref()
            && at.elapsed() < Self::FRESH_FOR
        {
            return checks.clone();
        }
        let checks = probe(state).await;
        *last = Some((Instant::now(), checks.clone()));
        checks
    }
}

/// One probe of each dependency, each within [`READY_TIMEOUT`].
async fn probe(state: &AppState) -> ReadinessChecks {
    let database = async {
        match tokio::time::timeout(READY_TIMEOUT, store::ping(&state.db)).await {
            Ok(Ok(_)) => "ok",
            Ok(Err(err)) => {
                tracing::warn!(error = %err, "readiness: database failed");
                "unavailable"
            }
            Err(_) => "unavailable",
        }
    };
    let gotrue = async {
        match &state.gotrue {
            None => "not_configured",
            Some(client) => match client.health(READY_TIMEOUT).await {
                Ok(()) => "ok",
                Err(err) => {
                    tracing::warn!(error = %err, "readiness: GoTrue failed");
                    "unavailable"
                }
            },
        }
    };
    let (database, gotrue) = tokio::join!(database, gotrue);
    ReadinessChecks { database, gotrue }
}

/// `GET /metrics`: Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    // The outbox backlogs are read at scrape time (an index-only count of pending rows).
    if let Ok(Ok(pending)) =
        tokio::time::timeout(READY_TIMEOUT, store::outbox::pending_count(&state.db)).await
    {
        metrics::gauge!(observe::OUTBOX_BACKLOG).set(pending as f64);
    }
    if state.settings.hooks.after_user_created.is_some()
        && let Ok(Ok(pending)) =
            tokio::time::timeout(READY_TIMEOUT, store::hook_outbox::pending_count(&state.db)).await
    {
        metrics::gauge!(observe::HOOK_BACKLOG).set(pending as f64);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}
