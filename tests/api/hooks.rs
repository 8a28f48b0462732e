//! GoTrue's before_user_created hook as a Postgres function, called inside the signup
//! transaction (HOOK_BEFORE_USER_CREATED_URI=pg-functions://…).

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

async fn app_with_hook() -> TestApp {
    let app = TestApp::builder()
        .configure(|s| {
            s.hooks.before_user_created = Some(Hook::PgFunction {
                schema: "public".into(),
                function: "before_user_created".into(),
            })
        })
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
/// Retry-After on its first call, slow: past the 5 s timeout, anything else: 200 `{}`).
async fn receiver() -> (String, Calls) {
    use axum::response::IntoResponse;
    let calls: Calls = Default::default();
    let state = std::sync::Arc::clone(&calls);
    let app = axum::Router::new()
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
                        "slow" => {
                            tokio::time::sleep(std::time::Duration::from_secs(8)).await;
                            (json, "{}").into_response()
                        }
                        _ => (json, "{}").into_response(),
                    }
                },
            ),
        )
        .with_state(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, calls)
}

async fn app_with_http_hook(url: String) -> TestApp {
    TestApp::builder()
        .configure(move |s| {
            s.hooks.before_user_created = Some(Hook::Http {
                url,
                secrets: vec![atomic_signup::config::WebhookSecret::parse(SECRET).unwrap()],
            })
        })
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
        ("refuse@example.com", 422),
        ("bad@example.com", 500),
    ] {
        let res = app
            .keyed_signup(email, &signup_body("Ada", email, "Creator"))
            .await;
        let (got, body) = status_json(res).await;
        assert_eq!(got, status, "{email}: {body}");
        if status != 201 {
            assert_eq!(body["error"]["code"], "hook_rejected", "{email}: {body}");
            assert!(
                !key_exists(&app, email).await,
                "{email}: the key was given back"
            );
        }
        if email.starts_with("refuse") {
            assert_eq!(body["error"]["message"], "not this one");
        }
    }
    assert_eq!(support::counts(&app.db).await, (3, 3, 3));
    let received = calls.lock().unwrap().clone();
    // busy@ twice (503 with Retry-After, then 200), the others once; every call signed.
    assert_eq!(received.len(), 6, "{received:#?}");
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
    assert_eq!(calls.lock().unwrap().len(), 6);
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
