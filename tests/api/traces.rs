//! OpenTelemetry traces (the real binary, OTEL_EXPORTER_OTLP_ENDPOINT at a receiver inside the
//! test that decodes OTLP/HTTP protobuf with `opentelemetry-proto`): one signup is one trace that
//! continues the client's `traceparent`, with the server span and its children, and none of the
//! secrets in the exported bytes; a login sends GoTrue a `traceparent` of the same trace.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message as _;

use crate::support::{self, ServiceProcess, TestDb, signup_body};
use gotrue_double::{ANON_KEY, Endpoint, GoTrueDouble};

/// What the collector received: each export's raw bytes.
type Exports = Arc<Mutex<Vec<Vec<u8>>>>;

mod transports;

async fn collector() -> (String, Exports) {
    let (router, exports) = collector_router();
    (support::serve_on_loopback(router).await, exports)
}

/// An OTLP/HTTP collector's routes, keeping what it receives.
fn collector_router() -> (axum::Router, Exports) {
    let exports: Exports = Default::default();
    let state = Arc::clone(&exports);
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |axum::extract::State(exports): axum::extract::State<Exports>,
                 body: axum::body::Bytes| async move {
                    exports.lock().unwrap().push(body.to_vec());
                    axum::http::StatusCode::OK
                },
            ),
        )
        .with_state(state);
    (app, exports)
}

fn spans(exports: &Exports) -> Vec<Span> {
    exports
        .lock()
        .unwrap()
        .iter()
        .flat_map(|bytes| {
            ExportTraceServiceRequest::decode(bytes.as_slice())
                .expect("an OTLP protobuf export")
                .resource_spans
        })
        .flat_map(|r| r.scope_spans)
        .flat_map(|s| s.spans)
        .collect()
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    value_of(&span.attributes, key)
}

/// The value of `key` among `attributes` (a span's, a resource's), as text.
fn value_of(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| a.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            AnyValue::StringValue(s) => s.clone(),
            AnyValue::IntValue(i) => i.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The service binary with a cheap hash, exporting traces to `endpoint` every 100 ms (tests add
/// their own variables after, later ones win).
fn traced_binary(db: &TestDb, endpoint: &str) -> tokio::process::Command {
    let mut command = support::service_binary(&support::database_url(db, "postgres", "postgres"));
    command
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        .env("OTEL_BSP_SCHEDULE_DELAY", "100");
    command
}

/// With the GoTrue `double` as its GoTrue.
fn with_double(
    mut command: tokio::process::Command,
    double: &GoTrueDouble,
) -> tokio::process::Command {
    command
        .env("GOTRUE_URL", &double.url)
        .env("SUPABASE_ANON_KEY", ANON_KEY);
    command
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

#[tokio::test]
async fn a_signup_is_one_trace_that_continues_the_client_s_and_carries_no_secret() {
    let db = TestDb::migrated().await;
    let double = GoTrueDouble::start(db.pool.clone()).await;
    let (endpoint, exports) = collector().await;
    // An HTTP before_user_created hook that records the traceparent it gets, and accepts.
    let hook_calls: Arc<Mutex<Vec<Option<String>>>> = Default::default();
    let recorded = Arc::clone(&hook_calls);
    let hook = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap| async move {
            let traceparent = headers
                .get("traceparent")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            recorded.lock().unwrap().push(traceparent);
            axum::http::StatusCode::NO_CONTENT
        }),
    );
    let hook_url = format!("{}/hook", support::serve_on_loopback(hook).await);
    let mut command = with_double(traced_binary(&db, &endpoint), &double);
    command
        .env("REQUIRE_EMAIL_CONFIRMATION", "false")
        .env("HOOK_BEFORE_USER_CREATED_ENABLED", "true")
        .env("HOOK_BEFORE_USER_CREATED_URI", &hook_url)
        .env(
            "HOOK_BEFORE_USER_CREATED_SECRETS",
            "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        );
    let service = ServiceProcess::start(command).await;
    let client = support::http_client();
    let password = "correct horse battery";
    let res = client
        .post(format!("{}/api/auth/signup", service.base))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&signup_body("Traced", "traced@example.com", "Creator"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let server_span = || {
        spans(&exports)
            .into_iter()
            .find(|s| s.name == "POST /api/auth/signup")
    };
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            server_span().is_some()
        })
        .await,
        "the signup's server span was exported:\n{}",
        service.logs()
    );
    let server = server_span().unwrap();
    assert_eq!(hex(&server.trace_id), TRACE_ID, "the client's trace");
    assert_eq!(
        hex(&server.parent_span_id),
        PARENT_ID,
        "under the client's span"
    );
    assert_eq!(server.kind, 2, "SPAN_KIND_SERVER");
    assert_eq!(
        attribute(&server, "http.route").as_deref(),
        Some("/api/auth/signup")
    );
    assert_eq!(
        attribute(&server, "http.request.method").as_deref(),
        Some("POST")
    );
    let status = || attribute(&server_span().unwrap(), "http.response.status_code");
    assert_eq!(status().as_deref(), Some("201"));
    // The signup's own span is a child of the server span, in the same trace.
    let signup_span = || {
        spans(&exports)
            .into_iter()
            .find(|s| s.name == "signup" && hex(&s.trace_id) == TRACE_ID)
    };
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            signup_span().is_some()
        })
        .await,
        "{:#?}",
        spans(&exports).iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    assert_eq!(signup_span().unwrap().parent_span_id, server.span_id);
    // Its log lines carry the trace's and the server span's ids.
    let logs = service.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("user signed up"))
        .expect("the signup's log line");
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    let request = &line["spans"][0];
    assert_eq!(request["name"], "request", "{line:#}");
    assert_eq!(request["trace_id"], TRACE_ID, "{line:#}");
    assert_eq!(request["span_id"], hex(&server.span_id), "{line:#}");
    // The transaction, the hash and the wait for a connection are its children too.
    let children: Vec<String> = spans(&exports)
        .into_iter()
        .filter(|s| hex(&s.trace_id) == TRACE_ID)
        .map(|s| s.name)
        .collect();
    for name in [
        "auth_hook",
        "password_hash",
        "signup_transaction",
        "db_acquire",
    ] {
        assert!(children.iter().any(|c| c == name), "{name}: {children:?}");
    }
    let traced = spans(&exports);
    let named = |name: &str| {
        traced
            .iter()
            .find(|s| s.name == name && hex(&s.trace_id) == TRACE_ID)
            .unwrap()
    };
    for child in ["password_hash_wait", "argon2id"] {
        assert_eq!(
            named(child).parent_span_id,
            named("password_hash").span_id,
            "{child}"
        );
    }
    assert_eq!(
        named("db_acquire").parent_span_id,
        named("signup_transaction").span_id
    );
    // The hook got the trace on, from the hook call's span.
    let to_hook = hook_calls.lock().unwrap().clone();
    assert_eq!(to_hook.len(), 1);
    let sent = to_hook[0].clone().expect("a traceparent to the hook");
    assert!(sent.starts_with(&format!("00-{TRACE_ID}-")), "{sent}");

    // A login: GoTrue gets a traceparent of the login's trace.
    let res = client
        .post(format!("{}/api/auth/login", service.base))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&serde_json::json!({"email": "traced@example.com", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let call = double.calls_to(Endpoint::Token).pop().unwrap();
    let sent = call.traceparent.expect("a traceparent to GoTrue");
    assert!(sent.starts_with(&format!("00-{TRACE_ID}-")), "{sent}");
    assert!(!sent.contains(PARENT_ID), "a span of the service's: {sent}");
    // That span is the GoTrue call's client span.
    let gotrue_span = || {
        spans(&exports)
            .into_iter()
            .find(|s| s.name == "gotrue token" && hex(&s.trace_id) == TRACE_ID)
    };
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            gotrue_span().is_some()
        })
        .await,
        "{:#?}",
        spans(&exports).iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    let gotrue_span = gotrue_span().unwrap();
    assert_eq!(gotrue_span.kind, 3, "SPAN_KIND_CLIENT");
    assert_eq!(&sent[36..52], hex(&gotrue_span.span_id));
    // The HTTP client span's attributes: GoTrue's address, not the login's body.
    let double_url = reqwest::Url::parse(&double.url).unwrap();
    for (key, value) in [
        ("http.request.method", "POST".to_owned()),
        ("http.response.status_code", "200".to_owned()),
        ("server.address", double_url.host_str().unwrap().to_owned()),
        ("server.port", double_url.port().unwrap().to_string()),
        (
            "url.full",
            format!(
                "{}/token?grant_type=password",
                double.url.trim_end_matches('/')
            ),
        ),
    ] {
        assert_eq!(
            attribute(&gotrue_span, key).as_deref(),
            Some(value.as_str()),
            "{key}"
        );
    }

    // Nothing secret in anything exported.
    let service = service.stop().await;
    let raw: Vec<u8> = exports.lock().unwrap().concat();
    for secret in [password, "traced@example.com", "$argon2id$", ANON_KEY] {
        assert!(
            !raw.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} was exported"
        );
    }
    drop(service);
}

/// The SDK's standard variables take effect: the service's name and resource attributes in
/// every export, and a sampler that keeps nothing exports nothing (SIGTERM's flush, once it has
/// finished, has sent whatever was kept).
#[tokio::test]
async fn the_standard_variables_name_the_service_and_choose_what_is_kept() {
    let db = TestDb::migrated().await;
    let (endpoint, exports) = collector().await;
    let mut command = traced_binary(&db, &endpoint);
    command
        .env("OTEL_SERVICE_NAME", "signup-eu")
        .env("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test");
    let service = ServiceProcess::start(command).await;
    sign_up(&service, "named@example.com").await;
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            !exports.lock().unwrap().is_empty()
        })
        .await,
        "nothing exported"
    );
    service.stop().await;
    let raw = exports.lock().unwrap().clone();
    for bytes in &raw {
        for resource_spans in ExportTraceServiceRequest::decode(bytes.as_slice())
            .unwrap()
            .resource_spans
        {
            let resource = resource_spans.resource.expect("a resource");
            let value = |key: &str| value_of(&resource.attributes, key);
            assert_eq!(value("service.name").as_deref(), Some("signup-eu"));
            assert_eq!(value("deployment.environment").as_deref(), Some("test"));
        }
    }

    let (endpoint, exports) = collector().await;
    let mut command = traced_binary(&db, &endpoint);
    command.env("OTEL_TRACES_SAMPLER", "always_off");
    let mut service = ServiceProcess::start(command).await;
    sign_up(&service, "unsampled@example.com").await;
    service.signal(libc::SIGTERM);
    let exit = service.exited().await.expect("an exit status");
    assert!(exit.success(), "{exit:?}");
    assert!(
        !service.logs().contains("traces not flushed"),
        "the flush was cut short: {}",
        service.logs()
    );
    assert!(spans(&exports).is_empty(), "{:?}", spans(&exports));
}

/// Signs `email` up through `service`.
async fn sign_up(service: &ServiceProcess, email: &str) {
    let res = support::http_client()
        .post(format!("{}/api/auth/signup", service.base))
        .json(&signup_body("T", email, "Creator"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{email}");
}

/// Waits until `service` counts spans whose export failed, and has said so in its log.
async fn export_fails(service: &ServiceProcess) {
    assert!(
        support::eventually(Duration::from_secs(60), || async {
            dropped(service, "export_failed").await > 0.0
                && service.logs().contains("trace export failed")
        })
        .await,
        "no failed export counted and logged:\n{}\n{}",
        service.metrics_text().await,
        service.logs()
    );
}

/// `atomic_signup_trace_spans_dropped_total{reason}` of `service` (0 before any).
async fn dropped(service: &ServiceProcess, reason: &str) -> f64 {
    let prefix = format!("atomic_signup_trace_spans_dropped_total{{reason=\"{reason}\"}}");
    service
        .metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// A collector that answers 503 for a while (down behind its proxy), then 200: the spans of the
/// refused exports are counted as dropped, the outage is logged once however many batches fail,
/// its end once, and the spans after it arrive.
#[tokio::test]
async fn a_collector_outage_is_counted_and_logged_once() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    #[derive(Clone, Default)]
    struct Collector {
        up: Arc<AtomicBool>,
        refused: Arc<AtomicUsize>,
        taken: Arc<AtomicUsize>,
    }
    let db = TestDb::migrated().await;
    let collector = Collector::default();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(
                |axum::extract::State(c): axum::extract::State<Collector>| async move {
                    if c.up.load(Ordering::SeqCst) {
                        c.taken.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::OK
                    } else {
                        c.refused.fetch_add(1, Ordering::SeqCst);
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    }
                },
            ),
        )
        .with_state(collector.clone());
    let endpoint = support::serve_on_loopback(app).await;
    let mut command = traced_binary(&db, &endpoint);
    command
        .env("METRICS_BIND_ADDR", "127.0.0.1:0")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50");
    let service = ServiceProcess::start(command).await;
    let signup = |i: usize| {
        let service = &service;
        async move { sign_up(service, &format!("o{i}@example.com")).await }
    };
    // Three refused exports at least, each after a signup of its own.
    let mut i = 0;
    while collector.refused.load(Ordering::SeqCst) < 3 {
        let before = collector.refused.load(Ordering::SeqCst);
        signup(i).await;
        i += 1;
        assert!(
            support::eventually(Duration::from_secs(30), || async {
                collector.refused.load(Ordering::SeqCst) > before
            })
            .await,
            "no export after signup {i}"
        );
    }
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            dropped(&service, "export_failed").await >= 3.0
        })
        .await,
        "{}",
        service.metrics_text().await
    );
    // The warning says why (its count is checked at the end, with the whole log).
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            service.logs().contains("status code: 503")
        })
        .await,
        "{}",
        service.logs()
    );
    let warned = |logs: &str| logs.matches("trace export failed").count();
    // The collector is back: the next export is taken, and that is said once.
    collector.up.store(true, Ordering::SeqCst);
    signup(i).await;
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            collector.taken.load(Ordering::SeqCst) > 0
                && service.logs().contains("trace export works again")
        })
        .await,
        "{}",
        service.logs()
    );
    signup(i + 1).await;
    let taken = collector.taken.load(Ordering::SeqCst);
    assert!(
        support::eventually(Duration::from_secs(30), || async {
            collector.taken.load(Ordering::SeqCst) > taken
        })
        .await
    );
    let logs = service.stop().await;
    assert_eq!(warned(&logs), 1, "{logs}");
    assert_eq!(
        logs.matches("trace export works again").count(),
        1,
        "{logs}"
    );
}

/// A collector whose answer is endless (here 1 MiB): the service reads 64 KiB of it at most, and
/// counts the batch as not exported.
#[tokio::test]
async fn a_collector_s_oversized_answer_is_not_read_whole() {
    let db = TestDb::migrated().await;
    let answers = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&answers);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move || {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { vec![0u8; 1024 * 1024] }
        }),
    );
    let endpoint = support::serve_on_loopback(app).await;
    let mut command = traced_binary(&db, &endpoint);
    command.env("METRICS_BIND_ADDR", "127.0.0.1:0");
    let service = ServiceProcess::start(command).await;
    sign_up(&service, "big@example.com").await;
    export_fails(&service).await;
    assert!(answers.load(std::sync::atomic::Ordering::SeqCst) > 0);
}

/// A collector that takes the connection and never answers: the export queue
/// (OTEL_BSP_MAX_QUEUE_SIZE) fills, spans are dropped and counted, signups go on, and SIGTERM
/// still stops the service, cutting the last flush short.
#[tokio::test]
async fn a_collector_that_never_answers_costs_spans_not_signups() {
    let db = TestDb::migrated().await;
    let hanging = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(std::future::pending::<axum::http::StatusCode>),
    );
    let endpoint = support::serve_on_loopback(hanging).await;
    let mut command = traced_binary(&db, &endpoint);
    command
        .env("METRICS_BIND_ADDR", "127.0.0.1:0")
        .env("OTEL_BSP_SCHEDULE_DELAY", "50")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "8");
    let service = ServiceProcess::start(command).await;
    let client = support::http_client();
    let dropped = || async { dropped(&service, "queue_full").await };
    let mut i = 0;
    // Signups until spans are dropped (the first export hangs, the queue of 8 fills).
    while dropped().await == 0.0 {
        assert!(i < 50, "no span dropped after {i} signups");
        let res = client
            .post(format!("{}/api/auth/signup", service.base))
            .json(&signup_body("Q", &format!("q{i}@example.com"), "Creator"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201, "signup {i}");
        i += 1;
    }
    // And the signups after it still answer.
    for j in 0..5 {
        let res = client
            .post(format!("{}/api/auth/signup", service.base))
            .json(&signup_body(
                "Q",
                &format!("after{j}@example.com"),
                "Creator",
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 201);
    }
    assert!(dropped().await > 0.0);
    // An export still hangs: SIGTERM stops the service all the same, after a short flush.
    let mut service = service;
    let started = std::time::Instant::now();
    service.signal(libc::SIGTERM);
    let exit = tokio::time::timeout(Duration::from_secs(60), service.exited())
        .await
        .expect("the service exits")
        .expect("an exit status");
    println!("exited {:?} after SIGTERM", started.elapsed());
    assert!(exit.success(), "{exit:?}");
    assert!(
        service
            .logs()
            .contains("traces not flushed within 2 s at shutdown"),
        "the flush was cut short, not waited out:\n{}",
        service.logs()
    );
}

/// The confirmation mail is sent by the outbox worker, in a trace of its own that links back
/// to the signup's: the outbox row keeps the signup's traceparent.
#[tokio::test]
async fn the_confirmation_mail_s_delivery_links_to_the_signup_s_trace() {
    let db = TestDb::migrated().await;
    let double = GoTrueDouble::start(db.pool.clone()).await;
    let (endpoint, exports) = collector().await;
    let mut command = with_double(traced_binary(&db, &endpoint), &double);
    command.env("OUTBOX_POLL_INTERVAL_MS", "50");
    let service = ServiceProcess::start(command).await;
    let res = support::http_client()
        .post(format!("{}/api/auth/signup", service.base))
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01"))
        .json(&signup_body("Mailed", "mailed@example.com", "Creator"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let kept: Option<String> =
        sqlx::query_scalar("select trace_context from atomic_signup.confirmation_outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    let kept = kept.expect("the signup's traceparent kept with the row");
    assert!(kept.starts_with(&format!("00-{TRACE_ID}-")), "{kept}");
    let delivery = || {
        spans(&exports)
            .into_iter()
            .find(|s| s.name == "outbox" && !s.links.is_empty())
    };
    assert!(
        support::eventually(Duration::from_secs(30), || async { delivery().is_some() }).await,
        "{:#?}\n{}",
        spans(&exports).iter().map(|s| &s.name).collect::<Vec<_>>(),
        service.logs()
    );
    let delivery = delivery().unwrap();
    assert_ne!(hex(&delivery.trace_id), TRACE_ID, "a trace of its own");
    assert_eq!(hex(&delivery.links[0].trace_id), TRACE_ID);
    assert_eq!(hex(&delivery.links[0].span_id), &kept[36..52]);
    assert_eq!(double.calls_to(Endpoint::Resend).len(), 1);
    let raw: Vec<u8> = exports.lock().unwrap().concat();
    let email = b"mailed@example.com";
    assert!(
        !raw.windows(email.len()).any(|w| w == email),
        "the email was exported"
    );
}
