//! Idempotency-Key on signup: replay, reuse, in progress, takeover, expiry, replicas.

use crate::support;

use std::time::Duration;

use reqwest::header::HeaderValue;
use serde_json::{Value, json};
use support::{TestApp, assert_error, assert_invariants, counts, signup_body, status_json};
use uuid::Uuid;

fn replayed(res: &reqwest::Response) -> Option<&str> {
    res.headers()
        .get("idempotent-replayed")
        .and_then(|v| v.to_str().ok())
}

/// The key's row: state, user id, stored status and body.
async fn key_row(
    app: &TestApp,
    key: &str,
) -> Option<(String, Option<Uuid>, Option<i16>, Option<Value>)> {
    sqlx::query_as(
        "select state, user_id, response_status, response_body \
         from atomic_signup.idempotency_keys where key = $1",
    )
    .bind(key)
    .fetch_optional(&app.db.pool)
    .await
    .unwrap()
}

/// Leaves `key` as claim_idempotency_key does for a request still running (lease: a minute).
async fn hold_key(app: &TestApp, key: &str) {
    sqlx::query(
        "insert into atomic_signup.idempotency_keys \
           (key, fingerprint, state, claim, locked_until, expires_at) \
         values ($1, '\\x00', 'in_progress', gen_random_uuid(), now() + interval '1 minute', \
                 now() + interval '1 day')",
    )
    .bind(key)
    .execute(&app.db.pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_retry_with_the_same_key_and_body_replays_the_201_without_a_new_user() {
    let app = TestApp::spawn().await;
    let body = signup_body("Ada", "ada@example.com", "Creator");
    let first = app.keyed_signup("key-1", &body).await;
    assert_eq!(replayed(&first), None);
    assert_eq!(first.status(), 201);
    let original_bytes = first.bytes().await.unwrap();
    let original: serde_json::Value = serde_json::from_slice(&original_bytes).unwrap();

    // Same request, email in another letter case: the same validated request. The replay is the
    // same bytes, not just the same JSON.
    let retry_body = signup_body("Ada", "ADA@Example.COM", "Creator");
    for _ in 0..3 {
        let retry = app.keyed_signup("key-1", &retry_body).await;
        assert_eq!(replayed(&retry), Some("true"));
        assert_eq!(retry.status(), 201);
        let again = retry.bytes().await.unwrap();
        assert_eq!(
            String::from_utf8_lossy(&again),
            String::from_utf8_lossy(&original_bytes)
        );
    }
    assert_eq!(counts(&app.db).await, (1, 1, 1));

    // The stored answer was committed with the user, and holds no secret.
    let (state, user_id, stored_status, stored_body) = key_row(&app, "key-1").await.unwrap();
    assert_eq!(state, "completed");
    assert_eq!(
        user_id.map(|u| u.to_string()).as_deref(),
        original["user_id"].as_str()
    );
    assert_eq!(
        (stored_status, stored_body.as_ref()),
        (Some(201), Some(&original))
    );
    let row_text: String = sqlx::query_scalar(
        "select k::text from atomic_signup.idempotency_keys k where key = 'key-1'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(!row_text.contains("correct horse battery"));
    let fingerprint: Vec<u8> = sqlx::query_scalar(
        "select fingerprint from atomic_signup.idempotency_keys where key = 'key-1'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let plain: Vec<u8> = sqlx::query_scalar("select sha256('correct horse battery'::bytea)")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(fingerprint.len(), 32);
    assert_ne!(
        fingerprint, plain,
        "keyed, not a plain hash of the password"
    );
    assert_invariants(&app.db).await;
}

#[tokio::test]
async fn the_same_key_with_another_body_is_422_idempotency_key_reused() {
    let app = TestApp::spawn().await;
    let (status, _) = status_json(
        app.keyed_signup("k", &signup_body("Ada", "ada@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let other_password = json!({"name": "Ada", "email": "ada@example.com",
        "password": "another password", "role": "Creator"});
    for body in [
        signup_body("Bob", "bob@example.com", "Creator"),
        signup_body("Ada", "ada@example.com", "Brand"),
        other_password,
    ] {
        assert_error(
            app.keyed_signup("k", &body).await,
            422,
            "idempotency_key_reused",
        )
        .await;
    }
    assert_eq!(counts(&app.db).await, (1, 1, 1));
}

#[tokio::test]
async fn a_key_held_by_a_running_request_is_409_then_taken_over_when_its_lease_ends() {
    let app = TestApp::spawn().await;
    // A request holds "busy", for another minute.
    hold_key(&app, "busy").await;
    // The fingerprint differs, but a live holder answers 409 only if the body is the same:
    let body = signup_body("Ada", "ada@example.com", "Creator");
    assert_error(
        app.keyed_signup("busy", &body).await,
        422,
        "idempotency_key_reused",
    )
    .await;
    // … so give the holder this request's fingerprint: find it from a completed twin.
    let (status, _) = status_json(app.keyed_signup("twin", &body).await).await;
    assert_eq!(status, 201);
    sqlx::query(
        "update atomic_signup.idempotency_keys set fingerprint = \
           (select fingerprint from atomic_signup.idempotency_keys where key = 'twin') \
         where key = 'busy'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let res = app.keyed_signup("busy", &body).await;
    assert_eq!(
        res.headers().get("retry-after").map(HeaderValue::as_bytes),
        Some(&b"1"[..])
    );
    assert_error(res, 409, "request_in_progress").await;

    // The holder died: its lease ends, and the next request takes the key over.
    sqlx::query(
        "update atomic_signup.idempotency_keys set locked_until = now() - interval '1 second' \
         where key = 'busy'",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let body = signup_body("Eve", "eve@example.com", "Creator");
    let (status, answer) = status_json(app.keyed_signup("busy", &body).await).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(key_row(&app, "busy").await.unwrap().0, "completed");
    assert_eq!(counts(&app.db).await, (2, 2, 2));
    assert_invariants(&app.db).await;
}

#[tokio::test]
async fn a_failed_signup_gives_its_key_back() {
    let app = TestApp::spawn().await;
    let body = signup_body("Ada", "ada@example.com", "Creator");
    assert_eq!(app.signup(&body).await.status(), 201);
    for _ in 0..2 {
        let (status, answer) = status_json(app.keyed_signup("k", &body).await).await;
        // Not request_in_progress on the retry: the key was released.
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (409, Some("email_taken"))
        );
        assert_eq!(key_row(&app, "k").await, None);
    }
}

#[tokio::test]
async fn a_signup_that_lost_its_key_commits_nothing() {
    // What the service does when a request's lease ran out and another request took the key:
    // its transaction finds its claim gone and rolls back, with SQLSTATE AS409.
    let app = TestApp::spawn().await;
    hold_key(&app, "lost").await;
    let err = sqlx::query(
        "select * from atomic_signup.create_user_idempotent(gen_random_uuid(), 'lost@example.com', \
         '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', 'Creator', \
         false, '{\"name\": \"Lost\"}', 'lost', gen_random_uuid(), 201::smallint, '{}'::jsonb)",
    )
    .execute(&app.db.pool)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("AS409"),
        "{err}"
    );
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    let outbox: i64 = sqlx::query_scalar("select count(*) from atomic_signup.confirmation_outbox")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(outbox, 0);
    assert_eq!(key_row(&app, "lost").await.unwrap().0, "in_progress");
}

#[tokio::test]
async fn malformed_keys_are_400_invalid_idempotency_key() {
    let app = TestApp::spawn().await;
    let body = signup_body("Ada", "ada@example.com", "Creator");
    let long = "k".repeat(256);
    let values: [&[u8]; 4] = [b"", long.as_bytes(), b"caf\xe9", b"tab\tkey"];
    for value in values {
        let res = app
            .client
            .post(format!("{}/api/auth/signup", app.address))
            .header("idempotency-key", HeaderValue::from_bytes(value).unwrap())
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, answer) = status_json(res).await;
        assert_eq!(
            (status, answer["error"]["code"].as_str()),
            (400, Some("invalid_idempotency_key")),
            "{value:?}: {answer}"
        );
    }
    let twice = app
        .client
        .post(format!("{}/api/auth/signup", app.address))
        .header("idempotency-key", "a")
        .header("idempotency-key", "b")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    // The longest valid key works.
    let ok = app.keyed_signup(&"k".repeat(255), &body).await;
    assert_eq!(ok.status(), 201);
}

#[tokio::test]
async fn a_replica_replays_what_another_replica_answered() {
    let a = TestApp::spawn().await;
    let b = a.another_instance().spawn().await;
    let body = signup_body("Ada", "ada@example.com", "Creator");
    let (status, original) = status_json(a.keyed_signup("shared", &body).await).await;
    assert_eq!(status, 201);
    let retry = b.keyed_signup("shared", &body).await;
    assert_eq!(replayed(&retry), Some("true"));
    assert_eq!(status_json(retry).await, (201, original));
    assert_eq!(counts(&a.db).await, (1, 1, 1));
}

#[tokio::test]
async fn the_stored_answer_carries_what_the_transaction_wrote() {
    // A trigger marks new profiles as onboarded: the first answer and the replay both say so.
    let app = TestApp::spawn().await;
    sqlx::raw_sql(
        "create function public.test_only_onboard() returns trigger language plpgsql as $$
         begin new.onboarding_completed := true; return new; end $$;
         create trigger test_only_onboard before insert on public.profiles
           for each row execute function public.test_only_onboard();",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let body = signup_body("Ada", "ada@example.com", "Creator");
    let (_, first) = status_json(app.keyed_signup("k", &body).await).await;
    assert_eq!(first["onboarding_completed"], true);
    let (_, again) = status_json(app.keyed_signup("k", &body).await).await;
    assert_eq!(again, first);
    // SQL stores the service's answer as given (built before the transaction, so with
    // onboarding_completed false) and the transaction's fact in a column of its own.
    let (stored, onboarding): (serde_json::Value, Option<bool>) = sqlx::query_as(
        "select response_body, onboarding_completed from atomic_signup.idempotency_keys \
         where key = 'k'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    let mut built = first.clone();
    built["onboarding_completed"] = serde_json::json!(false);
    assert_eq!((stored, onboarding), (built, Some(true)));
}

#[tokio::test]
async fn a_key_completed_before_the_onboarding_column_replays_its_body_as_stored() {
    // Keys completed by the older create_user_idempotent hold the merged answer and no column.
    let app = TestApp::spawn().await;
    let body = signup_body("Ada", "ada@example.com", "Creator");
    let (_, first) = status_json(app.keyed_signup("k", &body).await).await;
    let mut merged = first.clone();
    merged["onboarding_completed"] = serde_json::json!(true);
    sqlx::query(
        "update atomic_signup.idempotency_keys \
         set response_body = $1, onboarding_completed = null where key = 'k'",
    )
    .bind(&merged)
    .execute(&app.db.pool)
    .await
    .unwrap();
    let res = app.keyed_signup("k", &body).await;
    assert_eq!(replayed(&res), Some("true"));
    assert_eq!(status_json(res).await, (201, merged));
}

#[tokio::test]
async fn with_concealed_emails_a_new_and_a_taken_email_replay_alike() {
    let app = TestApp::builder()
        .configure(|s| s.conceal_existing_emails = true)
        .spawn()
        .await;
    let body = signup_body("Ada", "ada@example.com", "Creator");
    // "new": a new email; "taken": the same email again, under another key.
    let mut answers = Vec::new();
    for key in ["new", "taken"] {
        let mut tries = Vec::new();
        for _ in 0..3 {
            let res = app.keyed_signup(key, &body).await;
            let replay = replayed(&res).map(str::to_owned);
            tries.push((replay, status_json(res).await));
        }
        answers.push(tries);
    }
    // Every try of both keys: the same status and body; the first not replayed, the retries
    // replayed; the taken email's key keeps the concealed answer as the new one's does.
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0][0].0, None);
    assert_eq!(answers[0][1].0.as_deref(), Some("true"));
    assert_eq!(answers[0][2].0.as_deref(), Some("true"));
    assert_eq!(answers[0][0].1.0, 202);
    let (state, user, status, stored) = key_row(&app, "taken").await.unwrap();
    assert_eq!(
        (state.as_str(), user, status),
        ("completed", None, Some(202))
    );
    assert_eq!(Some(stored.unwrap()), key_row(&app, "new").await.unwrap().3);
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    assert_invariants(&app.db).await;
}

#[tokio::test]
async fn expired_keys_are_forgotten_and_purged() {
    let db = support::TestDb::migrated().await;
    // One key past its 24 h, one fresh.
    sqlx::query(
        "insert into atomic_signup.idempotency_keys \
           (key, fingerprint, state, response_status, response_body, created_at, expires_at) \
         values ('old', '\\x00', 'completed', 201, '{}', now() - interval '25 hours', \
                 now() - interval '1 hour'), \
                ('fresh', '\\x00', 'completed', 201, '{}', now(), now() + interval '23 hours')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let app = TestApp::builder()
        .on(db)
        .configure(|s| {
            s.idempotency.purge_interval = Duration::from_millis(100);
        })
        .spawn()
        .await;
    let keys = || async {
        sqlx::query_scalar::<_, String>(
            "select key from atomic_signup.idempotency_keys order by key",
        )
        .fetch_all(&app.db.pool)
        .await
        .unwrap()
    };
    assert!(
        support::eventually(Duration::from_secs(5), || async {
            keys().await == ["fresh"]
        })
        .await,
        "{:?}",
        keys().await
    );
    // An expired key the purge has not reached yet counts as unused: claimed anew, not
    // replayed (checked on the function itself, so the purge cannot get there first).
    sqlx::query(
        "insert into atomic_signup.idempotency_keys \
           (key, fingerprint, state, response_status, response_body, expires_at) \
         values ('stale', '\\x00', 'completed', 201, '{}', now() - interval '1 second')",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let outcome: String = sqlx::query_scalar(
        "select outcome from atomic_signup.claim_idempotency_key( \
           'stale', '\\x00', gen_random_uuid(), interval '1 minute', interval '1 day')",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(outcome, "claimed");
}

#[tokio::test]
async fn a_request_cut_off_by_the_timeout_gives_its_key_back_and_the_retry_signs_up_once() {
    let app = TestApp::builder()
        .configure(|s| {
            s.request_timeout = Duration::from_secs(1);
            s.database.statement_timeout = Duration::from_secs(10);
        })
        .spawn()
        .await;
    // The signup statement takes 2 s: the request is cut off at 1 s while the database still
    // runs it.
    support::slow_profile_inserts(&app.db, 2.0).await;
    let body = signup_body("Ada", "ada@example.com", "Creator");
    assert_error(app.keyed_signup("cut", &body).await, 503, "request_timeout").await;
    // The dropped request gave its key back (long before its 12 s lease ends) …
    assert!(
        support::eventually(Duration::from_secs(6), || async {
            key_row(&app, "cut").await.is_none()
        })
        .await,
        "key released by the cancelled request"
    );
    // … so its still-running statement found its claim gone and rolled back.
    support::wait_until_no_statement_runs(&app.db).await;
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    // The retry (with the database fast again) signs up, once.
    sqlx::query("drop trigger test_only_slow on public.profiles")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let retry = app.keyed_signup("cut", &body).await;
    assert_eq!(replayed(&retry), None);
    assert_eq!(retry.status(), 201);
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    assert_invariants(&app.db).await;
}

#[tokio::test]
async fn a_signup_whose_key_was_taken_over_answers_409_over_http_and_commits_nothing() {
    // Inside the signup's own transaction (a trigger on the profile insert), another request
    // takes the key over, as one does after this request's lease ran out: the completion finds
    // the claim gone, SQLSTATE AS409 rolls everything back, and the client is told 409.
    let app = TestApp::spawn().await;
    sqlx::raw_sql(
        "create function public.test_only_take_key() returns trigger language plpgsql as $$
         begin
           update atomic_signup.idempotency_keys set claim = gen_random_uuid()
           where key = 'taken-over';
           return new;
         end $$;
         create trigger test_only_take_key before insert on public.profiles
           for each row execute function public.test_only_take_key();",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let body = signup_body("Lost", "lost@example.com", "Creator");
    let answer = assert_error(
        app.keyed_signup("taken-over", &body).await,
        409,
        "request_in_progress",
    )
    .await;
    assert!(answer["error"]["message"].is_string(), "{answer}");
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    // The taking over rolled back with the signup, and the request gave its key back: a retry
    // with the same key signs up.
    sqlx::raw_sql("drop trigger test_only_take_key on public.profiles")
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(app.keyed_signup("taken-over", &body).await.status(), 201);
    assert_eq!(counts(&app.db).await, (1, 1, 1));
}
