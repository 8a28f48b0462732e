//! Fault test #4, "service killed": the real binary under load gets SIGKILL at a random moment.
//! After a restart: invariants hold, every 201 is there, every request that got no answer and is
//! retried with its Idempotency-Key ends with exactly one user, and the confirmation mails of all
//! committed signups are delivered (their outbox rows survived the kill).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use crate::support::{self, ServiceProcess, TestDb, assert_invariants, eventually, signup_body};
use gotrue_double::{ANON_KEY, Endpoint, Fault, GoTrueDouble};

/// The service binary, with GoTrue = `double` and short timeouts, up and answering.
async fn start_binary(db: &TestDb, double: &GoTrueDouble) -> ServiceProcess {
    let mut command = support::service_binary(&support::database_url(db, "postgres", "postgres"));
    command
        .env("GOTRUE_URL", &double.url)
        .env("SUPABASE_ANON_KEY", ANON_KEY)
        .env("ARGON2_MEMORY_KIB", "1024")
        .env("ARGON2_ITERATIONS", "1")
        .env("RATE_LIMIT_SIGNUP_PER_MINUTE", "0")
        .env("REQUEST_TIMEOUT_S", "2")
        .env("STATEMENT_TIMEOUT_MS", "1000")
        .env("OUTBOX_MAX_ATTEMPTS", "1000")
        .env("OUTBOX_BACKOFF_BASE_MS", "20")
        .env("OUTBOX_BACKOFF_MAX_MS", "200")
        .env("OUTBOX_POLL_INTERVAL_MS", "50");
    ServiceProcess::start(command).await
}

/// What one signup request got: an answer, or nothing (the process died under it).
#[derive(Debug)]
enum Outcome {
    Answer(u16, Value),
    NoAnswer,
}

async fn send(client: &reqwest::Client, base: &str, i: usize) -> Outcome {
    let res = client
        .post(format!("{base}/api/auth/signup"))
        .header("idempotency-key", format!("kill-{i}"))
        .json(&signup_body(
            "Killed",
            &format!("kill{i}@example.com"),
            "Creator",
        ))
        .send()
        .await;
    match res {
        Ok(res) => {
            let status = res.status().as_u16();
            match res.json::<Value>().await {
                Ok(body) => Outcome::Answer(status, body),
                Err(_) => Outcome::NoAnswer,
            }
        }
        Err(_) => Outcome::NoAnswer,
    }
}

#[tokio::test]
async fn sigkill_mid_load_then_restart_loses_nothing_and_delivers_every_mail() {
    let db = TestDb::migrated().await;
    let double = GoTrueDouble::start(db.pool.clone()).await;
    // Until the kill, every /resend fails: the outbox rows of committed signups are pending (or
    // held by a worker mid-delivery) when the process dies.
    double.push_faults(
        Endpoint::Resend,
        100_000,
        Fault::Status(500, "unexpected_failure"),
    );
    let client = support::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut service = start_binary(&db, &double).await;
    let base = service.base.clone();

    // Eight clients sign up one unique email after another until the process is gone.
    let next = Arc::new(AtomicUsize::new(0));
    let answered = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..8)
        .map(|_| {
            let (client, base, next, answered, stop) = (
                client.clone(),
                base.clone(),
                next.clone(),
                answered.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let outcome = send(&client, &base, i).await;
                    if matches!(outcome, Outcome::Answer(201, _)) {
                        answered.fetch_add(1, Ordering::SeqCst);
                    }
                    let dead = matches!(outcome, Outcome::NoAnswer);
                    seen.push((i, outcome));
                    if dead {
                        break;
                    }
                }
                seen
            })
        })
        .collect();
    // Killed once the load has produced a random number (8 to 40) of 201s: a condition, not a
    // delay, so a busy machine kills as late in the load as a quiet one. The 8 clients then
    // have requests in flight (each sends the next as soon as one is answered).
    let at = 8 + (Uuid::new_v4().as_u128() % 33) as usize;
    let loaded = || async { answered.load(Ordering::SeqCst) >= at };
    assert!(
        eventually(Duration::from_secs(120), loaded).await,
        "the load produced {} answers in 120 s",
        answered.load(Ordering::SeqCst)
    );
    service.signal(libc::SIGKILL);
    service.exited().await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = BTreeMap::new();
    for task in load {
        outcomes.extend(task.await.unwrap());
    }

    // Right after the kill: whole signups only, and every 201 is there.
    assert_invariants(&db).await;
    let created: Vec<usize> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Answer(201, _)))
        .map(|(i, _)| *i)
        .collect();
    for (i, outcome) in &outcomes {
        if let Outcome::Answer(status, body) = outcome {
            assert_eq!(*status, 201, "request {i} before the kill: {body}");
            let id: Uuid = body["user_id"].as_str().unwrap().parse().unwrap();
            let present: bool = sqlx::query_scalar(
                "select exists (select 1 from auth.users u \
                   join auth.identities i on i.user_id = u.id and i.provider_id = u.id::text \
                   join public.profiles p on p.id = u.id where u.id = $1)",
            )
            .bind(id)
            .fetch_one(&db.pool)
            .await
            .unwrap();
            assert!(present, "the 201 of request {i} is in all three tables");
        }
    }
    let unanswered: Vec<usize> = outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::NoAnswer))
        .map(|(i, _)| *i)
        .collect();
    let pending: i64 = sqlx::query_scalar(
        "select count(*) from atomic_signup.confirmation_outbox where status = 'pending'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    println!(
        "killed after {at} answered signups: {} created, {} unanswered, {pending} outbox rows pending",
        created.len(),
        unanswered.len()
    );
    assert!(!created.is_empty(), "the load ran before the kill");
    assert!(!unanswered.is_empty(), "the kill hit requests in flight");

    // Restart (GoTrue healthy again). Each unanswered request, retried with its key, ends with
    // a 201: the stored answer if it had committed, a new signup if it had not.
    double.clear_faults();
    // Restarted on a port of its own choosing: the clients follow it.
    let restarted = start_binary(&db, &double).await;
    let base = restarted.base.clone();
    for i in &unanswered {
        let mut tries = 0;
        let body = loop {
            match send(&client, &base, *i).await {
                Outcome::Answer(201, body) => break body,
                // The dead request's claim holds the key until its lease (≈ 4 s) runs out.
                Outcome::Answer(409, body) if body["error"]["code"] == "request_in_progress" => {}
                other => panic!("retry of request {i}: {other:?}"),
            }
            tries += 1;
            assert!(tries < 40, "request {i} still in progress");
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(body["email"], format!("kill{i}@example.com"));
    }
    let emails: Vec<String> = sqlx::query_scalar("select email from auth.users order by email")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let mut expected: Vec<String> = created
        .iter()
        .chain(&unanswered)
        .map(|i| format!("kill{i}@example.com"))
        .collect();
    expected.sort();
    assert_eq!(
        emails, expected,
        "exactly one user per answered or retried request"
    );

    // Every committed signup's confirmation mail goes out, once.
    let all_sent = || async {
        let left: i64 = sqlx::query_scalar(
            "select count(*) from atomic_signup.confirmation_outbox where status <> 'sent'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        left == 0
    };
    assert!(
        eventually(Duration::from_secs(20), all_sent).await,
        "outbox drained"
    );
    let mut mails = double.mails();
    mails.sort();
    assert_eq!(mails, expected, "one mail per user");
    assert_invariants(&db).await;
    restarted.stop().await;
}

/// One after_user_created call as the receiver got it: its `webhook-id` and the user's id.
type HookCalls = Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A receiver that never answers its first call (the service is killed while it waits) and
/// answers 204 to every later one.
async fn holding_receiver() -> (String, HookCalls) {
    let calls: HookCalls = Default::default();
    let state = Arc::clone(&calls);
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |axum::extract::State(calls): axum::extract::State<HookCalls>,
                 headers: axum::http::HeaderMap,
                 body: axum::body::Bytes| async move {
                    let event: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let id = headers
                        .get("webhook-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("")
                        .to_owned();
                    let user = event["user"]["id"].as_str().unwrap_or("").to_owned();
                    let first = {
                        let mut calls = calls.lock().unwrap();
                        calls.push((id, user));
                        calls.len() == 1
                    };
                    if first {
                        std::future::pending::<()>().await;
                    }
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(state);
    let url = format!("{}/hook", support::serve_on_loopback(app).await);
    (url, calls)
}

/// GoTrue calls its after_user_created hook after the commit, and a crash before the call loses
/// it. Here the call is queued in the signup's transaction: the service is killed while the
/// hook holds its first call, and the restarted service makes the call again, with the same
/// webhook-id, so the receiver can tell it is the same.
#[tokio::test]
async fn sigkill_while_the_after_hook_is_called_then_restart_delivers_it() {
    let db = TestDb::migrated().await;
    let double = GoTrueDouble::start(db.pool.clone()).await;
    let (url, calls) = holding_receiver().await;
    let start = || async {
        let mut command =
            support::service_binary(&support::database_url(&db, "postgres", "postgres"));
        command
            .env("GOTRUE_URL", &double.url)
            .env("SUPABASE_ANON_KEY", ANON_KEY)
            .env("ARGON2_MEMORY_KIB", "1024")
            .env("ARGON2_ITERATIONS", "1")
            .env("REQUIRE_EMAIL_CONFIRMATION", "false")
            .env("OUTBOX_POLL_INTERVAL_MS", "50")
            .env("HOOK_AFTER_USER_CREATED_ENABLED", "true")
            .env("HOOK_AFTER_USER_CREATED_URI", &url)
            .env(
                "HOOK_AFTER_USER_CREATED_SECRETS",
                "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            );
        ServiceProcess::start(command).await
    };
    let mut service = start().await;
    let res = support::http_client()
        .post(format!("{}/api/auth/signup", service.base))
        .json(&signup_body("Hooked", "hooked@example.com", "Creator"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let user_id = body["user_id"].as_str().unwrap().to_owned();
    let called = || async { !calls.lock().unwrap().is_empty() };
    assert!(
        eventually(Duration::from_secs(30), called).await,
        "the hook was called:\n{}",
        service.logs()
    );
    service.signal(libc::SIGKILL);
    service.exited().await;
    // The call was never answered: the row is still pending, for the next worker.
    let status = || async {
        sqlx::query_scalar::<_, String>("select status from atomic_signup.hook_outbox")
            .fetch_one(&db.pool)
            .await
            .unwrap()
    };
    assert_eq!(status().await, "pending");

    let restarted = start().await;
    let sent = || async { status().await == "sent" };
    assert!(
        eventually(Duration::from_secs(30), sent).await,
        "delivered after the restart:\n{}",
        restarted.logs()
    );
    let calls = calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[0], calls[1], "the same webhook-id and user, twice");
    assert_eq!(calls[0].1, user_id);
    assert_invariants(&db).await;
}
