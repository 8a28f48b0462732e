//! What the real binary logs: JSON lines with the request id, and never a secret — not the
//! user's password, its argon2 hash, the tokens, the anon key, nor the database password — even
//! at debug level.

use crate::support;

use std::time::Duration;

use gotrue_double::{ANON_KEY, GoTrueDouble};
use serde_json::{Value, json};
use support::{ServiceProcess, TestDb, eventually};

const USER_PASSWORD: &str = "Sup3r-Secret-Passphrase-4711";
const DB_PASSWORD: &str = "db-Pa55word-Never-Logged-0815";
const IDEMPOTENCY_SECRET: &str = "idem-Secret-Never-Logged-0123456789abcdef";

#[tokio::test]
async fn secrets_never_reach_the_logs_and_every_request_line_has_its_id() {
    let db = TestDb::migrated().await;
    // A login role with a distinctive password, so it can be searched for in the logs.
    let role = format!("logs_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "create role {role} login password '{DB_PASSWORD}'; grant atomic_signup_service to {role};"
    ))
    .execute(&db.pool)
    .await
    .unwrap();
    let double = GoTrueDouble::start(db.pool.clone()).await;
    let url = support::database_url(&db, &role, DB_PASSWORD);
    let mut command = support::service_binary(&url);
    command
        .env("GOTRUE_URL", &double.url)
        .env("SUPABASE_ANON_KEY", ANON_KEY)
        .env("IDEMPOTENCY_SECRET", IDEMPOTENCY_SECRET)
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1")
        .env("RUST_LOG", "debug");
    let service = ServiceProcess::start(command).await;
    let base = service.base.clone();
    let client = support::http_client();

    let signup = || {
        client
            .post(format!("{base}/api/auth/signup"))
            .header("x-request-id", "req-signup-1")
            .header("idempotency-key", "logs-key-1")
            .json(&json!({"name": "Logan", "email": "logan@example.com", "password": USER_PASSWORD, "role": "Creator"}))
            .send()
    };
    assert_eq!(signup().await.unwrap().status(), 201);
    let replay = signup().await.unwrap();
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let fingerprint: Vec<u8> = sqlx::query_scalar(
        "select fingerprint from atomic_signup.idempotency_keys where key = 'logs-key-1'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let fingerprint: String = fingerprint.iter().map(|b| format!("{b:02x}")).collect();
    let mailed = || async { double.mails().len() == 1 };
    assert!(
        eventually(Duration::from_secs(10), mailed).await,
        "outbox ran"
    );
    let hash: String = sqlx::query_scalar(
        "update auth.users set email_confirmed_at = now() returning encrypted_password",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    let res = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "logan@example.com", "password": USER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let session: Value = res.json().await.unwrap();
    let wrong = client
        .post(format!("{base}/api/auth/login"))
        .json(&json!({"email": "logan@example.com", "password": "Wrong-Secret-Attempt-99"}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);

    let logs = service.stop().await;

    assert!(
        logs.contains("user signed up") && logs.contains("user logged in"),
        "debug logs captured:\n{logs}"
    );
    let access = session["session"]["access_token"].as_str().unwrap();
    let refresh = session["session"]["refresh_token"].as_str().unwrap();
    for (what, secret) in [
        ("the user's password", USER_PASSWORD),
        ("a wrong password", "Wrong-Secret-Attempt-99"),
        ("the argon2 hash", hash.as_str()),
        ("the salt+hash part", hash.rsplit('$').next().unwrap()),
        ("the access token", access),
        ("the refresh token", refresh),
        ("the anon key", ANON_KEY),
        ("the database password", DB_PASSWORD),
        ("the idempotency secret", IDEMPOTENCY_SECRET),
        ("the request fingerprint", fingerprint.as_str()),
    ] {
        assert!(!logs.contains(secret), "{what} appears in the logs");
    }

    // Every line logged while handling the signup request carries its request id, including the
    // lines of the nested signup span.
    let lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let request_span = |line: &Value| -> Option<Value> {
        line["spans"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "request")
            .cloned()
    };
    let signup_lines: Vec<(&Value, Value)> = lines
        .iter()
        .filter_map(|l| request_span(l).map(|s| (l, s)))
        .filter(|(_, s)| s["path"] == "/api/auth/signup")
        .collect();
    assert!(
        signup_lines.len() >= 2,
        "request lines found: {signup_lines:?}"
    );
    assert!(
        signup_lines
            .iter()
            .any(|(l, _)| l["message"] == "user signed up")
    );
    for (line, span) in signup_lines {
        assert_eq!(span["request_id"], "req-signup-1", "{line}");
    }
}

#[tokio::test]
async fn malformed_request_ids_are_replaced_in_the_answer_and_in_the_log() {
    let db = TestDb::migrated().await;
    let command = support::service_binary(&support::database_url(&db, "postgres", "postgres"));
    let service = ServiceProcess::start(command).await;
    let client = support::http_client();
    // In the pretty log format this id, taken as sent, wrote a line of its own.
    let forged = "x}: atomic_signup: user logged in user_id=00000000-0000-0000-0000-000000000000";
    let oversized = "r".repeat(8 * 1024);
    let kept = "proxy-trace.0123_ABC";
    let mut answered = Vec::new();
    for sent in [forged, oversized.as_str(), "a b", kept] {
        let res = client
            .get(format!("{}/healthz", service.base))
            .header("x-request-id", sent)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        answered.push((sent, id));
    }
    // Two ids in one request: neither is taken.
    let res = client
        .get(format!("{}/healthz", service.base))
        .header("x-request-id", "first-id")
        .header("x-request-id", "second-id")
        .send()
        .await
        .unwrap();
    let two = res.headers().get_all("x-request-id").iter().count();
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(two, 1);
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let logs = service.stop().await;
    for (sent, id) in &answered[..3] {
        assert_ne!(id, sent);
        assert!(uuid::Uuid::parse_str(id).is_ok(), "generated: {id}");
        assert!(logs.contains(id.as_str()), "the generated id is logged");
    }
    assert_eq!(answered[3].1, kept, "a well-formed id is kept");
    assert!(logs.contains(kept));
    assert!(!logs.contains("user logged in"), "forged line:\n{logs}");
    assert!(!logs.contains("rrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrrr"));
    assert!(logs.len() < 64 * 1024, "{} bytes of logs", logs.len());
}
