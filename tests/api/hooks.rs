//! GoTrue's auth hooks on user creation: before_user_created as a Postgres function inside the
//! signup transaction and as a signed HTTP call before it; after_user_created through the hook
//! outbox, delivered after the commit by the hook worker.

use serde_json::{Value, json};

use crate::support::{self, TestApp, assert_error, signup_body, status_json};
use atomic_signup::config::Hook;

/// The hook: records every call in public.hook_calls (so a test sees whether that write
/// committed with the signup), refuses emails of blocked.example, raises for raise@…, sleeps
/// past its timeout for slow@….
const HOOK: &str = "
create table public.hook_calls (email text not null, event jsonb not null);
create function public.before_user_created(event jsonb) returns jsonb
language plpgsql as $$
begin
  insert into public.hook_calls values (event->'user'->>'email', event);
  if event->'user'->>'email' like '%@blocked.example' then
    return '{\"error\": {\"http_code\": 403, \"message\": \"this domain may not sign up\"}}';
  elsif event->'user'->>'email' like 'raise@%' then
    raise exception 'the hook broke';
  elsif event->'user'->>'email' like 'slow@%' then
    perform pg_sleep(3);
  end if;
  return '{}';
end
$$;";

/// `public.<function>` as a hook.
fn public(function: &str) -> Hook {
    Hook::PgFunction {
        schema: "public".into(),
        function: function.into(),
    }
}

async fn app_with_hook() -> TestApp {
    let app = TestApp::builder()
        .configure(|s| s.hooks.before_user_created = Some(public("before_user_created")))
        .spawn()
        .await;
    sqlx::raw_sql(HOOK).execute(&app.db.pool).await.unwrap();
    app
}

async fn calls(app: &TestApp) -> Vec<(String, Value)> {
    sqlx::query_as("select email, event from public.hook_calls order by email")
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
}

async fn key_exists(app: &TestApp, key: &str) -> bool {
    sqlx::query_scalar(
        "select exists (select 1 from atomic_signup.idempotency_keys where key = $1)",
    )
    .bind(key)
    .fetch_one(&app.db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_refusal_writes_nothing_releases_the_key_and_another_domain_signs_up() {
    let app = app_with_hook().await;
    let blocked = signup_body("Mallory", "m@blocked.example", "Creator");
    for _ in 0..2 {
        // The same key twice: the first refusal gave it back, so the retry runs (and is
        // refused) again instead of replaying.
        let res = app.keyed_signup("blocked-key", &blocked).await;
        assert_eq!(res.headers().get("idempotent-replayed"), None);
        let body = assert_error(res, 403, "hook_rejected").await;
        assert_eq!(body["error"]["message"], "this domain may not sign up");
        assert!(!key_exists(&app, "blocked-key").await);
    }
    assert_eq!(support::counts(&app.db).await, (0, 0, 0));
    // The hook's own write rolled back with the refused signup.
    assert!(calls(&app).await.is_empty());

    let (status, answer) = status_json(
        app.keyed_signup("ok-key", &signup_body("Ada", "ada@example.com", "Brand"))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(support::counts(&app.db).await, (1, 1, 1));
    // Its write committed with the user; the input is GoTrue's shape for the user to be created.
    let calls = calls(&app).await;
    assert_eq!(calls.len(), 1);
    let event = &calls[0].1;
    assert_eq!(event["metadata"]["name"], "before-user-created");
    assert!(event["metadata"]["uuid"].is_string() && event["metadata"]["time"].is_string());
    assert_eq!(event["metadata"]["ip_address"], "127.0.0.1");
    let user = &event["user"];
    assert_eq!(user["id"], answer["user_id"]);
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "email", "providers": ["email"], "role": "Brand"})
    );
    assert_eq!(user["user_metadata"], json!({"name": "Ada"}));
    assert!(user.get("password").is_none() && user.get("encrypted_password").is_none());
    // A replay does not call the hook again.
    let res = app
        .keyed_signup("ok-key", &signup_body("Ada", "ada@example.com", "Brand"))
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(self::calls(&app).await.len(), 1);
}

#[tokio::test]
async fn a_hook_that_raises_or_runs_past_its_timeout_writes_nothing() {
    let app = app_with_hook().await;
    let res = app
        .keyed_signup(
            "raise-key",
            &signup_body("R", "raise@example.com", "Creator"),
        )
        .await;
    assert_error(res, 500, "internal").await;
    let res = app
        .keyed_signup("slow-key", &signup_body("S", "slow@example.com", "Creator"))
        .await;
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_error(res, 503, "hook_unavailable").await;
    assert_eq!(support::counts(&app.db).await, (0, 0, 0));
    assert!(calls(&app).await.is_empty());
    assert!(!key_exists(&app, "raise-key").await && !key_exists(&app, "slow-key").await);
    // The connection that ran the hook is fine afterwards, with the service's own timeout back.
    for i in 0..12 {
        let (status, body) = status_json(
            app.signup(&signup_body("U", &format!("u{i}@example.com"), "Creator"))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test]
async fn a_signup_that_fails_after_the_hook_rolls_the_hooks_write_back() {
    let app = app_with_hook().await;
    let body = signup_body("Ada", "ada@example.com", "Creator");
    assert_eq!(app.signup(&body).await.status(), 201);
    // The same email again: the hook accepts, the insert hits the unique index, all rolls back.
    assert_error(app.signup(&body).await, 409, "email_taken").await;
    assert_eq!(calls(&app).await.len(), 1);
    assert_eq!(support::counts(&app.db).await, (1, 1, 1));
}

// ---------------------------------------------------------------------------------------------
// An HTTP before_user_created hook, against a local receiver that checks every signature with
// the Standard Webhooks algorithm
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// One call the receiver got: the user's email, and whether its signature verified.
#[derive(Debug, Clone)]
struct Received {
    email: String,
    verified: bool,
    event: Value,
    /// The `webhook-id` header.
    id: String,
}

type Calls = std::sync::Arc<std::sync::Mutex<Vec<Received>>>;

/// Standard Webhooks' verification: some `v1,<base64>` of the header is the HMAC-SHA256, keyed
/// with the base64-decoded secret, of `id.timestamp.body`, and the timestamp is within 5 minutes.
fn verifies(headers: &axum::http::HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let (id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let fresh = timestamp
        .parse::<i64>()
        .is_ok_and(|t| (time::OffsetDateTime::now_utc().unix_timestamp() - t).abs() < 300);
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("v1,whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    fresh
        && !id.is_empty()
        && header("webhook-signature")
            .split(' ')
            .any(|s| s.trim_end_matches(',') == expected)
}

/// The receiver: answers by the email's local part (refuse, nocontent, bad, busy: 503 with
/// Retry-After on its first call, down: 503 without one on its first two calls, slow: past the
/// 5 s timeout, anything else: 200 `{}`).
async fn receiver() -> (String, Calls) {
    let calls: Calls = Default::default();
    let app = receiver_router(std::sync::Arc::clone(&calls));
    let url = format!("{}/hook", support::serve_on_loopback(app).await);
    (url, calls)
}

/// The receiver's routes (see [`receiver`]), recording into `state`.
fn receiver_router(state: Calls) -> axum::Router {
    use axum::response::IntoResponse;
    axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(calls): axum::extract::State<Calls>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let email = event["user"]["email"].as_str().unwrap_or("").to_owned();
                    let earlier = {
                        let mut calls = calls.lock().unwrap();
                        let earlier = calls.iter().filter(|c| c.email == email).count();
                        calls.push(Received {
                            email: email.clone(),
                            verified: verifies(&headers, &body),
                            event,
                            id: headers
                                .get("webhook-id")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned(),
                        });
                        earlier
                    };
                    let json = [("content-type", "application/json")];
                    match email.split('@').next().unwrap_or("") {
                        "refuse" => (
                            json,
                            r#"{"error": {"http_code": 422, "message": "not this one"}}"#,
                        )
                            .into_response(),
                        "nocontent" => axum::http::StatusCode::NO_CONTENT.into_response(),
                        "bad" => axum::http::StatusCode::BAD_REQUEST.into_response(),
                        "busy" if earlier == 0 => (
                            axum::http::StatusCode::SERVICE_UNAVAILABLE,
                            [("retry-after", "1")],
                        )
                            .into_response(),
                        "down" if earlier < 2 => {
                            axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response()
                        }
                        "slow" => {
                            tokio::time::sleep(std::time::Duration::from_secs(8)).await;
                            (json, "{}").into_response()
                        }
                        // An answer of exactly the 200 KiB the service reads, and one byte more.
                        "limit" => (json, padded(200 * 1024)).into_response(),
                        "overlimit" => (json, padded(200 * 1024 + 1)).into_response(),
                        _ => (json, "{}").into_response(),
                    }
                },
            ),
        )
        .with_state(state)
}

/// A JSON object of exactly `bytes` bytes: `{"pad":"xx…"}`.
fn padded(bytes: usize) -> String {
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(bytes - 10))
}

async fn app_with_http_hook(url: String) -> TestApp {
    TestApp::builder()
        .configure(move |s| s.hooks.before_user_created = Some(http(url)))
        .spawn()
        .await
}

#[tokio::test]
async fn an_http_hook_is_signed_and_its_answer_decides() {
    let (url, calls) = receiver().await;
    let app = app_with_http_hook(url).await;
    for (email, status) in [
        ("ok@example.com", 201),
        ("nocontent@example.com", 201),
        ("busy@example.com", 201),
        ("limit@example.com", 201),
        ("refuse@example.com", 422),
        ("bad@example.com", 500),
        ("overlimit@example.com", 500),
    ] {
        let res = app
            .keyed_signup(email, &signup_body("Ada", email, "Creator"))
            .await;
        let (got, body) = status_json(res).await;
        assert_eq!(got, status, "{email}: {body}");
        if status != 201 {
            // An answer the service cannot use is the hook's fault, not the user's: 500.
            let code = if email.starts_with("overlimit") {
                "internal"
            } else {
                "hook_rejected"
            };
            assert_eq!(body["error"]["code"], code, "{email}: {body}");
            assert!(
                !key_exists(&app, email).await,
                "{email}: the key was given back"
            );
        }
        if email.starts_with("refuse") {
            assert_eq!(body["error"]["message"], "not this one");
        }
    }
    assert_eq!(support::counts(&app.db).await, (4, 4, 4));
    let received = calls.lock().unwrap().clone();
    // busy@ twice (503 with Retry-After, then 200), the others once; every call signed.
    assert_eq!(received.len(), 8, "{received:#?}");
    assert!(received.iter().all(|c| c.verified), "{received:#?}");
    assert_eq!(
        received
            .iter()
            .filter(|c| c.email == "busy@example.com")
            .count(),
        2
    );
    let ok = received
        .iter()
        .find(|c| c.email == "ok@example.com")
        .unwrap();
    assert_eq!(ok.event["metadata"]["name"], "before-user-created");
    assert_eq!(ok.event["user"]["app_metadata"]["role"], "Creator");
    // A replay asks nothing.
    let res = app
        .keyed_signup(
            "ok@example.com",
            &signup_body("Ada", "ok@example.com", "Creator"),
        )
        .await;
    assert_eq!(res.status(), 201);
    assert_eq!(calls.lock().unwrap().len(), 8);
}

#[tokio::test]
async fn an_http_hook_past_its_timeout_or_unreachable_is_503_and_writes_nothing() {
    let (url, _calls) = receiver().await;
    let app = app_with_http_hook(url).await;
    let res = app
        .keyed_signup("slow", &signup_body("S", "slow@example.com", "Creator"))
        .await;
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_error(res, 503, "hook_unavailable").await;
    // Nobody listening: connections refused on every attempt.
    let app2 =
        app_with_http_hook(format!("http://127.0.0.1:{}/hook", support::closed_port())).await;
    let res = app2
        .signup(&signup_body("U", "u@example.com", "Creator"))
        .await;
    assert_error(res, 503, "hook_unavailable").await;
    assert_eq!(support::counts(&app.db).await, (0, 0, 0));
    assert_eq!(support::counts(&app2.db).await, (0, 0, 0));
    assert!(!key_exists(&app, "slow").await);
}

fn secrets() -> Vec<atomic_signup::config::WebhookSecret> {
    vec![atomic_signup::config::WebhookSecret::parse(SECRET).unwrap()]
}

/// An HTTP hook at `url`, signed with [`SECRET`].
fn http(url: String) -> Hook {
    Hook::Http {
        url,
        secrets: secrets(),
    }
}

/// The after_user_created rows: (email, status, attempts, webhook id), by email.
async fn after_rows(db: &support::TestDb) -> Vec<(String, String, i32, uuid::Uuid)> {
    sqlx::query_as(
        "select u.email, o.status, o.attempts, o.webhook_id from atomic_signup.hook_outbox o \
         join auth.users u on u.id = o.user_id order by u.email",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn all_sent(db: &support::TestDb, expected: usize) -> bool {
    let rows = after_rows(db).await;
    rows.len() == expected && rows.iter().all(|r| r.1 == "sent")
}

/// The service with an HTTP after_user_created hook at `url`.
async fn app_with_after_hook(url: String) -> TestApp {
    TestApp::builder()
        .configure(move |s| s.hooks.after_user_created = Some(http(url)))
        .spawn()
        .await
}

const WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[tokio::test]
async fn after_user_created_is_told_once_per_user_after_the_commit_signed_with_a_fixed_id() {
    let (url, calls) = receiver().await;
    let app = app_with_after_hook(url).await;
    let mut ids = std::collections::BTreeMap::new();
    for email in [
        "ok@example.com",
        "down@example.com",
        "nocontent@example.com",
    ] {
        let (status, body) = status_json(
            app.keyed_signup(email, &signup_body("Ada", email, "Creator"))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{email}: {body}");
        ids.insert(email, body["user_id"].as_str().unwrap().to_owned());
    }
    // A replay and a taken email create nobody: nothing more to tell.
    let res = app
        .keyed_signup(
            "ok@example.com",
            &signup_body("Ada", "ok@example.com", "Creator"),
        )
        .await;
    assert_eq!(res.status(), 201);
    let res = app
        .signup(&signup_body("Ada", "ok@example.com", "Creator"))
        .await;
    assert_error(res, 409, "email_taken").await;
    assert!(
        support::eventually(WAIT, || all_sent(&app.db, 3)).await,
        "{:#?}",
        after_rows(&app.db).await
    );
    let rows = after_rows(&app.db).await;
    let received = calls.lock().unwrap().clone();
    // down@ failed twice (503) and was retried with backoff: three calls, one id.
    assert_eq!(received.len(), 5, "{received:#?}");
    assert!(received.iter().all(|c| c.verified), "{received:#?}");
    for (email, _, attempts, webhook_id) in &rows {
        let to_this: Vec<&Received> = received.iter().filter(|c| &c.email == email).collect();
        let expected = if email == "down@example.com" { 3 } else { 1 };
        assert_eq!(to_this.len(), expected, "{email}: {to_this:#?}");
        assert_eq!(*attempts, expected as i32, "{email}");
        for call in to_this {
            assert_eq!(
                call.id,
                webhook_id.to_string(),
                "{email}: the same id every time"
            );
            assert_eq!(call.event["metadata"]["uuid"], webhook_id.to_string());
            assert_eq!(call.event["metadata"]["name"], "after-user-created");
            assert_eq!(call.event["user"]["id"], ids[email.as_str()]);
            assert_eq!(call.event["user"]["email"], email.as_str());
            assert_eq!(call.event["user"]["app_metadata"]["role"], "Creator");
            assert_eq!(call.event["user"]["user_metadata"]["name"], "Ada");
            assert_eq!(call.event["user"]["identities"][0]["provider"], "email");
            assert!(
                call.event["user"]["created_at"].is_string(),
                "{:#}",
                call.event
            );
        }
    }
    // The counters are the process's (other tests deliver too): at least this test's.
    let metrics = app.metrics_text().await;
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        value("atomic_signup_hook_outbox_delivered_total") >= 3.0,
        "{metrics}"
    );
    assert!(
        value("atomic_signup_hook_outbox_retried_total") >= 2.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("atomic_signup_hook_outbox_backlog"),
        "{metrics}"
    );
}

/// The after_user_created function: records each call in public.after_calls; fails the first
/// call for flaky@… (a sequence counts calls: it is not rolled back with them).
const AFTER_HOOK: &str = "
create table public.after_calls (email text not null, event jsonb not null);
create sequence public.flaky_calls;
create function public.after_user_created(event jsonb) returns jsonb
language plpgsql as $$
begin
  insert into public.after_calls values (event->'user'->>'email', event);
  if event->'user'->>'email' like 'flaky@%' and nextval('public.flaky_calls') = 1 then
    raise exception 'the hook broke once';
  end if;
  return '{}';
end
$$;";

#[tokio::test]
async fn a_postgres_after_user_created_function_is_told_exactly_once_and_a_failure_is_retried() {
    let app = TestApp::builder()
        .configure(|s| s.hooks.after_user_created = Some(public("after_user_created")))
        .spawn()
        .await;
    sqlx::raw_sql(AFTER_HOOK)
        .execute(&app.db.pool)
        .await
        .unwrap();
    for email in ["ok@example.com", "flaky@example.com"] {
        let res = app.signup(&signup_body("Ada", email, "Creator")).await;
        assert_eq!(res.status(), 201, "{email}");
    }
    assert!(
        support::eventually(WAIT, || all_sent(&app.db, 2)).await,
        "{:#?}",
        after_rows(&app.db).await
    );
    let recorded: Vec<(String, Value)> =
        sqlx::query_as("select email, event from public.after_calls order by email")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    // The failed call's write was rolled back with it; the second call's committed with "sent".
    let emails: Vec<&str> = recorded.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(emails, ["flaky@example.com", "ok@example.com"]);
    let flaky_calls: i64 = sqlx::query_scalar("select last_value from public.flaky_calls")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(flaky_calls, 2);
    let rows = after_rows(&app.db).await;
    assert_eq!(rows[0].2, 2, "flaky: two attempts");
    assert_eq!(rows[1].2, 1, "ok: one attempt");
    assert_eq!(recorded[1].1["metadata"]["name"], "after-user-created");
    assert_eq!(recorded[1].1["metadata"]["uuid"], rows[1].3.to_string());
}

#[tokio::test]
async fn two_replicas_tell_the_after_hook_once_per_user() {
    let (url, calls) = receiver().await;
    let hook = http(url);
    let one_hook = hook.clone();
    let one = TestApp::builder()
        .configure(move |s| s.hooks.after_user_created = Some(one_hook))
        .spawn()
        .await;
    let two = one
        .another_instance()
        .configure(move |s| s.hooks.after_user_created = Some(hook))
        .spawn()
        .await;
    let signups = (0..20).map(|i| {
        let app = if i % 2 == 0 { &one } else { &two };
        async move {
            let email = format!("replica{i}@example.com");
            app.signup(&signup_body("R", &email, "Creator"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(signups).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert!(
        support::eventually(WAIT, || all_sent(&one.db, 20)).await,
        "{:#?}",
        after_rows(&one.db).await
    );
    let received = calls.lock().unwrap().clone();
    let ids: std::collections::BTreeSet<&str> = received.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(received.len(), 20, "{received:#?}");
    assert_eq!(ids.len(), 20, "one id per user, each told once");
}

#[tokio::test]
async fn a_signup_that_fails_queues_no_after_hook_call() {
    let app = TestApp::builder()
        .configure(|s| {
            s.hooks.before_user_created = Some(public("before_user_created"));
            s.hooks.after_user_created = Some(public("after_user_created"));
        })
        .spawn()
        .await;
    sqlx::raw_sql(HOOK).execute(&app.db.pool).await.unwrap();
    sqlx::raw_sql(AFTER_HOOK)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let res = app
        .signup(&signup_body("B", "b@blocked.example", "Creator"))
        .await;
    assert_error(res, 403, "hook_rejected").await;
    let res = app
        .signup(&signup_body("A", "a@example.com", "Creator"))
        .await;
    assert_eq!(res.status(), 201);
    assert!(support::eventually(WAIT, || all_sent(&app.db, 1)).await);
    assert_eq!(after_rows(&app.db).await[0].0, "a@example.com");
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_after_hook_call_when_it_comes_back() {
    // Down: its port takes connections and closes them unanswered, until `up` is sent.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (up, mut came_up) = tokio::sync::oneshot::channel::<()>();
    let calls: Calls = Default::default();
    let router = receiver_router(std::sync::Arc::clone(&calls));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => drop(accepted),
                _ = &mut came_up => break,
            }
        }
        axum::serve(listener, router).await
    });
    let app = app_with_after_hook(url).await;
    let res = app
        .signup(&signup_body("D", "later@example.com", "Creator"))
        .await;
    assert_eq!(res.status(), 201, "the answer does not wait for the hook");
    let failed_once = || async {
        after_rows(&app.db)
            .await
            .first()
            .is_some_and(|r| r.1 == "pending" && r.2 >= 1)
    };
    assert!(support::eventually(WAIT, failed_once).await);
    assert!(calls.lock().unwrap().is_empty());
    up.send(()).unwrap();
    assert!(
        support::eventually(WAIT, || all_sent(&app.db, 1)).await,
        "{:#?}",
        after_rows(&app.db).await
    );
    let received = calls.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert!(received[0].verified);
    assert_eq!(received[0].id, after_rows(&app.db).await[0].3.to_string());
}
