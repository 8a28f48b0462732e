//! CORS for browser frontends: preflight, allowed and refused origins, and the headers on every
//! answer a page can get (errors of the limiter, the timeout and the body limit included).

use crate::support;

use std::time::Duration;

use atomic_signup::config::CorsOrigins;
use reqwest::header::HeaderMap;
use serde_json::json;
use support::{TestApp, signup_body};

const PAGE: &str = "http://127.0.0.1:5173";

async fn with_origins(origins: CorsOrigins) -> TestApp {
    TestApp::builder()
        .configure(move |s| {
            s.cors.origins = origins;
            s.cors.max_age = Duration::from_secs(120);
        })
        .spawn()
        .await
}

fn allowed() -> CorsOrigins {
    CorsOrigins::List(vec![PAGE.into(), "https://app.example.com".into()])
}

async fn preflight(app: &TestApp, path: &str, origin: &str) -> (u16, HeaderMap) {
    let res = app
        .client
        .request(reqwest::Method::OPTIONS, format!("{}{path}", app.address))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,idempotency-key",
        )
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.headers().clone())
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn an_allowed_origin_gets_a_204_preflight_with_everything_the_page_needs() {
    let app = with_origins(allowed()).await;
    for path in ["/api/auth/signup", "/api/auth/login"] {
        let (status, headers) = preflight(&app, path, PAGE).await;
        assert_eq!(status, 204, "{path}");
        assert_eq!(header(&headers, "access-control-allow-origin"), Some(PAGE));
        assert!(
            headers.get_all("vary").iter().any(|v| v
                .to_str()
                .unwrap()
                .to_ascii_lowercase()
                .contains("origin")),
            "{headers:?}"
        );
        assert_eq!(
            header(&headers, "access-control-allow-methods"),
            Some("POST")
        );
        let allowed_headers = header(&headers, "access-control-allow-headers").unwrap();
        for h in ["content-type", "idempotency-key", "x-request-id"] {
            assert!(allowed_headers.contains(h), "{allowed_headers}");
        }
        assert_eq!(header(&headers, "access-control-max-age"), Some("120"));
        assert_eq!(header(&headers, "access-control-allow-credentials"), None);
    }
}

#[tokio::test]
async fn a_refused_origin_gets_no_allow_origin_and_nothing_is_written() {
    let app = with_origins(allowed()).await;
    let (_, headers) = preflight(&app, "/api/auth/signup", "http://evil.example").await;
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    // A near miss is a miss: origins match exactly.
    for near in [
        "http://127.0.0.1:5174",
        "https://127.0.0.1:5173",
        "https://app.example.com.evil.example",
    ] {
        let (_, headers) = preflight(&app, "/api/auth/signup", near).await;
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            None,
            "{near}"
        );
    }
    assert_eq!(support::counts(&app.db).await, (0, 0, 0));
}

#[tokio::test]
async fn without_cors_origins_there_are_no_cors_headers_at_all() {
    let app = TestApp::spawn().await;
    let (status, headers) = preflight(&app, "/api/auth/signup", PAGE).await;
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    let res = app
        .client
        .post(format!("{}/api/auth/signup", app.address))
        .header("origin", PAGE)
        .json(&signup_body("Ada", "ada@example.com", "Creator"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(
        res.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        res.headers()
    );
}

#[tokio::test]
async fn a_star_allows_any_origin_without_credentials() {
    let app = with_origins(CorsOrigins::Any).await;
    let (status, headers) = preflight(&app, "/api/auth/signup", "http://anything.example").await;
    assert_eq!(status, 204);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert_eq!(header(&headers, "access-control-allow-credentials"), None);
}

/// The CORS headers every answer to the page must carry, so its script can read status, body
/// and the headers it needs.
fn assert_readable(headers: &HeaderMap, what: &str) {
    assert_eq!(
        header(headers, "access-control-allow-origin"),
        Some(PAGE),
        "{what}: {headers:?}"
    );
    let exposed = header(headers, "access-control-expose-headers")
        .unwrap_or_else(|| panic!("{what}: no expose-headers: {headers:?}"))
        .to_ascii_lowercase();
    for h in ["x-request-id", "retry-after", "idempotent-replayed"] {
        assert!(exposed.contains(h), "{what}: {exposed}");
    }
}

#[tokio::test]
async fn every_answer_to_an_allowed_origin_carries_the_cors_headers() {
    let app = TestApp::builder()
        .configure(|s| {
            s.cors.origins = allowed();
            s.rate_limit_signup_per_minute = 7;
        })
        .spawn()
        .await;
    let post = |body: reqwest::Body, content_type: &'static str| {
        app.client
            .post(format!("{}/api/auth/signup", app.address))
            .header("origin", PAGE)
            .header("content-type", content_type)
            .body(body)
    };
    let json_body = |v: serde_json::Value| reqwest::Body::from(v.to_string());
    let mut seen = Vec::new();
    let cases: Vec<(u16, reqwest::RequestBuilder)> = vec![
        (
            201,
            post(
                json_body(signup_body("Ada", "ada@example.com", "Creator")),
                "application/json",
            )
            .header("idempotency-key", "cors-1"),
        ),
        (
            201,
            post(
                json_body(signup_body("Ada", "ada@example.com", "Creator")),
                "application/json",
            )
            .header("idempotency-key", "cors-1"),
        ),
        (
            409,
            post(
                json_body(signup_body("Ada", "ADA@example.com", "Creator")),
                "application/json",
            ),
        ),
        (422, post(json_body(json!({})), "application/json")),
        (400, post("{not json".into(), "application/json")),
        (415, post("x".into(), "text/plain")),
        (413, post(vec![b' '; 1 << 20].into(), "application/json")),
        // The eighth request of this minute from this client is over the limit (7 a minute).
        (429, post(json_body(json!({})), "application/json")),
    ];
    for (expected, request) in cases {
        let res = request.send().await.unwrap();
        let status = res.status().as_u16();
        assert_eq!(status, expected, "{:?}", res.headers());
        assert_readable(res.headers(), &status.to_string());
        seen.push((
            status,
            header(res.headers(), "idempotent-replayed").map(str::to_owned),
        ));
    }
    // The replay is readable too, and says so.
    assert_eq!(seen[1], (201, Some("true".to_owned())));

    // 404 and the timeout layer's 503.
    let res = app
        .client
        .post(format!("{}/api/nowhere", app.address))
        .header("origin", PAGE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    assert_readable(res.headers(), "404");

    let slow = TestApp::builder()
        .configure(|s| {
            s.cors.origins = allowed();
            s.request_timeout = Duration::from_secs(1);
            s.database.statement_timeout = Duration::from_secs(10);
        })
        .spawn()
        .await;
    support::slow_profile_inserts(&slow.db, 2.0).await;
    let res = slow
        .client
        .post(format!("{}/api/auth/signup", slow.address))
        .header("origin", PAGE)
        .json(&signup_body("Slow", "slow@example.com", "Creator"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_readable(res.headers(), "503 request_timeout");
    support::wait_until_no_statement_runs(&slow.db).await;
}

#[tokio::test]
async fn login_answers_are_readable_from_an_allowed_origin() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.cors.origins = allowed())
        .spawn()
        .await;
    let res = app
        .client
        .post(format!("{}/api/auth/login", app.address))
        .header("origin", PAGE)
        .json(&json!({"email": "nobody@example.com", "password": "wrong password"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_readable(res.headers(), "login 401");
}
