//! Logging: a `tracing` subscriber, and the request-id / trace / panic layers of the router.
//!
//! `RUST_LOG` sets the filter (default `info`); `LOG_FORMAT=json|pretty` the format (default:
//! pretty on a terminal, JSON otherwise). Every request runs in a span carrying its request id,
//! taken from `X-Request-Id` when it is well-formed (1 to 64 characters of `[A-Za-z0-9._-]`),
//! else generated, and returned in the response's `X-Request-Id`. A client's id is never taken
//! as sent: any length and any bytes would be echoed and written to every log line of the
//! request (megabytes of logs, or a forged line in the pretty format).
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
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
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
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    let fmt = if json {
        fmt.json()
            .flatten_event(true)
            // The whole chain of spans, so a line logged inside the signup span still carries the
            // request span's request_id.
            .with_current_span(false)
            .with_span_list(true)
            .boxed()
    } else {
        fmt.boxed()
    };
    // OTLP traces (crate::traces), when an endpoint is configured; a broken configuration is
    // said once and the service runs without traces.
    let otel = match crate::traces::provider_from_env() {
        Ok(provider) => provider.map(|p| crate::traces::layer(&p)),
        Err(message) => {
            eprintln!("warning: traces are off: {message}");
            None
        }
    };
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
}

/// Wraps the router in the request-id, tracing and panic layers.
pub fn layer(router: Router) -> Router {
    router.layer(
        ServiceBuilder::new()
            .map_request(drop_malformed_request_id)
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(|req: &Request<_>| {
                        let request_id = req
                            .headers()
                            .get(REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        // The route as declared (never the query, never a raw unknown path).
                        let route = req
                            .extensions()
                            .get::<axum::extract::MatchedPath>()
                            .map_or("unmatched", |p| p.as_str());
                        let span = tracing::info_span!(
                            "request",
                            // Set by traces::continue_trace, only when traces are on.
                            otel.name = tracing::field::Empty,
                            otel.kind = "server",
                            http.request.method = %req.method(),
                            http.route = %route,
                            http.response.status_code = tracing::field::Empty,
                            request_id = %request_id,
                            method = %req.method(),
                            path = %req.uri().path(),
                            trace_id = tracing::field::Empty,
                            span_id = tracing::field::Empty,
                        );
                        crate::traces::continue_trace(&span, req.method(), route, req.headers());
                        span
                    })
                    .on_response(
                        |res: &Response<_>, latency: std::time::Duration, span: &tracing::Span| {
                            span.record("http.response.status_code", res.status().as_u16());
                            tower_http::trace::OnResponse::on_response(
                                DefaultOnResponse::new().level(Level::INFO),
                                res,
                                latency,
                                span,
                            );
                        },
                    ),
            )
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CatchPanicLayer::custom(panic_response)),
    )
}

/// Removes the request's `X-Request-Id` unless it is one well-formed id (see [`is_valid_request_id`]),
/// so that one is generated instead.
fn drop_malformed_request_id<B>(mut request: Request<B>) -> Request<B> {
    let mut ids = request.headers().get_all(REQUEST_ID).iter();
    let keep = match (ids.next(), ids.next()) {
        (Some(id), None) => is_valid_request_id(id.as_bytes()),
        _ => false,
    };
    if !keep {
        request.headers_mut().remove(REQUEST_ID);
    }
    request
}

const REQUEST_ID: &str = "x-request-id";

/// 1 to 64 characters of `[A-Za-z0-9._-]`: room for a UUID or a proxy's trace id, nothing that
/// could break a log line.
pub fn is_valid_request_id(id: &[u8]) -> bool {
    (1..=64).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_request_ids_are_kept() {
        for good in [
            "a",
            "req-signup-1",
            "0f8e6c1e-7a8b-4c1d-9e2f-3a4b5c6d7e8f",
            "A.b_C-9",
        ] {
            assert!(is_valid_request_id(good.as_bytes()), "{good}");
        }
        let long = "x".repeat(65);
        for bad in [
            "",
            "a b",
            "a}: atomic_signup: user logged in",
            "ü",
            "a\n",
            &long,
        ] {
            assert!(!is_valid_request_id(bad.as_bytes()), "{bad}");
        }
    }
}
