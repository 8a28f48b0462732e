//! Confirmation emails through the transactional outbox, delivered by the worker via the GoTrue
//! double's /resend; and the concealing mode of signup.

use crate::support;

use std::time::Duration;

use gotrue_double::{Endpoint, Fault};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use support::{TestApp, TestDb, counts, eventually, signup_body, status_json};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, sqlx::FromRow)]
struct Row {
    status: String,
    attempts: i32,
    last_error: Option<String>,
    sent: bool,
    failed: bool,
}

async fn outbox_rows(db: &TestDb) -> Vec<Row> {
    sqlx::query_as(
        "select status, attempts, last_error, sent_at is not null as sent, failed_at is not null as failed \
         from atomic_signup.confirmation_outbox order by id",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

async fn all_sent(db: &TestDb, n: usize) -> bool {
    let rows = outbox_rows(db).await;
    rows.len() == n && rows.iter().all(|r| r.status == "sent")
}

/// Signs `email` up and waits until the worker has mailed it: a worker poll that happened after
/// everything before it, so "nothing else was sent" can be checked without sleeping.
async fn barrier(app: &TestApp, double: &gotrue_double::GoTrueDouble, email: &str) {
    app.signed_up("Mail Me", email, "Creator").await;
    let mailed = || async { double.mails().iter().any(|m| m == email) };
    assert!(eventually(WAIT, mailed).await, "{email} was never mailed");
}

#[tokio::test]
async fn a_signup_queues_one_row_and_the_worker_delivers_it_exactly_once() {
    let app = TestApp::builder().gotrue().spawn().await;
    let user = app
        .signed_up("Mail Me", "mail@example.com", "Creator")
        .await;
    let queued: (Uuid, i64) =
        sqlx::query_as("select user_id, count(*) over () from atomic_signup.confirmation_outbox")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(queued, (user, 1));

    assert!(
        eventually(WAIT, || all_sent(&app.db, 1)).await,
        "{:?}",
        outbox_rows(&app.db).await
    );
    barrier(&app, app.double(), "later@example.com").await;
    assert_eq!(
        app.double().mails(),
        ["mail@example.com", "later@example.com"]
    );
    let resends = app.double().calls_to(Endpoint::Resend);
    assert_eq!(resends.len(), 2);
    assert!(resends[0].apikey_ok);
    let row = &outbox_rows(&app.db).await[0];
    assert_eq!(
        (row.attempts, row.sent, row.last_error.as_deref()),
        (1, true, None)
    );
    // GoTrue recorded the mail on the user, as the real one does.
    let sent_at: bool =
        sqlx::query_scalar("select confirmation_sent_at is not null from auth.users where id = $1")
            .bind(user)
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert!(sent_at);
}

#[tokio::test]
async fn no_outbox_row_when_confirmation_is_not_required() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.require_email_confirmation = false)
        .spawn()
        .await;
    app.signed_up("Mail Me", "confirmed@example.com", "Creator")
        .await;
    // The signup committed before it answered: no row now means none ever.
    assert!(outbox_rows(&app.db).await.is_empty());
    assert!(app.double().calls_to(Endpoint::Resend).is_empty());
}

#[tokio::test]
async fn a_rolled_back_signup_leaves_no_outbox_row() {
    let app = TestApp::builder().gotrue().spawn().await;
    sqlx::raw_sql(
        "alter table public.profiles add constraint test_only_no_rollo check (name <> 'Rollo')",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (status, _) = status_json(
        app.signup(&signup_body("Rollo", "rollo@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 500);
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    assert!(outbox_rows(&app.db).await.is_empty());
}

#[tokio::test]
async fn delivery_is_retried_after_gotrue_errors() {
    let app = TestApp::builder().gotrue().spawn().await;
    let double = app.double();
    double.push_faults(
        Endpoint::Resend,
        1,
        Fault::Status(500, "unexpected_failure"),
    );
    double.push_faults(Endpoint::Resend, 1, Fault::Status(502, "bad_gateway"));
    double.push_faults(Endpoint::Resend, 1, Fault::RateLimited(None));
    app.signed_up("Mail Me", "retry@example.com", "Creator")
        .await;

    assert!(
        eventually(WAIT, || all_sent(&app.db, 1)).await,
        "{:?}",
        outbox_rows(&app.db).await
    );
    let row = &outbox_rows(&app.db).await[0];
    assert_eq!((row.attempts, row.last_error.as_deref()), (4, None));
    assert_eq!(double.calls_to(Endpoint::Resend).len(), 4);
    assert_eq!(double.mails(), ["retry@example.com"]);
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let app = TestApp::builder().gotrue().spawn().await;
    app.double()
        .push_faults(Endpoint::Resend, 1, Fault::RateLimited(Some(30)));
    app.signed_up("Mail Me", "slowdown@example.com", "Creator")
        .await;
    let rescheduled = || async {
        let rows = outbox_rows(&app.db).await;
        rows.len() == 1 && rows[0].attempts == 1
    };
    assert!(eventually(WAIT, rescheduled).await);
    let wait_s: f64 = sqlx::query_scalar(
        "select extract(epoch from next_attempt_at - now())::float8 from atomic_signup.confirmation_outbox",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(
        (25.0..=30.5).contains(&wait_s),
        "next attempt in {wait_s} s, not after Retry-After: 30"
    );
    assert_eq!(
        app.double().calls_to(Endpoint::Resend).len(),
        1,
        "no retry before Retry-After"
    );
}

#[tokio::test]
async fn after_max_attempts_the_row_is_marked_failed_and_counted() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.outbox.max_attempts = 3)
        .spawn()
        .await;
    app.double().push_faults(
        Endpoint::Resend,
        100,
        Fault::Status(503, "service_unavailable"),
    );
    app.signed_up("Mail Me", "never@example.com", "Creator")
        .await;
    let failed = || async {
        outbox_rows(&app.db)
            .await
            .first()
            .is_some_and(|r| r.status == "failed")
    };
    assert!(
        eventually(WAIT, failed).await,
        "{:?}",
        outbox_rows(&app.db).await
    );
    let row = &outbox_rows(&app.db).await[0];
    assert_eq!((row.attempts, row.failed, row.sent), (3, true, false));
    assert!(
        row.last_error.as_deref().unwrap().contains("503"),
        "{row:?}"
    );
    app.double().clear_faults();
    barrier(&app, app.double(), "later@example.com").await;
    let attempts = app
        .double()
        .calls_to(Endpoint::Resend)
        .iter()
        .filter(|c| c.email.as_deref() == Some("never@example.com"))
        .count();
    assert_eq!(attempts, 3, "no attempt after giving up");
}

#[tokio::test]
async fn delivery_resumes_after_the_worker_restarts() {
    let app = TestApp::builder().gotrue().spawn().await;
    let double = app.double().clone();
    double.push_faults(
        Endpoint::Resend,
        1000,
        Fault::Status(500, "unexpected_failure"),
    );
    app.signed_up("Mail Me", "restart@example.com", "Creator")
        .await;
    assert!(
        eventually(WAIT, || async {
            outbox_rows(&app.db).await[0].attempts >= 2
        })
        .await
    );
    let db = app.db.clone();
    app.stop().await;
    assert_eq!(outbox_rows(&db).await[0].status, "pending");

    double.clear_faults();
    let restarted = TestApp::builder()
        .on(db.clone())
        .double(double.clone())
        .spawn()
        .await;
    assert!(
        eventually(WAIT, || all_sent(&db, 1)).await,
        "{:?}",
        outbox_rows(&db).await
    );
    assert_eq!(double.mails(), ["restart@example.com"]);
    restarted.stop().await;
}

#[tokio::test]
async fn a_row_held_by_a_crashed_worker_is_delivered_after_restart() {
    let app = TestApp::builder().gotrue().spawn().await;
    // No worker may take the row while "the crashed one" holds it.
    let mut crashed = PgConnection::connect_with(&app.db.options).await.unwrap();
    sqlx::query("begin").execute(&mut crashed).await.unwrap();
    let double = app.double().clone();
    let db = app.db.clone();
    app.stop().await;

    // A signup committed by a service that is gone now; a worker claims the row and dies.
    let other = TestApp::builder().on(db.clone()).spawn().await; // no GoTrue: no worker
    other
        .signed_up("Mail Me", "crash@example.com", "Creator")
        .await;
    let claimed: i64 = sqlx::query_scalar(
        "select id from atomic_signup.confirmation_outbox where status = 'pending' for update skip locked",
    )
    .fetch_one(&mut crashed)
    .await
    .unwrap();
    let restarted = TestApp::builder()
        .on(db.clone())
        .double(double.clone())
        .spawn()
        .await;
    // The restarted worker delivers a later row while the held one stays locked.
    barrier(&restarted, &double, "later@example.com").await;
    assert_eq!(
        double.mails(),
        ["later@example.com"],
        "the row is locked by the dying worker"
    );
    drop(crashed); // the process dies: its transaction is rolled back, the lock released

    assert!(
        eventually(WAIT, || all_sent(&db, 2)).await,
        "{:?}",
        outbox_rows(&db).await
    );
    assert_eq!(double.mails(), ["later@example.com", "crash@example.com"]);
    assert!(claimed > 0);
    restarted.stop().await;
    other.stop().await;
}

#[tokio::test]
async fn two_replicas_deliver_each_row_exactly_once() {
    let a = TestApp::builder().gotrue().spawn().await;
    let b = a.another_instance().spawn().await;
    let emails: Vec<String> = (0..20).map(|i| format!("replica{i}@example.com")).collect();
    let signups = emails.iter().enumerate().map(|(i, email)| {
        let app = if i % 2 == 0 { &a } else { &b };
        async move {
            status_json(app.signup(&signup_body("Rep", email, "Brand")).await)
                .await
                .0
        }
    });
    let statuses = futures::future::join_all(signups).await;
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert!(eventually(WAIT, || all_sent(&a.db, 20)).await);
    // Two more rows, delivered after the 20 were all sent: the workers polled again since.
    barrier(&a, a.double(), "after-a@example.com").await;
    barrier(&b, a.double(), "after-b@example.com").await;
    let mut mails = a.double().mails();
    mails.retain(|m| m.starts_with("replica"));
    mails.sort();
    let mut expected = emails.clone();
    expected.sort();
    assert_eq!(mails, expected, "each address mailed exactly once");
    support::assert_invariants(&a.db).await;
}

#[tokio::test]
async fn concealing_mode_answers_the_same_for_new_and_existing_emails() {
    // The real binary, so that its hash count (a metric) is its own.
    let db = TestDb::migrated().await;
    let double = gotrue_double::GoTrueDouble::start(db.pool.clone()).await;
    let mut command = support::service_binary(&support::database_url(&db, "postgres", "postgres"));
    command
        .env("METRICS_BIND_ADDR", "127.0.0.1:0")
        .env("CONCEAL_EXISTING_EMAILS", "true")
        .env("GOTRUE_URL", &double.url)
        .env("SUPABASE_ANON_KEY", gotrue_double::ANON_KEY);
    let service = support::ServiceProcess::start(command).await;
    let client = support::http_client();
    let signup = |body: serde_json::Value| {
        let request = client
            .post(format!("{}/api/auth/signup", service.base))
            .json(&body);
        async move { status_json(request.send().await.unwrap()).await }
    };
    let hashes = || async {
        let text = service.metrics_text().await;
        text.lines()
            .find(|l| l.starts_with("atomic_signup_password_hash_duration_seconds_count"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };

    let (status, body) = signup(signup_body("New", "hidden@example.com", "Creator")).await;
    assert_eq!(
        (status, body.clone()),
        (202, json!({"status": "confirmation_sent"}))
    );
    assert_eq!(counts(&db).await, (1, 1, 1));
    assert_eq!(hashes().await, 1.0);

    let taken = signup(signup_body("Other", "HIDDEN@example.com", "Brand")).await;
    assert_eq!(taken, (status, body), "indistinguishable answer");
    assert_eq!(hashes().await, 2.0, "the password is hashed either way");
    assert_eq!(
        counts(&db).await,
        (1, 1, 1),
        "nothing written for the existing email"
    );
    assert!(eventually(WAIT, || all_sent(&db, 1)).await);
    assert_eq!(double.mails(), ["hidden@example.com"]);

    // Validation errors are still reported (they say nothing about who is registered).
    let (status, _) = signup(signup_body("", "bad", "Creator")).await;
    assert_eq!(status, 422);
}

#[tokio::test]
async fn the_mailed_link_confirms_the_user_and_login_then_works() {
    let app = TestApp::builder().gotrue().spawn().await;
    let user = app
        .signed_up("Mail Me", "Link@example.com", "Creator")
        .await;
    assert_eq!(
        app.login("link@example.com", "correct horse battery")
            .await
            .status(),
        403,
        "email_not_confirmed before the link"
    );
    let mailed = || async { app.double().confirmation_link("link@example.com").is_some() };
    assert!(eventually(WAIT, mailed).await);
    let link = app.double().confirmation_link("link@example.com").unwrap();
    let no_redirects = support::http_client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = no_redirects
        .get(format!("{link}&redirect_to=http://localhost:5173/"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(
        res.headers()["location"],
        "http://localhost:5173/#type=signup"
    );
    let (confirmed, identity_verified): (bool, bool) = sqlx::query_as(
        "select u.email_confirmed_at is not null, (i.identity_data->>'email_verified')::bool \
         from auth.users u join auth.identities i on i.user_id = u.id where u.id = $1",
    )
    .bind(user)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(confirmed && identity_verified);
    assert_eq!(
        app.login("link@example.com", "correct horse battery")
            .await
            .status(),
        200
    );
    // A link works once.
    let again = no_redirects.get(&link).send().await.unwrap();
    assert!(
        again.headers()["location"]
            .to_str()
            .unwrap()
            .contains("error_code=otp_expired")
    );
}
