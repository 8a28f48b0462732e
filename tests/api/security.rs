//! What an attacker could do with the service's own database role, or from the internet:
//! definer functions hijacked through pg_temp, unbounded metric labels and limiter tables,
//! rate-limit bypasses, slow clients, secrets in startup errors, invisible display names, and
//! database errors that must read as "unavailable".

use crate::support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use atomic_signup::domain::DisplayName;
use atomic_signup::startup::Application;
use reqwest::Method;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use support::{
    ServiceProcess, TestApp, TestDb, assert_error, eventually, least_privilege_login, signup_body,
    status_json, test_settings,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ---------------------------------------------------------------------------------------------
// SECURITY DEFINER functions and pg_temp
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn every_definer_function_pins_pg_temp_last() {
    let db = TestDb::migrated().await;
    let rows: Vec<(String, Option<Vec<String>>)> = sqlx::query_as(
        "select p.oid::regprocedure::text, p.proconfig from pg_proc p \
         join pg_namespace n on n.oid = p.pronamespace \
         where p.prosecdef and n.nspname in ('atomic_signup', 'public')",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(rows.len() >= 8, "{rows:?}");
    for (function, config) in rows {
        let path = config
            .unwrap_or_default()
            .into_iter()
            .find_map(|c| c.strip_prefix("search_path=").map(str::to_owned));
        assert_eq!(
            path.as_deref(),
            Some("pg_catalog, pg_temp"),
            "{function}: search_path must name pg_temp explicitly, last"
        );
    }
}

/// Types the definer functions use, by catalogue name (what `boolean`, `integer` … resolve to).
const PLANTED_TYPES: [&str; 12] = [
    "jsonb",
    "json",
    "text",
    "uuid",
    "timestamptz",
    "interval",
    "bytea",
    "bool",
    "int2",
    "int4",
    "int8",
    "varchar",
];

/// As a role holding only the service's grants: plant a `pg_temp` type `ty` whose CHECK runs our
/// function, then call every function that role may execute. Returns the user the planted code
/// ran as (if it ran) and whether the caller became a superuser.
async fn plant_and_call(conn: &mut PgConnection, ty: &str) -> (Option<String>, bool) {
    let mut plant = String::from(
        "create function pg_temp.evil(anyelement) returns boolean language plpgsql as $$
         begin
           perform set_config('pwn.ran_as', current_user::text, false);
           begin
             execute format('alter role %I superuser', session_user);
           exception when others then null;
           end;
           return true;
         end $$;",
    );
    plant.push_str(&format!(
        "create domain pg_temp.{ty} as pg_catalog.{ty} check (pg_temp.evil(value));"
    ));
    sqlx::raw_sql(&plant).execute(&mut *conn).await.unwrap();
    let calls = [
        "select * from atomic_signup.claim_idempotency_key('k1', '\\x00', \
           '00000000-0000-0000-0000-0000000000a1', '1 minute', '1 day')",
        "select * from atomic_signup.create_user_idempotent(gen_random_uuid(), 'pwn@example.com', \
           '$argon2id$v=19$m=1024,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', 'Creator', \
           false, '{\"name\": \"Pwn\"}'::pg_catalog.jsonb, 'k1', '00000000-0000-0000-0000-0000000000a1', 201::smallint, '{}'::pg_catalog.jsonb)",
        "select * from atomic_signup.complete_idempotency_key('k2', \
           '00000000-0000-0000-0000-0000000000a2', 202::smallint, '{}'::pg_catalog.jsonb)",
        "select atomic_signup.release_idempotency_key('k1', '00000000-0000-0000-0000-0000000000a1')",
        "select atomic_signup.purge_idempotency_keys()",
        "select * from atomic_signup.find_profile(gen_random_uuid())",
        "select * from atomic_signup.find_profile_by_email('pwn@example.com')",
        "select * from atomic_signup.claim_confirmation()",
        "select atomic_signup.display_name_is_valid('x')",
    ];
    for call in calls {
        // Errors are fine (the attack may break a call); what it ran as is what counts.
        let _ = sqlx::raw_sql(call).execute(&mut *conn).await;
    }
    let ran_as: Option<String> = sqlx::query_scalar("select current_setting('pwn.ran_as', true)")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    let superuser: bool =
        sqlx::query_scalar("select rolsuper from pg_roles where rolname = session_user")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    (ran_as.filter(|r| !r.is_empty()), superuser)
}

#[tokio::test]
async fn types_planted_in_pg_temp_never_run_as_the_function_owner() {
    let db = TestDb::migrated().await;
    let login = least_privilege_login(&db).await;
    let role = login.get_username().to_owned();
    // One type per session: a planted type that breaks a call early must not hide another.
    for ty in PLANTED_TYPES {
        let mut conn = PgConnection::connect_with(&login).await.unwrap();
        let (ran_as, superuser) = plant_and_call(&mut conn, ty).await;
        assert!(!superuser, "pg_temp.{ty}: the caller became a superuser");
        assert!(
            ran_as.is_none() || ran_as.as_deref() == Some(role.as_str()),
            "pg_temp.{ty}: planted code ran as {ran_as:?}, not as the caller {role}"
        );
    }
}

#[tokio::test]
async fn the_service_role_may_not_call_create_user_directly() {
    let db = TestDb::migrated().await;
    let can: bool = sqlx::query_scalar(
        "select has_function_privilege('atomic_signup_service', \
           'atomic_signup.create_user(uuid,text,text,text,boolean,jsonb)', 'execute')",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert!(!can, "a direct call would skip the Idempotency-Key logic");
    let login = least_privilege_login(&db).await;
    let mut conn = PgConnection::connect_with(&login).await.unwrap();
    let err = sqlx::query(
        "select * from atomic_signup.create_user(gen_random_uuid(), 'd@example.com', 'h', \
         'Creator', true, '{\"name\": \"n\"}')",
    )
    .execute(&mut conn)
    .await
    .unwrap_err();
    support::assert_sqlstate(&err, "42501", "the statement");
}

/// A valid PHC string of GoTrue's shape (what the service would send).
const PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";

/// `create_user_idempotent` called directly, as whoever holds the service's role could.
async fn create_directly(
    conn: &mut PgConnection,
    email: &str,
    password: &str,
    role: &str,
) -> Result<(), sqlx::Error> {
    create_with_profile(conn, email, password, role, json!({"name": "Mallory"})).await
}

async fn create_with_profile(
    conn: &mut PgConnection,
    email: &str,
    password: &str,
    role: &str,
    profile: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "select * from atomic_signup.create_user_idempotent(gen_random_uuid(), $1, $2, $3, true, \
         $4, null, null, null, null)",
    )
    .bind(email)
    .bind(password)
    .bind(role)
    .bind(profile)
    .execute(conn)
    .await
    .map(|_| ())
}

#[tokio::test]
async fn the_signup_function_refuses_arguments_the_service_would_never_send() {
    let db = TestDb::migrated().await;
    let login = least_privilege_login(&db).await;
    let mut conn = PgConnection::connect_with(&login).await.unwrap();
    for (what, email, password, role) in [
        (
            "a role outside the allow-list",
            "m@example.com",
            PHC,
            "Admin",
        ),
        ("an upper-case email", "ADA@example.com", PHC, "Creator"),
        ("an untrimmed email", " ada@example.com", PHC, "Creator"),
        ("an empty email", "", PHC, "Creator"),
        (
            "a bcrypt hash",
            "m@example.com",
            "$2a$10$abcdefghijklmnopqrstuuvwxyzABCDEFGHIJKLMNOPQRSTUVWXY",
            "Creator",
        ),
        ("a plain password", "m@example.com", "hunter2", "Creator"),
    ] {
        let err = create_directly(&mut conn, email, password, role)
            .await
            .expect_err(what);
        support::assert_sqlstate(&err, "22023", what);
    }
    assert_eq!(support::counts(&db).await, (0, 0, 0));
    // What the service sends still works.
    create_directly(&mut conn, "ada@example.com", PHC, "Brand")
        .await
        .unwrap();
    assert_eq!(support::counts(&db).await, (1, 1, 1));
    // The allow-list itself is out of the service role's reach.
    let err = sqlx::query("insert into atomic_signup.signup_roles values ('Admin')")
        .execute(&mut conn)
        .await
        .unwrap_err();
    support::assert_sqlstate(&err, "42501", "insert into signup_roles");
}

#[tokio::test]
async fn the_signup_function_writes_only_the_profile_columns_the_database_lists() {
    let db = TestDb::migrated().await;
    let login = least_privilege_login(&db).await;
    let mut conn = PgConnection::connect_with(&login).await.unwrap();
    // Columns the service writes itself, one the schema does not declare, a name built to break
    // out of the dynamic statement, and profiles that are not objects.
    for (what, profile) in [
        ("the role column", json!({"name": "M", "role": "Admin"})),
        (
            "the id column",
            json!({"name": "M", "id": "00000000-0000-0000-0000-000000000000"}),
        ),
        (
            "onboarding_completed",
            json!({"name": "M", "onboarding_completed": true}),
        ),
        (
            "an undeclared column",
            json!({"name": "M", "updated_at": "2000-01-01T00:00:00Z"}),
        ),
        (
            "a quoted name",
            json!({"name": "M", "name\" = 'x', role = 'Admin' --": 1}),
        ),
        ("an array", json!(["name"])),
        ("null", serde_json::Value::Null),
    ] {
        let err = create_with_profile(&mut conn, "m@example.com", PHC, "Creator", profile)
            .await
            .expect_err(what);
        support::assert_sqlstate(&err, "22023", what);
    }
    assert_eq!(support::counts(&db).await, (0, 0, 0));
    // The list is out of the service role's reach.
    let err = sqlx::query("insert into atomic_signup.profile_columns values ('onboarding_done')")
        .execute(&mut conn)
        .await
        .unwrap_err();
    support::assert_sqlstate(&err, "42501", "insert into profile_columns");
    // And the database refuses the columns the service writes itself, whoever lists them.
    let err = sqlx::query("insert into atomic_signup.profile_columns values ('role')")
        .execute(&db.pool)
        .await
        .unwrap_err();
    support::assert_sqlstate(&err, "23514", "role in profile_columns");
}

#[tokio::test]
async fn the_service_role_cannot_aim_a_confirmation_mail_at_another_user() {
    let app = TestApp::spawn().await;
    for email in ["victim@example.com", "mallory@example.com"] {
        let (status, body) =
            status_json(app.signup(&signup_body("U", email, "Creator")).await).await;
        assert_eq!(status, 201, "{body}");
    }
    let login = least_privilege_login(&app.db).await;
    let mut conn = PgConnection::connect_with(&login).await.unwrap();
    let err = sqlx::query(
        "update atomic_signup.confirmation_outbox \
         set user_id = (select id from auth.users where email = 'victim@example.com')",
    )
    .execute(&mut conn)
    .await
    .unwrap_err();
    support::assert_sqlstate(&err, "42501", "update of user_id");
    // The worker's own columns stay writable.
    sqlx::query(
        "update atomic_signup.confirmation_outbox set attempts = attempts, last_error = null",
    )
    .execute(&mut conn)
    .await
    .unwrap();
}

#[tokio::test]
async fn the_service_role_cannot_forge_an_after_user_created_call() {
    let app = TestApp::spawn().await;
    let (status, body) = status_json(
        app.signup(&signup_body("V", "victim@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let victim = body["user_id"]
        .as_str()
        .unwrap()
        .parse::<uuid::Uuid>()
        .unwrap();
    let login = least_privilege_login(&app.db).await;
    let mut conn = PgConnection::connect_with(&login).await.unwrap();
    // No row of its own making, and no other user or input in a row.
    let err = sqlx::query(
        "insert into atomic_signup.hook_outbox (user_id, hook, webhook_id, input)          values ($1, 'after-user-created', gen_random_uuid(), '{}')",
    )
    .bind(victim)
    .execute(&mut conn)
    .await
    .unwrap_err();
    support::assert_sqlstate(&err, "42501", "insert");
    for set in [
        "user_id = user_id",
        "input = '{}'",
        "webhook_id = gen_random_uuid()",
    ] {
        let err = sqlx::query(&format!("update atomic_signup.hook_outbox set {set}"))
            .execute(&mut conn)
            .await
            .unwrap_err();
        support::assert_sqlstate(&err, "42501", set);
    }
    // Not for a user that this transaction did not create.
    let err = sqlx::query("select atomic_signup.enqueue_after_user_created($1, null)")
        .bind(victim)
        .execute(&mut conn)
        .await
        .unwrap_err();
    support::assert_sqlstate(&err, "22023", "an earlier user");
    // For a user it created: once, with a real address only.
    let fresh = uuid::Uuid::new_v4();
    let create = async |tx: &mut PgConnection| {
        sqlx::query(
            "select * from atomic_signup.create_user_idempotent($1, 'fresh@example.com', $2, \
             'Creator', true, '{\"name\": \"F\"}', null, null, null, null)",
        )
        .bind(fresh)
        .bind(PHC)
        .execute(tx)
        .await
        .unwrap();
    };
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    create(&mut tx).await;
    let err = sqlx::query("select atomic_signup.enqueue_after_user_created($1, '1.2.3.4\n')")
        .bind(fresh)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    support::assert_sqlstate(&err, "22023", "a forged address");
    tx.rollback().await.unwrap();
    let mut tx = sqlx::Connection::begin(&mut conn).await.unwrap();
    create(&mut tx).await;
    sqlx::query("select atomic_signup.enqueue_after_user_created($1, '::1')")
        .bind(fresh)
        .execute(&mut *tx)
        .await
        .unwrap();
    let err = sqlx::query("select atomic_signup.enqueue_after_user_created($1, '::1')")
        .bind(fresh)
        .execute(&mut *tx)
        .await
        .unwrap_err();
    support::assert_sqlstate(&err, "23505", "a second call");
    tx.rollback().await.unwrap();
}

#[tokio::test]
async fn migrate_writes_signup_roles_and_serve_refuses_roles_the_database_lacks() {
    let db = TestDb::migrated().await;
    let url = support::database_url(&db, "postgres", "postgres");
    let out = support::run_binary(
        &["migrate"],
        &[("DATABASE_URL", &url), ("SIGNUP_ROLES", "Creator,Agency")],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let roles: Vec<String> =
        sqlx::query_scalar("select role from atomic_signup.signup_roles order by role")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(roles, ["Agency", "Creator"]);
    // A service configured with a role migrate did not write refuses to start, and says why.
    let out = support::run_binary(
        &["serve"],
        &[
            ("DATABASE_URL", &url),
            ("SIGNUP_ROLES", "Creator,Brand"),
            ("IDEMPOTENCY_SECRET", "idempotency-secret-0123456789abcdef"),
            ("BIND_ADDR", "127.0.0.1:0"),
            ("METRICS_BIND_ADDR", ""),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("SIGNUP_ROLES names Brand") && stderr.contains("atomic-signup migrate"),
        "{stderr}"
    );
}

// ---------------------------------------------------------------------------------------------
// The startup schema check under the least-privilege role
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_schema_check_runs_under_the_least_privilege_role() {
    let db = TestDb::migrated().await;
    let login = least_privilege_login(&db).await;
    let mut settings = test_settings(&db).database;
    settings.url = atomic_signup::config::DatabaseUrl::from_options(login);
    let service_db = atomic_signup::store::Database::new(&settings);
    let missing = atomic_signup::store::schema_check::missing_schema(&service_db).await;
    assert_eq!(missing.map_err(|e| e.to_string()), Ok(Vec::new()));
    let profile = atomic_signup::store::profile_columns::check(
        &service_db,
        &Default::default(),
        &Default::default(),
    )
    .await;
    assert_eq!(profile.map_err(|e| e.to_string()), Ok(Vec::new()));
    // And they still find what is missing.
    sqlx::raw_sql(
        "alter table auth.identities rename column last_sign_in_at to signed_in_at; \
         alter table public.profiles rename column name to display_name",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let missing = atomic_signup::store::schema_check::missing_schema(&service_db)
        .await
        .unwrap();
    assert_eq!(missing, ["columns of auth.identities: last_sign_in_at"]);
    let profile = atomic_signup::store::profile_columns::check(
        &service_db,
        &Default::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    assert_eq!(
        profile,
        [
            "profile field `name`: public.profiles has no column `name`",
            "column public.profiles.display_name is NOT NULL without a default: declare it as a \
             required profile field (or give the column a default)"
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Display names: the service's rule and the database's CHECK
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_database_refuses_invisible_names_written_around_the_service() {
    let app = TestApp::spawn().await;
    let (status, body) = status_json(
        app.signup(&signup_body("Ada", "ada@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    for bad in ["\u{200B}", "ad\u{202E}min", "a\u{2028}b", "\u{3164}"] {
        // As the user would through PostgREST: UPDATE of their own name.
        let err = sqlx::query("update public.profiles set name = $1")
            .bind(bad)
            .execute(&app.db.pool)
            .await
            .unwrap_err();
        support::assert_sqlstate(&err, "23514", &format!("{bad:?}"));
    }
    sqlx::query("update public.profiles set name = 'Ada Byron'")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let res = app
        .signup(&signup_body("\u{200B}", "zw@example.com", "Creator"))
        .await;
    let body = assert_error(res, 422, "validation_failed").await;
    assert!(
        body["error"]["fields"]["name"]
            .as_str()
            .unwrap()
            .contains("invisible"),
        "{body}"
    );
}

#[tokio::test]
async fn the_database_rule_matches_the_service_rule_for_every_code_point() {
    let db = TestDb::migrated().await;
    let chars: Vec<char> = (1u32..=0x10FFFF).filter_map(char::from_u32).collect();
    // Inside a name ("a?b"): the service refuses exactly what the database refuses.
    let refused_inside: BTreeSet<i32> = chars
        .iter()
        .filter(|c| DisplayName::parse(&format!("a{c}b")).is_err())
        .map(|c| *c as i32)
        .collect();
    let db_refused_inside: Vec<i32> = sqlx::query_scalar(
        "select cp from generate_series(1, 1114111) cp \
         where (cp < 55296 or cp > 57343) \
           and not atomic_signup.display_name_is_valid('a' || chr(cp) || 'b') order by cp",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let db_refused_inside: BTreeSet<i32> = db_refused_inside.into_iter().collect();
    assert_eq!(
        refused_inside
            .symmetric_difference(&db_refused_inside)
            .count(),
        0,
        "service only: {:?}; database only: {:?}",
        refused_inside
            .difference(&db_refused_inside)
            .collect::<Vec<_>>(),
        db_refused_inside
            .difference(&refused_inside)
            .collect::<Vec<_>>()
    );
    // Alone: whatever the service accepts, the database accepts too (it is the looser of the
    // two about what is visible, never about what is refused above).
    let accepted_alone: Vec<i32> = chars
        .iter()
        .filter(|c| DisplayName::parse(&c.to_string()).is_ok())
        .map(|c| *c as i32)
        .collect();
    let db_refused: Vec<i32> = sqlx::query_scalar(
        "select cp from unnest($1::int[]) cp where not atomic_signup.display_name_is_valid(chr(cp))",
    )
    .bind(&accepted_alone)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert!(db_refused.is_empty(), "{db_refused:?}");
}

// ---------------------------------------------------------------------------------------------
// Metrics: their own listener, bounded labels
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn metrics_are_served_only_on_their_own_listener() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json("/metrics").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    assert!(
        app.metrics_text()
            .await
            .contains("atomic_signup_http_requests_total")
    );
    // Off: no listener at all.
    let off = TestApp::builder()
        .on(app.db.clone())
        .configure(|s| s.metrics_bind_addr = None)
        .spawn()
        .await;
    assert!(off.metrics_address.is_empty());
}

#[tokio::test]
async fn random_methods_and_paths_do_not_grow_the_metrics() {
    // The real binary: its metrics are its own (in this test binary they are process-wide).
    let service = metered_binary(&[]).await;
    let client = support::http_client();
    // One of each kind first, so the series for `other` and `unmatched` exist.
    let other = Method::from_bytes(b"WARMUP").unwrap();
    let _ = client
        .request(other, format!("{}/x", service.base))
        .send()
        .await
        .unwrap();
    let before = service.metrics_text().await.len();
    for i in 0..1000 {
        let method = Method::from_bytes(format!("M{i:04}X").as_bytes()).unwrap();
        let res = client
            .request(method, format!("{}/random/{i}/{}", service.base, i * 7919))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    let after = service.metrics_text().await.len();
    assert!(
        after.abs_diff(before) < 4096,
        "metrics grew from {before} to {after} bytes"
    );
}

/// The real binary on a fresh database with its metrics listener on, plus `env`.
async fn metered_binary(env: &[(&str, &str)]) -> ServiceProcess {
    let db = TestDb::migrated().await;
    let mut command = support::service_binary(&support::database_url(&db, "postgres", "postgres"));
    command
        .env("METRICS_BIND_ADDR", "127.0.0.1:0")
        .envs(env.iter().copied());
    ServiceProcess::start(command).await
}

// ---------------------------------------------------------------------------------------------
// Response headers
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn auth_answers_are_never_cached_and_nothing_is_sniffed() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.rate_limit_signup_per_minute = 1)
        .spawn()
        .await;
    let ok = app
        .signup(&signup_body("Hd", "hd@example.com", "Creator"))
        .await;
    let limited = app
        .signup(&signup_body("Hd", "hd2@example.com", "Creator"))
        .await;
    assert_eq!(
        (ok.status().as_u16(), limited.status().as_u16()),
        (201, 429)
    );
    let bad_login = app.login("hd@example.com", "wrong password").await;
    let unknown = app
        .client
        .get(format!("{}/api/auth/nothing", app.address))
        .send()
        .await
        .unwrap();
    for res in [&ok, &limited, &bad_login, &unknown] {
        assert_eq!(res.headers()["cache-control"], "no-store", "{}", res.url());
        assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    }
    let health = app
        .client
        .get(format!("{}/healthz", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert!(health.headers().get("cache-control").is_none());
}

// ---------------------------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------------------------

/// Statuses of `n` signups (empty body: 422 when not limited) with these X-Forwarded-For values.
async fn statuses_with_forwarded_for(app: &TestApp, forwarded: &[String]) -> Vec<u16> {
    statuses_at(&app.client, &app.address, forwarded).await
}

/// One empty signup per `X-Forwarded-For` value, to `base`; the statuses in order.
async fn statuses_at(client: &reqwest::Client, base: &str, forwarded: &[String]) -> Vec<u16> {
    let mut out = Vec::new();
    for xff in forwarded {
        let res = client
            .post(format!("{base}/api/auth/signup"))
            .header("x-forwarded-for", xff)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        out.push(res.status().as_u16());
    }
    out
}

async fn limited_app() -> TestApp {
    TestApp::builder()
        .configure(|s| {
            s.rate_limit_signup_per_minute = 3;
            s.trust_forwarded_for = true;
            s.rate_limit_prune_interval = Duration::from_secs(3600);
        })
        .spawn()
        .await
}

#[tokio::test]
async fn a_forged_left_entry_buys_no_bucket_whatever_form_the_proxy_appends() {
    let app = limited_app().await;
    for right in ["203.0.113.9:51234", "[2001:db8::9]:443", "garbage", ""] {
        let forwarded: Vec<String> = (1..=6).map(|i| format!("172.16.0.{i}, {right}")).collect();
        let got = statuses_with_forwarded_for(&app, &forwarded).await;
        // "garbage" and "" fall back to the socket peer (127.0.0.1): one bucket for both.
        let expected: &[u16] = if right.is_empty() {
            &[429; 6]
        } else {
            &[422, 422, 422, 429, 429, 429]
        };
        assert_eq!(got, expected, "right-most entry {right:?}");
    }
}

#[tokio::test]
async fn one_ipv6_64_is_one_client() {
    let app = limited_app().await;
    let same_64: Vec<String> = (1..=6).map(|i| format!("2001:db8:1:2::{i:x}")).collect();
    assert_eq!(
        statuses_with_forwarded_for(&app, &same_64).await,
        [422, 422, 422, 429, 429, 429]
    );
    let next_64 = vec!["2001:db8:1:3::1".to_owned()];
    assert_eq!(statuses_with_forwarded_for(&app, &next_64).await, [422]);
}

#[tokio::test]
async fn the_limiter_forgets_clients_whose_bucket_is_full_again() {
    // The real binary: the gauge is its own (in this test binary metrics are process-wide).
    let service = metered_binary(&[
        // One request takes a cell that comes back after 10 s.
        ("RATE_LIMIT_SIGNUP_PER_MINUTE", "6"),
        ("TRUST_FORWARDED_FOR", "true"),
        ("RATE_LIMIT_PRUNE_INTERVAL_S", "1"),
    ])
    .await;
    let client = support::http_client();
    let clients: Vec<String> = (0..200)
        .map(|i| format!("198.18.{}.{}", i / 250, i % 250 + 1))
        .collect();
    assert!(
        statuses_at(&client, &service.base, &clients)
            .await
            .iter()
            .all(|s| *s == 422)
    );
    let gauge = || async {
        let text = service.metrics_text().await;
        text.lines()
            .find(|l| {
                l.starts_with("atomic_signup_rate_limit_clients")
                    && l.contains("route=\"/api/auth/signup\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert!(
        eventually(Duration::from_secs(5), || async {
            gauge().await == Some(200.0)
        })
        .await,
        "200 clients in the table: {:?}",
        gauge().await
    );
    // Each bucket is full again 10 s after its one request; governor's retain_recent keeps a
    // client one period longer (it drops a key once its arrival time is a period in the past),
    // so the prune after 20 s drops it. Waited for with room to spare: a bound, not a timing.
    assert!(
        eventually(Duration::from_secs(60), || async {
            gauge().await == Some(0.0)
        })
        .await,
        "the table was pruned: {:?}",
        gauge().await
    );
}

// ---------------------------------------------------------------------------------------------
// Slow clients (the real binary)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn slow_and_silent_connections_are_closed_after_the_header_timeout() {
    let db = TestDb::migrated().await;
    let mut command = support::service_binary(&support::database_url(&db, "postgres", "postgres"));
    command.env("HTTP_HEADER_READ_TIMEOUT_S", "1");
    let service = ServiceProcess::start(command).await;
    let base = service.base.clone();
    // No connection reuse: the service closes idle connections after 1 s here.
    let client = support::http_client_builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();

    let addr = base.trim_start_matches("http://").to_owned();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut trickle = TcpStream::connect(&addr).await.unwrap();
    trickle
        .write_all(b"POST /api/auth/signup HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    // Meanwhile, normal requests are served.
    for _ in 0..5 {
        let res = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(res.status(), 200);
    }
    for (name, stream) in [
        ("silent", &mut silent),
        ("trickle", &mut trickle),
        ("idle", &mut idle),
    ] {
        let mut buf = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
        let closed_after = started.elapsed();
        assert!(read.is_ok(), "{name}: still open after 5 s");
        assert!(
            closed_after < Duration::from_secs(2) + Duration::from_millis(500),
            "{name}: closed after {closed_after:?} (timeout 1 s)"
        );
        if name == "idle" {
            // It got its answer first, then was closed while idle.
            assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
        }
    }
    let res = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    service.stop().await;
}

/// A connection to `addr` from the local address `from` (any of 127.0.0.0/8 works on loopback).
async fn connect_from(from: &str, addr: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    socket.connect(addr.parse().unwrap()).await.unwrap()
}

/// Sends `GET /healthz` on `stream` (keep-alive) and returns the status line, or `None` when the
/// service closed the connection without an answer.
async fn healthz_on(stream: &mut TcpStream) -> Option<String> {
    if stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .is_err()
    {
        return None;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no answer and no close within 5 s"),
        }
    }
    // The body ({"status":"ok"}) is small: read it too so the next request starts clean.
    let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .map(str::to_owned)
}

#[tokio::test]
async fn one_client_cannot_hold_every_connection() {
    const CAP: usize = 4;
    let db = TestDb::migrated().await;
    let mut command = support::service_binary(&support::database_url(&db, "postgres", "postgres"));
    command.env("HTTP_MAX_CONNECTIONS_PER_IP", CAP.to_string());
    let service = ServiceProcess::start(command).await;
    let addr = service.base.trim_start_matches("http://").to_owned();

    // The cap's worth of keep-alive connections from 127.0.0.2, each served.
    let mut held = Vec::new();
    for _ in 0..CAP {
        let mut stream = connect_from("127.0.0.2", &addr).await;
        let status = healthz_on(&mut stream).await;
        assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
        held.push(stream);
    }
    // One more from the same address is closed without an answer.
    let mut extra = connect_from("127.0.0.2", &addr).await;
    assert_eq!(healthz_on(&mut extra).await, None, "over the cap");
    // Another client is served as usual.
    let mut other = connect_from("127.0.0.1", &addr).await;
    assert_eq!(
        healthz_on(&mut other).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    // The held connections still work; once one closes, its slot is free again.
    assert_eq!(
        healthz_on(&mut held[0]).await.as_deref(),
        Some("HTTP/1.1 200 OK")
    );
    drop(held.pop());
    let freed = || async {
        let mut stream = connect_from("127.0.0.2", &addr).await;
        healthz_on(&mut stream).await.is_some()
    };
    assert!(
        eventually(Duration::from_secs(5), freed).await,
        "a closed connection gives its slot back"
    );
    service.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Startup errors never show secrets
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_malformed_env_file_is_reported_by_line_number_only() {
    let dir = std::env::temp_dir().join(format!("atomic-signup-env-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(".env"),
        "# settings\nDATABASE_URL=\"postgres://postgres:hunter2-secret@db/postgres\nX=1\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_atomic-signup"))
        .arg("serve")
        .env_clear()
        .current_dir(&dir)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
}

#[tokio::test]
async fn only_the_working_directory_s_env_file_or_env_file_is_read() {
    let parent = std::env::temp_dir().join(format!("atomic-signup-env-{}", uuid::Uuid::new_v4()));
    let work = parent.join("work");
    std::fs::create_dir_all(&work).unwrap();
    // Whatever a .env sets, an invalid DATABASE_URL tells whether the file was read.
    let planted = "DATABASE_URL=planted-not-a-url\n";
    std::fs::write(parent.join(".env"), planted).unwrap();
    let serve = |vars: Vec<(&'static str, String)>| {
        let work = work.clone();
        async move {
            let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_atomic-signup"))
                .arg("serve")
                .env_clear()
                .envs(vars)
                .current_dir(&work)
                .output()
                .await
                .unwrap();
            assert!(!out.status.success());
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
    };
    let stderr = serve(vec![]).await;
    assert!(
        stderr.contains("DATABASE_URL is required but not set"),
        "the parent's .env is ignored: {stderr}"
    );
    std::fs::write(work.join(".env"), planted).unwrap();
    let stderr = serve(vec![]).await;
    assert!(
        stderr.contains("DATABASE_URL is invalid"),
        "./.env is read: {stderr}"
    );
    std::fs::remove_file(work.join(".env")).unwrap();
    let named = parent.join("service.env");
    std::fs::write(&named, planted).unwrap();
    let stderr = serve(vec![("ENV_FILE", named.display().to_string())]).await;
    assert!(
        stderr.contains("DATABASE_URL is invalid"),
        "ENV_FILE is read: {stderr}"
    );
    let missing = parent.join("missing.env").display().to_string();
    let stderr = serve(vec![("ENV_FILE", missing.clone())]).await;
    assert!(
        stderr.contains("cannot read .env") && stderr.contains(&missing),
        "a missing ENV_FILE is an error: {stderr}"
    );
    let _ = std::fs::remove_dir_all(&parent);
}

// ---------------------------------------------------------------------------------------------
// Database errors that mean "unavailable"
// ---------------------------------------------------------------------------------------------

/// A TCP server that accepts connections and answers each with `reply`, then closes it: what a
/// pooler or proxy does while the database behind it restarts.
async fn fake_database(reply: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut first = [0u8; 8];
            let _ = stream.read(&mut first).await;
            let _ = stream.write_all(reply).await;
            drop(stream);
        }
    });
    port
}

#[tokio::test]
async fn a_connection_closed_at_the_handshake_is_503_database_unavailable() {
    for reply in [&b""[..], &b"\x00"[..]] {
        let port = fake_database(reply).await;
        let db = TestDb::migrated().await;
        let mut settings = test_settings(&db);
        settings.database.url = atomic_signup::config::DatabaseUrl::from_options(
            db.options.clone().host("127.0.0.1").port(port),
        );
        let app = Application::build(settings).await.expect("starts anyway");
        let address = format!("http://{}", app.local_addr().unwrap());
        tokio::spawn(app.run_until(std::future::pending()));
        let res = support::http_client()
            .post(format!("{address}/api/auth/signup"))
            .json(&signup_body("Down", "down@example.com", "Creator"))
            .send()
            .await
            .unwrap();
        assert_error(res, 503, "database_unavailable").await;
    }
}

#[tokio::test]
async fn a_wrong_database_password_is_503_and_logged_as_an_authentication_failure() {
    let db = TestDb::migrated().await;
    let url = support::database_url(&db, "postgres", "not-the-password");
    let service = ServiceProcess::start(support::service_binary(&url)).await;
    let res = support::http_client()
        .post(format!("{}/api/auth/signup", service.base))
        .json(&signup_body("Pw", "pw@example.com", "Creator"))
        .send()
        .await
        .unwrap();
    assert_error(res, 503, "database_unavailable").await;
    let stdout = service.stop().await;
    assert!(
        stdout
            .lines()
            .any(|l| l.contains("\"level\":\"ERROR\"")
                && l.contains("database authentication failed")),
        "no error log naming the authentication failure:\n{stdout}"
    );
    assert!(
        !stdout.contains("not-the-password"),
        "the password was logged"
    );
}
