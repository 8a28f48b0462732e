//! `atomic-signup check` (the real binary): every check holds on a healthy project, and each
//! broken part is reported as a problem with a fix, exit status 1. It changes nothing.

use gotrue_double::GoTrueDouble;
use serde_json::Value;
use support::{TestDb, signup_body};

use crate::support;

/// `atomic-signup check --json` with `vars`: (exit code, the report).
async fn check(vars: &[(&str, &str)]) -> (i32, Value) {
    let out = support::run_binary(&["check", "--json"], vars).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is one JSON report ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().expect("exited"), report)
}

/// The status of check `name` in `report`.
fn status<'r>(report: &'r Value, name: &str) -> &'r str {
    entry(report, name)["status"].as_str().unwrap()
}

fn entry<'r>(report: &'r Value, name: &str) -> &'r Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report:#}"))
}

/// The checks that are not `ok`, by name.
fn not_ok(report: &Value) -> Vec<(String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] != "ok")
        .map(|c| {
            (
                c["check"].as_str().unwrap().to_owned(),
                c["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// A migrated project with one user signed up through the service, and its GoTrue (the double).
struct Project {
    db: TestDb,
    double: GoTrueDouble,
    url: String,
}

impl Project {
    async fn healthy() -> Self {
        let app = support::TestApp::builder().gotrue().spawn().await;
        let res = app
            .signup(&signup_body("Ada", "ada@example.com", "Creator"))
            .await;
        assert_eq!(res.status(), 201);
        let double = app.double().clone();
        let db = app.db.clone();
        app.stop().await;
        let url = support::database_url(&db, db.options.get_username(), "postgres");
        Self { db, double, url }
    }

    fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("DATABASE_URL", self.url.clone()),
            ("GOTRUE_URL", self.double.url.clone()),
            ("SUPABASE_ANON_KEY", "anon-key".to_owned()),
        ]
    }

    async fn check(&self) -> (i32, Value) {
        self.check_with(&[]).await
    }

    /// With `extra` variables added (or replacing the project's).
    async fn check_with(&self, extra: &[(&'static str, String)]) -> (i32, Value) {
        let mut vars = self.vars();
        vars.retain(|(name, _)| !extra.iter().any(|(n, _)| n == name));
        vars.extend(extra.iter().cloned());
        let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (*n, v.as_str())).collect();
        check(&vars).await
    }

    /// A digest of every row of the users, profiles and migrations tables.
    async fn fingerprint(&self) -> String {
        sqlx::query_scalar(
            "select md5(string_agg(t, ',' order by t)) from (
               select row(u.*)::text as t from auth.users u union all
               select row(p.*)::text from public.profiles p union all
               select row(m.*)::text from _sqlx_migrations m) all_rows",
        )
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }

    async fn sql(&self, sql: &str) {
        sqlx::raw_sql(sql).execute(&self.db.pool).await.unwrap();
    }
}

/// An auth user written as GoTrue's /signup writes one, with its identity of `provider`.
fn auth_user(email: &str, provider: &str, confirmed: bool) -> String {
    format!(
        "with u as (
           insert into auth.users (instance_id, id, aud, role, email, encrypted_password,
             email_confirmed_at, raw_app_meta_data, raw_user_meta_data, created_at, updated_at)
           values ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), 'authenticated',
             'authenticated', '{email}', '', {confirmed_at},
             '{{\"provider\": \"{provider}\"}}', '{{}}', now() - interval '3 days', now())
           returning id)
         insert into auth.identities (provider_id, user_id, identity_data, provider, created_at,
           updated_at)
         select id::text, id, jsonb_build_object('sub', id::text), '{provider}', now(), now()
         from u;",
        confirmed_at = if confirmed { "now()" } else { "null" }
    )
}

#[tokio::test]
async fn a_healthy_project_passes_every_check_and_check_changes_nothing() {
    let project = Project::healthy().await;
    let before = project.fingerprint().await;
    let (code, report) = project.check().await;
    assert_eq!(not_ok(&report), vec![], "{report:#}");
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    for name in [
        "database",
        "pooler",
        "grants",
        "migrations",
        "schema",
        "profile",
        "hooks",
        "gotrue_migrations",
        "gotrue",
        "orphans",
        "external_users",
        "role_metadata",
    ] {
        assert_eq!(status(&report, name), "ok", "{name}: {report:#}");
    }
    assert_eq!(entry(&report, "gotrue")["details"]["version"], "v2.196.0");
    let after = project.fingerprint().await;
    assert_eq!(before, after, "check changed nothing");

    // The text form: one line per check, the same verdict.
    let vars = project.vars();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(n, v)| (*n, v.as_str())).collect();
    let out = support::run_binary(&["check"], &vars).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.starts_with("ok ")).count(),
        12,
        "{text}"
    );
    assert!(text.ends_with("all checks hold\n"), "{text}");
    assert!(!text.contains(":postgres@"), "no password: {text}");
}

#[tokio::test]
async fn orphans_are_a_problem_and_users_from_other_paths_are_listed_apart() {
    let project = Project::healthy().await;
    // What a two-call signup leaves when its second call fails: confirmed, never logged in.
    project
        .sql(&auth_user("orphan@example.com", "email", true))
        .await;
    // Users from OAuth: not the service's, not a problem.
    project
        .sql(&auth_user("oauth@example.com", "google", true))
        .await;
    let (code, report) = project.check().await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["ok"], false);
    assert_eq!(not_ok(&report), vec![("orphans".into(), "problem".into())]);
    let orphans = entry(&report, "orphans");
    assert_eq!(orphans["details"]["email_users"], 1, "{orphans:#}");
    assert_eq!(orphans["details"]["confirmed"], 1);
    assert_eq!(orphans["details"]["logged_in"], 0);
    assert_eq!(orphans["details"]["other_paths"], 1);
    assert!(orphans["details"]["oldest"].is_string());
    assert!(orphans["fix"].as_str().unwrap().contains("profile"));

    // Only the OAuth user left: ok, and still listed.
    project
        .sql("delete from auth.users where email = 'orphan@example.com'")
        .await;
    let (code, report) = project.check().await;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(entry(&report, "orphans")["details"]["other_paths"], 1);
}

#[tokio::test]
async fn a_missing_or_modified_migration_is_a_problem() {
    let project = Project::healthy().await;
    project
        .sql(
            "update _sqlx_migrations set checksum = '\\x00'::bytea
             where version = (select min(version) from _sqlx_migrations);
             delete from _sqlx_migrations
             where version = (select max(version) from _sqlx_migrations);",
        )
        .await;
    let (code, report) = project.check().await;
    assert_eq!(code, 1);
    assert_eq!(
        not_ok(&report),
        vec![("migrations".into(), "problem".into())]
    );
    let details = &entry(&report, "migrations")["details"];
    assert_eq!(
        details["missing"].as_array().unwrap().len(),
        1,
        "{details:#}"
    );
    assert_eq!(
        details["modified"].as_array().unwrap().len(),
        1,
        "{details:#}"
    );

    // No migration at all: named, and what to run.
    let bare = TestDb::with_fixture().await;
    let url = support::database_url(&bare, bare.options.get_username(), "postgres");
    let (code, report) = check(&[("DATABASE_URL", &url)]).await;
    assert_eq!(code, 1);
    assert_eq!(status(&report, "migrations"), "problem");
    assert!(
        entry(&report, "migrations")["fix"]
            .as_str()
            .unwrap()
            .contains("atomic-signup migrate")
    );
    assert_eq!(status(&report, "schema"), "problem", "{report:#}");
}

#[tokio::test]
async fn a_role_without_the_grants_is_a_problem_and_what_it_may_not_read_is_skipped() {
    let project = Project::healthy().await;
    let bare_role = format!("bare_{}", uuid::Uuid::new_v4().simple());
    project
        .sql(&format!("create role {bare_role} login password 'pw'"))
        .await;
    let bare_url = support::database_url(&project.db, &bare_role, "pw");
    let (code, report) = project.check_with(&[("DATABASE_URL", bare_url)]).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(status(&report, "grants"), "problem", "{report:#}");
    let missing = entry(&report, "grants")["details"]["missing"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(missing.len(), 12, "{report:#}");
    assert_eq!(missing[0], "USAGE on schema atomic_signup");
    assert_eq!(status(&report, "orphans"), "skipped");

    // The least-privilege role docs/operations.md recommends: it may run the service; what it may not
    // read is skipped, not a problem.
    let app_role = support::least_privilege_login(&project.db).await;
    let app_url = support::database_url(&project.db, app_role.get_username(), "app-pw");
    let (code, report) = project.check_with(&[("DATABASE_URL", app_url)]).await;
    assert_eq!(status(&report, "grants"), "ok", "{report:#}");
    for name in [
        "orphans",
        "role_metadata",
        "gotrue_migrations",
        "migrations",
    ] {
        assert_eq!(status(&report, name), "skipped", "{name}: {report:#}");
        assert!(entry(&report, name)["fix"].is_string());
    }
    assert_eq!(code, 0, "{report:#}");
}

#[tokio::test]
async fn a_role_only_in_user_metadata_is_a_problem() {
    let project = Project::healthy().await;
    project
        .sql(
            "update auth.users set
               raw_user_meta_data = raw_user_meta_data || '{\"role\": \"Creator\"}',
               raw_app_meta_data = raw_app_meta_data - 'role'
             where email = 'ada@example.com'",
        )
        .await;
    let (code, report) = project.check().await;
    assert_eq!(code, 1);
    assert_eq!(
        not_ok(&report),
        vec![("role_metadata".into(), "problem".into())]
    );
    assert_eq!(entry(&report, "role_metadata")["details"]["users"], 1);
}

#[tokio::test]
async fn gotrue_outside_the_tested_range_or_unreachable_is_a_problem() {
    let project = Project::healthy().await;
    project.double.set_version("v2.150.0");
    project
        .sql("insert into auth.schema_migrations values ('20270101000000')")
        .await;
    let (code, report) = project.check().await;
    assert_eq!(code, 1);
    assert_eq!(
        not_ok(&report),
        vec![
            ("gotrue_migrations".into(), "problem".into()),
            ("gotrue".into(), "problem".into())
        ],
        "{report:#}"
    );
    let closed = format!("http://127.0.0.1:{}", support::closed_port());
    let (_, report) = project.check_with(&[("GOTRUE_URL", closed)]).await;
    assert_eq!(status(&report, "gotrue"), "problem");
    // Not configured: skipped, with how to include it.
    let (_, report) = check(&[("DATABASE_URL", &project.url)]).await;
    assert_eq!(status(&report, "gotrue"), "skipped");
}

#[tokio::test]
async fn an_unreachable_database_is_a_problem() {
    let url = format!(
        "postgres://postgres:secret-pw@127.0.0.1:{}/postgres",
        support::closed_port()
    );
    let (code, report) = check(&[("DATABASE_URL", &url)]).await;
    assert_eq!(code, 1);
    assert_eq!(status(&report, "database"), "problem");
    assert!(!report.to_string().contains("secret-pw"));
}

#[tokio::test]
async fn a_transaction_pooler_is_found_and_must_be_declared() {
    let project = Project::healthy().await;
    let bouncer = support::postgres::pgbouncer_for_server().await;
    let pooled = bouncer.url(project.db.options.get_username(), &project.db.name);
    // Not declared: a problem.
    let (code, report) = project
        .check_with(&[("DATABASE_URL", pooled.clone())])
        .await;
    assert_eq!(code, 1);
    assert_eq!(status(&report, "pooler"), "problem", "{report:#}");
    assert_eq!(
        entry(&report, "pooler")["details"]["transaction_pooler"],
        true
    );
    // Declared, but migrate has no URL of its own: a problem.
    let (_, report) = project
        .check_with(&[
            ("DATABASE_URL", pooled.clone()),
            ("DATABASE_POOL_MODE", "transaction".into()),
        ])
        .await;
    assert_eq!(status(&report, "pooler"), "problem", "{report:#}");
    // Declared, with MIGRATE_DATABASE_URL: every check holds, through the pooler.
    let (code, report) = project
        .check_with(&[
            ("DATABASE_URL", pooled),
            ("DATABASE_POOL_MODE", "transaction".into()),
            ("MIGRATE_DATABASE_URL", project.url.clone()),
        ])
        .await;
    assert_eq!(not_ok(&report), vec![], "{report:#}");
    assert_eq!(code, 0);
    // A direct connection is never taken for a pooler.
    let (_, report) = project.check().await;
    assert_eq!(
        entry(&report, "pooler")["details"]["transaction_pooler"],
        false
    );
}

#[tokio::test]
async fn check_looks_at_each_hook() {
    let project = Project::healthy().await;
    let before = [
        ("HOOK_BEFORE_USER_CREATED_ENABLED", "true".to_owned()),
        (
            "GOTRUE_HOOK_BEFORE_USER_CREATED_URI",
            "pg-functions://postgres/public/before_user_created".to_owned(),
        ),
    ];
    let summary = |report: &Value| {
        entry(report, "hooks")["summary"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (code, report) = project.check_with(&before).await;
    assert_eq!(
        (code, status(&report, "hooks")),
        (1, "problem"),
        "{report:#}"
    );
    assert!(
        summary(&report).contains("public.before_user_created does not exist"),
        "{report:#}"
    );
    project
        .sql(
            "create function public.before_user_created(event jsonb) returns text \
              language sql as $$ select '' $$",
        )
        .await;
    let (_, report) = project.check_with(&before).await;
    assert!(
        summary(&report).contains("does not take one jsonb and return jsonb"),
        "{report:#}"
    );
    project
        .sql(
            "drop function public.before_user_created(jsonb); \
              create function public.before_user_created(event jsonb) returns jsonb \
              language sql as $$ select '{}'::jsonb $$",
        )
        .await;
    let (code, report) = project.check_with(&before).await;
    assert_eq!((code, status(&report, "hooks")), (0, "ok"), "{report:#}");
    assert!(summary(&report).contains("takes and returns jsonb, and this role may run it"));

    // Both hooks: an HTTP after_user_created hook's secret is well formed (not called).
    let mut after = before.to_vec();
    after.extend([
        ("HOOK_AFTER_USER_CREATED_ENABLED", "true".to_owned()),
        (
            "HOOK_AFTER_USER_CREATED_URI",
            "https://hooks.example.com/after".to_owned(),
        ),
        (
            "HOOK_AFTER_USER_CREATED_SECRETS",
            "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned(),
        ),
    ]);
    let (code, report) = project.check_with(&after).await;
    let found = summary(&report);
    assert_eq!((code, status(&report, "hooks")), (0, "ok"), "{report:#}");
    assert!(
        found.contains("after_user_created: https://hooks.example.com/…, 1 well-formed secret(s)"),
        "{found}"
    );
    // A Postgres after_user_created function that does not exist is a problem too.
    let mut missing = before.to_vec();
    missing.extend([
        ("HOOK_AFTER_USER_CREATED_ENABLED", "true".to_owned()),
        (
            "HOOK_AFTER_USER_CREATED_URI",
            "pg-functions://postgres/public/after_user_created".to_owned(),
        ),
    ]);
    let (code, report) = project.check_with(&missing).await;
    assert_eq!(
        (code, status(&report, "hooks")),
        (1, "problem"),
        "{report:#}"
    );
    assert!(
        summary(&report).contains(
            "after_user_created: the Postgres function public.after_user_created does not exist"
        ),
        "{report:#}"
    );
}
