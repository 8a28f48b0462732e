//! Logging: a `tracing` subscriber, and the request-id / trace / panic layers of the router.
//!
//! `RUST_LOG` sets the filter (default `info`); `LOG_FORMAT=json|pretty` the format (default:
//! pretty on a terminal, JSON otherwise). Every request runs in a span carrying its request id,
//! taken from `X-Request-Id` or generated, and returned in the response's `X-Request-Id`.
//! Nothing here logs bodies or headers, so passwords and keys never reach the log.

use std::io::IsTerminal;

use axum::Router;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::error::ApiError;

/// Installs the global subscriber, logging on stdout; a second call is a no-op.
pub fn init() {
    init_on(false);
}

/// The same, logging on stderr: for a command whose stdout is its output (`check`).
pub fn init_on_stderr() {
    init_on(true);
}

fn init_on(stderr: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match std::env::var("LOG_FORMAT").ok().as_deref() {
        Some("json") => true,
        Some("pretty") => false,
        _ => !std::io::stdout().is_terminal(),
    };
    let writer = if stderr {
        BoxMakeWriter::new(std::io::stderr)
    } else {
        BoxMakeWriter::new(std::io::stdout)
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = if json {
        builder
            .json()
            .flatten_event(true)
            // The whole chain of spans, so a line logged inside the signup span still carries the
            // request span's request_id.
            .with_current_span(false)
            .with_span_list(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// Wraps the router in the request-id, tracing and panic layers.
pub fn layer(router: Router) -> Router {
    router.layer(
        ServiceBuilder::new()
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        let request_id = req
                            .headers()
                            .get("x-request-id")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!(
                            "request",
                            request_id = %request_id,
                            method = %req.method(),
                            path = %req.uri().path(),
                        )
                    })
                    .on_response(DefaultOnResponse::new().level(Level::INFO)),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CatchPanicLayer::custom(panic_response)),
    )
}

/// A panicking handler answers like any internal error: through [`ApiError`], the one place
/// where errors become HTTP.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<axum::body::Body> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    ApiError::internal("a request handler panicked", message).into_response()
}
