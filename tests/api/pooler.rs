//! Through a transaction-mode pooler (a real PgBouncer, 2 server connections, see
//! `support/pgbouncer.rs`): the statement timeout still holds, connections really are swapped
//! without leftovers, and `migrate` refuses. (The signup, idempotency, login and outbox modules
//! run through it as a whole with TEST_POOLER=pgbouncer, see scripts/test.sh.)

use atomic_signup::config::{DatabaseUrl, PoolMode, Settings};
use atomic_signup::store::Database;
use support::{TestApp, TestDb, assert_invariants, signup_body};

use crate::support;

async fn through_pooler(settings: &mut Settings, db: &TestDb) {
    settings.database.url =
        DatabaseUrl::from_options(support::postgres::through_pgbouncer(db).await);
    settings.database.pool_mode = PoolMode::Transaction;
}

async fn pooled_app(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDb::migrated().await;
    let pooled = support::postgres::through_pgbouncer(&db).await;
    TestApp::builder()
        .on(db)
        .configure(|s| {
            s.database.url = DatabaseUrl::from_options(pooled);
            s.database.pool_mode = PoolMode::Transaction;
            configure(s);
        })
        .spawn()
        .await
}

#[tokio::test]
async fn twenty_concurrent_signups_share_two_server_connections() {
    let app = pooled_app(|_| {}).await;
    let client = support::http_client();
    let signups = (0..20).map(|i| {
        let mut request = client
            .post(format!("{}/api/auth/signup", app.address))
            .json(&signup_body(
                &format!("User {i}"),
                &format!("u{i}@example.com"),
                "Creator",
            ));
        if i % 2 == 0 {
            request = request.header("Idempotency-Key", format!("pooled-key-{i}"));
        }
        request.send()
    });
    for res in futures::future::join_all(signups).await {
        let res = res.expect("answer");
        assert_eq!(res.status(), 201, "{:?}", res.text().await);
    }
    assert_eq!(support::counts(&app.db).await.0, 20);
    assert_invariants(&app.db).await;
    let (status, body) = app.get_json("/readyz").await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_transaction_dropped_half_way_leaves_nothing_for_the_next_one() {
    // A cancelled request drops its transaction half way: after a write, and after sqlx
    // prepared a named statement on the server connection. Neither may reach the next
    // transaction of that client connection (whose COMMIT would commit the write) nor the next
    // client of that server connection ("prepared statement sqlx_s_1 already exists").
    let db = TestDb::migrated().await;
    sqlx::query("create table public.test_only_writes (n int)")
        .execute(&db.pool)
        .await
        .unwrap();
    let mut settings = support::test_settings(&db);
    through_pooler(&mut settings, &db).await;
    settings.database.max_connections = 1;
    let first = Database::new(&settings.database);
    let second = Database::new(&settings.database);
    let count = "select count(*) from public.test_only_writes";

    let mut tx = first.begin().await.unwrap();
    sqlx::query("insert into public.test_only_writes values (1)")
        .execute(tx.conn())
        .await
        .unwrap();
    drop(tx);
    // The same pool again: a transaction that commits.
    let mut tx = first.begin().await.unwrap();
    let seen: i64 = sqlx::query_scalar(count)
        .fetch_one(tx.conn())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(seen, 0, "the dropped write is not visible");
    let committed: i64 = sqlx::query_scalar(count).fetch_one(&db.pool).await.unwrap();
    assert_eq!(committed, 0, "the dropped write was never committed");

    for _ in 0..3 {
        let mut tx = second.begin().await.unwrap();
        let counted = sqlx::query_scalar::<_, i64>(count)
            .fetch_one(tx.conn())
            .await;
        tx.commit().await.unwrap();
        assert_eq!(counted.unwrap(), 0);
    }
}

/// `atomic-signup migrate` with `vars`: (success, what it printed).
async fn migrate(vars: &[(&str, &str)]) -> (bool, String) {
    let out = support::run_binary(&["migrate"], vars).await;
    let printed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), printed)
}

async fn migrations_table_exists(db: &TestDb) -> bool {
    sqlx::query_scalar("select to_regclass('public._sqlx_migrations') is not null")
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn migrate_refuses_a_transaction_pooler_and_names_the_url_to_use() {
    let db = TestDb::with_fixture().await;
    let bouncer = support::postgres::pgbouncer_for_server().await;
    let pooled = bouncer.url(db.options.get_username(), &db.name);
    let direct = support::database_url(&db, db.options.get_username(), "postgres");

    // Declared, found by probing, or named in MIGRATE_DATABASE_URL: refused before anything runs.
    for vars in [
        vec![
            ("DATABASE_URL", pooled.as_str()),
            ("DATABASE_POOL_MODE", "transaction"),
        ],
        vec![("DATABASE_URL", pooled.as_str())],
        vec![
            ("DATABASE_URL", direct.as_str()),
            ("MIGRATE_DATABASE_URL", pooled.as_str()),
        ],
    ] {
        let (ok, printed) = migrate(&vars).await;
        assert!(!ok, "{vars:?}: {printed}");
        assert!(
            printed.contains("transaction") && printed.contains("set MIGRATE_DATABASE_URL"),
            "{vars:?}: {printed}"
        );
        assert!(
            !migrations_table_exists(&db).await,
            "{vars:?}: nothing applied"
        );
    }

    // With MIGRATE_DATABASE_URL direct, the same service settings migrate.
    let (ok, printed) = migrate(&[
        ("DATABASE_URL", pooled.as_str()),
        ("DATABASE_POOL_MODE", "transaction"),
        ("MIGRATE_DATABASE_URL", direct.as_str()),
    ])
    .await;
    assert!(ok, "{printed}");
    assert!(printed.contains("migrations applied"), "{printed}");
    assert!(
        !printed.contains(":postgres@"),
        "no password shows: {printed}"
    );
}
