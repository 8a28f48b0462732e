//! Every `curl` example in the README and in docs/ is sent to the service, and its answer is
//! compared with what the docs show, so the examples cannot go stale.
//!
//! An example is a ```sh block with a `curl … localhost:8000/<path>` command (`-H` headers, a
//! `-d '<json>'` body; `'{…same body…}'` means the first body sent to that path in the same file).
//! What it answers is shown either as `# ` comment lines after the command (a JSON body, or a
//! status line and headers), or in the next ```http block (status line, headers, blank line, body)
//! or ```json block (body). Bodies are compared as JSON: the same keys and values, where a string
//! with `…` in it stands for any string and a number for any number (ids, tokens and times
//! differ from run to run).
//!
//! Each example runs on a service of its own (with the GoTrue double), after what the docs say
//! happened before it: a login follows the signup of the README's user and the confirmation of
//! their email; an example with an `Idempotency-Key` is the retry of a first attempt that was
//! sent with the same key and body.

use crate::support;

use serde_json::Value;
use support::TestApp;

/// The README's signup, which the login examples assume happened (and was confirmed).
const README_SIGNUP: &str = r#"{"name":"Ada Lovelace","email":"ada@example.com","password":"correct horse battery","role":"Creator"}"#;

#[derive(Debug)]
struct Example {
    file: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
    status: Option<u16>,
    expected_headers: Vec<(String, String)>,
    expected_body: Option<Value>,
}

/// The fenced blocks of a markdown text: (language, lines).
fn blocks(text: &str) -> Vec<(String, Vec<String>)> {
    let mut blocks = Vec::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in text.lines() {
        match (line.strip_prefix("```"), current.take()) {
            (Some(_), Some(block)) => blocks.push(block),
            (Some(language), None) => current = Some((language.trim().to_owned(), Vec::new())),
            (None, Some((language, mut lines))) => {
                lines.push(line.to_owned());
                current = Some((language, lines));
            }
            (None, None) => {}
        }
    }
    blocks
}

/// `'…'` arguments following `flag` in a shell command.
fn quoted_after(command: &str, flag: &str) -> Vec<String> {
    command
        .split(&format!("{flag} '"))
        .skip(1)
        .filter_map(|rest| rest.split_once('\'').map(|(value, _)| value.to_owned()))
        .collect()
}

/// Status line and `name: value` headers, then (after a blank line) the body.
fn http_answer(lines: &[String]) -> (Option<u16>, Vec<(String, String)>, Option<Value>) {
    let status = lines
        .first()
        .and_then(|l| l.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|code| code.parse().ok());
    let mut headers = Vec::new();
    let mut body = String::new();
    let mut in_body = false;
    for line in lines.iter().skip(1) {
        if in_body {
            body.push_str(line);
        } else if line.trim().is_empty() {
            in_body = true;
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_lowercase(), value.trim().to_owned()));
        }
    }
    let body = (!body.trim().is_empty())
        .then(|| serde_json::from_str(&body).unwrap_or_else(|e| panic!("{body}: {e}")));
    (status, headers, body)
}

fn examples(file: &'static str, text: &str) -> Vec<Example> {
    let blocks = blocks(text);
    let mut examples: Vec<Example> = Vec::new();
    for (i, (language, lines)) in blocks.iter().enumerate() {
        if language != "sh" || !lines.iter().any(|l| l.contains("curl ")) {
            continue;
        }
        let command_end = lines
            .iter()
            .position(|l| !l.trim_end().ends_with('\\'))
            .unwrap_or(lines.len() - 1);
        let command = lines[..=command_end].join(" ");
        let path = command
            .split("localhost:8000")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{file}: no localhost:8000 path in {command}"))
            .to_owned();
        let headers = quoted_after(&command, "-H")
            .into_iter()
            .filter_map(|h| {
                h.split_once(':')
                    .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let mut body = quoted_after(&command, "-d")
            .pop()
            .unwrap_or_else(|| panic!("{file}: no -d body in {command}"));
        if body == "{…same body…}" {
            body = examples
                .iter()
                .find(|e| e.path == path)
                .map(|e| e.body.clone())
                .unwrap_or_else(|| panic!("{file}: no earlier body for {path}"));
        }
        let comments: Vec<String> = lines[command_end + 1..]
            .iter()
            .filter_map(|l| l.strip_prefix("# ").map(str::to_owned))
            .collect();
        let (status, expected_headers, expected_body) =
            if comments.first().is_some_and(|l| l.starts_with("HTTP/")) {
                http_answer(&comments)
            } else if !comments.is_empty() {
                let json = comments.join("");
                (None, Vec::new(), Some(serde_json::from_str(&json).unwrap()))
            } else {
                match blocks.get(i + 1) {
                    Some((language, lines)) if language == "http" => http_answer(lines),
                    Some((language, lines)) if language == "json" => {
                        let json = lines.join("");
                        (None, Vec::new(), Some(serde_json::from_str(&json).unwrap()))
                    }
                    _ => panic!("{file}: the example {command} shows no answer"),
                }
            };
        examples.push(Example {
            file,
            path,
            headers,
            body,
            status,
            expected_headers,
            expected_body,
        });
    }
    examples
}

/// Whether `actual` is what `expected` shows (see the module's comment for `…` and numbers).
fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::String(e), Value::String(a)) => e.contains('…') || e == a,
        (Value::Number(_), Value::Number(_)) => true,
        (Value::Object(e), Value::Object(a)) => {
            e.len() == a.len()
                && e.iter()
                    .all(|(k, v)| a.get(k).is_some_and(|av| matches(v, av)))
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(e, a)| matches(e, a))
        }
        (e, a) => e == a,
    }
}

async fn send(app: &TestApp, example: &Example) -> reqwest::Response {
    let mut request = app
        .client
        .post(format!("{}{}", app.address, example.path))
        .header("content-type", "application/json")
        .body(example.body.clone());
    for (name, value) in &example.headers {
        request = request.header(name.as_str(), value.as_str());
    }
    request.send().await.expect("send the example")
}

async fn run(example: &Example) {
    let builder = TestApp::builder().gotrue();
    // The profile fields' examples use the example profile schema.
    let app = if example.file == "docs/profile-fields.md" {
        let (db, schema) = support::example_profile().await;
        builder
            .on(db)
            .configure(move |s| s.signup.profile = schema)
            .spawn()
            .await
    } else {
        builder.spawn().await
    };
    if example.path == "/api/auth/login" {
        let res = app
            .signup(&serde_json::from_str(README_SIGNUP).unwrap())
            .await;
        assert_eq!(res.status(), 201);
        sqlx::query("update auth.users set email_confirmed_at = now()")
            .execute(&app.db.pool)
            .await
            .unwrap();
    }
    if example
        .headers
        .iter()
        .any(|(name, _)| name == "idempotency-key")
    {
        let first = send(&app, example).await;
        assert!(
            first.status().is_success(),
            "{example:?}: the first attempt"
        );
    }
    let res = send(&app, example).await;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let what = format!("{} example {} {}", example.file, example.path, example.body);
    if let Some(expected) = example.status {
        assert_eq!(status, expected, "{what}: {text}");
    }
    for (name, value) in &example.expected_headers {
        let actual = headers.get(name.as_str()).and_then(|v| v.to_str().ok());
        match actual {
            Some(actual) => assert!(
                value.contains('…') || actual == value,
                "{what}: header {name}: {actual}, the docs say {value}"
            ),
            None => panic!("{what}: no {name} header"),
        }
    }
    if let Some(expected) = &example.expected_body {
        let actual: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
        assert!(
            matches(expected, &actual),
            "{what}:\nthe service answered {actual}\nthe docs show       {expected}"
        );
    }
}

#[tokio::test]
async fn every_curl_example_in_the_docs_answers_what_the_docs_show() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut all = Vec::new();
    for file in [
        "README.md",
        "docs/api.md",
        "docs/configuration.md",
        "docs/operations.md",
        "docs/guarantees.md",
        "docs/development.md",
        "docs/profile-fields.md",
    ] {
        let text = std::fs::read_to_string(format!("{root}/{file}")).unwrap();
        all.extend(examples(file, &text));
    }
    assert!(all.len() >= 5, "examples found: {all:#?}");
    for example in &all {
        run(example).await;
    }
}

#[test]
fn the_comparison_allows_placeholders_and_nothing_else() {
    let shown: Value =
        serde_json::from_str(r#"{"id":"6a1d…","n":3600,"ok":false,"e":"ada@example.com"}"#)
            .unwrap();
    let same: Value =
        serde_json::from_str(r#"{"id":"0b5c2a3e-…","n":7,"ok":false,"e":"ada@example.com"}"#)
            .unwrap();
    assert!(matches(&shown, &same));
    for other in [
        r#"{"id":"x","n":1,"ok":true,"e":"ada@example.com"}"#,
        r#"{"id":"x","n":1,"ok":false,"e":"bob@example.com"}"#,
        r#"{"id":"x","n":1,"ok":false}"#,
        r#"{"id":"x","n":1,"ok":false,"e":"ada@example.com","more":1}"#,
        r#"{"id":1,"n":1,"ok":false,"e":"ada@example.com"}"#,
    ] {
        let other: Value = serde_json::from_str(other).unwrap();
        assert!(!matches(&shown, &other), "{other}");
    }
}

/// Names that look like environment variables (`"UPPER_CASE"` literals) in `text`, outside its
/// `#[cfg(test)]` module.
fn variable_literals(text: &str) -> std::collections::BTreeSet<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.len() > 3
                && s.starts_with(|c: char| c.is_ascii_uppercase())
                && s.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_configuration_table_env_example_and_the_code_name_the_same_variables() {
    use std::collections::BTreeSet;
    let root = env!("CARGO_MANIFEST_DIR");
    let read = |file: &str| std::fs::read_to_string(format!("{root}/{file}")).unwrap();
    // The first column of docs/configuration.md's table.
    let table: BTreeSet<String> = read("docs/configuration.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|cell| {
            cell.split('`')
                .filter(|s| s.starts_with(|c: char| c.is_ascii_uppercase()))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect();
    // `NAME=` lines of .env.example, commented out or not; TEST_* are the tests' own settings.
    let example: BTreeSet<String> = read(".env.example")
        .lines()
        .map(|l| l.trim_start_matches("# ").trim_start_matches('#'))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.to_owned()))
        .filter(|name| {
            !name.is_empty()
                && !name.starts_with("TEST_")
                && name
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    let mut code = BTreeSet::new();
    for entry in std::fs::read_dir(format!("{root}/src/config")).unwrap() {
        code.extend(variable_literals(
            &std::fs::read_to_string(entry.unwrap().path()).unwrap(),
        ));
    }
    code.extend(variable_literals(&read("src/telemetry.rs")));
    code.extend(variable_literals(&read("src/traces.rs")));
    // Read by tracing-subscriber's EnvFilter, not by a literal of ours.
    code.insert("RUST_LOG".to_owned());
    // Read by the OpenTelemetry SDK (src/traces.rs says which).
    for name in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_TRACES_SAMPLER",
        "OTEL_TRACES_SAMPLER_ARG",
        "OTEL_BSP_MAX_QUEUE_SIZE",
    ] {
        code.insert(name.to_owned());
    }
    // Documented beside the table: the file the variables come from, and an older name.
    let outside_the_table = BTreeSet::from(["ENV_FILE".to_owned(), "SUPABASE_KEY".to_owned()]);
    assert_eq!(table, example, "docs/configuration.md vs .env.example");
    let code: BTreeSet<String> = code.difference(&outside_the_table).cloned().collect();
    assert_eq!(
        table, code,
        "docs/configuration.md vs the code in src/config"
    );
    let configuration = read("docs/configuration.md");
    for name in &outside_the_table {
        assert!(
            configuration.contains(name.as_str()),
            "{name} is not documented"
        );
    }
}

/// docs/api.md's SQL for the after_user_created outbox runs as written: it finds a call that
/// failed, and sends it again (the row is pending, and the hook is called again).
#[tokio::test]
async fn the_after_hook_sql_in_the_docs_finds_and_resends_a_failed_call() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md"))
        .expect("docs/api.md");
    let sql = blocks(&text)
        .into_iter()
        .find(|(language, lines)| {
            language == "sql" && lines.iter().any(|l| l.contains("hook_outbox"))
        })
        .expect("an sql block about atomic_signup.hook_outbox")
        .1
        .join("\n");
    let (select, update) = sql.split_once(";\n").expect("a select, then an update");
    // A hook nobody listens at, tried once: the call fails.
    let app = TestApp::builder()
        .configure(|s| {
            s.outbox.max_attempts = 1;
            s.hooks.after_user_created = Some(atomic_signup::config::Hook::Http {
                url: format!("http://127.0.0.1:{}/hook", support::closed_port()),
                secrets: vec![
                    atomic_signup::config::WebhookSecret::parse(
                        "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                    )
                    .unwrap(),
                ],
            })
        })
        .spawn()
        .await;
    let res = app
        .signup(&support::signup_body("F", "failed@example.com", "Creator"))
        .await;
    assert_eq!(res.status(), 201);
    let failed = || async {
        let rows: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(select)
            .fetch_all(&app.db.pool)
            .await
            .unwrap();
        rows.first().is_some_and(|r| r.1 == "failed")
    };
    assert!(support::eventually(std::time::Duration::from_secs(30), failed).await);
    let rows: Vec<(String, String, i32, Option<String>)> = sqlx::query_as(select)
        .fetch_all(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!((rows[0].0.as_str(), rows[0].2), ("failed@example.com", 1));
    assert!(rows[0].3.is_some(), "the error is kept");
    let resent = sqlx::raw_sql(update).execute(&app.db.pool).await.unwrap();
    assert_eq!(resent.rows_affected(), 1);
    // Sent again: the worker takes it and fails once more (still nobody listening).
    let attempts = || async {
        sqlx::query_scalar::<_, i32>("select attempts from atomic_signup.hook_outbox")
            .fetch_one(&app.db.pool)
            .await
            .unwrap()
            == 2
    };
    assert!(support::eventually(std::time::Duration::from_secs(30), attempts).await);
}
