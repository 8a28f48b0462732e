//! Prometheus metrics: the recorder, the names, and the middleware that counts requests.
//!
//! Each layer records its own figures (routes: outcomes; password: hash queue; store: the
//! transaction; gotrue: call latency; outbox: deliveries of mails and hook calls); `GET /metrics` renders them.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "atomic_signup_http_requests_total";
pub const HTTP_DURATION: &str = "atomic_signup_http_request_duration_seconds";
pub const SIGNUP_OUTCOMES: &str = "atomic_signup_signup_outcomes_total";
pub const SIGNUP_DURATION: &str = "atomic_signup_signup_duration_seconds";
pub const SIGNUP_TRANSACTION_DURATION: &str = "atomic_signup_signup_transaction_duration_seconds";
pub const HASH_QUEUE_DEPTH: &str = "atomic_signup_password_hash_queue_depth";
pub const HASH_WAIT: &str = "atomic_signup_password_hash_wait_seconds";
pub const HASH_DURATION: &str = "atomic_signup_password_hash_duration_seconds";
pub const OUTBOX_BACKLOG: &str = "atomic_signup_outbox_backlog";
pub const OUTBOX_SENT: &str = "atomic_signup_outbox_sent_total";
pub const OUTBOX_RETRIED: &str = "atomic_signup_outbox_retried_total";
pub const OUTBOX_FAILED: &str = "atomic_signup_outbox_failed_total";
/// The after_user_created hook's outbox, as the mail outbox's four above.
pub const HOOK_BACKLOG: &str = "atomic_signup_hook_outbox_backlog";
pub const HOOK_DELIVERED: &str = "atomic_signup_hook_outbox_delivered_total";
pub const HOOK_RETRIED: &str = "atomic_signup_hook_outbox_retried_total";
pub const HOOK_FAILED: &str = "atomic_signup_hook_outbox_failed_total";
/// Finished spans never exported, by `reason`: `queue_full` (the export queue was full: a slow
/// collector) or `export_failed` (the collector refused, was unreachable or did not answer).
pub const TRACE_SPANS_DROPPED: &str = "atomic_signup_trace_spans_dropped_total";
pub const RATE_LIMIT_CLIENTS: &str = "atomic_signup_rate_limit_clients";
pub const GOTRUE_DURATION: &str = "atomic_signup_gotrue_request_duration_seconds";
/// Connections closed at accept: their client already held HTTP_MAX_CONNECTIONS_PER_IP.
pub const CONNECTIONS_REFUSED: &str = "atomic_signup_connections_refused_total";

/// Histogram buckets (seconds): sub-millisecond transactions up to multi-second GoTrue calls,
/// finer around the signup transaction's few milliseconds (its p99 target is 5 ms).
const BUCKETS: [f64; 20] = [
    0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5,
    1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once (later calls return the same handle). When another
/// recorder is already installed, metrics go there and `/metrics` renders an empty page.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &BUCKETS)
                .map(PrometheusBuilder::build_recorder);
            match recorder {
                Ok(recorder) => {
                    let handle = recorder.handle();
                    if metrics::set_global_recorder(recorder).is_err() {
                        tracing::warn!("a metrics recorder was already installed");
                    }
                    handle
                }
                Err(err) => {
                    tracing::warn!(error = %err, "metrics recorder not built");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Counts every request by route template (not raw path), method and status, and times it. Every
/// label comes from a fixed set, so no client can grow the metrics (and the memory behind them)
/// by sending new paths or methods.
pub async fn track_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(HTTP_REQUESTS, "route" => route.clone(), "method" => method, "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_DURATION, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    response
}

/// The method as a label: the standard methods by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    static KNOWN: [Method; 9] = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    KNOWN
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}
