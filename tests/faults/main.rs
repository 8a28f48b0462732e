//! The fault suite ("Hold up under faults"), runnable alone: `cargo test --test faults`. Every
//! test ends with the invariant checker (tests/invariants.sql) at zero.
//!
//! - here: overload, statement and request timeouts, SIGTERM, rate limits;
//! - `database`: connections cut, database paused, database restarted;
//! - `process`: the real binary killed with SIGKILL under load, then restarted;
//! - `hostile`: 10,000 random and mutated requests (proptest);
//! - `doors`: one email through 50 simultaneous signups.

#[path = "../support/mod.rs"]
mod support;

mod database;
mod doors;
mod hostile;
mod process;

use std::time::Duration;

use atomic_signup::config::HashSettings;
use support::{TestApp, assert_error, assert_invariants, signup_body};

fn raise_open_file_limit() {
    // 1,000 client sockets and 1,000 server sockets live in this one process.
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on this process with a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max.min(65_536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn a_thousand_concurrent_signups_get_only_201_or_503_overloaded() {
    // Every 201 is in the database; every other answer is a clean 503 with Retry-After.
    raise_open_file_limit();
    let app = TestApp::builder()
        .configure(|s| {
            s.hash_queue_per_core = 2;
            s.argon2 = HashSettings {
                memory_kib: 4096,
                iterations: 2,
                parallelism: 1,
            };
            // A thousand clients, all on 127.0.0.1 here: the per-client cap would close most.
            s.http_max_connections_per_ip = 0;
        })
        .spawn()
        .await;
    let client = support::http_client_builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    let requests = (0..1000).map(|i| {
        let client = client.clone();
        let url = format!("{}/api/auth/signup", app.address);
        let body = signup_body("Load", &format!("load{i}@example.com"), "Creator");
        tokio::spawn(async move {
            let res = client
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("an answer");
            let status = res.status().as_u16();
            let retry_after = res
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            let body: serde_json::Value = res.json().await.expect("a JSON body");
            (
                status,
                retry_after,
                body["error"]["code"].as_str().map(str::to_owned),
            )
        })
    });
    let mut created = 0;
    let mut overloaded = 0;
    for task in futures::future::join_all(requests).await {
        let (status, retry_after, code) = task.expect("no panic");
        match status {
            201 => created += 1,
            503 => {
                assert_eq!(code.as_deref(), Some("overloaded"));
                assert_eq!(retry_after.as_deref(), Some("1"));
                overloaded += 1;
            }
            other => panic!("unexpected status {other} ({code:?})"),
        }
    }
    println!(
        "1,000 concurrent signups: {created} created, {overloaded} overloaded; test process peak RSS {} MiB",
        rss_kib() / 1024
    );
    assert_eq!(created + overloaded, 1000);
    assert!(
        created >= 1 && overloaded >= 1,
        "{created} created, {overloaded} overloaded"
    );
    let (users, identities, profiles) = support::counts(&app.db).await;
    assert_eq!((users, identities, profiles), (created, created, created));
    assert_invariants(&app.db).await;
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_signup_commit_then_exits() {
    let db = support::TestDb::migrated().await;
    let url = support::database_url(&db, "postgres", "postgres");
    let mut command = support::service_binary(&url);
    command
        // A slow hash, so the signup is surely in flight when SIGTERM arrives.
        .env("ARGON2_MEMORY_KIB", "262144")
        .env("ARGON2_ITERATIONS", "4")
        .env("SHUTDOWN_TIMEOUT_S", "20")
        // tower-http logs "started processing request" at debug: the sign that it is in flight.
        .env("RUST_LOG", "info,tower_http=debug");
    let mut service = support::ServiceProcess::start(command).await;
    let base = service.base.clone();
    let client = support::http_client();

    let request = {
        let client = client.clone();
        let url = format!("{base}/api/auth/signup");
        tokio::spawn(async move {
            client
                .post(url)
                .json(&signup_body("Term", "term@example.com", "Creator"))
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    };
    let in_flight = || async {
        service
            .logs()
            .lines()
            .any(|l| l.contains("started processing request") && l.contains("/api/auth/signup"))
    };
    assert!(
        support::eventually(Duration::from_secs(10), in_flight).await,
        "the signup reached the service"
    );
    service.signal(libc::SIGTERM);

    assert_eq!(
        request
            .await
            .unwrap()
            .expect("an answer, not a dropped connection"),
        201
    );
    let exit = tokio::time::timeout(Duration::from_secs(20), service.exited())
        .await
        .expect("exits within SHUTDOWN_TIMEOUT_S")
        .expect("an exit status");
    assert!(exit.success(), "{exit:?}");
    assert_eq!(support::counts(&db).await, (1, 1, 1));
    assert_invariants(&db).await;
}

#[tokio::test]
async fn rate_limits_per_client_ip_answer_429_with_retry_after() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| {
            s.rate_limit_signup_per_minute = 3;
            s.rate_limit_login_per_minute = 2;
        })
        .spawn()
        .await;
    let mut statuses = Vec::new();
    for i in 0..4 {
        statuses.push(
            app.signup(&signup_body(
                "Rate",
                &format!("rate{i}@example.com"),
                "Creator",
            ))
            .await,
        );
    }
    let last = statuses.pop().unwrap();
    assert!(statuses.iter().all(|r| r.status() == 201));
    assert_eq!(last.status(), 429);
    let retry_after: u64 = last.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (_, body) = support::status_json(last).await;
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(
        support::counts(&app.db).await,
        (3, 3, 3),
        "the limited request wrote nothing"
    );

    // Login has its own bucket.
    assert_eq!(app.login("rate0@example.com", "x").await.status(), 401);
    assert_eq!(app.login("rate0@example.com", "x").await.status(), 401);
    assert_eq!(app.login("rate0@example.com", "x").await.status(), 429);
    // X-Forwarded-For is ignored unless trusted: a forged header does not buy a new bucket.
    let forged = app
        .client
        .post(format!("{}/api/auth/signup", app.address))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&signup_body("Rate", "forged@example.com", "Creator"))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 429);
    assert_invariants(&app.db).await;
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_ip_is_the_client() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| {
            s.rate_limit_signup_per_minute = 1;
            s.trust_forwarded_for = true;
        })
        .spawn()
        .await;
    let signup_from = |ip: &'static str, email: &'static str| {
        app.client
            .post(format!("{}/api/auth/signup", app.address))
            .header("x-forwarded-for", format!("198.51.100.7, {ip}"))
            .json(&signup_body("Proxy", email, "Creator"))
            .send()
    };
    assert_eq!(
        signup_from("192.0.2.1", "p1@example.com")
            .await
            .unwrap()
            .status(),
        201
    );
    assert_eq!(
        signup_from("192.0.2.1", "p2@example.com")
            .await
            .unwrap()
            .status(),
        429
    );
    assert_eq!(
        signup_from("192.0.2.2", "p3@example.com")
            .await
            .unwrap()
            .status(),
        201,
        "another client, another bucket"
    );

    // Login forwards that client IP to GoTrue.
    app.client
        .post(format!("{}/api/auth/login", app.address))
        .header("x-forwarded-for", "192.0.2.44")
        .json(&serde_json::json!({"email": "p1@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let call = app
        .double()
        .calls_to(gotrue_double::Endpoint::Token)
        .pop()
        .unwrap();
    assert_eq!(call.forwarded_for.as_deref(), Some("192.0.2.44"));
}

#[tokio::test]
async fn a_request_over_request_timeout_is_503_request_timeout_at_once() {
    let app = TestApp::builder()
        .configure(|s| {
            s.database.statement_timeout = Duration::from_secs(30);
            s.request_timeout = Duration::from_secs(1);
        })
        .spawn()
        .await;
    // The statement is much slower than the request timeout (and well within statement_timeout).
    support::slow_profile_inserts(&app.db, 6.0).await;
    let started = std::time::Instant::now();
    let res = app
        .signup(&signup_body("Slow", "slow@example.com", "Creator"))
        .await;
    // At once: while the statement still runs (not when it ends), and never before the timeout.
    let sleeping: i64 = sqlx::query_scalar(
        "select count(*) from pg_stat_activity \
         where datname = current_database() and wait_event = 'PgSleep'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(sleeping, 1, "answered only once the statement had ended");
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        res.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert_error(res, 503, "request_timeout").await;
    // The statement the server was already running may still commit (that is why a retry should
    // carry the same Idempotency-Key); either way the signup is whole or absent.
    support::wait_until_no_statement_runs(&app.db).await;
    let (users, identities, profiles) = support::counts(&app.db).await;
    assert!(
        users == identities && identities == profiles && users <= 1,
        "{users} users, {identities} identities, {profiles} profiles"
    );
    assert_invariants(&app.db).await;
}
