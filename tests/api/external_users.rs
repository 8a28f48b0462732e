//! Profiles for users that GoTrue creates itself (PROFILE_FOR_EXTERNAL_USERS, switched by the
//! real `migrate`): the trigger on auth.users gives them a profile in the same transaction, once,
//! next to a project's own trigger, and never fails GoTrue's insert.

use serde_json::{Value, json};

use crate::repair::{GoTrueUser, orphan_count, profiles};
use crate::support::{self, TestApp, TestDb, assert_invariants, signup_body};

/// `atomic-signup migrate` on `db` with PROFILE_FOR_EXTERNAL_USERS=`on`.
async fn migrate(db: &TestDb, on: bool) {
    let url = support::database_url(db, db.options.get_username(), "postgres");
    let out = support::run_binary(
        &["migrate"],
        &[
            ("DATABASE_URL", url.as_str()),
            ("SIGNUP_ROLES", "Creator,Brand"),
            (
                "PROFILE_FOR_EXTERNAL_USERS",
                if on { "true" } else { "false" },
            ),
            ("PROFILE_FOR_EXTERNAL_USERS_ROLE", "Brand"),
        ],
    )
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GoTrue's own database role, with the rights it has on its tables (it owns them: row level
/// security does not apply to it), and none on the profiles.
async fn gotrue_role(db: &TestDb) {
    sqlx::raw_sql(
        "do $$ begin
           -- One role for the whole server, which tests running side by side share.
           create role supabase_auth_admin nologin bypassrls;
         exception when duplicate_object or unique_violation then null;
         end $$;
         grant usage on schema auth to supabase_auth_admin;
         grant all on all tables in schema auth to supabase_auth_admin;",
    )
    .execute(&db.pool)
    .await
    .unwrap();
}

/// `user`, inserted as GoTrue inserts one (as its role), and in the same transaction, before the
/// commit: the profile the user has (name, role), if any.
async fn insert_as_gotrue(
    db: &TestDb,
    user: GoTrueUser<'_>,
) -> (uuid::Uuid, Option<(String, String)>) {
    let mut tx = db.pool.begin().await.unwrap();
    sqlx::query("set local role supabase_auth_admin")
        .execute(&mut *tx)
        .await
        .unwrap();
    let id = user.insert_on(&mut tx).await;
    sqlx::query("reset role").execute(&mut *tx).await.unwrap();
    let profile: Option<(String, String)> =
        sqlx::query_as("select name, role from public.profiles where id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    (id, profile)
}

#[tokio::test]
async fn a_user_gotrue_creates_gets_its_profile_in_the_same_transaction() {
    let db = TestDb::migrated().await;
    gotrue_role(&db).await;
    migrate(&db, true).await;
    let (_, profile) = insert_as_gotrue(
        &db,
        GoTrueUser {
            email: "oauth@example.com",
            provider: "google",
            user_metadata: json!({"full_name": "Grace Hopper", "avatar_url": "x"}),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        profile,
        Some(("Grace Hopper".to_owned(), "Brand".to_owned())),
        "PROFILE_FOR_EXTERNAL_USERS_ROLE for a user without a signup role"
    );
    // A role of SIGNUP_ROLES in app metadata is kept; an invalid name falls back to the email.
    let (_, profile) = insert_as_gotrue(
        &db,
        GoTrueUser {
            email: "ada.lovelace@example.com",
            user_metadata: json!({"name": "\u{202e}evil"}),
            app_metadata: json!({"role": "Creator"}),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        profile,
        Some(("ada lovelace".to_owned(), "Creator".to_owned()))
    );
    assert_eq!(orphan_count(&db).await, 0);
    assert_invariants(&db).await;
}

#[tokio::test]
async fn next_to_a_projects_own_trigger_the_profile_is_written_once() {
    let db = TestDb::migrated().await;
    gotrue_role(&db).await;
    migrate(&db, true).await;
    // Supabase's documented trigger (a plain insert: a second profile would fail the insert).
    sqlx::raw_sql(
        "create function public.handle_new_user() returns trigger
         language plpgsql security definer set search_path = '' as $$
         begin
           insert into public.profiles (id, name, role)
           values (new.id, 'From the project', 'Creator');
           return new;
         end $$;
         create trigger on_auth_user_created after insert on auth.users
           for each row execute procedure public.handle_new_user();",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let (_, profile) = insert_as_gotrue(
        &db,
        GoTrueUser {
            email: "both@example.com",
            user_metadata: json!({"name": "Ours"}),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        profile,
        Some(("From the project".to_owned(), "Creator".to_owned()))
    );
    // The service's own signup: its profile is the signup's, once.
    let app = TestApp::builder().on(db.clone()).spawn().await;
    let res = app
        .signup(&signup_body("Signed Up", "signup@example.com", "Brand"))
        .await;
    assert_eq!(res.status(), 201);
    let rows = profiles(&db).await;
    let signed_up = rows.iter().find(|r| r.0 == "signup@example.com").unwrap();
    assert_eq!(
        (signed_up.1.as_deref(), signed_up.2.as_deref()),
        (Some("Signed Up"), Some("Brand"))
    );
    let count: i64 = sqlx::query_scalar("select count(*) from public.profiles")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(count, 2);
}

#[tokio::test]
async fn a_profile_that_cannot_be_written_never_fails_gotrues_insert() {
    let db = TestDb::migrated().await;
    gotrue_role(&db).await;
    migrate(&db, true).await;
    // A project rule the made-up profile breaks.
    sqlx::raw_sql(
        "alter table public.profiles add constraint no_made_up_names check (name <> 'User')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let (id, profile) = insert_as_gotrue(
        &db,
        GoTrueUser {
            email: "..@example.com",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(profile, None, "no profile, and the user is there");
    let exists: bool = sqlx::query_scalar("select exists (select 1 from auth.users where id = $1)")
        .bind(id)
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert!(exists);
    assert_eq!(orphan_count(&db).await, 1);
}

#[tokio::test]
async fn off_by_default_and_switched_off_again_by_migrate_and_check_says_which() {
    let db = TestDb::migrated().await;
    gotrue_role(&db).await;
    let url = support::database_url(&db, db.options.get_username(), "postgres");
    let check = || async {
        let out =
            support::run_binary(&["check", "--json"], &[("DATABASE_URL", url.as_str())]).await;
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let entry = |name: &str| {
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["check"] == name)
                .unwrap()
                .clone()
        };
        (entry("external_users"), entry("orphans"))
    };
    let (_, profile) = insert_as_gotrue(
        &db,
        GoTrueUser {
            email: "off@example.com",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(profile, None);
    let (external, orphans) = check().await;
    assert_eq!(external["details"]["enabled"], false, "{external:#}");
    assert_eq!(orphans["status"], "problem", "{orphans:#}");
    assert!(
        orphans["fix"]
            .as_str()
            .unwrap()
            .contains("atomic-signup repair")
    );

    migrate(&db, true).await;
    let (external, _) = check().await;
    assert_eq!(external["details"]["enabled"], true, "{external:#}");
    assert!(external["summary"].as_str().unwrap().starts_with("on:"));
    migrate(&db, false).await;
    let (_, profile) = insert_as_gotrue(
        &db,
        GoTrueUser {
            email: "off-again@example.com",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(profile, None);
    let (external, _) = check().await;
    assert_eq!(external["details"]["enabled"], false);
}
