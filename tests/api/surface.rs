//! The HTTP surface as operators and clients see it: the OpenAPI document covers every route
//! and status the service answers, /metrics parses, /readyz tells which dependency failed.

use crate::support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt;
use gotrue_double::{Endpoint, Fault};
use serde_json::{Value, json};
use support::{TestApp, signup_body};

async fn openapi(app: &TestApp) -> Value {
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    doc
}

/// (method, path) → documented statuses.
fn documented(doc: &Value) -> BTreeMap<(String, String), BTreeSet<u16>> {
    let mut out = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let statuses = op["responses"]
                .as_object()
                .unwrap()
                .keys()
                .map(|s| s.parse().unwrap())
                .collect();
            out.insert((method.to_uppercase(), path.clone()), statuses);
        }
    }
    out
}

#[tokio::test]
async fn every_route_and_status_the_service_answers_is_in_the_openapi_document() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.gotrue.as_mut().unwrap().timeout = Duration::from_millis(300))
        .spawn()
        .await;
    let doc = openapi(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let documented = documented(&doc);
    let routes: BTreeSet<(String, String)> = documented.keys().cloned().collect();
    let expected_routes: BTreeSet<(String, String)> = [
        ("POST", "/api/auth/signup"),
        ("POST", "/api/auth/login"),
        ("GET", "/healthz"),
        ("GET", "/readyz"),
        ("GET", "/metrics"),
        ("GET", "/openapi.json"),
    ]
    .into_iter()
    .map(|(m, p)| (m.to_owned(), p.to_owned()))
    .collect();
    assert_eq!(routes, expected_routes);

    // Make the service answer every status it can, and check each against the document.
    let mut observed: Vec<(&str, &str, u16)> = Vec::new();
    let signup = "/api/auth/signup";
    let login = "/api/auth/login";
    let double = app.double();
    let mut post = async |path: &'static str, ct: Option<&str>, body: String| {
        let status = app.post_raw(path, ct, &body).await.status().as_u16();
        observed.push(("POST", path, status));
    };
    let json_ct = Some("application/json");
    let good = signup_body("Doc", "doc@example.com", "Creator").to_string();
    post(signup, json_ct, good.clone()).await; // 201
    post(signup, json_ct, good.clone()).await; // 409
    post(signup, json_ct, "{".into()).await; // 400
    post(signup, None, good.clone()).await; // 415
    post(
        signup,
        json_ct,
        json!({"name": "x".repeat(20_000)}).to_string(),
    )
    .await; // 413
    post(signup, json_ct, "{}".into()).await; // 422
    post(login, json_ct, "{".into()).await; // 400
    post(login, None, "{}".into()).await; // 415
    post(login, json_ct, "{}".into()).await; // 422
    post(
        login,
        json_ct,
        json!({"email": "doc@example.com", "password": "wrong"}).to_string(),
    )
    .await; // 401
    post(
        login,
        json_ct,
        json!({"email": "doc@example.com", "password": "correct horse battery"}).to_string(),
    )
    .await; // 403
    double.push_faults(Endpoint::Token, 1, Fault::RateLimited(Some(1)));
    post(
        login,
        json_ct,
        json!({"email": "doc@example.com", "password": "x"}).to_string(),
    )
    .await; // 429
    double.push_faults(Endpoint::Token, 1, Fault::Status(500, "unexpected_failure"));
    post(
        login,
        json_ct,
        json!({"email": "doc@example.com", "password": "x"}).to_string(),
    )
    .await; // 502
    double.push_faults(Endpoint::Token, 1, Fault::Delay(Duration::from_secs(2)));
    post(
        login,
        json_ct,
        json!({"email": "doc@example.com", "password": "x"}).to_string(),
    )
    .await; // 504
    sqlx::query("update auth.users set email_confirmed_at = now()")
        .execute(&app.db.pool)
        .await
        .unwrap();
    post(
        login,
        json_ct,
        json!({"email": "doc@example.com", "password": "correct horse battery"}).to_string(),
    )
    .await; // 200

    let concealing = app
        .another_instance()
        .configure(|s| s.conceal_existing_emails = true)
        .spawn()
        .await;
    let s = concealing
        .signup(&signup_body("Doc", "doc@example.com", "Creator"))
        .await
        .status()
        .as_u16();
    observed.push(("POST", signup, s)); // 202
    let unconfigured = TestApp::builder().on(app.db.clone()).spawn().await;
    let s = unconfigured
        .login("doc@example.com", "x")
        .await
        .status()
        .as_u16();
    observed.push(("POST", login, s)); // 503
    for path in ["/healthz", "/readyz", "/metrics", "/openapi.json"] {
        // Metrics have a listener of their own (METRICS_BIND_ADDR).
        let base = if path == "/metrics" {
            &app.metrics_address
        } else {
            &app.address
        };
        let s = app
            .client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        observed.push(("GET", path, s));
    }
    let statuses: BTreeSet<u16> = observed.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(
        statuses,
        [
            200, 201, 202, 400, 401, 403, 409, 413, 415, 422, 429, 502, 503, 504
        ]
        .into_iter()
        .collect(),
        "the scenario covers every status: {observed:?}"
    );
    for (method, path, status) in &observed {
        let documented = &documented[&(method.to_string(), path.to_string())];
        assert!(
            documented.contains(status),
            "{method} {path} answered {status}, documented: {documented:?}"
        );
    }
    // The error body schema is referenced by every error answer.
    let signup_422 = &doc["paths"]["/api/auth/signup"]["post"]["responses"]["422"];
    assert!(
        signup_422.to_string().contains("ErrorResponse"),
        "{signup_422}"
    );
}

#[tokio::test]
async fn metrics_are_scraped_and_parsed() {
    let app = TestApp::builder().gotrue().spawn().await;
    let met = signup_body("Met", "met@example.com", "Creator");
    assert_eq!(app.signup(&met).await.status(), 201);
    assert_eq!(app.signup(&met).await.status(), 409);
    assert_eq!(
        app.login("met@example.com", "bad password").await.status(),
        401
    );
    let delivered = || async { app.double().mails().len() == 1 };
    assert!(support::eventually(Duration::from_secs(10), delivered).await);

    let res = app
        .client
        .get(format!("{}/metrics", app.metrics_address))
        .send()
        .await
        .unwrap();
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid exposition format");
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                prometheus_parse::Value::Histogram(ref h) => {
                    h.iter().map(|b| b.count).fold(0.0, f64::max)
                }
                prometheus_parse::Value::Summary(_) => 0.0,
            })
            .sum()
    };
    // Counters are process-wide (every test app of this binary records into one registry).
    assert!(
        value(
            "atomic_signup_http_requests_total",
            &[("route", "/api/auth/signup"), ("status", "201")]
        ) >= 1.0
    );
    assert!(
        value(
            "atomic_signup_signup_outcomes_total",
            &[("outcome", "created")]
        ) >= 1.0
    );
    assert!(
        value(
            "atomic_signup_signup_outcomes_total",
            &[("outcome", "email_taken")]
        ) >= 1.0
    );
    assert!(
        value("atomic_signup_signup_transaction_duration_seconds", &[]) >= 1.0,
        "histogram of the transaction"
    );
    assert!(value("atomic_signup_signup_duration_seconds", &[]) >= 1.0);
    assert!(value("atomic_signup_password_hash_wait_seconds", &[]) >= 1.0);
    assert!(
        value(
            "atomic_signup_gotrue_request_duration_seconds",
            &[("endpoint", "token"), ("outcome", "invalid_credentials")]
        ) >= 1.0
    );
    assert!(
        value(
            "atomic_signup_gotrue_request_duration_seconds",
            &[("endpoint", "resend"), ("outcome", "ok")]
        ) >= 1.0
    );
    assert!(value("atomic_signup_outbox_sent_total", &[]) >= 1.0);
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "atomic_signup_outbox_backlog"),
        "backlog gauge present"
    );
    assert!(
        scrape
            .samples
            .iter()
            .any(|s| s.metric == "atomic_signup_password_hash_queue_depth")
    );
    assert!(
        text.contains("# TYPE atomic_signup_signup_transaction_duration_seconds histogram"),
        "histogram, not summary"
    );
}

#[tokio::test]
async fn readyz_names_the_dependency_that_failed() {
    let app = TestApp::builder().gotrue().spawn().await;
    assert_eq!(
        app.get_json("/readyz").await,
        (
            200,
            json!({"status": "ready", "checks": {"database": "ok", "gotrue": "ok"}})
        )
    );

    let no_gotrue = TestApp::builder().on(app.db.clone()).spawn().await;
    let (status, body) = no_gotrue.get_json("/readyz").await;
    assert_eq!(
        (status, body["checks"]["gotrue"].as_str()),
        (200, Some("not_configured"))
    );

    let port = support::closed_port();
    let gotrue_down = app
        .another_instance()
        .configure(|s| s.gotrue.as_mut().unwrap().url = format!("http://127.0.0.1:{port}"))
        .spawn()
        .await;
    let (status, body) = gotrue_down.get_json("/readyz").await;
    assert_eq!(
        (status, body),
        (
            503,
            json!({"status": "unavailable", "checks": {"database": "ok", "gotrue": "unavailable"}})
        )
    );

    let db_down = app
        .another_instance()
        .configure(|s| {
            s.database.url = atomic_signup::config::DatabaseUrl::from_options(
                sqlx::postgres::PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(port)
                    .username("x"),
            );
        })
        .spawn()
        .await;
    let started = std::time::Instant::now();
    let (status, body) = db_down.get_json("/readyz").await;
    assert_eq!(
        (status, body["checks"]["database"].as_str()),
        (503, Some("unavailable"))
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "within the 1 s budget (+ slack): {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.get_json("/healthz").await,
        (200, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn a_burst_of_readyz_calls_probes_each_dependency_a_handful_of_times() {
    let app = TestApp::builder().gotrue().spawn().await;
    let client = support::http_client();
    let started = std::time::Instant::now();
    // 32 at a time: the service closes a client's connections beyond HTTP_MAX_CONNECTIONS_PER_IP.
    let answers: Vec<_> = futures::stream::iter(0..1000)
        .map(|_| {
            let client = client.clone();
            let url = format!("{}/readyz", app.address);
            async move { client.get(url).send().await.map(|r| r.status().as_u16()) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let took = started.elapsed();
    assert!(answers.iter().all(|a| matches!(a, Ok(200))), "{answers:?}");
    let probes = app.double().calls_to(Endpoint::Health).len();
    // One probe per second at most (plus the one at the start of the burst).
    let bound = took.as_secs() as usize + 2;
    println!("1,000 /readyz calls in {took:?}: {probes} GoTrue /health calls");
    assert!(
        (1..=bound).contains(&probes),
        "{probes} GoTrue /health calls for 1,000 /readyz in {took:?}"
    );
}

/// Sends `head` (a request head, without its final blank line) and `body` on a new connection,
/// and reads the answer's head until the server has sent it.
async fn raw_answer_head(app: &TestApp, head: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = app.address.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(format!("{head}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed without an answer: {answer:?}");
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).to_lowercase()
}

#[tokio::test]
async fn an_answer_given_before_the_body_was_read_closes_the_connection() {
    // The body never comes (or comes late): the service answers 415 without reading it, and
    // must say that the connection ends, or a client reuses it and its next request fails.
    let app = TestApp::spawn().await;
    let head = raw_answer_head(
        &app,
        "POST /api/auth/signup HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 20",
        b"",
    )
    .await;
    assert!(head.starts_with("http/1.1 415"), "{head}");
    assert!(head.contains("\r\nconnection: close\r\n"), "{head}");

    // A body read to its end (here a 422): the connection stays open for the next request.
    let body = br#"{"name":"","email":"x","password":"p","role":"Nobody"}"#;
    let head = raw_answer_head(
        &app,
        &format!(
            "POST /api/auth/signup HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}",
            body.len()
        ),
        body,
    )
    .await;
    assert!(head.starts_with("http/1.1 422"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
}
