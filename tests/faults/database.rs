//! Database faults under load ("Hold up under faults", #1–#3): connections cut mid-flight, the
//! server frozen (`docker pause`), the server restarted. Each test has a Postgres container of
//! its own ([`DedicatedPostgres`]): the shared one keeps serving the tests running beside it.
//!
//! Every answer must be 201 or a clean 503 (`database_unavailable` / `request_timeout`) within
//! the request timeout, never a hang or a dropped HTTP connection. After the fault the same
//! service instance recovers by itself, every 201 is whole in the three tables, and the invariant
//! checker is at zero. A 503 may still have committed (the commit can succeed while the answer is
//! lost): that is allowed, as long as the signup is whole.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use atomic_signup::config::Settings;
use atomic_signup::routes::health::ReadinessProbe;
use rand::Rng;
use serde_json::Value;
use uuid::Uuid;

use crate::support::postgres::DedicatedPostgres;
use crate::support::proxy::Proxy;
use crate::support::{self, TestApp, TestDb, signup_body};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Slack over a timeout for an answer to count as on time (a busy 2-core machine).
const MARGIN: Duration = Duration::from_secs(1);
/// `/readyz` gives its database check 1 s.
const READY_TIMEOUT: Duration = Duration::from_secs(1);
const CONCURRENCY: usize = 16;
/// How long the service gets to recover after a fault has ended.
const RECOVERY_LIMIT: Duration = Duration::from_secs(30);

/// Short timeouts, so that a fault is answered quickly.
fn fault_settings(s: &mut Settings) {
    s.request_timeout = REQUEST_TIMEOUT;
    s.database.acquire_timeout = Duration::from_secs(1);
    s.database.statement_timeout = Duration::from_secs(3);
}

/// The tests' HTTP client: its own timeout turns a hanging request into a failure, not a hang.
fn http_client() -> reqwest::Client {
    support::http_client_builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client")
}

/// One signup as the client saw it.
#[derive(Debug)]
struct Answer {
    email: String,
    sent: Instant,
    done: Instant,
    status: u16,
    /// `error.code` of an error answer.
    code: Option<String>,
    /// `user_id` of a 201.
    user_id: Option<Uuid>,
}

impl Answer {
    fn latency(&self) -> Duration {
        self.done - self.sent
    }
}

async fn signup(client: &reqwest::Client, base: &str, email: &str) -> Answer {
    let sent = Instant::now();
    let res = client
        .post(format!("{base}/api/auth/signup"))
        .json(&signup_body("Fault", email, "Creator"))
        .send()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "signup {email}: no HTTP answer after {:?}: {err}",
                sent.elapsed()
            )
        });
    let status = res.status().as_u16();
    let text = res
        .text()
        .await
        .unwrap_or_else(|err| panic!("signup {email}: {status}, body cut off: {err}"));
    let done = Instant::now();
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("signup {email}: {status} without a JSON body: {text}"));
    Answer {
        email: email.to_owned(),
        sent,
        done,
        status,
        code: body["error"]["code"].as_str().map(str::to_owned),
        user_id: body["user_id"]
            .as_str()
            .map(|id| id.parse().expect("user_id is a UUID")),
    }
}

/// `GET /readyz`: status, the database check, latency.
async fn readyz(client: &reqwest::Client, base: &str) -> (u16, String, Duration) {
    let sent = Instant::now();
    let res = client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap_or_else(|err| panic!("/readyz: no HTTP answer after {:?}: {err}", sent.elapsed()));
    let status = res.status().as_u16();
    let body: Value = res.json().await.expect("/readyz answers JSON");
    let database = body["checks"]["database"].as_str().unwrap_or("").to_owned();
    (status, database, sent.elapsed())
}

/// CONCURRENCY clients, each signing up one new email after another, until `limit` signups were
/// sent or [`Load::stop`] is called. A client waits 100 ms after an answer other than 201, as a
/// client backing off would (it also keeps a dead database from being hammered in a tight loop).
struct Load {
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(app: &TestApp, client: &reqwest::Client, prefix: &str, limit: usize) -> Self {
        let answers = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicUsize::new(0));
        let clients = (0..CONCURRENCY)
            .map(|_| {
                let (answers, stop, next) = (answers.clone(), stop.clone(), next.clone());
                let (client, base, prefix) =
                    (client.clone(), app.address.clone(), prefix.to_owned());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= limit {
                            break;
                        }
                        let answer =
                            signup(&client, &base, &format!("{prefix}{n}@example.com")).await;
                        let created = answer.status == 201;
                        answers.lock().unwrap().push(answer);
                        if !created {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                })
            })
            .collect();
        Self {
            answers,
            stop,
            clients,
        }
    }

    fn answered(&self) -> usize {
        self.answers.lock().unwrap().len()
    }

    fn created(&self) -> usize {
        let answers = self.answers.lock().unwrap();
        answers.iter().filter(|a| a.status == 201).count()
    }

    /// Waits until `limit` signups were answered.
    async fn join(self) -> Vec<Answer> {
        for client in self.clients {
            client.await.expect("a load client panicked");
        }
        std::mem::take(&mut *self.answers.lock().unwrap())
    }

    /// Lets every client finish its current signup, then stops.
    async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        self.join().await
    }
}

/// After a fault has ended: polls `/readyz` until 200, then signs up until a 201; returns how
/// long that took. The probes' answers go to `answers` (they are checked like the others).
async fn wait_recovered(
    app: &TestApp,
    client: &reqwest::Client,
    answers: &mut Vec<Answer>,
) -> Duration {
    let started = Instant::now();
    for n in 0.. {
        assert!(
            started.elapsed() < RECOVERY_LIMIT,
            "the service did not recover within {RECOVERY_LIMIT:?}; last answers: {:?}",
            answers.iter().rev().take(3).collect::<Vec<_>>()
        );
        if readyz(client, &app.address).await.0 == 200 {
            let answer = signup(client, &app.address, &format!("probe{n}@example.com")).await;
            let created = answer.status == 201;
            answers.push(answer);
            if created {
                return started.elapsed();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    unreachable!()
}

/// After recovery: 32 more signups at CONCURRENCY, every one 201 (no leftover of the fault).
async fn assert_all_succeed(app: &TestApp, client: &reqwest::Client) -> Vec<Answer> {
    let answers = Load::start(app, client, "after", 32).join().await;
    for answer in &answers {
        assert_eq!(
            answer.status, 201,
            "after recovery, signup {} got {} {:?}",
            answer.email, answer.status, answer.code
        );
    }
    answers
}

/// Every answer is a 201 with a user id or a 503 with a retryable code, on time.
fn assert_clean(answers: &[Answer]) {
    for a in answers {
        let clean = match a.status {
            201 => a.user_id.is_some(),
            503 => matches!(
                a.code.as_deref(),
                Some("database_unavailable" | "request_timeout")
            ),
            _ => false,
        };
        assert!(
            clean,
            "signup {}: {} {:?} (expected 201, or 503 database_unavailable/request_timeout)",
            a.email, a.status, a.code
        );
        assert!(
            a.latency() <= REQUEST_TIMEOUT + MARGIN,
            "signup {}: answered after {:?} (request timeout {REQUEST_TIMEOUT:?})",
            a.email,
            a.latency()
        );
    }
}

/// Every 201's user is whole (user, email identity, profile), and the invariants hold.
async fn assert_every_201_present(db: &TestDb, answers: &[Answer]) {
    let ids: Vec<Uuid> = answers.iter().filter_map(|a| a.user_id).collect();
    let (present,): (i64,) = sqlx::query_as(
        "select count(*) from auth.users u
         where u.id = any($1)
           and exists (select 1 from auth.identities i
                       where i.user_id = u.id and i.provider = 'email'
                         and i.provider_id = u.id::text)
           and exists (select 1 from public.profiles p where p.id = u.id)",
    )
    .bind(&ids)
    .fetch_one(&db.pool)
    .await
    .expect("look up the created users");
    assert_eq!(
        present as usize,
        ids.len(),
        "every 201 is in auth.users, auth.identities and public.profiles"
    );
    support::assert_invariants(db).await;
    let (users, identities, profiles) = support::counts(db).await;
    assert!(
        users == identities && identities == profiles && users >= ids.len() as i64,
        "{users} users, {identities} identities, {profiles} profiles, {} answered 201",
        ids.len()
    );
}

/// `/readyz` every 300 ms for `period`; the answers to requests sent in the first `skip` are
/// left out. `/readyz` answers a probe made before the fault began for up to
/// [`ReadinessProbe::FRESH_FOR`]: a test that called it shortly before skips that long.
async fn poll_readyz(
    client: &reqwest::Client,
    base: &str,
    period: Duration,
    skip: Duration,
) -> Vec<(u16, String, Duration)> {
    let started = Instant::now();
    let mut answers = Vec::new();
    while started.elapsed() < period {
        let sent = started.elapsed();
        let answer = readyz(client, base).await;
        if sent >= skip {
            answers.push(answer);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    answers
}

/// While the database is unreachable (`when`): every signup answered 503, and every `/readyz`
/// answered 503 naming the database within its own timeout.
fn assert_unavailable(when: &str, signups: &[&Answer], readyz: &[(u16, String, Duration)]) {
    for a in signups {
        assert_eq!(
            a.status, 503,
            "signup {} {when}: {} {:?}",
            a.email, a.status, a.code
        );
    }
    for (status, database, latency) in readyz {
        assert_eq!(
            (*status, database.as_str()),
            (503, "unavailable"),
            "/readyz {when}"
        );
        assert!(
            *latency <= READY_TIMEOUT + MARGIN,
            "/readyz {when} answered after {latency:?}"
        );
    }
}

/// "n × 201, n × 503 database_unavailable, n × 503 request_timeout".
fn tally<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> String {
    let (mut created, mut unavailable, mut timed_out) = (0, 0, 0);
    for a in answers {
        match (a.status, a.code.as_deref()) {
            (201, _) => created += 1,
            (503, Some("database_unavailable")) => unavailable += 1,
            (503, Some("request_timeout")) => timed_out += 1,
            _ => {}
        }
    }
    format!(
        "{created} × 201, {unavailable} × 503 database_unavailable, \
         {timed_out} × 503 request_timeout"
    )
}

fn max_latency<'a>(answers: impl IntoIterator<Item = &'a Answer>) -> Duration {
    answers
        .into_iter()
        .map(Answer::latency)
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_cut_mid_flight_leave_every_signup_whole_or_absent() {
    const TOTAL: usize = 200;
    const CUTS: usize = 6;
    let pg = DedicatedPostgres::start().await;
    let db = pg.migrated_db().await;
    // Each signup statement takes 20 ms more, so that a cut finds statements in flight.
    support::slow_profile_inserts(&db, 0.02).await;
    let proxy = Proxy::start(pg.addr()).await;
    let app = TestApp::builder()
        .on(db.reached_at(proxy.addr()))
        .configure(fault_settings)
        .spawn()
        .await;
    let client = http_client();

    let started = Instant::now();
    let load = Load::start(&app, &client, "cut", TOTAL);
    // Cut after a random number of answers, at least 19 answers apart: more than the 16 that
    // can be in flight at a cut, so the service has made new connections before the next one.
    let mut cut = Vec::new();
    for k in 0..CUTS {
        let (after, jitter) = {
            let mut rng = rand::rng();
            (
                15 + 28 * k + rng.random_range(0..10),
                rng.random_range(0..20),
            )
        };
        assert!(
            support::eventually(Duration::from_secs(30), || async {
                load.answered() >= after
            })
            .await,
            "the load stalled before {after} answers"
        );
        tokio::time::sleep(Duration::from_millis(jitter)).await;
        cut.push(proxy.cut_all());
    }
    let mut answers = load.join().await;
    let load_time = started.elapsed();
    let recovery = wait_recovered(&app, &client, &mut answers).await;
    answers.extend(assert_all_succeed(&app, &client).await);

    let stats = proxy.stats();
    let created = answers.iter().filter(|a| a.status == 201).count();
    let (users, _, _) = support::counts(&app.db).await;
    println!(
        "connections cut: {TOTAL} signups at concurrency {CONCURRENCY} in {load_time:?}, \
         {CUTS} cuts of {cut:?} connections ({} proxied in all); {} (with probes and 32 after \
         recovery); max latency {:?}; {} answered 503 yet committed; recovered in {recovery:?}",
        stats.accepted,
        tally(&answers),
        max_latency(&answers),
        users - created as i64,
    );
    assert_clean(&answers);
    assert!(
        cut.iter().all(|&n| n >= 1),
        "every cut found live connections: {cut:?}"
    );
    assert!(
        created < answers.len(),
        "the cuts hit statements in flight (no signup failed)"
    );
    assert_every_201_present(&app.db, &answers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_database_gets_fast_503s_and_signups_succeed_after_unpause() {
    /// Longer than the request timeout plus the acquire timeout.
    const PAUSE: Duration = Duration::from_secs(5);
    let pg = DedicatedPostgres::start().await;
    let db = pg.migrated_db().await;
    let app = TestApp::builder()
        .on(db.clone())
        .configure(fault_settings)
        .spawn()
        .await;
    let client = http_client();
    assert_eq!(readyz(&client, &app.address).await.0, 200);

    let load = Load::start(&app, &client, "pause", usize::MAX);
    assert!(
        support::eventually(Duration::from_secs(20), || async { load.created() >= 20 }).await,
        "signups succeed before the pause"
    );
    pg.pause().await;
    let paused_at = Instant::now();
    // /readyz was called before the load: its result may be shared for FRESH_FOR after that.
    let ready_while_paused =
        poll_readyz(&client, &app.address, PAUSE, ReadinessProbe::FRESH_FOR).await;
    let unpausing_at = Instant::now();
    pg.unpause().await;
    let mut answers = Vec::new();
    let recovery = wait_recovered(&app, &client, &mut answers).await;
    answers.extend(load.stop().await);
    answers.extend(assert_all_succeed(&app, &client).await);

    // Sent after the pause took effect and answered before the unpause began.
    let during: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= paused_at && a.done <= unpausing_at)
        .collect();
    let (users, _, _) = support::counts(&db).await;
    let created = answers.iter().filter(|a| a.status == 201).count();
    println!(
        "database paused {PAUSE:?}: {} during the pause, max latency {:?}; readyz while \
         paused: {:?}; in all {} (with probes and 32 after recovery), max latency {:?}; {} \
         answered 503 yet committed; recovered {recovery:?} after unpause",
        tally(during.iter().copied()),
        max_latency(during.iter().copied()),
        ready_while_paused
            .iter()
            .map(|(status, _, latency)| format!("{status} in {latency:?}"))
            .collect::<Vec<_>>(),
        tally(&answers),
        max_latency(&answers),
        users - created as i64,
    );
    assert_clean(&answers);
    assert!(
        during.len() >= 10,
        "only {} signups were sent and answered during the pause",
        during.len()
    );
    assert_unavailable("during the pause", &during, &ready_while_paused);
    assert_every_201_present(&db, &answers).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_database_is_reconnected_without_restarting_the_service() {
    /// How long the database stays down.
    const DOWN: Duration = Duration::from_millis(1500);
    let mut pg = DedicatedPostgres::start().await;
    let db = pg.migrated_db().await;
    let proxy = Proxy::start(pg.addr()).await;
    let app = TestApp::builder()
        .on(db.reached_at(proxy.addr()))
        .configure(fault_settings)
        .spawn()
        .await;
    let client = http_client();

    let load = Load::start(&app, &client, "restart", usize::MAX);
    assert!(
        support::eventually(Duration::from_secs(20), || async { load.created() >= 20 }).await,
        "signups succeed before the restart"
    );
    let old_port = pg.port;
    let stopping_at = Instant::now();
    pg.stop().await;
    let stopped_at = Instant::now();
    // No /readyz before: the first call after the stop probes afresh.
    let ready_while_down = poll_readyz(&client, &app.address, DOWN, Duration::ZERO).await;
    let starting_at = Instant::now();
    pg.start_again().await;
    proxy.set_target(pg.addr());
    let mut answers = Vec::new();
    let recovery = wait_recovered(&app, &client, &mut answers).await;
    answers.extend(load.stop().await);
    answers.extend(assert_all_succeed(&app, &client).await);

    // The test's own pool may point at the old port: connect anew.
    let check = pg.database(&db.name).await;
    let (users, _, _) = support::counts(&check).await;
    let down: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.sent >= stopped_at && a.done <= starting_at)
        .collect();
    let created = answers.iter().filter(|a| a.status == 201).count();
    println!(
        "database restarted (fast shutdown took {:?}, down {:?}, port {old_port} -> {}): {} \
         while down; readyz while down: {:?}; in all {} (with probes and 32 after recovery), \
         max latency {:?}; {} answered 503 yet committed; recovered {recovery:?} after \
         `docker start`; proxy {:?}",
        stopped_at - stopping_at,
        starting_at - stopped_at,
        pg.port,
        down.len(),
        ready_while_down
            .iter()
            .map(|(status, _, latency)| format!("{status} in {latency:?}"))
            .collect::<Vec<_>>(),
        tally(&answers),
        max_latency(&answers),
        users - created as i64,
        proxy.stats(),
    );
    assert_clean(&answers);
    assert!(!down.is_empty(), "no signup was answered while down");
    assert_unavailable("while the database was down", &down, &ready_while_down);
    assert_every_201_present(&check, &answers).await;
}
