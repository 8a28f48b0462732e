//! CORS (tower-http's `CorsLayer`) for browser frontends on other origins.
//!
//! The layer wraps everything else, so every answer a page can get — errors of the rate limiter,
//! the timeout and the body limit included — carries the headers, and the page reads the JSON
//! body instead of an opaque network error. A preflight is answered by the layer itself (never
//! rate limited, never counted), with 204.

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::{CorsOrigins, CorsSettings};

/// The layer for `settings`; `None` when CORS is off (no CORS headers at all).
pub fn layer(settings: &CorsSettings) -> Option<CorsLayer> {
    let origins = match &settings.origins {
        CorsOrigins::Off => return None,
        CorsOrigins::Any => AllowOrigin::any(),
        // The values were checked at startup (scheme://host[:port]); one that is somehow not a
        // valid header value could never match an `Origin` header, so leaving it out is exact.
        CorsOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        ),
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                HeaderName::from_static("idempotency-key"),
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
                HeaderName::from_static("idempotent-replayed"),
            ])
            .max_age(settings.max_age),
    )
}

/// The CORS layer answers a preflight (`OPTIONS`) with 200 and no body; 204 says "no content".
pub async fn preflight_no_content(request: Request, next: Next) -> Response {
    let options = request.method() == Method::OPTIONS;
    let mut response = next.run(request).await;
    if options && response.status() == StatusCode::OK {
        *response.status_mut() = StatusCode::NO_CONTENT;
    }
    response
}
