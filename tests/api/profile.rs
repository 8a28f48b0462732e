//! Project-defined profile fields (PROFILE_SCHEMA_PATH): the example schema of
//! examples/profile-schema.example.json on the columns of examples/profile-schema.example.sql.

use serde_json::{Value, json};

use crate::support::{self, TestApp, TestDb, assert_error, status_json};
use atomic_signup::domain::{ProfileSchema, ProfileTable};
use atomic_signup::startup::{Application, StartupError};

fn example(file: &str) -> String {
    support::example_file(file)
}

async fn example_app() -> TestApp {
    let (db, schema) = support::example_profile().await;
    TestApp::builder()
        .on(db)
        .configure(move |s| s.signup.profile = schema)
        .spawn()
        .await
}

fn body(extra: Value) -> Value {
    let mut body = json!({"email": "ada@example.com", "password": "correct horse battery",
                          "role": "Creator", "name": "Ada", "username": "ada_l", "plan": "pro"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn declared_fields_are_written_in_the_signup_transaction_and_answered() {
    let app = example_app().await;
    let (status, answer) = status_json(
        app.signup(&body(json!({"age": 36, "date_of_birth": "1815-12-10"})))
            .await,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    for (field, value) in [
        ("name", json!("Ada")),
        ("username", json!("ada_l")),
        ("plan", json!("pro")),
        ("age", json!(36)),
        ("marketing_opt_in", json!(false)),
        ("date_of_birth", json!("1815-12-10")),
        ("role", json!("Creator")),
    ] {
        assert_eq!(answer[field], value, "{field}: {answer}");
    }
    let row: (String, String, String, i32, bool, String, Value) = sqlx::query_as(
        "select p.name, p.username, p.plan, p.age, p.marketing_opt_in, p.date_of_birth::text, \
                u.raw_user_meta_data \
         from public.profiles p join auth.users u on u.id = p.id",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "Ada".into(),
            "ada_l".into(),
            "pro".into(),
            36,
            false,
            "1815-12-10".into(),
            json!({"name": "Ada"})
        )
    );
    // Optional fields may be left out; the column's own value stays.
    let (status, answer) = status_json(
        app.signup(&body(
            json!({"email": "bob@example.com", "username": "bob"}),
        ))
        .await,
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert!(answer.get("age").is_none(), "{answer}");
    let age: Option<i32> =
        sqlx::query_scalar("select age from public.profiles where username = 'bob'")
            .fetch_one(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(age, None);
}

#[tokio::test]
async fn each_invalid_field_is_a_422_naming_it_and_nothing_is_written() {
    let app = example_app().await;
    let cases = [
        (
            json!({"username": "Ada!"}),
            "username",
            "must match the pattern",
        ),
        (json!({"plan": "gold"}), "plan", "must be one of: free, pro"),
        (json!({"age": 12}), "age", "must be at least 13"),
        (json!({"age": "36"}), "age", "must be an integer"),
        (
            json!({"marketing_opt_in": "yes"}),
            "marketing_opt_in",
            "must be a boolean",
        ),
        (
            json!({"date_of_birth": "10/12/1815"}),
            "date_of_birth",
            "must be a date",
        ),
        (json!({"nickname": "x"}), "nickname", "unknown field"),
        (
            json!({"id": "00000000-0000-0000-0000-000000000000"}),
            "id",
            "unknown field",
        ),
        (
            json!({"onboarding_completed": true}),
            "onboarding_completed",
            "unknown field",
        ),
        (json!({"plan": null}), "plan", "is required"),
    ];
    for (extra, field, message) in cases {
        let res = app.signup(&body(extra.clone())).await;
        let answer = assert_error(res, 422, "validation_failed").await;
        let fields = &answer["error"]["fields"];
        assert_eq!(fields.as_object().unwrap().len(), 1, "{extra}: {answer}");
        assert!(
            fields[field].as_str().unwrap().starts_with(message),
            "{extra}: {answer}"
        );
    }
    assert_eq!(support::counts(&app.db).await, (0, 0, 0));
}

#[tokio::test]
async fn a_replay_answers_the_profile_and_another_profile_under_the_key_is_refused() {
    let app = example_app().await;
    let first = status_json(app.keyed_signup("k", &body(json!({"age": 40}))).await).await;
    assert_eq!(first.0, 201, "{}", first.1);
    let again = status_json(app.keyed_signup("k", &body(json!({"age": 40}))).await).await;
    assert_eq!(again, first);
    // The profile is part of the request the key stands for.
    let res = app.keyed_signup("k", &body(json!({"age": 41}))).await;
    assert_error(res, 422, "idempotency_key_reused").await;
    assert_eq!(support::counts(&app.db).await, (1, 1, 1));
}

#[tokio::test]
async fn the_openapi_document_has_the_declared_fields() {
    let app = example_app().await;
    let (status, doc) = app.get_json("/openapi.json").await;
    assert_eq!(status, 200);
    let request = &doc["components"]["schemas"]["SignupRequest"];
    let response = &doc["components"]["schemas"]["SignupResponse"];
    let schema: Value = serde_json::from_str(&example("profile-schema.example.json")).unwrap();
    for (field, declared) in schema["properties"].as_object().unwrap() {
        assert_eq!(&request["properties"][field], declared, "{field}");
        assert_eq!(&response["properties"][field], declared, "{field}");
    }
    let required = |schema: &Value| -> Vec<String> {
        let mut names: Vec<String> = serde_json::from_value(schema["required"].clone()).unwrap();
        names.sort();
        names
    };
    assert_eq!(
        required(request),
        ["email", "name", "password", "plan", "role", "username"]
    );
    assert!(required(response).contains(&"marketing_opt_in".to_owned()));
    // The default schema: today's document, `name` included.
    let app = TestApp::spawn().await;
    let (_, doc) = app.get_json("/openapi.json").await;
    let request = &doc["components"]["schemas"]["SignupRequest"];
    assert_eq!(request["properties"]["name"]["type"], "string");
    assert!(required(request).contains(&"name".to_owned()));
}

/// What startup says of `schema` on a database with the example's columns.
async fn startup_refusal(schema: &str, columns_sql: &str) -> String {
    let schema = ProfileSchema::parse(schema).unwrap();
    let db = support::example_columns(&schema).await;
    sqlx::raw_sql(columns_sql).execute(&db.pool).await.unwrap();
    let mut settings = support::test_settings(&db);
    settings.signup.profile = schema.clone();
    let refusal = match Application::build(settings.clone()).await {
        Err(err @ StartupError::ProfileMismatch(_)) => err.to_string(),
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started"),
    };
    // `check` reports the same problems.
    let report = atomic_signup::check::run(
        &settings.database,
        None,
        (&schema, &ProfileTable::default()),
        &Default::default(),
    )
    .await;
    let profile = report.checks.iter().find(|c| c.check == "profile").unwrap();
    assert!(
        refusal.contains(&profile.summary),
        "check: {}\nstartup: {refusal}",
        profile.summary
    );
    refusal
}

#[tokio::test]
async fn a_schema_that_does_not_fit_the_table_stops_startup_naming_the_property() {
    let refusal = startup_refusal(
        r#"{"properties": {"name": {"type": "string"}, "bio": {"type": "string"}},
            "required": ["name"]}"#,
        "",
    )
    .await;
    assert!(
        refusal.contains("profile field `bio`: public.profiles has no column `bio`"),
        "{refusal}"
    );

    let refusal = startup_refusal(
        r#"{"properties": {"name": {"type": "string"}, "plan": {"type": "integer",
                           "minimum": 0, "maximum": 9}},
            "required": ["name", "plan"]}"#,
        "",
    )
    .await;
    assert!(
        refusal.contains(
            "profile field `plan` and column public.profiles.plan (text): an integer needs"
        ),
        "{refusal}"
    );

    let refusal = startup_refusal(
        r#"{"properties": {"name": {"type": "string"}}, "required": ["name"]}"#,
        "alter table public.profiles add column company text not null",
    )
    .await;
    assert!(
        refusal.contains("column public.profiles.company is NOT NULL without a default"),
        "{refusal}"
    );
}

#[tokio::test]
async fn check_reports_what_startup_refuses_and_migrate_writes_the_declared_columns() {
    let dir = std::env::temp_dir().join(format!("profile-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("schema.json");
    std::fs::write(&path, example("profile-schema.example.json")).unwrap();
    let path = path.to_str().unwrap();
    let db = TestDb::migrated().await;
    let url = support::database_url(&db, db.options.get_username(), "postgres");
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("PROFILE_SCHEMA_PATH", path),
    ];
    // The columns do not exist yet: check names each missing one.
    let out = support::run_binary(&["check"], &vars).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for field in [
        "username",
        "plan",
        "age",
        "marketing_opt_in",
        "date_of_birth",
    ] {
        assert!(
            text.contains(&format!(
                "profile field `{field}`: public.profiles has no column"
            )),
            "{field}: {text}"
        );
    }
    // Add them and migrate with the schema: check holds and the list is the schema's.
    sqlx::raw_sql(&example("profile-schema.example.sql"))
        .execute(&db.pool)
        .await
        .unwrap();
    let out = support::run_binary(&["migrate"], &vars).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<String> =
        sqlx::query_scalar("select column_name from atomic_signup.profile_columns order by 1")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    assert_eq!(
        listed,
        [
            "age",
            "date_of_birth",
            "marketing_opt_in",
            "name",
            "plan",
            "username"
        ]
    );
    let out = support::run_binary(&["check", "--json"], &vars).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let profile = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["check"] == "profile")
        .unwrap();
    assert_eq!(profile["status"], "ok", "{report:#}");
    // A bad file stops everything that reads it, naming the variable.
    std::fs::write(path, r#"{"properties": {"role": {"type": "string"}}}"#).unwrap();
    let out = support::run_binary(&["migrate"], &vars).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("PROFILE_SCHEMA_PATH is invalid") && stderr.contains("property `role`"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

const ACCOUNTS: &str = "create table public.accounts ( \
       id uuid primary key references auth.users (id) on delete cascade, \
       role text not null, \
       display_name text not null, \
       created_at timestamptz not null default now())";
const ACCOUNTS_SCHEMA: &str = r#"{"properties": {"display_name": {"type": "string", "maxLength": 80}},
                                  "required": ["display_name"]}"#;

#[tokio::test]
async fn a_profile_table_of_the_projects_own_is_written_at_signup_and_read_at_login() {
    let db = TestDb::migrated().await;
    sqlx::raw_sql(ACCOUNTS).execute(&db.pool).await.unwrap();
    let schema = ProfileSchema::parse(ACCOUNTS_SCHEMA).unwrap();
    let table = ProfileTable::parse("public.accounts").unwrap();
    atomic_signup::store::profile_columns::write(&db.pool, &table, &schema)
        .await
        .unwrap();
    let app = TestApp::builder()
        .on(db)
        .gotrue()
        .breaks_invariants(
            "the profiles are in public.accounts, which tests/invariants.sql does not read",
        )
        .configure(move |s| {
            s.signup.profile = schema;
            s.signup.profile_table = table;
        })
        .spawn()
        .await;
    let body = json!({"email": "ada@example.com", "password": "correct horse battery",
                      "role": "Brand", "display_name": "Ada"});
    let (status, answer) = status_json(app.signup(&body).await).await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["display_name"], "Ada");
    assert_eq!(
        answer["onboarding_completed"], false,
        "no such column: false"
    );
    let row: (String, String, i64, i64) = sqlx::query_as(
        "select a.role, a.display_name, (select count(*) from public.profiles), \
                (select count(*) from auth.users u where u.id = a.id) from public.accounts a",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(row, ("Brand".into(), "Ada".into(), 0, 1));
    // Login answers that row as the profile.
    sqlx::query("update auth.users set email_confirmed_at = now()")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, login) =
        status_json(app.login("ada@example.com", "correct horse battery").await).await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(
        login["profile"],
        json!({"role": "Brand", "display_name": "Ada"})
    );
    // A bad value is still refused at the edge, and the service's columns stay its own.
    let (status, answer) = status_json(
        app.signup(
            &json!({"email": "bob@example.com", "password": "correct horse battery",
                           "role": "Brand", "display_name": "x".repeat(81), "id": "x"}),
        )
        .await,
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(
        answer["error"]["fields"],
        json!({"display_name": "must be at most 80 characters", "id": "unknown field"})
    );

    // check reads the same table: no orphan, the profile fits.
    let dir = std::env::temp_dir().join(format!("profile-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("schema.json");
    std::fs::write(&path, ACCOUNTS_SCHEMA).unwrap();
    let url = support::database_url(&app.db, app.db.options.get_username(), "postgres");
    let vars = [
        ("DATABASE_URL", url.as_str()),
        ("PROFILE_SCHEMA_PATH", path.to_str().unwrap()),
        ("PROFILE_TABLE", "public.accounts"),
    ];
    let out = support::run_binary(&["check", "--json"], &vars).await;
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    for name in ["profile", "orphans"] {
        let entry = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap();
        assert_eq!(entry["status"], "ok", "{name}: {report:#}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_profile_table_the_database_was_not_migrated_for_stops_startup() {
    let db = TestDb::migrated().await;
    sqlx::raw_sql(ACCOUNTS).execute(&db.pool).await.unwrap();
    let schema = ProfileSchema::parse(ACCOUNTS_SCHEMA).unwrap();
    let mut settings = support::test_settings(&db);
    settings.signup.profile = schema;
    settings.signup.profile_table = ProfileTable::parse("public.accounts").unwrap();
    let refusal = match Application::build(settings).await {
        Err(err @ StartupError::ProfileMismatch(_)) => err.to_string(),
        Err(other) => panic!("another error: {other}"),
        Ok(_) => panic!("started"),
    };
    assert!(
        refusal.contains("the database writes profiles into public.profiles, not public.accounts"),
        "{refusal}"
    );
    assert!(
        refusal.contains("profile field `display_name` is not in atomic_signup.profile_columns"),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_declared_field_left_out_takes_the_columns_default() {
    let schema = ProfileSchema::parse(
        r#"{"properties": {"name": {"type": "string"}, "nickname": {"type": "string"}},
            "required": ["name"]}"#,
    )
    .unwrap();
    let db = TestDb::migrated().await;
    sqlx::raw_sql("alter table public.profiles add column nickname text not null default 'anon'")
        .execute(&db.pool)
        .await
        .unwrap();
    atomic_signup::store::profile_columns::write(&db.pool, &ProfileTable::default(), &schema)
        .await
        .unwrap();
    let app = TestApp::builder()
        .on(db)
        .configure(move |s| s.signup.profile = schema)
        .spawn()
        .await;
    for (email, nickname) in [("a@example.com", None), ("b@example.com", Some("bee"))] {
        let mut body = support::signup_body("Ada", email, "Creator");
        if let Some(nickname) = nickname {
            body["nickname"] = json!(nickname);
        }
        let (status, answer) = status_json(app.signup(&body).await).await;
        assert_eq!(status, 201, "{answer}");
    }
    let nicknames: Vec<String> =
        sqlx::query_scalar("select nickname from public.profiles order by nickname")
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
    assert_eq!(nicknames, ["anon", "bee"]);
}
