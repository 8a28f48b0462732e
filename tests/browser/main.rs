//! The example page (`examples/web/`) in a real headless Chromium, against the service on another
//! origin (CORS), with the GoTrue double for login: `cargo test --test browser`. Each scenario
//! checks what the page shows and what the database holds.

#[path = "../support/mod.rs"]
mod support;

mod chrome;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomic_signup::config::CorsOrigins;
use chrome::{Browser, ExamplePage, serve_example_page};
use support::{TestApp, counts};

const PASSWORD: &str = "correct horse battery";

/// The example page and the service: the page's origin is allowed, and its `config.js` points
/// it at the service, reached as `localhost` (another origin than the page's `127.0.0.1`).
/// Returns the page, the app and the API's address.
async fn page_and_app(builder: support::TestAppBuilder<'_>) -> (ExamplePage, TestApp, String) {
    let page = serve_example_page().await;
    let origin = page.origin.clone();
    let app = builder
        .configure(move |s| s.cors.origins = CorsOrigins::List(vec![origin]))
        .spawn()
        .await;
    let api = app.address.replace("127.0.0.1", "localhost");
    page.use_api(&api);
    (page, app, api)
}

/// A new browser on `url`, e.g. `{page.origin}/index.html`, once the signup form shows its
/// profile fields (read from the API, or the default when the API cannot be read).
async fn open(url: &str) -> Browser {
    let browser = Browser::start().await;
    browser.client.goto(url).await.unwrap();
    browser
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(fantoccini::Locator::Css("#signup[data-fields]"))
        .await
        .unwrap_or_else(|e| panic!("the signup form never showed its fields: {e}"));
    browser
}

async fn fill_signup(b: &Browser, name: &str, email: &str, password: &str, role: &str) {
    b.fill("#signup [name=name]", name).await;
    b.fill("#signup [name=email]", email).await;
    b.fill("#signup [name=password]", password).await;
    b.client
        .find(fantoccini::Locator::Css("#signup [name=role]"))
        .await
        .unwrap()
        .select_by_label(role)
        .await
        .unwrap();
}

#[tokio::test]
async fn signup_succeeds_once_and_the_same_email_in_other_case_is_already_registered() {
    let (page, app, api) = page_and_app(TestApp::builder()).await;
    let b = open(&format!("{}/index.html", page.origin)).await;
    assert_eq!(b.text("#api-base").await, api, "the page shows its API");

    // 1. A signup: the page says so, and the user, identity and profile exist, once.
    fill_signup(&b, "Ada Lovelace", "ada@example.com", PASSWORD, "Brand").await;
    b.click("#signup button").await;
    let (kind, text) = b.outcome("signup-status").await;
    assert_eq!(kind, "ok", "{text}");
    assert!(text.contains("Check your inbox"), "{text}");
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    let (name, role): (String, String) = sqlx::query_as(
        "select p.name, p.role from public.profiles p join auth.users u on u.id = p.id \
         where u.email = 'ada@example.com'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!((name.as_str(), role.as_str()), ("Ada Lovelace", "Brand"));

    let shot = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("browser");
    std::fs::create_dir_all(&shot).unwrap();
    let shot = shot.join("signup.png");
    std::fs::write(&shot, b.client.screenshot().await.unwrap()).unwrap();
    println!("screenshot of the page after a signup: {}", shot.display());

    // 2. The same email in other letter case: "already registered", nothing new written.
    fill_signup(&b, "Ada Again", "ADA@Example.com", PASSWORD, "Creator").await;
    b.click("#signup button").await;
    let (kind, text) = b.outcome("signup-status").await;
    assert_eq!(kind, "error", "{text}");
    assert!(text.contains("already registered"), "{text}");
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    b.close().await;
}

#[tokio::test]
async fn field_errors_are_shown_beside_their_fields_and_nothing_is_written() {
    let (page, app, _) = page_and_app(TestApp::builder()).await;
    let b = open(&format!("{}/index.html", page.origin)).await;

    // 3. A bad email and a short password.
    fill_signup(&b, "Bo", "not-an-email", "short", "Creator").await;
    b.click("#signup button").await;
    let (kind, _) = b.outcome("signup-status").await;
    assert_eq!(kind, "error");
    let email_error = b.text(".field-error[data-for=email]").await;
    let password_error = b.text(".field-error[data-for=password]").await;
    assert!(!email_error.is_empty(), "an email error is shown");
    assert!(!password_error.is_empty(), "a password error is shown");
    assert!(
        b.text(".field-error[data-for=name]").await.is_empty(),
        "the valid name has no error"
    );
    let invalid = b
        .client
        .find(fantoccini::Locator::Css("#signup [name=email]"))
        .await
        .unwrap()
        .attr("aria-invalid")
        .await
        .unwrap();
    assert_eq!(invalid.as_deref(), Some("true"));
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    b.close().await;
}

#[tokio::test]
async fn login_asks_for_confirmation_first_then_shows_the_profile() {
    let (page, app, _) = page_and_app(TestApp::builder().gotrue()).await;
    let b = open(&format!("{}/index.html", page.origin)).await;
    fill_signup(&b, "Grace Hopper", "grace@example.com", PASSWORD, "Creator").await;
    b.click("#signup button").await;
    assert_eq!(b.outcome("signup-status").await.0, "ok");

    // 4. Before confirmation: the page says to confirm.
    b.fill("#login [name=email]", "grace@example.com").await;
    b.fill("#login [name=password]", PASSWORD).await;
    b.click("#login button").await;
    let (kind, text) = b.outcome("login-status").await;
    assert_eq!(kind, "error", "{text}");
    assert!(text.contains("Confirm your email"), "{text}");
    assert!(!b.displayed("#profile").await, "no profile before a login");

    // The outbox mails the link (through the double); the user opens it in the browser and
    // GoTrue sends them back to the page.
    let mailed = || async {
        app.double()
            .confirmation_link("grace@example.com")
            .is_some()
    };
    assert!(support::eventually(Duration::from_secs(10), mailed).await);
    let link = app.double().confirmation_link("grace@example.com").unwrap();
    b.client
        .goto(&format!("{link}&redirect_to={}/index.html", page.origin))
        .await
        .unwrap();
    let confirmed: bool = sqlx::query_scalar(
        "select email_confirmed_at is not null from auth.users where email = 'grace@example.com'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(confirmed);

    b.fill("#login [name=email]", "grace@example.com").await;
    b.fill("#login [name=password]", PASSWORD).await;
    b.click("#login button").await;
    let (kind, text) = b.outcome("login-status").await;
    assert_eq!(kind, "ok", "{text}");
    assert!(b.displayed("#profile").await);
    assert_eq!(b.text("#profile-name").await, "Grace Hopper");
    assert_eq!(b.text("#profile-role").await, "Creator");
    let signed_in: bool = sqlx::query_scalar(
        "select last_sign_in_at is not null from auth.users where email = 'grace@example.com'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert!(signed_in);
    // The session stays in the page's memory, for supabase-js.
    let token = b
        .client
        .execute(
            "return import('./app.js').then(m => m.session && m.session.access_token)",
            vec![],
        )
        .await
        .unwrap();
    assert!(token.as_str().is_some_and(|t| !t.is_empty()), "{token}");
    b.close().await;
}

#[tokio::test]
async fn a_page_on_an_origin_not_allowed_is_blocked_and_nothing_is_written() {
    let (_allowed, app, api) = page_and_app(TestApp::builder()).await;
    // 5. The same page, pointed at the same service, from another origin.
    let other = serve_example_page().await;
    other.use_api(&api);
    let b = open(&format!("{}/index.html", other.origin)).await;
    fill_signup(&b, "Mallory", "mallory@example.com", PASSWORD, "Creator").await;
    b.click("#signup button").await;
    let (kind, text) = b.outcome("signup-status").await;
    assert_eq!(kind, "error", "{text}");
    assert!(text.contains("blocked"), "{text}");
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    b.close().await;
}

#[tokio::test]
async fn after_a_503_the_retry_with_the_same_key_makes_exactly_one_user() {
    let (page, app, _) = page_and_app(TestApp::builder().configure(|s| {
        s.request_timeout = Duration::from_secs(1);
        s.database.statement_timeout = Duration::from_secs(10);
    }))
    .await;
    // 6. The first attempt outlives the request timeout: 503 request_timeout.
    support::slow_profile_inserts(&app.db, 2.0).await;
    let b = open(&format!("{}/index.html", page.origin)).await;
    // Record the Idempotency-Key of every signup the page sends.
    b.client
        .execute(
            "window.sentKeys = []; const f = window.fetch; \
             window.fetch = (url, opts) => { window.sentKeys.push(opts.headers['idempotency-key']); \
             return f(url, opts); }; return true;",
            vec![],
        )
        .await
        .unwrap();
    fill_signup(&b, "Retry Ray", "ray@example.com", PASSWORD, "Creator").await;
    b.click("#signup button").await;
    let (kind, text) = b.outcome("signup-status").await;
    assert_eq!(kind, "error", "{text}");
    assert!(text.contains("Try again in 1 s"), "{text}");
    support::wait_until_no_statement_runs(&app.db).await;
    sqlx::query("drop trigger test_only_slow on public.profiles")
        .execute(&app.db.pool)
        .await
        .unwrap();

    b.click("#signup button").await;
    let (kind, text) = b.outcome("signup-status").await;
    assert_eq!(kind, "ok", "{text}");
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    let keys = b
        .client
        .execute("return window.sentKeys", vec![])
        .await
        .unwrap();
    let keys: Vec<String> = serde_json::from_value(keys).unwrap();
    assert_eq!(keys.len(), 2, "{keys:?}");
    assert_eq!(keys[0], keys[1], "the retry reused the submission's key");
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from atomic_signup.idempotency_keys where key = $1 and state = 'completed'",
    )
    .bind(&keys[0])
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(stored, 1);
    b.close().await;
}

#[tokio::test]
async fn an_api_in_the_page_url_is_ignored_and_the_forms_go_to_the_configured_api() {
    // 7. A phishing link: the page's URL names another server as the API (`?api=`). The page
    // must send nothing there: not the signup, not the email and password of a login.
    let attacker = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let attacker_url = format!("http://{}", attacker.local_addr().unwrap());
    let reached: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let listener = tokio::spawn({
        let reached = reached.clone();
        async move {
            // Every connection is recorded, then closed unanswered.
            while let Ok((stream, peer)) = attacker.accept().await {
                reached.lock().unwrap().push(peer);
                drop(stream);
            }
        }
    });

    let (page, app, api) = page_and_app(TestApp::builder().gotrue()).await;
    let b = open(&format!("{}/index.html?api={attacker_url}", page.origin)).await;
    assert_eq!(
        b.text("#api-base").await,
        api,
        "the page shows its configured API"
    );

    fill_signup(&b, "Eve Target", "target@example.com", PASSWORD, "Creator").await;
    b.click("#signup button").await;
    let (kind, text) = b.outcome("signup-status").await;
    assert_eq!(kind, "ok", "{text}");
    assert!(text.contains("Check your inbox"), "{text}");
    assert_eq!(
        counts(&app.db).await,
        (1, 1, 1),
        "the configured API made the user"
    );

    b.fill("#login [name=email]", "target@example.com").await;
    b.fill("#login [name=password]", PASSWORD).await;
    b.click("#login button").await;
    let (kind, text) = b.outcome("login-status").await;
    assert_eq!(kind, "error", "{text}");
    assert!(
        text.contains("Confirm your email"),
        "the configured API answered the login: {text}"
    );

    // Both outcomes are shown, so both requests are over; a connection to the attacker would
    // have been recorded before it was closed.
    let reached = reached.lock().unwrap().clone();
    assert!(
        reached.is_empty(),
        "the page connected to the server named in its URL ({attacker_url}): {reached:?}"
    );
    listener.abort();
    b.close().await;
}

#[tokio::test]
async fn the_form_shows_the_declared_profile_fields_and_submits_them() {
    let (db, schema) = support::example_profile().await;
    let (page, app, _) = page_and_app(
        TestApp::builder()
            .on(db)
            .configure(move |s| s.signup.profile = schema),
    )
    .await;
    let b = open(&format!("{}/index.html", page.origin)).await;
    let source = b
        .client
        .find(fantoccini::Locator::Css("#signup"))
        .await
        .unwrap()
        .attr("data-fields")
        .await
        .unwrap();
    assert_eq!(source.as_deref(), Some("api"));
    // Each declared field, as the input its type calls for.
    for (css, kind) in [
        ("input[name=username]", Some("text")),
        ("select[name=plan]", None),
        ("input[name=age]", Some("number")),
        ("input[name=marketing_opt_in]", Some("checkbox")),
        ("input[name=date_of_birth]", Some("date")),
    ] {
        let element = b
            .client
            .find(fantoccini::Locator::Css(&format!("#signup {css}")))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        if let Some(kind) = kind {
            assert_eq!(
                element.prop("type").await.unwrap().as_deref(),
                Some(kind),
                "{css}"
            );
        }
    }
    // A bad username: its error beside it, nothing written.
    fill_signup(&b, "Ada Lovelace", "ada@example.com", PASSWORD, "Brand").await;
    b.fill("#signup [name=username]", "Ada L").await;
    b.click("#signup button").await;
    let (kind, _) = b.outcome("signup-status").await;
    assert_eq!(kind, "error");
    assert!(
        b.text(".field-error[data-for=username]")
            .await
            .contains("pattern")
    );
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    // Corrected, with every field filled: one user with each column written.
    b.fill("#signup [name=username]", "ada_l").await;
    b.client
        .find(fantoccini::Locator::Css("#signup [name=plan]"))
        .await
        .unwrap()
        .select_by_label("pro")
        .await
        .unwrap();
    b.fill("#signup [name=age]", "36").await;
    b.click("#signup [name=marketing_opt_in]").await;
    b.client
        .execute(
            "document.querySelector('#signup [name=date_of_birth]').value = '1815-12-10'",
            vec![],
        )
        .await
        .unwrap();
    b.click("#signup button").await;
    let (kind, text) = b.outcome("signup-status").await;
    assert_eq!(kind, "ok", "{text}");
    let row: (String, String, String, i32, bool, String) = sqlx::query_as(
        "select name, username, plan, age, marketing_opt_in, date_of_birth::text \
         from public.profiles",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(
        row,
        (
            "Ada Lovelace".into(),
            "ada_l".into(),
            "pro".into(),
            36,
            true,
            "1815-12-10".into()
        )
    );
    b.close().await;
}
