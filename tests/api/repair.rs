//! `atomic-signup repair` (the real binary) on orphans written the way GoTrue writes users: email
//! users of a two-call signup, OAuth users with `full_name`, users with a name that does not
//! pass the display-name rules, abandoned unconfirmed ones.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{self, TestApp, TestDb, assert_invariants, signup_body};

/// An auth user as GoTrue writes one (its `/signup`, or an OAuth sign-in for another
/// `provider`), with its identity; `age_days` old, confirmed or not, signed in or not.
pub(crate) struct GoTrueUser<'a> {
    pub email: &'a str,
    pub provider: &'a str,
    pub confirmed: bool,
    pub signed_in: bool,
    pub age_days: i32,
    pub user_metadata: Value,
    pub app_metadata: Value,
}

impl Default for GoTrueUser<'_> {
    fn default() -> Self {
        Self {
            email: "",
            provider: "email",
            confirmed: true,
            signed_in: false,
            age_days: 3,
            user_metadata: json!({}),
            app_metadata: json!({}),
        }
    }
}

impl GoTrueUser<'_> {
    pub async fn insert(self, db: &TestDb) -> Uuid {
        let mut conn = db.pool.acquire().await.unwrap();
        self.insert_on(&mut conn).await
    }

    /// Inserts on `conn` (in its transaction, as its role, if it has one).
    pub async fn insert_on(self, conn: &mut sqlx::PgConnection) -> Uuid {
        let id = Uuid::new_v4();
        let mut app_metadata = json!({"provider": self.provider, "providers": [self.provider]});
        if let (Some(meta), Some(extra)) =
            (app_metadata.as_object_mut(), self.app_metadata.as_object())
        {
            meta.extend(extra.clone());
        }
        sqlx::query(
            "insert into auth.users (instance_id, id, aud, role, email, encrypted_password,
               email_confirmed_at, last_sign_in_at, raw_app_meta_data, raw_user_meta_data,
               confirmation_token, recovery_token, email_change_token_new, email_change,
               created_at, updated_at)
             values ('00000000-0000-0000-0000-000000000000', $1, 'authenticated',
               'authenticated', $2, '', case when $3 then now() end, case when $4 then now() end,
               $5, $6, '', '', '', '', now() - make_interval(days => $7), now())",
        )
        .bind(id)
        .bind(self.email)
        .bind(self.confirmed)
        .bind(self.signed_in)
        .bind(&app_metadata)
        .bind(&self.user_metadata)
        .bind(self.age_days)
        .execute(&mut *conn)
        .await
        .unwrap();
        sqlx::query(
            "insert into auth.identities (provider_id, user_id, identity_data, provider,
               created_at, updated_at)
             values ($1::text, $1, jsonb_build_object('sub', $1::text, 'email', $2::text), $3,
               now(), now())",
        )
        .bind(id)
        .bind(self.email)
        .bind(self.provider)
        .execute(&mut *conn)
        .await
        .unwrap();
        id
    }
}

/// `atomic-signup repair --json <args>` on `db`: (exit code, the report, stderr).
async fn repair(db: &TestDb, args: &[&str]) -> (i32, Value, String) {
    let url = support::database_url(db, db.options.get_username(), "postgres");
    let mut all = vec!["repair", "--json"];
    all.extend_from_slice(args);
    let out = support::run_binary(
        &all,
        &[
            ("DATABASE_URL", url.as_str()),
            ("SIGNUP_ROLES", "Creator,Brand"),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().expect("exited"), report, stderr)
}

/// Each user's profile (name, role) and app metadata role, by email.
pub(crate) async fn profiles(
    db: &TestDb,
) -> Vec<(String, Option<String>, Option<String>, Option<String>)> {
    sqlx::query_as(
        "select u.email::text, p.name, p.role, u.raw_app_meta_data ->> 'role' \
         from auth.users u left join public.profiles p on p.id = u.id order by u.email",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap()
}

/// A digest of every row of the users, identities and profiles tables.
async fn fingerprint(db: &TestDb) -> String {
    sqlx::query_scalar(
        "select md5(string_agg(t, ',' order by t)) from (
           select row(u.*)::text as t from auth.users u union all
           select row(i.*)::text from auth.identities i union all
           select row(p.*)::text from public.profiles p) all_rows",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

pub(crate) async fn orphan_count(db: &TestDb) -> i64 {
    sqlx::query_scalar(
        "select count(*) from auth.users u \
         where not exists (select 1 from public.profiles p where p.id = u.id)",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn fifty_orphans_are_listed_then_given_their_profiles_then_nothing_is_left() {
    let app = TestApp::spawn().await;
    let res = app
        .signup(&signup_body("Ada", "ada@example.com", "Creator"))
        .await;
    assert_eq!(res.status(), 201);
    let db = app.db.clone();
    let mut expected = Vec::new();
    for i in 0..50 {
        let email = format!("orphan{i:02}@example.com");
        let (user, name, role) = match i % 5 {
            // A two-call signup's user: its name in user metadata, its role in app metadata.
            0 | 1 => (
                GoTrueUser {
                    user_metadata: json!({"name": format!("Name {i}")}),
                    app_metadata: json!({"role": "Brand"}),
                    ..Default::default()
                },
                format!("Name {i}"),
                "Brand",
            ),
            // OAuth: full_name, no role.
            2 => (
                GoTrueUser {
                    provider: "google",
                    user_metadata: json!({"full_name": format!("Full {i}"), "avatar_url": "x"}),
                    ..Default::default()
                },
                format!("Full {i}"),
                "Creator",
            ),
            // A name the display-name rules refuse, and a role not in SIGNUP_ROLES.
            3 => (
                GoTrueUser {
                    user_metadata: json!({"name": "\u{202e}gnp.exe"}),
                    app_metadata: json!({"role": "Admin"}),
                    ..Default::default()
                },
                format!("orphan{i:02}"),
                "Creator",
            ),
            // Unconfirmed, no metadata.
            _ => (
                GoTrueUser {
                    confirmed: false,
                    ..Default::default()
                },
                format!("orphan{i:02}"),
                "Creator",
            ),
        };
        GoTrueUser {
            email: &email,
            ..user
        }
        .insert(&db)
        .await;
        expected.push((email, name, role));
    }
    let before = fingerprint(&db).await;

    // The dry run: all 50 listed, nothing changed, exit 1 (there is something to do).
    let (code, report, stderr) = repair(&db, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(report["applied"], false);
    assert_eq!(
        report["orphans"].as_array().unwrap().len(),
        50,
        "{report:#}"
    );
    assert_eq!(fingerprint(&db).await, before);
    let listed = &report["orphans"][2];
    assert_eq!(listed["email"], "orphan02@example.com");
    assert_eq!(listed["action"], "skip");
    assert!(
        listed["reason"]
            .as_str()
            .unwrap()
            .contains("--default-role")
    );
    let (_, report, _) = repair(&db, &["--default-role", "Creator"]).await;
    let listed = &report["orphans"][2];
    assert_eq!(listed["action"], "create_profile", "{listed:#}");
    assert_eq!(listed["name_from"], "metadata full_name");
    assert_eq!(listed["role_from"], "--default-role");
    assert_eq!(listed["confirmed"], true);
    assert!(listed["created_at"].is_string());
    assert_eq!(listed["last_sign_in_at"], Value::Null);

    // --apply without --default-role, while 30 orphans have no role of SIGNUP_ROLES: refused.
    let (code, _, stderr) = repair(&db, &["--apply"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("30 orphan(s) have no role of SIGNUP_ROLES")
            && stderr.contains("--default-role"),
        "{stderr}"
    );
    assert_eq!(fingerprint(&db).await, before, "nothing changed");

    let (code, report, stderr) = repair(&db, &["--apply", "--default-role", "Creator"]).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(report["summary"]["profiles created"], 50, "{report:#}");
    assert_eq!(orphan_count(&db).await, 0);
    let rows = profiles(&db).await;
    for (email, name, role) in &expected {
        let row = rows.iter().find(|r| &r.0 == email).unwrap();
        assert_eq!(
            (row.1.as_deref(), row.2.as_deref(), row.3.as_deref()),
            (Some(name.as_str()), Some(*role), Some(*role)),
            "{email}"
        );
    }
    assert_invariants(&db).await;

    // check is clean, and a second run has nothing to do.
    let url = support::database_url(&db, db.options.get_username(), "postgres");
    let out = support::run_binary(&["check", "--json"], &[("DATABASE_URL", url.as_str())]).await;
    let check: Value = serde_json::from_slice(&out.stdout).unwrap();
    let orphans = check["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "orphans")
        .unwrap();
    assert_eq!(orphans["status"], "ok", "{orphans:#}");
    let (code, report, _) = repair(&db, &["--apply", "--default-role", "Creator"]).await;
    assert_eq!(code, 0);
    assert_eq!(report["orphans"], json!([]));
}

#[tokio::test]
async fn a_name_that_fails_the_rules_falls_back_to_the_email_or_is_skipped() {
    let db = TestDb::migrated().await;
    GoTrueUser {
        email: "ada.lovelace+news@example.com",
        user_metadata: json!({"name": "a\u{200b}b", "full_name": " "}),
        app_metadata: json!({"role": "Creator"}),
        ..Default::default()
    }
    .insert(&db)
    .await;
    let (code, report, _) = repair(&db, &[]).await;
    assert_eq!(code, 1);
    assert_eq!(report["orphans"][0]["profile"]["name"], "ada lovelace news");
    assert_eq!(report["orphans"][0]["name_from"], "email");
    // --skip-invalid: skipped, left undone (exit 1), nothing written.
    let (code, report, _) = repair(&db, &["--apply", "--skip-invalid"]).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["orphans"][0]["action"], "skip");
    assert_eq!(report["orphans"][0]["outcome"], "skipped");
    assert_eq!(report["summary"]["skipped"], 1);
    assert_eq!(orphan_count(&db).await, 1);
    let (code, _, _) = repair(&db, &["--apply"]).await;
    assert_eq!(code, 0);
    assert_eq!(
        profiles(&db).await[0].1.as_deref(),
        Some("ada lovelace news")
    );
    // A --default-role outside SIGNUP_ROLES, or a field the schema lacks: refused at once.
    let (code, _, stderr) = repair(&db, &["--default-role", "Admin"]).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("--default-role Admin: must be one of: Creator, Brand"),
        "{stderr}"
    );
    let (code, _, stderr) = repair(&db, &["--set", "city=Paris"]).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("--set city: not a field"), "{stderr}");
}

#[tokio::test]
async fn abandoned_unconfirmed_orphans_are_deleted_as_gotrue_deletes_a_user() {
    let db = TestDb::migrated().await;
    let abandoned = GoTrueUser {
        email: "abandoned@example.com",
        confirmed: false,
        age_days: 40,
        ..Default::default()
    }
    .insert(&db)
    .await;
    for user in [
        // Too young, confirmed, or signed in once: each gets a profile instead.
        GoTrueUser {
            email: "recent@example.com",
            confirmed: false,
            age_days: 1,
            ..Default::default()
        },
        GoTrueUser {
            email: "confirmed@example.com",
            age_days: 40,
            ..Default::default()
        },
        GoTrueUser {
            email: "signedin@example.com",
            confirmed: false,
            signed_in: true,
            age_days: 40,
            ..Default::default()
        },
    ] {
        user.insert(&db).await;
    }
    let args = [
        "--delete-unconfirmed-older-than",
        "30d",
        "--default-role",
        "Creator",
    ];
    let (code, report, _) = repair(&db, &args).await;
    assert_eq!(code, 1);
    assert_eq!(report["summary"]["to delete"], 1, "{report:#}");
    assert_eq!(report["summary"]["profiles to create"], 3, "{report:#}");
    let mut apply = vec!["--apply"];
    apply.extend(args);
    let (code, report, stderr) = repair(&db, &apply).await;
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    let emails: Vec<String> = profiles(&db).await.into_iter().map(|r| r.0).collect();
    assert_eq!(
        emails,
        [
            "confirmed@example.com",
            "recent@example.com",
            "signedin@example.com"
        ]
    );
    assert_eq!(orphan_count(&db).await, 0);
    let identities: i64 =
        sqlx::query_scalar("select count(*) from auth.identities where user_id = $1")
            .bind(abandoned)
            .fetch_one(&db.pool)
            .await
            .unwrap();
    assert_eq!(identities, 0, "the identity went with the user");
    let audit: Value = sqlx::query_scalar(
        "select payload::jsonb from auth.audit_log_entries \
         where payload ->> 'action' = 'user_deleted'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(audit["actor_username"], "service_role");
    assert_eq!(audit["log_type"], "team");
    assert_eq!(audit["traits"]["user_id"], abandoned.to_string());
    assert_eq!(audit["traits"]["user_email"], "abandoned@example.com");
    assert_invariants(&db).await;
}

#[tokio::test]
async fn repair_next_to_live_signups_changes_only_orphans_once() {
    let app = TestApp::spawn().await;
    for i in 0..30 {
        GoTrueUser {
            email: &format!("old{i}@example.com"),
            app_metadata: json!({"role": "Creator"}),
            ..Default::default()
        }
        .insert(&app.db)
        .await;
    }
    let signups = (0..30).map(|i| {
        let app = &app;
        async move {
            app.signup(&signup_body("New", &format!("new{i}@example.com"), "Brand"))
                .await
                .status()
                .as_u16()
        }
    });
    let (statuses, (code, report, stderr)) = tokio::join!(
        futures::future::join_all(signups),
        repair(&app.db, &["--apply"])
    );
    assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
    assert_eq!(code, 0, "{stderr}\n{report:#}");
    assert_eq!(orphan_count(&app.db).await, 0);
    let rows = profiles(&app.db).await;
    assert_eq!(rows.len(), 60);
    for row in &rows {
        let role = if row.0.starts_with("new") {
            "Brand"
        } else {
            "Creator"
        };
        assert_eq!(row.2.as_deref(), Some(role), "{row:?}");
        assert_eq!(
            row.1.as_deref(),
            Some(if row.0.starts_with("new") {
                "New"
            } else {
                row.0.split('@').next().unwrap()
            }),
            "{row:?}"
        );
    }
}

#[tokio::test]
async fn a_required_field_without_default_is_reported_or_given_with_set() {
    let (db, _) = support::example_profile().await;
    GoTrueUser {
        email: "fields@example.com",
        user_metadata: json!({"name": "Fields"}),
        app_metadata: json!({"role": "Creator"}),
        ..Default::default()
    }
    .insert(&db)
    .await;
    let path = std::env::temp_dir().join(format!("repair-{}.json", Uuid::new_v4()));
    std::fs::write(&path, support::example_file("profile-schema.example.json")).unwrap();
    let url = support::database_url(&db, db.options.get_username(), "postgres");
    let run = |args: Vec<&'static str>| {
        let (url, path) = (url.clone(), path.clone());
        async move {
            let mut all = vec!["repair", "--json"];
            all.extend(args);
            let out = support::run_binary(
                &all,
                &[
                    ("DATABASE_URL", url.as_str()),
                    ("PROFILE_SCHEMA_PATH", path.to_str().unwrap()),
                ],
            )
            .await;
            let report: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
            (out.status.code().unwrap(), report)
        }
    };
    let (code, report) = run(vec![]).await;
    assert_eq!(code, 1);
    let reason = report["orphans"][0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("plan is required") && reason.contains("username is required"),
        "{reason}"
    );
    let (code, report) = run(vec![
        "--apply",
        "--set",
        "username=fields_1",
        "--set",
        "plan=pro",
    ])
    .await;
    assert_eq!(code, 0, "{report:#}");
    let row: (String, String, bool) = sqlx::query_as(
        "select username, plan, marketing_opt_in from public.profiles p \
         join auth.users u on u.id = p.id where u.email = 'fields@example.com'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(row, ("fields_1".to_owned(), "pro".to_owned(), false));
}

/// docs/operations.md's repair commands, run in order on a project with orphans, as written:
/// each runs (exit 0 or 1, never a usage error), and after them no orphan is left.
#[tokio::test]
async fn the_repair_commands_in_the_docs_run_as_written() {
    let db = TestDb::migrated().await;
    for (email, age_days, confirmed) in [
        ("kept@example.com", 1, true),
        ("abandoned@example.com", 40, false),
    ] {
        GoTrueUser {
            email,
            age_days,
            confirmed,
            ..Default::default()
        }
        .insert(&db)
        .await;
    }
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let section = text
        .find("## Adopting on an existing project")
        .expect("the repair section");
    let start = section
        + text[section..]
            .find("```sh\n")
            .expect("the repair section's commands");
    let block = &text[start + "```sh\n".len()..];
    let block = &block[..block.find("```").unwrap()];
    let url = support::database_url(&db, db.options.get_username(), "postgres");
    let mut ran = 0;
    for line in block.lines() {
        let command = line.split(" #").next().unwrap().trim();
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        assert_eq!(
            command.split_whitespace().next(),
            Some("atomic-signup"),
            "{line}"
        );
        let out = support::run_binary(
            &args,
            &[
                ("DATABASE_URL", url.as_str()),
                ("SIGNUP_ROLES", "Creator,Brand"),
            ],
        )
        .await;
        let code = out.status.code().unwrap();
        assert!(
            code == 0 || code == 1,
            "{command}: {code}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!out.stdout.is_empty(), "{command} printed its report");
        ran += 1;
    }
    assert_eq!(ran, 5);
    assert_eq!(orphan_count(&db).await, 0);
    assert_eq!(
        profiles(&db)
            .await
            .into_iter()
            .map(|r| r.0)
            .collect::<Vec<_>>(),
        ["kept@example.com"]
    );
}
