//! Operations: the least-privilege role, the startup schema check, GoTrue's audit row, the
//! image's healthcheck command.

use crate::support;

use atomic_signup::startup::{Application, StartupError};
use gotrue_double::GoTrueDouble;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use support::{
    ServiceProcess, TestApp, TestDb, eventually, least_privilege_login, signup_body, status_json,
    test_settings,
};
use uuid::Uuid;

#[tokio::test]
async fn the_service_works_with_only_the_least_privilege_role() {
    let db = TestDb::migrated().await;
    let login = least_privilege_login(&db).await;
    let double = GoTrueDouble::start(db.pool.clone()).await;
    let app = TestApp::builder()
        .on(db.clone())
        .double(double.clone())
        .spawn()
        .await;
    let limited = app
        .another_instance()
        .configure(|s| {
            s.database.url = atomic_signup::config::DatabaseUrl::from_options(login.clone());
        })
        .spawn()
        .await;
    app.stop().await; // only the limited instance (and its outbox worker) runs now

    let (status, body) = status_json(
        limited
            .signup(&signup_body("Least", "least@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let user: Uuid = body["user_id"].as_str().unwrap().parse().unwrap();
    let delivered = || async { double.mails() == ["least@example.com"] };
    assert!(
        eventually(std::time::Duration::from_secs(10), delivered).await,
        "outbox works"
    );
    sqlx::query("update auth.users set email_confirmed_at = now() where id = $1")
        .bind(user)
        .execute(&db.pool)
        .await
        .unwrap();
    let (status, body) = status_json(
        limited
            .login("least@example.com", "correct horse battery")
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profile"]["name"], "Least");

    // What the role cannot do.
    let mut conn = PgConnection::connect_with(&login).await.unwrap();
    for sql in [
        "select encrypted_password from auth.users",
        "select * from auth.users",
        "select * from auth.identities",
        "select * from public.profiles",
        "delete from auth.users",
        "delete from auth.identities",
        "delete from public.profiles",
        "delete from atomic_signup.confirmation_outbox",
        "update auth.users set encrypted_password = 'x'",
        "insert into auth.users (id) values (gen_random_uuid())",
        "select * from public._sqlx_migrations",
        "truncate atomic_signup.confirmation_outbox",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.into_owned());
        assert_eq!(
            code.as_deref(),
            Some("42501"),
            "{sql} must be refused: {err}"
        );
    }
    // The profile function returns one user's non-secret fields only.
    let profile: serde_json::Value = sqlx::query_scalar("select atomic_signup.find_profile($1)")
        .bind(user)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        profile,
        serde_json::json!({"name": "Least", "role": "Creator", "onboarding_completed": false})
    );

    // Idempotency-Key: claim, complete in the transaction, replay; a failure gives the key back.
    let keyed_body = signup_body("Keyed", "keyed@example.com", "Creator");
    let first = limited.keyed_signup("least-key", &keyed_body).await;
    assert_eq!(first.status(), 201);
    let again = limited.keyed_signup("least-key", &keyed_body).await;
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let taken = limited.keyed_signup("least-key-2", &keyed_body).await;
    assert_eq!(taken.status(), 409);
    let left: i64 = sqlx::query_scalar(
        "select count(*) from atomic_signup.idempotency_keys where key = 'least-key-2'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "released after the failed signup");
    for sql in [
        "select * from atomic_signup.idempotency_keys",
        "delete from atomic_signup.idempotency_keys",
    ] {
        let err = sqlx::query(sql).execute(&mut conn).await.unwrap_err();
        support::assert_sqlstate(&err, "42501", &format!("{sql} must be refused"));
    }
    limited.stop().await;
}

/// The message with which the service refuses to start on `db`.
async fn refused(db: &TestDb) -> String {
    Application::build(test_settings(db))
        .await
        .err()
        .expect("startup refused")
        .to_string()
}

#[tokio::test]
async fn startup_refuses_a_database_without_the_migrations() {
    let db = TestDb::with_fixture().await;
    let err = Application::build(test_settings(&db))
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(matches!(err, StartupError::SchemaMissing(_)));
    for needle in [
        "table atomic_signup.profile_table",
        "table atomic_signup.confirmation_outbox",
        "function atomic_signup.create_user",
        "atomic-signup migrate",
    ] {
        assert!(message.contains(needle), "{needle} in: {message}");
    }

    // A Supabase schema that lacks a column we write is named too.
    let db = TestDb::migrated().await;
    sqlx::raw_sql("alter table auth.identities drop column last_sign_in_at")
        .execute(&db.pool)
        .await
        .unwrap();
    let message = refused(&db).await;
    assert!(
        message.contains("columns of auth.identities: last_sign_in_at"),
        "{message}"
    );
}

#[tokio::test]
async fn startup_names_an_unapplied_migration() {
    let db = TestDb::migrated().await;
    sqlx::query(
        "delete from _sqlx_migrations where version = (select max(version) from _sqlx_migrations)",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let message = refused(&db).await;
    let Some(last) = atomic_signup::store::MIGRATOR.iter().last() else {
        panic!("no migrations embedded");
    };
    let expected = format!("migration {} ({})", last.version, last.description);
    assert!(message.contains(&expected), "{message}");
}

#[tokio::test]
async fn signup_writes_gotrue_s_audit_row_in_the_same_transaction() {
    let app = TestApp::spawn().await;
    let (status, body) = status_json(
        app.signup(&signup_body("Audit", "Audit@Example.com", "Brand"))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let user = body["user_id"].as_str().unwrap().to_owned();
    let rows: Vec<(serde_json::Value, String, bool)> = sqlx::query_as(
        "select payload::jsonb, ip_address, instance_id = '00000000-0000-0000-0000-000000000000' \
         and created_at = (select created_at from auth.users) from auth.audit_log_entries",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), 1);
    let (payload, ip, same_tx) = &rows[0];
    assert_eq!(
        payload,
        &json!({"actor_id": user, "actor_via_sso": false, "actor_username": "audit@example.com",
                "action": "user_signedup", "log_type": "team", "traits": {"provider": "email"}})
    );
    assert_eq!(ip, "");
    assert!(same_tx);

    // A rolled-back signup leaves no audit row either.
    sqlx::raw_sql("alter table public.profiles add constraint t check (name <> 'Nope')")
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        status_json(
            app.signup(&signup_body("Nope", "nope@example.com", "Brand"))
                .await
        )
        .await
        .0,
        500
    );
    let n: i64 = sqlx::query_scalar("select count(*) from auth.audit_log_entries")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn healthcheck_answers_for_the_service_on_bind_addr() {
    let db = TestDb::migrated().await;
    let command = support::service_binary(&support::database_url(&db, "postgres", "postgres"));
    let service = ServiceProcess::start(command).await;
    let port = service.base.rsplit(':').next().unwrap().to_owned();
    // As the image runs it: BIND_ADDR on every interface, reached on loopback.
    for bind in [format!("127.0.0.1:{port}"), format!("0.0.0.0:{port}")] {
        let out = support::run_binary(&["healthcheck"], &[("BIND_ADDR", &bind)]).await;
        assert!(
            out.status.success(),
            "{bind}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    service.stop().await;
    let closed = format!("127.0.0.1:{}", support::closed_port());
    let out = support::run_binary(&["healthcheck"], &[("BIND_ADDR", &closed)]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("/healthz"), "{stderr}");
    let out = support::run_binary(&["healthcheck"], &[("BIND_ADDR", "nowhere")]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("BIND_ADDR is invalid"), "{stderr}");
}
