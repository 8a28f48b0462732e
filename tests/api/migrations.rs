//! The migrations: they apply on the Supabase fixture, a second run is a no-op, and the
//! row-level security and grants on public.profiles hold.

use crate::support;

use serde_json::json;
use sqlx::{Connection, PgConnection};
use support::{TestApp, TestDb};
use uuid::Uuid;

/// (successfully applied, all) rows of sqlx's bookkeeping table.
async fn applied(db: &TestDb) -> (usize, usize) {
    let (ok, all): (i64, i64) =
        sqlx::query_as("select count(*) filter (where success), count(*) from _sqlx_migrations")
            .fetch_one(&db.pool)
            .await
            .unwrap();
    (ok as usize, all as usize)
}

#[tokio::test]
async fn migrations_apply_on_the_fixture_and_twice_in_a_row() {
    let db = TestDb::with_fixture().await;
    let embedded = atomic_signup::store::MIGRATOR.iter().count();
    atomic_signup::store::migrate(&db.pool)
        .await
        .expect("first run");
    assert_eq!(applied(&db).await, (embedded, embedded));

    atomic_signup::store::migrate(&db.pool)
        .await
        .expect("second run is a no-op");
    assert_eq!(applied(&db).await, (embedded, embedded));

    let (rls, function): (bool, bool) = sqlx::query_as(
        "select (select relrowsecurity from pg_class where oid = 'public.profiles'::regclass), \
                to_regprocedure('atomic_signup.create_user(uuid,text,text,text,boolean,jsonb)') is not null",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(rls && function);
}

#[tokio::test]
async fn the_migrate_command_applies_the_same_migrations() {
    let db = TestDb::with_fixture().await;
    let url = format!(
        "postgres://{}:postgres@{}:{}/{}",
        db.options.get_username(),
        db.options.get_host(),
        db.options.get_port(),
        db.name
    );
    for _ in 0..2 {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_atomic-signup"))
            .arg("migrate")
            .env("DATABASE_URL", &url)
            .env("LOG_FORMAT", "json")
            .output()
            .await
            .expect("run atomic-signup migrate");
        let logs = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{logs}");
        assert!(logs.contains("migrations applied"), "{logs}");
        assert!(
            !logs.contains(":postgres@"),
            "the URL's password never shows: {logs}"
        );
    }
    let embedded = atomic_signup::store::MIGRATOR.iter().count();
    assert_eq!(applied(&db).await, (embedded, embedded));
}

#[tokio::test]
async fn a_missing_database_url_stops_startup_with_its_name() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_atomic-signup"))
        .arg("serve")
        .env_remove("DATABASE_URL")
        .current_dir(std::env::temp_dir()) // no .env there
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL is required but not set"));
}

/// Runs `sql` (returning one text column) as the `authenticated` role with a JWT whose sub is
/// `user`, as PostgREST would.
async fn as_user(db: &TestDb, user: Uuid, sql: &str) -> Result<Vec<String>, sqlx::Error> {
    let mut conn = PgConnection::connect_with(&db.options).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("select set_config('request.jwt.claims', $1, true)")
        .bind(json!({"sub": user.to_string(), "role": "authenticated"}).to_string())
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("set local role authenticated")
        .execute(&mut *tx)
        .await
        .unwrap();
    let rows = sqlx::query_scalar(sql).fetch_all(&mut *tx).await;
    tx.commit().await?;
    rows
}

#[tokio::test]
async fn row_level_security_lets_a_user_see_and_edit_only_their_own_profile() {
    let app = TestApp::spawn().await;
    let a = app.signed_up("Alice", "alice@example.com", "Creator").await;
    let b = app.signed_up("Bob", "bob@example.com", "Creator").await;

    let visible = as_user(
        &app.db,
        a,
        "select id::text || ' ' || name from public.profiles",
    )
    .await
    .unwrap();
    assert_eq!(visible, vec![format!("{a} Alice")]);

    // A may change their name and onboarding flag …
    let updated = as_user(
        &app.db,
        a,
        "update public.profiles set name = 'Alice L.', onboarding_completed = true returning id::text",
    )
    .await
    .unwrap();
    assert_eq!(updated, vec![a.to_string()], "only A's own row is updated");
    let (name_b, done_a): (String, bool) = sqlx::query_as(
        "select (select name from public.profiles where id = $1), (select onboarding_completed from public.profiles where id = $2)",
    )
    .bind(b)
    .bind(a)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!((name_b.as_str(), done_a), ("Bob", true));

    // … but never their role, and never B's row.
    let err = as_user(
        &app.db,
        a,
        "update public.profiles set role = 'admin' returning id::text",
    )
    .await
    .unwrap_err();
    support::assert_sqlstate(&err, "42501", "the statement");
    let none = as_user(
        &app.db,
        a,
        &format!("update public.profiles set name = 'hacked' where id = '{b}' returning id::text"),
    )
    .await
    .unwrap();
    assert!(none.is_empty());

    // No inserts or deletes through the API roles.
    let err = as_user(&app.db, a, "delete from public.profiles returning id::text")
        .await
        .unwrap_err();
    support::assert_sqlstate(&err, "42501", "the statement");
}

#[tokio::test]
async fn the_api_roles_cannot_reach_the_service_objects() {
    let app = TestApp::spawn().await;
    let user = app.signed_up("Carol", "carol@example.com", "Creator").await;
    for sql in [
        "select description from public._sqlx_migrations",
        "select out_email_confirmed_at::text from atomic_signup.create_user(gen_random_uuid(), 'x@example.com', 'h', 'admin', true, '{}')",
    ] {
        let err = as_user(&app.db, user, sql).await.unwrap_err();
        support::assert_sqlstate(&err, "42501", sql);
    }
    // anon sees no profile at all.
    let mut conn = PgConnection::connect_with(&app.db.options).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    sqlx::query("set local role anon")
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = sqlx::query("select * from public.profiles")
        .fetch_all(&mut *tx)
        .await
        .unwrap_err();
    support::assert_sqlstate(&err, "42501", "the statement");
}

/// The migrations (by file name, in order) and their text.
fn migration_files() -> Vec<(String, String)> {
    let dir = format!("{}/migrations", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// The last migration whose text contains one of `heads` followed by `function`'s name and `(`.
fn last_with(files: &[(String, String)], heads: &[&str], function: &str) -> Option<String> {
    files
        .iter()
        .rev()
        .find(|(_, text)| {
            let text = text.to_lowercase();
            heads
                .iter()
                .any(|head| text.contains(&format!("{head} {function}(")))
        })
        .map(|(name, _)| name.clone())
}

#[test]
fn migrations_readme_names_where_each_function_is_defined_now() {
    let files = migration_files();
    let readme = std::fs::read_to_string(format!(
        "{}/migrations/README.md",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let rows: Vec<Vec<String>> = readme
        .lines()
        .filter(|l| l.starts_with("| `atomic_signup."))
        .map(|l| {
            l.split('|')
                .map(|c| c.trim().trim_matches('`').to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    // Every function the migrations create is in the table.
    let mut created: Vec<String> = files
        .iter()
        .flat_map(|(_, text)| {
            text.to_lowercase()
                .split("function atomic_signup.")
                .skip(1)
                .filter_map(|rest| rest.split('(').next().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    created.sort();
    created.dedup();
    let mut listed: Vec<String> = rows
        .iter()
        .map(|r| r[0].trim_start_matches("atomic_signup.").to_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, created, "functions in migrations/README.md's table");
    let creates = ["create function", "create or replace function"];
    let alters = [
        "create function",
        "create or replace function",
        "alter function",
    ];
    for row in &rows {
        let function = &row[0];
        let body = last_with(&files, &creates, function);
        let path = last_with(&files, &alters, function);
        assert_eq!(body.as_deref(), Some(row[1].as_str()), "body of {function}");
        let expected = if row[2] == "same" { &row[1] } else { &row[2] };
        assert_eq!(
            path.as_deref(),
            Some(expected.as_str()),
            "search_path of {function}"
        );
    }
}
