//! One Postgres server per test binary, one fresh database per test.
//!
//! The server is `TEST_DATABASE_URL` when set (the tests create databases in it), otherwise a
//! container started with testcontainers from `TEST_POSTGRES_IMAGE` (default `postgres:15`).
//! Every test database gets `tests/fixtures/supabase_auth.sql` and then our migrations.

use std::str::FromStr;
use std::sync::OnceLock;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use testcontainers_modules::postgres::Postgres;
use testcontainers_modules::testcontainers::ImageExt;
use testcontainers_modules::testcontainers::runners::AsyncRunner;
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

async fn start_container() -> PgConnectOptions {
    let image = std::env::var("TEST_POSTGRES_IMAGE").unwrap_or_else(|_| "postgres:15".into());
    let (name, tag) = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
        _ => (image.clone(), "latest".to_owned()),
    };
    let container = Postgres::default()
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
        });
    let host = container
        .get_host()
        .await
        .expect("container host")
        .to_string();
    let port = container
        .get_host_port_ipv4(5432)
        .await
        .expect("container port");
    // The container must outlive every test of this binary, whose runtimes come and go: keep
    // it out of Drop, and remove it when the process exits.
    let id = container.id().to_owned();
    std::mem::forget(container);
    if CONTAINER_ID.set(id).is_ok() {
        // SAFETY: registering a plain extern "C" fn with no captured state.
        unsafe { libc::atexit(remove_container) };
    }
    let host = if host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        host
    };
    PgConnectOptions::new()
        .host(&host)
        .port(port)
        .username("postgres")
        .password("postgres")
        .database("postgres")
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
        let server = server().await;
        let name = format!("test_{}", Uuid::new_v4().simple());
        let mut admin = PgConnection::connect_with(server)
            .await
            .expect("connect to the test Postgres server");
        sqlx::query(&format!(r#"create database "{name}""#))
            .execute(&mut admin)
            .await
            .expect("create test database");
        let _ = admin.close().await;
        let options = server.clone().database(&name);
        let pool = PgPoolOptions::new()
            .max_connections(5)
            .connect_with(options.clone())
            .await
            .expect("connect to the test database");
        Self {
            name,
            options,
            pool,
        }
    }

    /// A database prepared like a Supabase one: the fixture only.
    pub async fn with_fixture() -> Self {
        let db = Self::empty().await;
        sqlx::raw_sql(FIXTURE)
            .execute(&db.pool)
            .await
            .expect("apply tests/fixtures/supabase_auth.sql");
        db
    }

    /// The fixture, then our migrations: what the service runs against.
    pub async fn migrated() -> Self {
        let db = Self::with_fixture().await;
        atomic_signup::store::migrate(&db.pool)
            .await
            .expect("apply migrations");
        db
    }
}
