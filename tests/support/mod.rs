//! Test harness: a real Postgres (see `postgres.rs`), the real service on 127.0.0.1:0 (in process,
//! [`TestApp`], or the binary, [`ServiceProcess`]); GoTrue's checks of rows and hashes live in the
//! GoTrue double (`crates/gotrue-double`).
#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod pgbouncer;
pub mod postgres;
pub mod proxy;

use std::sync::Arc;
use std::time::Duration;

use atomic_signup::config::HashSettings;
use atomic_signup::config::OutboxSettings;
use atomic_signup::config::{DatabaseUrl, GoTrueSettings, Settings};
use atomic_signup::startup::Application;
use gotrue_double::GoTrueDouble;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

pub use postgres::TestDb;

/// Cheap argon2id for tests where the cost is not what is tested.
pub const TEST_HASH: HashSettings = HashSettings {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

/// The IDEMPOTENCY_SECRET of every test app (replicas of one test share it, as they must).
pub const TEST_IDEMPOTENCY_SECRET: &str = "test-idempotency-secret-0123456789abcdef";

pub struct TestApp {
    pub address: String,
    /// `http://127.0.0.1:<port>` of the metrics listener (METRICS_BIND_ADDR).
    pub metrics_address: String,
    pub db: TestDb,
    pub client: reqwest::Client,
    /// The GoTrue double, when the app was spawned with one.
    pub gotrue: Option<GoTrueDouble>,
    stop: CancellationToken,
    /// `None` once [`TestApp::stop`] waited for it.
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    /// Checked when the app is dropped (see `Drop for TestApp`), unless a test breaks them on
    /// purpose ([`TestAppBuilder::breaks_invariants`]).
    check_invariants: bool,
}

/// Settings pointing at `double`, with an outbox fast enough for tests.
pub fn use_double(settings: &mut Settings, double: &GoTrueDouble) {
    settings.gotrue = Some(GoTrueSettings {
        url: double.url.clone(),
        anon_key: gotrue_double::ANON_KEY.into(),
        timeout: Duration::from_secs(5),
    });
    settings.outbox = OutboxSettings {
        max_attempts: 10,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
    };
}

pub fn test_settings(db: &TestDb) -> Settings {
    // The service's own defaults (as `serve` reads them), but for what tests need otherwise.
    let vars = [
        (
            "DATABASE_URL",
            "postgres://placeholder@localhost/placeholder",
        ),
        ("IDEMPOTENCY_SECRET", TEST_IDEMPOTENCY_SECRET),
        // Ports of the system's choosing, on loopback.
        ("BIND_ADDR", "127.0.0.1:0"),
        ("METRICS_BIND_ADDR", "127.0.0.1:0"),
        ("SHUTDOWN_TIMEOUT_S", "5"),
        // Tests that are not about rate limits switch them off.
        ("RATE_LIMIT_SIGNUP_PER_MINUTE", "0"),
        ("RATE_LIMIT_LOGIN_PER_MINUTE", "0"),
    ];
    let mut settings = Settings::from_lookup(&|name| {
        vars.iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("the test settings parse");
    settings.database.url = DatabaseUrl::from_options(db.options.clone());
    settings.argon2 = TEST_HASH;
    settings
}

/// Builds a [`TestApp`] (crates.io's `TestAppBuilder`): `TestApp::builder().gotrue()
/// .configure(|s| …).spawn().await`.
pub struct TestAppBuilder<'a> {
    db: Option<TestDb>,
    gotrue: GoTrue,
    configure: Vec<Configure<'a>>,
    check_invariants: bool,
}

/// One change to the settings.
type Configure<'a> = Box<dyn FnOnce(&mut Settings) + 'a>;

enum GoTrue {
    None,
    /// A new double on the app's database.
    New,
    Existing(GoTrueDouble),
}

impl<'a> TestAppBuilder<'a> {
    /// Use this database (e.g. to restart on it) instead of a fresh one.
    pub fn on(mut self, db: TestDb) -> Self {
        self.db = Some(db);
        self
    }

    /// A GoTrue double reading the app's database (login and the outbox worker work).
    pub fn gotrue(mut self) -> Self {
        self.gotrue = GoTrue::New;
        self
    }

    /// This GoTrue double (shared with another instance).
    pub fn double(mut self, double: GoTrueDouble) -> Self {
        self.gotrue = GoTrue::Existing(double);
        self
    }

    /// The test writes rows that break tests/invariants.sql on purpose: the check when the app
    /// is dropped is skipped. `_why` is for the reader of the test.
    pub fn breaks_invariants(mut self, _why: &'static str) -> Self {
        self.check_invariants = false;
        self
    }

    /// Changes the settings after the test defaults; applied in order.
    pub fn configure(mut self, configure: impl FnOnce(&mut Settings) + 'a) -> Self {
        self.configure.push(Box::new(configure));
        self
    }

    pub async fn spawn(self) -> TestApp {
        let db = match self.db {
            Some(db) => db,
            None => TestDb::migrated().await,
        };
        let gotrue = match self.gotrue {
            GoTrue::None => None,
            GoTrue::New => Some(GoTrueDouble::start(db.pool.clone()).await),
            GoTrue::Existing(double) => Some(double),
        };
        let check_invariants = self.check_invariants;
        let mut app = TestApp::start(db, gotrue, |settings| {
            for configure in self.configure {
                configure(settings);
            }
        })
        .await;
        app.check_invariants = check_invariants;
        app
    }
}

impl TestApp {
    /// The service on a fresh migrated database, default test settings, no GoTrue.
    pub async fn spawn() -> Self {
        Self::builder().spawn().await
    }

    /// What to spawn: the database (fresh unless [`TestAppBuilder::on`]), the GoTrue double
    /// (none unless [`TestAppBuilder::gotrue`] or [`TestAppBuilder::double`]), and changes to
    /// the settings.
    pub fn builder<'a>() -> TestAppBuilder<'a> {
        TestAppBuilder {
            db: None,
            gotrue: GoTrue::None,
            configure: Vec::new(),
            check_invariants: true,
        }
    }

    /// Another instance of the service (a replica, or a restart) on the same database and
    /// double.
    pub fn another_instance<'a>(&self) -> TestAppBuilder<'a> {
        let builder = Self::builder().on(self.db.clone());
        match &self.gotrue {
            Some(double) => builder.double(double.clone()),
            None => builder,
        }
    }

    async fn start(
        db: TestDb,
        gotrue: Option<GoTrueDouble>,
        configure: impl FnOnce(&mut Settings),
    ) -> Self {
        // TEST_LOG=1: the service's logs on the test's output (shown for a failing test).
        if std::env::var_os("TEST_LOG").is_some() {
            atomic_signup::telemetry::init();
        }
        let mut settings = test_settings(&db);
        if let Some(double) = &gotrue {
            use_double(&mut settings, double);
        }
        // TEST_POOLER=pgbouncer: the service reaches its database through PgBouncer in
        // transaction mode (the test's own checks stay direct).
        if std::env::var("TEST_POOLER").as_deref() == Ok("pgbouncer") {
            settings.database.url =
                DatabaseUrl::from_options(postgres::through_pgbouncer(&db).await);
            settings.database.pool_mode = atomic_signup::config::PoolMode::Transaction;
        }
        configure(&mut settings);
        let app = Application::build(settings).await.expect("build the app");
        let address = format!("http://{}", app.local_addr().expect("local addr"));
        let metrics_address = app
            .metrics_addr()
            .map(|a| format!("http://{a}"))
            .unwrap_or_default();
        let stop = CancellationToken::new();
        let server = tokio::spawn(app.run_until(stop.clone().cancelled_owned()));
        Self {
            address,
            metrics_address,
            db,
            client: http_client(),
            gotrue,
            stop,
            server: Some(server),
            check_invariants: true,
        }
    }

    /// Graceful shutdown: stop serving, stop the outbox worker, wait for both.
    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
    }

    pub fn double(&self) -> &GoTrueDouble {
        self.gotrue.as_ref().expect("spawned with a GoTrue double")
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/api/auth/login", self.address))
            .json(&json!({ "email": email, "password": password }))
            .send()
            .await
            .expect("send login")
    }

    pub async fn signup(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/auth/signup", self.address))
            .json(body)
            .send()
            .await
            .expect("send signup")
    }

    /// POST /api/auth/signup with `key` as Idempotency-Key.
    pub async fn keyed_signup(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/auth/signup", self.address))
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .expect("send signup")
    }

    /// Signs `name`/`email` up with `role` (201 asserted) and returns the new user's id.
    pub async fn signed_up(&self, name: &str, email: &str, role: &str) -> uuid::Uuid {
        let (status, body) = status_json(self.signup(&signup_body(name, email, role)).await).await;
        assert_eq!(status, 201, "{body}");
        body["user_id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .unwrap_or_else(|| panic!("a user_id in {body}"))
    }

    /// GET `path`: status and JSON body.
    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self
            .client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("send GET");
        status_json(res).await
    }

    /// The metrics listener's page (Prometheus text).
    pub async fn metrics_text(&self) -> String {
        let res = self
            .client
            .get(format!("{}/metrics", self.metrics_address))
            .send()
            .await
            .expect("send GET /metrics");
        assert_eq!(res.status(), 200, "GET /metrics");
        res.text().await.expect("metrics body")
    }

    /// A POST with a body and content type of the test's choosing.
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: &str,
    ) -> reqwest::Response {
        let mut req = self
            .client
            .post(format!("{}{path}", self.address))
            .body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        req.send().await.expect("send request")
    }
}

/// An HTTP client for the service under test. It forgets idle connections after 5 s, before the
/// service closes them (HTTP_HEADER_READ_TIMEOUT_S, 10 s in tests): a client that reuses a
/// connection at the moment the server closes it gets "error sending request", so clients and
/// proxies must idle-close first (docs/configuration.md, HTTP_HEADER_READ_TIMEOUT_S).
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().expect("an HTTP client")
}

/// [`http_client`]'s settings, to add more to.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(5))
}

pub fn signup_body(name: &str, email: &str, role: &str) -> Value {
    json!({ "name": name, "email": email, "password": "correct horse battery", "role": role })
}

/// Status and JSON body of a response.
pub async fn status_json(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let text = res.text().await.expect("response body");
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("response {status} is not JSON: {text}"));
    (status, body)
}

/// Serves `router` on a loopback port of its own, for the rest of the test; returns
/// `http://127.0.0.1:<port>`.
pub async fn serve_on_loopback(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A loopback port where nothing listens (for "the dependency is down").
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Polls `check` every 20 ms until it is true or `timeout` passes; returns its last answer.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// After every test that spawned an app (crates.io's `TestApp` checks its post-conditions the
/// same way): tests/invariants.sql must find nothing broken in the app's database. It runs on a
/// connection of its own, on a runtime of its own (the test's runtime is busy dropping the app).
impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
        if !self.check_invariants || std::thread::panicking() {
            return;
        }
        let options = self.db.options.clone();
        let checked = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the invariant check");
            runtime.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect_with(&options)
                    .await
                    .map_err(|e| format!("cannot connect for the invariant check: {e}"))?;
                broken_invariants(&mut conn).await
            })
        })
        .join()
        .expect("the invariant check ran");
        if let Err(broken) = checked {
            panic!("after the test, {broken}");
        }
    }
}

/// The invariant checker (tests/invariants.sql): panics naming every count that is not 0.
pub async fn assert_invariants(db: &TestDb) {
    let mut conn = db.pool.acquire().await.expect("a connection");
    if let Err(broken) = broken_invariants(&mut conn).await {
        panic!("{broken}");
    }
}

/// `Err` naming every count of tests/invariants.sql that is not 0. A database without the schema
/// (a test of a service that never reached its database) holds no signups: nothing to check.
async fn broken_invariants(conn: &mut sqlx::PgConnection) -> Result<(), String> {
    let schema: bool = sqlx::query_scalar("select to_regclass('auth.users') is not null")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| format!("the invariant check could not look for auth.users: {e}"))?;
    if !schema {
        return Ok(());
    }
    let row: (i64, i64, i64, i64, i64, i64) = sqlx::query_as(include_str!("../invariants.sql"))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| format!("tests/invariants.sql did not run: {e}"))?;
    let names = [
        "users_without_profile",
        "profiles_without_user",
        "users_without_identity",
        "identities_without_user",
        "outbox_without_user",
        "keys_without_user",
    ];
    let counts = [row.0, row.1, row.2, row.3, row.4, row.5];
    let broken: Vec<String> = names
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n != 0)
        .map(|(name, n)| format!("{name} = {n}"))
        .collect();
    if broken.is_empty() {
        Ok(())
    } else {
        Err(format!("invariants broken: {}", broken.join(", ")))
    }
}

/// Row counts of the three signup tables.
pub async fn counts(db: &TestDb) -> (i64, i64, i64) {
    sqlx::query_as(
        "select (select count(*) from auth.users), (select count(*) from auth.identities), \
         (select count(*) from public.profiles)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("count rows")
}

/// Makes every profile insert sleep `seconds` inside the signup statement (a stand-in for a slow
/// or stuck database).
pub async fn slow_profile_inserts(db: &TestDb, seconds: f64) {
    sqlx::raw_sql(&format!(
        "create function public.test_only_slow() returns trigger language plpgsql as $$
         begin perform pg_sleep({seconds}); return new; end $$;
         create trigger test_only_slow before insert on public.profiles
           for each row execute function public.test_only_slow();"
    ))
    .execute(&db.pool)
    .await
    .expect("install the slow trigger");
}

/// `postgres://user:password@host:port/db` of `db`.
pub fn database_url(db: &TestDb, user: &str, password: &str) -> String {
    format!(
        "postgres://{user}:{password}@{}:{}/{}",
        db.options.get_host(),
        db.options.get_port(),
        db.name
    )
}

/// The real binary run once with `args` (e.g. `migrate`, `check --json`), a clean environment
/// plus `vars`, JSON logs, in the temp dir (no `.env`); it must finish within 60 s.
pub async fn run_binary(args: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_atomic-signup"));
    command
        .args(args)
        .env_clear()
        .env("LOG_FORMAT", "json")
        .envs(vars.iter().copied())
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .unwrap_or_else(|_| panic!("atomic-signup {args:?} finishes within 60 s"))
        .unwrap_or_else(|e| panic!("run atomic-signup {args:?}: {e}"))
}

/// The real binary, `serve` on 127.0.0.1 (a port of its own choosing) against `database_url`,
/// with a clean environment (no `.env`: it runs in the temp dir), JSON logs, killed when dropped.
/// Tests add their own variables, then [`ServiceProcess::start`] it.
pub fn service_binary(database_url: &str) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_atomic-signup"));
    command
        .arg("serve")
        .env_clear()
        .env("DATABASE_URL", database_url)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("IDEMPOTENCY_SECRET", TEST_IDEMPOTENCY_SECRET)
        .env("LOG_FORMAT", "json")
        // Metrics off: a fixed port would clash between binaries started side by side.
        .env("METRICS_BIND_ADDR", "")
        .current_dir(std::env::temp_dir())
        .kill_on_drop(true);
    command
}

/// A running service binary: its address (read from its "listening" log line, so no port is
/// guessed beforehand) and everything it logged so far.
pub struct ServiceProcess {
    pub child: tokio::process::Child,
    /// `http://127.0.0.1:<port>`
    pub base: String,
    logs: Arc<std::sync::Mutex<String>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl ServiceProcess {
    /// Starts `command` (see [`service_binary`]) and waits until it listens and `/healthz`
    /// answers. Its stdout and stderr are collected (see [`ServiceProcess::logs`]).
    pub async fn start(mut command: tokio::process::Command) -> Self {
        use tokio::io::{AsyncBufReadExt, BufReader};
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().expect("start the service binary");
        let logs = Arc::new(std::sync::Mutex::new(String::new()));
        let (found, address) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let collected = Arc::clone(&logs);
        let out = tokio::spawn(async move {
            let mut found = Some(found);
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(event) = serde_json::from_str::<Value>(&line)
                    && event["message"] == "listening"
                    && let (Some(addr), Some(tx)) = (event["addr"].as_str(), found.take())
                {
                    let _ = tx.send(addr.to_owned());
                }
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let collected = Arc::clone(&logs);
        let err = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                collected.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let addr = tokio::time::timeout(Duration::from_secs(30), address)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_else(|| {
                panic!(
                    "the service never logged its address:\n{}",
                    logs.lock().unwrap()
                )
            });
        let base = format!("http://{addr}");
        let client = http_client();
        let up = || async { client.get(format!("{base}/healthz")).send().await.is_ok() };
        assert!(
            eventually(Duration::from_secs(20), up).await,
            "the service answers /healthz"
        );
        Self {
            child,
            base,
            logs,
            readers: vec![out, err],
        }
    }

    /// `http://<addr>` of the metrics listener, read from its "metrics listening" log line (the
    /// command must have set `METRICS_BIND_ADDR`, e.g. `127.0.0.1:0`).
    pub async fn metrics_base(&self) -> String {
        let found = || {
            self.logs().lines().find_map(|line| {
                let event = serde_json::from_str::<Value>(line).ok()?;
                (event["message"] == "metrics listening")
                    .then(|| event["addr"].as_str().map(|a| format!("http://{a}")))
                    .flatten()
            })
        };
        assert!(
            eventually(Duration::from_secs(10), || async { found().is_some() }).await,
            "the service never logged its metrics address:\n{}",
            self.logs()
        );
        found().unwrap()
    }

    /// The metrics page of this process (see [`ServiceProcess::metrics_base`]).
    pub async fn metrics_text(&self) -> String {
        let url = format!("{}/metrics", self.metrics_base().await);
        http_client()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id().expect("running") as libc::pid_t;
        // SAFETY: sending a signal to our own child process.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Kills the process (if it still runs) and returns all it logged.
    pub async fn stop(mut self) -> String {
        let _ = self.child.start_kill();
        self.exited().await;
        self.logs()
    }

    /// Waits for the process to exit (however it ends) and for its output to be read to the end;
    /// returns its exit status.
    pub async fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.wait().await.ok();
        for reader in self.readers.drain(..) {
            let _ = reader.await; // ends at EOF
        }
        status
    }
}

/// Asserts that `res` is the JSON error answer `status` with `error.code` = `code`; returns the
/// body for further checks.
pub async fn assert_error(res: reqwest::Response, status: u16, code: &str) -> Value {
    let (got, body) = status_json(res).await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    body
}

/// A LOGIN role holding only `atomic_signup_service`, as docs/operations.md tells operators to create.
pub async fn least_privilege_login(db: &TestDb) -> sqlx::postgres::PgConnectOptions {
    let role = format!("app_{}", uuid::Uuid::new_v4().simple());
    sqlx::raw_sql(&format!(
        "create role {role} login password 'app-pw'; grant atomic_signup_service to {role};"
    ))
    .execute(&db.pool)
    .await
    .expect("create the least-privilege role");
    db.options.clone().username(&role).password("app-pw")
}

/// Asserts that `err` is a database error with SQLSTATE `code` (e.g. 42501, insufficient
/// privilege); `what` names the statement in the failure message.
#[track_caller]
pub fn assert_sqlstate(err: &sqlx::Error, code: &str, what: &str) {
    assert_eq!(
        err.as_database_error().and_then(|e| e.code()).as_deref(),
        Some(code),
        "{what}: {err}"
    );
}

/// Waits (up to 30 s) until no other session of the test database runs a statement: e.g. a
/// signup statement whose request was cut off but which the database still executes.
pub async fn wait_until_no_statement_runs(db: &TestDb) {
    let running = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from pg_stat_activity \
             where datname = current_database() and pid <> pg_backend_pid() \
               and backend_type = 'client backend' and state <> 'idle'",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap()
            == 0
    };
    assert!(
        eventually(Duration::from_secs(30), running).await,
        "a statement still runs after 30 s"
    );
}

/// A file of `examples/` (the example profile schema and its columns).
pub fn example_file(file: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("examples/{file}: {e}"))
}

/// A migrated database with the columns of examples/profile-schema.example.sql, and `schema`
/// written into it as `migrate` writes it.
pub async fn example_columns(schema: &atomic_signup::domain::ProfileSchema) -> TestDb {
    let db = TestDb::migrated().await;
    sqlx::raw_sql(&example_file("profile-schema.example.sql"))
        .execute(&db.pool)
        .await
        .expect("the example's columns");
    atomic_signup::store::profile_columns::write(&db.pool, &Default::default(), schema)
        .await
        .expect("write profile_columns");
    db
}

/// The example profile (examples/profile-schema.example.json) on [`example_columns`].
pub async fn example_profile() -> (TestDb, atomic_signup::domain::ProfileSchema) {
    let schema =
        atomic_signup::domain::ProfileSchema::parse(&example_file("profile-schema.example.json"))
            .expect("the example schema");
    (example_columns(&schema).await, schema)
}
