//! Test harness: a real Postgres (see `postgres.rs`), the real service on 127.0.0.1:0, and the
//! checks GoTrue applies to rows and hashes (see `gotrue.rs`).
#![allow(dead_code)] // each test binary uses its own part of the harness

pub mod gotrue;
pub mod postgres;

use std::net::SocketAddr;

use atomic_signup::config::{DatabaseSettings, DatabaseUrl, Settings};
use atomic_signup::domain::RoleSet;
use atomic_signup::outbox::OutboxSettings;
use atomic_signup::password::HashSettings;
use atomic_signup::startup::Application;
use serde_json::{Value, json};

pub use postgres::TestDb;

/// Cheap argon2id for tests where the cost is not what is tested.
pub const TEST_HASH: HashSettings = HashSettings {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

pub struct TestApp {
    pub address: String,
    pub db: TestDb,
    pub client: reqwest::Client,
}

pub fn test_settings(db: &TestDb) -> Settings {
    Settings {
        database: DatabaseSettings {
            url: DatabaseUrl::from_options(db.options.clone()),
            max_connections: 10,
        },
        bind_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        signup_roles: RoleSet::default(),
        require_email_confirmation: true,
        conceal_existing_emails: false,
        argon2: TEST_HASH,
        gotrue: None,
        outbox: OutboxSettings::default(),
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// A migrated database and the service on it, with `configure` applied to the settings.
    pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> Self {
        Self::spawn_on(TestDb::migrated().await, configure).await
    }

    pub async fn spawn_on(db: TestDb, configure: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings(&db);
        configure(&mut settings);
        let app = Application::build(settings).await.expect("build the app");
        let address = format!("http://{}", app.local_addr().expect("local addr"));
        tokio::spawn(app.run_until(std::future::pending()));
        Self {
            address,
            db,
            client: reqwest::Client::new(),
        }
    }

    pub async fn signup(&self, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}/api/auth/signup", self.address))
            .json(body)
            .send()
            .await
            .expect("send signup")
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
