//! GoTrue's signup protections, which a direct insert would otherwise skip: captcha (hCaptcha or
//! Turnstile, against a local siteverify double), the password policy, DISABLE_SIGNUP and the
//! email domain lists. Each refusal writes nothing.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use atomic_signup::config::{CaptchaProvider, CaptchaSettings};
use atomic_signup::domain::{EmailDomains, PasswordPolicy};
use axum::extract::State;
use axum::routing::post;
use serde_json::{Value, json};
use support::{TestApp, assert_error, counts, signup_body, status_json};

/// Every form the double got, in order (name, value pairs).
type Forms = Arc<Mutex<Vec<Vec<(String, String)>>>>;

/// A siteverify double: records each form it gets, answers what it is told.
#[derive(Clone)]
struct Siteverify {
    url: String,
    forms: Forms,
    answer: Arc<Mutex<Answer>>,
}

#[derive(Clone)]
enum Answer {
    /// `{"success": true}` for this token only, `{"success": false, "error-codes": [..]}` else.
    Accept(&'static str),
    Status(u16),
    NotJson,
    Slow(Duration),
    /// 307 to this URL (a redirect re-sends the POST and its form, secret included).
    Redirect(String),
}

impl Siteverify {
    async fn start(answer: Answer) -> Self {
        let forms = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(Mutex::new(answer));
        let state = (Arc::clone(&forms), Arc::clone(&answer));
        let app = axum::Router::new()
            .route("/siteverify", post(verify))
            .with_state(state);
        let url = format!("{}/siteverify", support::serve_on_loopback(app).await);
        Self { url, forms, answer }
    }

    fn forms(&self) -> Vec<Vec<(String, String)>> {
        self.forms.lock().unwrap().clone()
    }

    fn settings(&self, provider: CaptchaProvider) -> CaptchaSettings {
        CaptchaSettings {
            provider,
            secret: "siteverify-secret-0123".to_owned().into(),
            timeout: Duration::from_millis(500),
            verify_url: self.url.clone(),
        }
    }
}

type SiteverifyState = (Arc<Mutex<Vec<Vec<(String, String)>>>>, Arc<Mutex<Answer>>);

async fn verify(
    State((forms, answer)): State<SiteverifyState>,
    axum::extract::Form(form): axum::extract::Form<Vec<(String, String)>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let token = form
        .iter()
        .find(|(k, _)| k == "response")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    forms.lock().unwrap().push(form);
    let answer = answer.lock().unwrap().clone();
    match answer {
        Answer::Accept(good) if token == good => {
            axum::Json(json!({"success": true})).into_response()
        }
        Answer::Accept(_) => {
            axum::Json(json!({"success": false, "error-codes": ["invalid-input-response"]}))
                .into_response()
        }
        Answer::Status(code) => axum::http::StatusCode::from_u16(code)
            .unwrap()
            .into_response(),
        Answer::NotJson => "<html>oops</html>".into_response(),
        Answer::Redirect(to) => (
            axum::http::StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, to)],
        )
            .into_response(),
        Answer::Slow(d) => {
            tokio::time::sleep(d).await;
            axum::Json(json!({"success": true})).into_response()
        }
    }
}

fn with_token(mut body: Value, token: &str) -> Value {
    body["captcha_token"] = json!(token);
    body
}

#[tokio::test]
async fn with_captcha_on_a_signup_needs_a_token_the_provider_accepts() {
    let provider = Siteverify::start(Answer::Accept("good-token")).await;
    let settings = provider.settings(CaptchaProvider::Hcaptcha);
    let app = TestApp::builder()
        .configure(move |s| s.captcha = Some(settings))
        .spawn()
        .await;
    let body = signup_body("Cap", "cap@example.com", "Creator");

    // No token: refused without asking the provider.
    let answer = assert_error(app.signup(&body).await, 400, "captcha_failed").await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no captcha_token"),
        "{answer}"
    );
    assert!(provider.forms().is_empty());

    // A token the provider refuses: its error codes are in the message.
    let answer = assert_error(
        app.signup(&with_token(body.clone(), "bad-token")).await,
        400,
        "captcha_failed",
    )
    .await;
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid-input-response"),
        "{answer}"
    );
    assert_eq!(counts(&app.db).await, (0, 0, 0));

    // Accepted: the provider got the secret, the token and the client's IP, as GoTrue sends them.
    let (status, created) = status_json(app.signup(&with_token(body, "good-token")).await).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    let form = provider.forms().pop().unwrap();
    let field = |k: &str| {
        form.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(field("secret"), Some("siteverify-secret-0123"));
    assert_eq!(field("response"), Some("good-token"));
    assert_eq!(field("remoteip"), Some("127.0.0.1"));
}

#[tokio::test]
async fn supabase_js_s_token_shape_is_accepted_too() {
    let provider = Siteverify::start(Answer::Accept("js-token")).await;
    let settings = provider.settings(CaptchaProvider::Turnstile);
    let app = TestApp::builder()
        .configure(move |s| s.captcha = Some(settings))
        .spawn()
        .await;
    let mut body = signup_body("Js", "js@example.com", "Brand");
    body["gotrue_meta_security"] = json!({"captcha_token": "js-token"});
    let (status, answer) = status_json(app.signup(&body).await).await;
    assert_eq!(status, 201, "{answer}");
    // A wrongly typed token is a field error, not a pass.
    let mut bad = signup_body("Js", "js2@example.com", "Brand");
    bad["gotrue_meta_security"] = json!({"captcha_token": 42});
    let answer = assert_error(app.signup(&bad).await, 422, "validation_failed").await;
    assert!(
        answer["error"]["fields"]["gotrue_meta_security.captcha_token"].is_string(),
        "{answer}"
    );
    assert_eq!(counts(&app.db).await, (1, 1, 1));
}

#[tokio::test]
async fn a_provider_that_fails_or_is_slow_is_503_never_a_pass() {
    for answer in [
        Answer::Status(500),
        Answer::NotJson,
        Answer::Slow(Duration::from_secs(3)),
    ] {
        let provider = Siteverify::start(answer).await;
        let settings = provider.settings(CaptchaProvider::Hcaptcha);
        let app = TestApp::builder()
            .configure(move |s| s.captcha = Some(settings))
            .spawn()
            .await;
        let body = with_token(signup_body("Down", "down@example.com", "Creator"), "any");
        let res = app.signup(&body).await;
        assert_eq!(
            res.headers().get("retry-after").map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_error(res, 503, "captcha_unavailable").await;
        assert_eq!(counts(&app.db).await, (0, 0, 0));
    }
    // Nobody listening at all.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/siteverify", listener.local_addr().unwrap())
    };
    let app = TestApp::builder()
        .configure(move |s| {
            s.captcha = Some(CaptchaSettings {
                provider: CaptchaProvider::Hcaptcha,
                secret: "x".to_owned().into(),
                timeout: Duration::from_millis(500),
                verify_url: closed,
            })
        })
        .spawn()
        .await;
    let body = with_token(signup_body("Down", "down@example.com", "Creator"), "any");
    assert_error(app.signup(&body).await, 503, "captcha_unavailable").await;
}

#[tokio::test]
async fn a_redirect_from_the_provider_is_not_followed() {
    let elsewhere = Siteverify::start(Answer::Accept("any")).await;
    let provider = Siteverify::start(Answer::Redirect(elsewhere.url.clone())).await;
    let settings = provider.settings(CaptchaProvider::Turnstile);
    let app = TestApp::builder()
        .configure(move |s| s.captcha = Some(settings))
        .spawn()
        .await;
    let body = with_token(signup_body("Moved", "moved@example.com", "Creator"), "any");
    assert_error(app.signup(&body).await, 503, "captcha_unavailable").await;
    assert_eq!(provider.forms().len(), 1, "the provider was asked once");
    assert!(
        elsewhere.forms().is_empty(),
        "the secret went to the redirect's target"
    );
    assert_eq!(counts(&app.db).await, (0, 0, 0));
}

#[tokio::test]
async fn a_keyed_retry_replays_without_a_second_captcha() {
    let provider = Siteverify::start(Answer::Accept("once")).await;
    let settings = provider.settings(CaptchaProvider::Hcaptcha);
    let app = TestApp::builder()
        .configure(move |s| s.captcha = Some(settings))
        .spawn()
        .await;
    let body = with_token(signup_body("Key", "key@example.com", "Creator"), "once");
    let send = || app.keyed_signup("captcha-key", &body);
    assert_eq!(send().await.status(), 201);
    // The provider would now refuse the spent token; the replay does not ask it.
    *provider.answer.lock().unwrap() = Answer::Accept("another");
    let retry = send().await;
    assert_eq!(retry.status(), 201);
    assert_eq!(retry.headers()["idempotent-replayed"], "true");
    assert_eq!(provider.forms().len(), 1);
    // A failed captcha gives the key back: the same key with a good token then signs up.
    let other = with_token(signup_body("Key", "key2@example.com", "Creator"), "wrong");
    let failed = app.keyed_signup("captcha-key-2", &other).await;
    assert_error(failed, 400, "captcha_failed").await;
    let good = with_token(signup_body("Key", "key2@example.com", "Creator"), "another");
    assert_eq!(app.keyed_signup("captcha-key-2", &good).await.status(), 201);
    assert_eq!(counts(&app.db).await, (2, 2, 2));
}

#[tokio::test]
async fn a_weak_password_is_422_weak_password_with_the_reasons_and_the_other_fields() {
    let app = TestApp::builder()
        .configure(|s| {
            s.signup.password = PasswordPolicy {
                min_length: 10,
                required_characters: PasswordPolicy::parse_required_characters(
                    "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789:!@#\\:",
                ),
            }
        })
        .spawn()
        .await;
    let with_password = |p: &str| {
        let mut b = signup_body("Pat", "pat@example.com", "Creator");
        b["password"] = json!(p);
        b
    };
    for (password, reasons) in [
        ("Ab1!", json!(["length"])),
        ("abcdefghijkl", json!(["characters"])),
        ("abc", json!(["length", "characters"])),
        ("Abcdefghij1", json!(["characters"])),
    ] {
        let answer = assert_error(
            app.signup(&with_password(password)).await,
            422,
            "weak_password",
        )
        .await;
        assert_eq!(
            answer["error"]["weak_password"]["reasons"], reasons,
            "{password}"
        );
        assert!(
            answer["error"]["fields"]["password"].is_string(),
            "{answer}"
        );
    }
    // Reported together with the other bad fields.
    let mut both = with_password("abc");
    both["email"] = json!("nope");
    let answer = assert_error(app.signup(&both).await, 422, "weak_password").await;
    assert!(answer["error"]["fields"]["email"].is_string(), "{answer}");
    assert_eq!(counts(&app.db).await, (0, 0, 0));
    // A colon is a character like any other once escaped.
    let (status, answer) = status_json(app.signup(&with_password("Abcdefghi1:")).await).await;
    assert_eq!(status, 201, "{answer}");
}

#[tokio::test]
async fn with_signups_disabled_signup_is_422_and_login_still_works() {
    let app = TestApp::builder().gotrue().spawn().await;
    let body = signup_body("Early", "early@example.com", "Creator");
    assert_eq!(app.signup(&body).await.status(), 201);
    sqlx::query("update auth.users set email_confirmed_at = now()")
        .execute(&app.db.pool)
        .await
        .unwrap();
    let closed = app
        .another_instance()
        .configure(|s| s.disable_signup = true)
        .spawn()
        .await;
    let answer = assert_error(
        closed
            .signup(&signup_body("Late", "late@example.com", "Creator"))
            .await,
        422,
        "signup_disabled",
    )
    .await;
    assert_eq!(
        answer["error"]["message"],
        "Signups not allowed for this instance"
    );
    assert_eq!(counts(&app.db).await, (1, 1, 1));
    assert_eq!(
        closed
            .login("early@example.com", "correct horse battery")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn email_domain_lists_decide_who_may_sign_up() {
    let only = TestApp::builder()
        .configure(|s| s.signup.email_domains = EmailDomains::Only(vec!["example.com".into()]))
        .spawn()
        .await;
    assert_eq!(
        only.signup(&signup_body("In", "in@mail.example.com", "Creator"))
            .await
            .status(),
        201
    );
    let answer = assert_error(
        only.signup(&signup_body("Out", "out@example.org", "Creator"))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(answer["error"]["fields"]["email"].is_string(), "{answer}");

    let all_but = TestApp::builder()
        .configure(|s| s.signup.email_domains = EmailDomains::AllBut(vec!["spam.test".into()]))
        .spawn()
        .await;
    assert_error(
        all_but
            .signup(&signup_body("Spam", "x@spam.test", "Creator"))
            .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(counts(&all_but.db).await, (0, 0, 0));
}
