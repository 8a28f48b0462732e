//! POST /api/auth/signup against a real Postgres prepared like a Supabase database.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use atomic_signup::config::HashSettings;
use gotrue_double::rules::{
    find_user_by_email_and_audience, gotrue_argon2_verifies, null_scan_columns, parse_gotrue_argon2,
};
use serde_json::{Value, json};
use support::{TestApp, assert_error, counts, signup_body, status_json};
use uuid::Uuid;

const NIL: &str = "00000000-0000-0000-0000-000000000000";

#[tokio::test]
async fn signup_writes_the_gotrue_recipe_into_all_three_tables() {
    let app = TestApp::spawn().await;
    let (status, body) = status_json(
        app.signup(&json!({
            "name": "  Ada Lovelace ", "email": " Ada.Lovelace@Example.COM ",
            "password": "correct horse battery", "role": "Creator"
        }))
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let user_id: Uuid = body["user_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        body,
        json!({
            "user_id": user_id.to_string(), "email": "ada.lovelace@example.com", "name": "Ada Lovelace",
            "role": "Creator", "onboarding_completed": false, "email_confirmed": false
        })
    );

    // auth.users: every column of the recipe.
    let u: Value = sqlx::query_scalar("select to_jsonb(u) from auth.users u where id = $1")
        .bind(user_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(u["instance_id"], NIL);
    assert_eq!(u["aud"], "authenticated");
    assert_eq!(u["role"], "authenticated");
    assert_eq!(u["email"], "ada.lovelace@example.com");
    for col in [
        "confirmation_token",
        "recovery_token",
        "email_change_token_new",
        "email_change",
        "email_change_token_current",
        "phone_change",
        "phone_change_token",
        "reauthentication_token",
    ] {
        assert_eq!(u[col], "", "{col} must be '' (never NULL)");
    }
    assert_eq!(u["email_change_confirm_status"], 0);
    for col in [
        "phone",
        "email_confirmed_at",
        "confirmed_at",
        "phone_confirmed_at",
        "invited_at",
        "confirmation_sent_at",
        "recovery_sent_at",
        "email_change_sent_at",
        "phone_change_sent_at",
        "reauthentication_sent_at",
        "last_sign_in_at",
        "banned_until",
        "deleted_at",
        "is_super_admin",
    ] {
        assert_eq!(u[col], Value::Null, "{col} must be NULL");
    }
    // The role in app metadata (users cannot change it), the name in user metadata.
    assert_eq!(
        u["raw_app_meta_data"],
        json!({"provider": "email", "providers": ["email"], "role": "Creator"})
    );
    assert_eq!(u["raw_user_meta_data"], json!({"name": "Ada Lovelace"}));
    assert_eq!(u["is_sso_user"], false);
    assert_eq!(u["is_anonymous"], false);
    assert!(
        u["created_at"].is_string() && u["created_at"] == u["updated_at"],
        "{u}"
    );
    let recent: bool = sqlx::query_scalar(
        "select created_at > now() - interval '1 minute' from auth.users where id = $1",
    )
    .bind(user_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(recent);

    // The password: argon2id PHC of GoTrue's shape, verified the way GoTrue verifies it.
    let hash = u["encrypted_password"].as_str().unwrap();
    let parsed = parse_gotrue_argon2(hash).unwrap();
    assert_eq!(parsed.algorithm, argon2::Algorithm::Argon2id);
    assert_eq!(
        (parsed.memory_kib, parsed.iterations, parsed.parallelism),
        (
            support::TEST_HASH.memory_kib,
            support::TEST_HASH.iterations,
            support::TEST_HASH.parallelism
        )
    );
    assert_eq!(
        gotrue_argon2_verifies(hash, "correct horse battery"),
        Ok(true)
    );
    assert_eq!(
        gotrue_argon2_verifies(hash, "correct horse batterY"),
        Ok(false)
    );

    // auth.identities: one email identity, provider_id = the user id as text.
    let identities: Vec<Value> =
        sqlx::query_scalar("select to_jsonb(i) from auth.identities i where user_id = $1")
            .bind(user_id)
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(identities.len(), 1);
    let i = &identities[0];
    assert_eq!(i["provider"], "email");
    assert_eq!(i["provider_id"], user_id.to_string());
    assert_eq!(
        i["identity_data"],
        json!({"sub": user_id.to_string(), "email": "ada.lovelace@example.com",
               "email_verified": false, "phone_verified": false})
    );
    assert_eq!(i["email"], "ada.lovelace@example.com");
    assert!(i["id"].is_string());
    assert!(i["created_at"].is_string() && i["created_at"] == i["updated_at"]);
    assert_eq!(i["last_sign_in_at"], i["created_at"]);
    assert_eq!(i["created_at"], u["created_at"]);

    // public.profiles
    let p: Value = sqlx::query_scalar("select to_jsonb(p) from public.profiles p where id = $1")
        .bind(user_id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(p["name"], "Ada Lovelace");
    assert_eq!(p["role"], "Creator");
    assert_eq!(p["onboarding_completed"], false);
    assert_eq!(p["created_at"], u["created_at"]);

    // What GoTrue would do with it: find it by any letter case, and scan it without a NULL error.
    assert_eq!(
        find_user_by_email_and_audience(&app.db.pool, "ADA.lovelace@example.com").await,
        Some(user_id)
    );
    assert_eq!(
        null_scan_columns(&app.db.pool, user_id).await,
        Vec::<String>::new()
    );
    assert_eq!(counts(&app.db).await, (1, 1, 1));
}

#[tokio::test]
async fn without_required_confirmation_the_email_is_confirmed_at_once() {
    let app = TestApp::builder()
        .configure(|s| s.require_email_confirmation = false)
        .spawn()
        .await;
    let (status, body) = status_json(
        app.signup(&signup_body("Grace", "grace@example.com", "Brand"))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["email_confirmed"], true);
    let user_id: Uuid = body["user_id"].as_str().unwrap().parse().unwrap();
    let (confirmed_now, confirmed_at_generated, meta): (bool, bool, Value) = sqlx::query_as(
        "select email_confirmed_at between now() - interval '1 minute' and now(), \
                confirmed_at = email_confirmed_at, raw_user_meta_data \
         from auth.users where id = $1",
    )
    .bind(user_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(confirmed_now && confirmed_at_generated);
    assert_eq!(meta, json!({"name": "Grace", "email_verified": true}));
    // Admin-API parity: GoTrue's admin create with email_confirm (v2.196.0, adminUserCreate →
    // User.Confirm) sets email_verified only in the user metadata; the identity keeps false.
    let verified: Value = sqlx::query_scalar(
        "select identity_data -> 'email_verified' from auth.identities where user_id = $1",
    )
    .bind(user_id)
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(verified, json!(false));
    assert!(null_scan_columns(&app.db.pool, user_id).await.is_empty());
}

#[tokio::test]
async fn the_owasp_default_cost_is_what_gets_stored() {
    let app = TestApp::builder()
        .configure(|s| s.argon2 = HashSettings::default())
        .spawn()
        .await;
    let (status, body) = status_json(
        app.signup(&signup_body("Owasp", "owasp@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let hash: String = sqlx::query_scalar("select encrypted_password from auth.users")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert_eq!(
        gotrue_argon2_verifies(&hash, "correct horse battery"),
        Ok(true)
    );
}

#[tokio::test]
async fn a_duplicate_email_in_other_letter_case_is_409_and_writes_nothing() {
    let app = TestApp::spawn().await;
    let (status, _) = status_json(
        app.signup(&signup_body("First", "dup@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    let (status, body) = status_json(
        app.signup(&signup_body("Second", "  DUP@Example.com", "Brand"))
            .await,
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "email_taken");
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    let name: String = sqlx::query_scalar("select name from public.profiles")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(name, "First");
}

#[tokio::test]
async fn twenty_concurrent_signups_with_one_email_make_exactly_one_user() {
    let app = TestApp::spawn().await;
    let requests = (0..20).map(|i| {
        let email = if i % 2 == 0 {
            "race@example.com"
        } else {
            "RACE@example.com"
        };
        let body = signup_body(&format!("Racer {i}"), email, "Creator");
        let app = &app;
        async move { status_json(app.signup(&body).await).await }
    });
    let results = futures::future::join_all(requests).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let conflicts = results
        .iter()
        .filter(|(s, b)| *s == 409 && b["error"]["code"] == "email_taken")
        .count();
    assert_eq!((created, conflicts), (1, 19), "{results:?}");
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    support::assert_invariants(&app.db).await;
}

#[tokio::test]
async fn the_documented_on_auth_user_created_trigger_leaves_exactly_one_validated_profile() {
    let app = TestApp::spawn().await;
    // Supabase's documented trigger (managing-user-data guide), adapted to this profiles table.
    sqlx::raw_sql(
        r#"
        create function public.handle_new_user() returns trigger
        language plpgsql security definer set search_path = '' as $$
        begin
          insert into public.profiles (id, name, role, onboarding_completed)
          values (new.id, coalesce(new.raw_user_meta_data ->> 'name', 'from trigger'),
                  coalesce(new.raw_user_meta_data ->> 'role', 'from trigger'), false);
          return new;
        end $$;
        create trigger on_auth_user_created after insert on auth.users
          for each row execute procedure public.handle_new_user();
        "#,
    )
    .execute(&app.db.pool)
    .await
    .unwrap();

    let (status, body) = status_json(
        app.signup(&signup_body(
            "  Trig Gered ",
            "trigger@example.com",
            "Brand",
        ))
        .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    let (name, role): (String, String) = sqlx::query_as("select name, role from public.profiles")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!((name.as_str(), role.as_str()), ("Trig Gered", "Brand"));

    // A trigger that writes other values: the validated ones still win.
    sqlx::raw_sql(
        r#"create or replace function public.handle_new_user() returns trigger
           language plpgsql security definer set search_path = '' as $$
           begin
             insert into public.profiles (id, name, role) values (new.id, 'anonymous', 'admin');
             return new;
           end $$;"#,
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (status, body) = status_json(
        app.signup(&signup_body("Second", "second@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (name, role): (String, String) =
        sqlx::query_as("select name, role from public.profiles where id = $1")
            .bind(body["user_id"].as_str().unwrap().parse::<Uuid>().unwrap())
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!((name.as_str(), role.as_str()), ("Second", "Creator"));
    assert_eq!(counts(&app.db).await, (2, 2, 2));
}

#[tokio::test]
async fn a_profile_insert_that_fails_leaves_no_auth_rows() {
    let app = TestApp::spawn().await;
    sqlx::raw_sql(
        "alter table public.profiles add constraint test_only_rejects_mallory check (name <> 'Mallory')",
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let (status, body) = status_json(
        app.signup(&signup_body("Mallory", "mallory@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        json!({"error": {"code": "internal", "message": "an unexpected error occurred"}})
    );
    assert_eq!(counts(&app.db).await, (0, 0, 0));

    // The same with a trigger that raises on the profile insert.
    sqlx::raw_sql(
        r#"create function public.test_only_reject() returns trigger language plpgsql as $$
           begin raise exception 'profile rejected by test trigger'; end $$;
           create trigger test_only_reject before insert on public.profiles
             for each row execute function public.test_only_reject();"#,
    )
    .execute(&app.db.pool)
    .await
    .unwrap();
    let res = app
        .signup(&signup_body("Eve", "eve@example.com", "Creator"))
        .await;
    let (status, body) = status_json(res).await;
    assert_eq!(status, 500);
    assert!(
        !body.to_string().contains("rejected"),
        "no detail leaks: {body}"
    );
    assert_eq!(counts(&app.db).await, (0, 0, 0));

    // And the service is fine afterwards.
    sqlx::raw_sql("drop trigger test_only_reject on public.profiles")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, _) = status_json(
        app.signup(&signup_body("Eve", "eve@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(counts(&app.db).await, (1, 1, 1));
}

fn field_names(body: &Value) -> BTreeSet<String> {
    body["error"]["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_validation_matrix() {
    let app = TestApp::spawn().await;
    let ok = |k: &str, v: Value| {
        let mut b = signup_body("Valid Name", "valid@example.com", "Creator");
        b[k] = v;
        b
    };
    let long_email = format!("{}@{}.com", "a".repeat(64), "b".repeat(186));
    let cases: Vec<(Value, &[&str])> = vec![
        (ok("email", json!("not-an-email")), &["email"]),
        (ok("email", json!("   ")), &["email"]),
        (ok("email", json!("jos\u{e9}@example.com")), &["email"]),
        (ok("email", json!(long_email)), &["email"]),
        (ok("email", json!("a@localhost")), &["email"]),
        (
            ok("email", json!("x'; drop table auth.users;--@example.com")),
            &["email"],
        ),
        (ok("password", json!("short")), &["password"]),
        (ok("password", json!("p".repeat(257))), &["password"]),
        (ok("name", json!("")), &["name"]),
        (ok("name", json!("    ")), &["name"]),
        (ok("name", json!("n".repeat(101))), &["name"]),
        (ok("name", json!("bad\u{0007}name")), &["name"]),
        (ok("name", json!("line\nbreak")), &["name"]),
        (ok("role", json!("admin")), &["role"]),
        (ok("role", json!("creator")), &["role"]),
        (ok("role", json!("")), &["role"]),
        (ok("role", json!(7)), &["role"]),
        (ok("name", Value::Null), &["name"]),
        (ok("is_admin", json!(true)), &["is_admin"]),
        (json!({}), &["email", "name", "password", "role"]),
        (
            json!({"name": 1, "email": false, "password": [], "role": {}, "x": 1}),
            &["email", "name", "password", "role", "x"],
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = status_json(app.signup(&body).await).await;
        assert_eq!(status, 422, "{body} → {answer}");
        // A too-short password is GoTrue's weak_password (with its reasons); the rest is
        // validation_failed. Both list every bad field.
        let code = if body["password"] == "short" {
            "weak_password"
        } else {
            "validation_failed"
        };
        assert_eq!(answer["error"]["code"], code, "{answer}");
        let expected: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        assert_eq!(field_names(&answer), expected, "{body} → {answer}");
    }
    let (status, answer) = status_json(app.signup(&ok("role", json!("admin"))).await).await;
    assert_eq!(status, 422);
    assert_eq!(
        answer["error"]["fields"]["role"],
        "must be one of: Creator, Brand"
    );
    let (_, answer) = status_json(
        app.signup(&ok("email", json!("jos\u{e9}@example.com")))
            .await,
    )
    .await;
    assert!(
        answer["error"]["fields"]["email"]
            .as_str()
            .unwrap()
            .contains("ASCII")
    );
    assert_eq!(counts(&app.db).await, (0, 0, 0));

    // Edge values that are fine.
    let edge = json!({"name": "n".repeat(100), "email": format!("{}@example.com", "e".repeat(64)),
                      "password": "p".repeat(256), "role": "Brand"});
    let (status, answer) = status_json(app.signup(&edge).await).await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn bodies_that_are_not_json_objects() {
    let app = TestApp::spawn().await;
    let valid = signup_body("Valid", "valid@example.com", "Creator").to_string();
    let cases: Vec<(Option<&str>, String, u16, &str)> = vec![
        (None, valid.clone(), 415, "unsupported_media_type"),
        (
            Some("text/plain"),
            valid.clone(),
            415,
            "unsupported_media_type",
        ),
        (
            Some("application/x-www-form-urlencoded"),
            "name=a".into(),
            415,
            "unsupported_media_type",
        ),
        (
            Some("application/json"),
            "{\"name\": ".into(),
            400,
            "invalid_json",
        ),
        (Some("application/json"), "".into(), 400, "invalid_json"),
        (
            Some("application/json"),
            "[1,2]".into(),
            400,
            "invalid_json",
        ),
        (
            Some("application/json"),
            "\"text\"".into(),
            400,
            "invalid_json",
        ),
        (
            Some("application/json"),
            format!("{{\"name\": \"{}\"}}", "x".repeat(20_000)),
            413,
            "payload_too_large",
        ),
    ];
    for (content_type, body, status, code) in cases {
        let (got, answer) =
            status_json(app.post_raw("/api/auth/signup", content_type, &body).await).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str().unwrap()),
            (status, code),
            "{content_type:?} {}",
            &body[..body.len().min(40)]
        );
    }
    let (status, _) = status_json(
        app.post_raw(
            "/api/auth/signup",
            Some("application/json; charset=utf-8"),
            &valid,
        )
        .await,
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn an_answer_never_grows_with_the_unknown_fields_sent() {
    let app = TestApp::spawn().await;
    let mut body = signup_body("Ada", "ada@example.com", "Creator");
    // ~14 KB of unknown field names, as in the review (its answer was 39.5 KB).
    for i in 0..45 {
        body[format!("{i:02}{}", "u".repeat(300))] = json!(1);
    }
    let sent = body.to_string().len();
    assert!(sent > 13_000, "{sent} bytes sent");
    // Login knows only email and password: name and role are unknown there too.
    for (path, more) in [("/api/auth/signup", 40), ("/api/auth/login", 42)] {
        let res = app
            .post_raw(path, Some("application/json"), &body.to_string())
            .await;
        let text = res.text().await.unwrap();
        let answer: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            answer["error"]["code"], "validation_failed",
            "{path}: {text}"
        );
        let fields = answer["error"]["fields"].as_object().unwrap();
        let unknown: Vec<&String> = fields
            .keys()
            .filter(|k| !["name", "email", "password", "role"].contains(&k.as_str()))
            .collect();
        assert_eq!(unknown.len(), 5, "{path}: {text}");
        assert!(unknown.iter().all(|k| k.chars().count() <= 64), "{text}");
        assert!(text.len() < 2_000, "{path}: a {}-byte answer", text.len());
        assert!(
            text.contains(&format!("and {more} more unknown fields")),
            "{text}"
        );
    }
    assert_eq!(counts(&app.db).await, (0, 0, 0));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn().await;
    let res = app
        .client
        .get(format!("{}/nope", app.address))
        .send()
        .await
        .unwrap();
    let request_id = res.headers().get("x-request-id").cloned();
    assert_error(res, 404, "not_found").await;
    assert!(request_id.is_some(), "every response carries a request id");
    let res = app
        .client
        .get(format!("{}/api/auth/signup", app.address))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "abc-123");
    assert_error(res, 405, "method_not_allowed").await;
    let (status, body) = status_json(
        app.client
            .get(format!("{}/healthz", app.address))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body), (200, json!({"status": "ok"})));
}

#[tokio::test]
async fn an_unreachable_database_is_503_database_unavailable() {
    let db = support::TestDb::empty().await;
    let app = TestApp::builder()
        .on(db)
        .configure(|s| {
            // A port where nothing listens.
            let port = support::closed_port();
            s.database.url = atomic_signup::config::DatabaseUrl::from_options(
                sqlx::postgres::PgConnectOptions::new()
                    .host("127.0.0.1")
                    .port(port)
                    .username("x")
                    .password("secret-pw"),
            );
        })
        .spawn()
        .await;
    let started = std::time::Instant::now();
    let (status, body) = status_json(
        app.signup(&signup_body("Down", "down@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "database_unavailable");
    assert!(!body.to_string().contains("secret-pw"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "fails fast: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_signup_over_statement_timeout_is_503_writes_nothing_and_leaves_connections_usable() {
    // A slow profile insert (a stand-in for a stuck database) inside the signup statement. Run
    // directly, and through PgBouncer in transaction mode by scripts/test.sh (TEST_POOLER), where
    // no startup parameter sets the timeout: each transaction does (SET LOCAL).
    let app = TestApp::builder()
        .configure(|s| s.database.statement_timeout = Duration::from_millis(300))
        .spawn()
        .await;
    support::slow_profile_inserts(&app.db, 3.0).await;
    for i in 0..3 {
        let started = std::time::Instant::now();
        assert_error(
            app.signup(&signup_body(
                "Slow",
                &format!("slow{i}@example.com"),
                "Creator",
            ))
            .await,
            503,
            "database_unavailable",
        )
        .await;
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "cancelled by statement_timeout, not waited out"
        );
    }
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    // The connections are fine afterwards (the aborted transactions were ended cleanly).
    sqlx::query("drop trigger test_only_slow on public.profiles")
        .execute(&app.db.pool)
        .await
        .unwrap();
    for i in 0..3 {
        let res = app
            .signup(&signup_body(
                "Quick",
                &format!("quick{i}@example.com"),
                "Creator",
            ))
            .await;
        assert_eq!(res.status(), 201);
    }
}

/// The signup service on its own, without HTTP: the outcomes the route turns into answers.
#[tokio::test]
async fn the_signup_service_answers_created_then_replayed_then_refuses_a_reused_key() {
    use atomic_signup::domain::{IdempotencyKey, SignupForm, ValidationErrors};
    use atomic_signup::idempotency::{Idempotency, IdempotencyError};
    use atomic_signup::signup::{
        SignupFailure, SignupInput, SignupOutcome, SignupPolicy, SignupService,
    };

    let db = support::TestDb::migrated().await;
    let settings = support::test_settings(&db);
    let service = SignupService {
        db: atomic_signup::store::Database::new(&settings.database),
        hasher: atomic_signup::password::Hasher::for_this_machine(support::TEST_HASH, 4).unwrap(),
        captcha: None,
        idempotency: Idempotency {
            secret: settings.idempotency.secret.clone(),
            lease: Duration::from_secs(30),
        },
        outbox_wake: Default::default(),
        after_user_created: None,
        rules: settings.signup.clone(),
        policy: SignupPolicy {
            disabled: false,
            require_email_confirmation: true,
            conceal_existing_emails: false,
            conceal_min_duration: Duration::ZERO,
        },
        before_user_created: None,
    };
    let input = |email: &str| SignupInput {
        form: SignupForm {
            email: Some(email.into()),
            password: Some("correct horse battery".into()),
            role: Some("Creator".into()),
            profile: serde_json::json!({"name": "Ada"})
                .as_object()
                .unwrap()
                .clone(),
        },
        errors: ValidationErrors::default(),
        captcha_token: None,
        client_ip: None,
        key: Some(IdempotencyKey::parse(b"service-key").unwrap()),
    };
    let created = match service.sign_up(input("ada@example.com")).await {
        Ok(SignupOutcome::Created(created)) => created,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (created.email.as_str(), created.email_confirmed),
        ("ada@example.com", false)
    );
    match service.sign_up(input("ada@example.com")).await {
        Ok(SignupOutcome::Replayed { status, body }) => {
            assert_eq!(status, 201);
            assert_eq!(body["user_id"], created.user_id.to_string());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        service.sign_up(input("bob@example.com")).await,
        Err(SignupFailure::Idempotency(IdempotencyError::Reused))
    ));
    assert_eq!(counts(&db).await, (1, 1, 1));
}
