//! One Postgres server per test binary, one fresh database per test.
//!
//! The server is `TEST_DATABASE_URL` when set (the tests create databases in it), otherwise a
//! container started with testcontainers from `TEST_POSTGRES_IMAGE` (default `postgres:15`).
//! Every test database gets `tests/fixtures/supabase_auth.sql` and then our migrations.
//!
//! Tests that pause, stop or restart the server get a container of their own
//! ([`DedicatedPostgres`], always Docker), so the shared server never sees their faults.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::OnceLock;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
use testcontainers_modules::testcontainers::{ContainerAsync, ImageExt};
use tokio::sync::OnceCell;
use uuid::Uuid;

pub const FIXTURE: &str = include_str!("../fixtures/supabase_auth.sql");

static SERVER: OnceCell<PgConnectOptions> = OnceCell::const_new();
static CONTAINER_ID: OnceLock<String> = OnceLock::new();

/// Connection options of the server's `postgres` database.
async fn server() -> &'static PgConnectOptions {
    SERVER
        .get_or_init(|| async {
            if let Ok(url) = std::env::var("TEST_DATABASE_URL") {
                return PgConnectOptions::from_str(&url)
                    .unwrap_or_else(|_| panic!("TEST_DATABASE_URL is not a valid Postgres URL"));
            }
            start_container().await
        })
        .await
}

/// The image of `TEST_POSTGRES_IMAGE` (default `postgres:15`), as testcontainers' Postgres.
async fn run_container() -> ContainerAsync<Postgres> {
    let image = std::env::var("TEST_POSTGRES_IMAGE").unwrap_or_else(|_| "postgres:15".into());
    let (name, tag) = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image.clone(), "latest".to_owned()),
    };
    Postgres::default()
        .with_name(name)
        .with_tag(tag)
        .start()
        .await
        .unwrap_or_else(|err| {
            panic!(
                "The tests need Postgres: Docker could not start image {image} ({err}); \
                 start Docker (and build the image with .ci/build-postgres-image.sh) or set \
                 TEST_DATABASE_URL to a server where the tests may create databases."
            )
        })
}

/// Host and mapped port of a running container; "localhost" as 127.0.0.1.
async fn host_and_port(container: &ContainerAsync<Postgres>) -> (String, u16) {
    let host = container
        .get_host()
        .await
        .expect("container host")
        .to_string();
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .expect("container port");
    let host = if host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    (host, port)
}

/// The `postgres` database of a server at `host:port`, as the superuser.
fn superuser_options(host: &str, port: u16) -> PgConnectOptions {
    PgConnectOptions::new()
        .host(host)
        .port(port)
        .username("postgres")
        .password("postgres")
        .database("postgres")
}

async fn start_container() -> PgConnectOptions {
    let container = run_container().await;
    let (host, port) = host_and_port(&container).await;
    // The container must outlive every test of this binary, whose runtimes come and go: keep
    // it out of Drop, and remove it when the process exits.
    let id = container.id().to_owned();
    std::mem::forget(container);
    if CONTAINER_ID.set(id).is_ok() {
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(remove_container) };
    }
    superuser_options(&host, port)
}

extern "C" fn remove_container() {
    if let Some(id) = CONTAINER_ID.get() {
        let _ = std::process::Command::new("docker")
            .args(["rm", "--force", "--volumes", id])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A fresh database of its own for one test (clones share it).
#[derive(Clone)]
pub struct TestDb {
    pub name: String,
    pub options: PgConnectOptions,
    /// Superuser pool, for the test's own checks (the service gets its own pool).
    pub pool: PgPool,
}

impl TestDb {
    /// An empty database (no fixture, no migrations).
    pub async fn empty() -> Self {
        Self::empty_on(server().await).await
    }

    /// A database prepared like a Supabase one: the fixture only.
    pub async fn with_fixture() -> Self {
        Self::with_fixture_on(server().await).await
    }

    /// The fixture, then our migrations: what the service runs against.
    pub async fn migrated() -> Self {
        Self::migrated_on(server().await).await
    }

    /// [`TestDb::empty`] on the server of `server` (options of its `postgres` database).
    pub async fn empty_on(server: &PgConnectOptions) -> Self {
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect_with(server)
            .await
            .expect("connect to the test Postgres server");
        sqlx::query(&format!(r#"create database "{name}""#))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        Self::existing(server, &name).await
    }

    /// [`TestDb::with_fixture`] on the server of `server`.
    pub async fn with_fixture_on(server: &PgConnectOptions) -> Self {
        let db = Self::empty_on(server).await;
        sqlx::raw_sql(FIXTURE)
            .execute(&db.pool)
            .await
            .expect("apply tests/fixtures/supabase_auth.sql");
        db
    }

    /// [`TestDb::migrated`] on the server of `server`.
    pub async fn migrated_on(server: &PgConnectOptions) -> Self {
        let db = Self::with_fixture_on(server).await;
        atomic_signup::store::migrate(&db.pool)
            .await
            .expect("apply migrations");
        db
    }

    /// The existing database `name` on the server of `server`, with a new superuser pool.
    pub async fn existing(server: &PgConnectOptions, name: &str) -> Self {
        let options = server.clone().database(name);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        Self {
            name: name.to_owned(),
            options,
            pool,
        }
    }

    /// The same database reached at `addr` (e.g. through a proxy) by whoever uses `options` —
    /// the service; the test's own `pool` is unchanged.
    pub fn reached_at(&self, addr: SocketAddr) -> Self {
        Self {
            options: self
                .options
                .clone()
                .host(&addr.ip().to_string())
                .port(addr.port()),
            ..self.clone()
        }
    }
}

/// A Postgres container of one test's own, for tests that pause, stop or restart the server
/// (the per-binary server is shared by tests running in parallel). Removed (`docker rm -f`) on
/// drop, also when the test panics.
pub struct DedicatedPostgres {
    pub id: String,
    pub host: String,
    /// The mapped host port; it may change when the container is stopped and started again.
    pub port: u16,
}

impl DedicatedPostgres {
    /// Starts a container of `TEST_POSTGRES_IMAGE` and waits until it accepts connections.
    pub async fn start() -> Self {
        let container = run_container().await;
        let (host, port) = host_and_port(&container).await;
        let id = container.id().to_owned();
        // Its lifetime is ours (see Drop), not testcontainers'.
        std::mem::forget(container);
        let pg = Self { id, host, port };
        pg.wait_ready(Duration::from_secs(30)).await;
        pg
    }

    /// Options of the server's `postgres` database, as the superuser, at the current port.
    pub fn options(&self) -> PgConnectOptions {
        superuser_options(&self.host, self.port)
    }

    /// The server's current address.
    pub fn addr(&self) -> SocketAddr {
        use std::net::ToSocketAddrs;
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve {}:{}", self.host, self.port))
    }

    /// A new migrated database (fixture + migrations) on this server.
    pub async fn migrated_db(&self) -> TestDb {
        TestDb::migrated_on(&self.options()).await
    }

    /// The existing database `name`, with a new superuser pool at the current port.
    pub async fn database(&self, name: &str) -> TestDb {
        TestDb::existing(&self.options(), name).await
    }

    /// Polls until a superuser connection answers `select 1`; panics after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let attempt = tokio::time::timeout(Duration::from_secs(2), async {
                let mut conn = PgConnection::connect_with(&self.options()).await?;
                sqlx::query("select 1").execute(&mut conn).await?;
                conn.close().await
            })
            .await;
            match attempt {
                Ok(Ok(())) => return,
                _ if tokio::time::Instant::now() >= deadline => {
                    panic!("Postgres container {} not ready after {timeout:?}", self.id)
                }
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// `docker pause`: every process of the server frozen; TCP connections stay open.
    ///
    /// The cgroup freezer gives up when a process does not freeze in time (one in uninterruptible
    /// sleep, e.g. waiting for an fsync): runc then thaws the container and `docker pause` fails
    /// with "unable to freeze" (seen once in 5 runs of the suite on a clean clone). That is the
    /// machine, not the service: try again, a few times.
    pub async fn pause(&self) {
        for _ in 0..10 {
            let output = tokio::process::Command::new("docker")
                .args(["pause", &self.id])
                .output()
                .await
                .expect("run docker");
            let stderr = String::from_utf8_lossy(&output.stderr);
            if output.status.success() {
                return;
            }
            assert!(
                stderr.contains("unable to freeze"),
                "docker pause {}: {stderr}",
                self.id
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "docker pause {}: the container never froze in 10 tries",
            self.id
        );
    }

    pub async fn unpause(&self) {
        docker(&["unpause", &self.id]).await;
    }

    /// Stops the server with a fast shutdown (SIGINT: sessions are ended with `57P01`, the data
    /// is checkpointed) and waits until the container has exited.
    pub async fn stop(&self) {
        docker(&["kill", "--signal", "SIGINT", &self.id]).await;
        docker(&["wait", &self.id]).await;
    }

    /// `docker start` again and reads the mapped port anew (Docker may pick another one). Does
    /// not wait for the server to accept connections.
    pub async fn start_again(&mut self) {
        docker(&["start", &self.id]).await;
        let mapping = docker(&["port", &self.id, "5432/tcp"]).await;
        self.port = mapping
            .lines()
            .find_map(|line| line.trim().rsplit_once(':')?.1.parse().ok())
            .unwrap_or_else(|| panic!("no port in `docker port`: {mapping:?}"));
    }
}

impl Drop for DedicatedPostgres {
    fn drop(&mut self) {
        for args in [
            &["unpause", self.id.as_str()][..],
            &["rm", "--force", "--volumes", self.id.as_str()][..],
        ] {
            let _ = std::process::Command::new("docker")
                .args(args)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status();
        }
    }
}

/// Runs `docker args…` (without blocking the runtime); panics unless it succeeds. Its stdout.
async fn docker(args: &[&str]) -> String {
    let output = tokio::process::Command::new("docker")
        .args(args)
        .output()
        .await
        .expect("run docker");
    assert!(
        output.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `db` reached through the binary's PgBouncer in transaction mode (see `pgbouncer.rs`).
pub async fn through_pgbouncer(db: &TestDb) -> PgConnectOptions {
    let bouncer = pgbouncer_for_server().await;
    bouncer.options(server().await.get_username(), &db.name)
}

/// The binary's PgBouncer, in front of the shared server.
pub async fn pgbouncer_for_server() -> &'static super::pgbouncer::PgBouncer {
    let server = server().await;
    // The server's password: the container's is `postgres`; TEST_DATABASE_URL names its own.
    let password = std::env::var("TEST_DATABASE_URL")
        .ok()
        .and_then(|url| reqwest::Url::parse(&url).ok())
        .and_then(|url| url.password().map(str::to_owned))
        .unwrap_or_else(|| "postgres".to_owned());
    super::pgbouncer::PgBouncer::shared(server, &password).await
}
