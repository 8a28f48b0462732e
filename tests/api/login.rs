//! POST /api/auth/login through the GoTrue test double, which reads the same database and
//! applies GoTrue's checks to the rows our signup wrote.

use crate::support;

use std::time::{Duration, Instant};

use gotrue_double::{Endpoint, ErrorStyle, Fault};
use serde_json::{Value, json};
use support::{TestApp, assert_error, status_json};
use uuid::Uuid;

const PASSWORD: &str = "correct horse battery";

async fn confirm(app: &TestApp, user: Uuid) {
    sqlx::query("update auth.users set email_confirmed_at = now() where id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn signup_then_login_returns_a_session_and_the_profile() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.require_email_confirmation = false)
        .spawn()
        .await;
    let user = app.signed_up("Lin", "lin@example.com", "Brand").await;

    let (status, body) = status_json(app.login(" LIN@example.com ", PASSWORD).await).await;
    assert_eq!(status, 200, "{body}");
    let session = &body["session"];
    assert!(
        session["access_token"]
            .as_str()
            .unwrap()
            .starts_with("double-access-")
    );
    assert!(
        session["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("double-refresh-")
    );
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], 3600);
    assert!(session["expires_at"].as_i64().unwrap() > 0);
    assert_eq!(body["user"]["id"], user.to_string());
    assert_eq!(body["user"]["email"], "lin@example.com");
    assert!(body["user"]["email_confirmed_at"].is_string());
    assert_eq!(
        body["profile"],
        json!({"name": "Lin", "role": "Brand", "onboarding_completed": false})
    );

    // What went to GoTrue: the apikey, the API version, the caller's IP for its rate limiter.
    let calls = app.double().calls_to(Endpoint::Token);
    assert_eq!(calls.len(), 1);
    assert!(calls[0].apikey_ok);
    assert_eq!(calls[0].api_version.as_deref(), Some("2024-01-01"));
    assert_eq!(calls[0].forwarded_for.as_deref(), Some("127.0.0.1"));
    assert_eq!(calls[0].email.as_deref(), Some("lin@example.com"));
}

#[tokio::test]
async fn wrong_password_unconfirmed_and_banned() {
    let app = TestApp::builder().gotrue().spawn().await;
    let user = app.signed_up("Uma", "uma@example.com", "Brand").await;

    // Unconfirmed: a wrong password is still 401 (GoTrue checks confirmation after the password).
    assert_error(
        app.login("uma@example.com", "wrong password").await,
        401,
        "invalid_credentials",
    )
    .await;
    let body = assert_error(
        app.login("uma@example.com", PASSWORD).await,
        403,
        "email_not_confirmed",
    )
    .await;
    assert_eq!(
        body["error"]["message"],
        "Please verify your email before logging in"
    );

    confirm(&app, user).await;
    let (status, _) = status_json(app.login("uma@example.com", PASSWORD).await).await;
    assert_eq!(status, 200);

    sqlx::query("update auth.users set banned_until = now() + interval '1 day' where id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    // A banned user looks like a wrong password, whatever the password: same status, same body.
    let banned_wrong = assert_error(
        app.login("uma@example.com", "even the wrong one").await,
        401,
        "invalid_credentials",
    )
    .await;
    let banned_right = assert_error(
        app.login("uma@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    let unknown = assert_error(
        app.login("nobody@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_eq!(banned_wrong, unknown);
    assert_eq!(banned_right, unknown);

    assert_error(
        app.login("nobody@example.com", PASSWORD).await,
        401,
        "invalid_credentials",
    )
    .await;
}

#[tokio::test]
async fn a_user_without_a_profile_gets_profile_null() {
    let app = TestApp::builder()
        .breaks_invariants("the profile is deleted: a user made outside this service")
        .gotrue()
        .configure(|s| s.require_email_confirmation = false)
        .spawn()
        .await;
    let user = app.signed_up("Nora", "nora@example.com", "Brand").await;
    sqlx::query("delete from public.profiles where id = $1")
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let (status, body) = status_json(app.login("nora@example.com", PASSWORD).await).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["profile"], Value::Null);
}

#[tokio::test]
async fn malformed_requests_never_reach_gotrue() {
    let app = TestApp::builder().gotrue().spawn().await;
    for (body, fields) in [
        (
            json!({"email": "not-an-email", "password": "x"}),
            vec!["email"],
        ),
        (
            json!({"email": "a@example.com", "password": ""}),
            vec!["password"],
        ),
        (json!({"email": "a@example.com"}), vec!["password"]),
        (
            json!({"email": "a@example.com", "password": "x", "otp": "1"}),
            vec!["otp"],
        ),
    ] {
        let res = app
            .client
            .post(format!("{}/api/auth/login", app.address))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, answer) = status_json(res).await;
        assert_eq!(status, 422, "{body} → {answer}");
        let got: Vec<&str> = answer["error"]["fields"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(got, fields);
    }
    let (status, _) = status_json(
        app.post_raw("/api/auth/login", Some("text/plain"), "{}")
            .await,
    )
    .await;
    assert_eq!(status, 415);
    assert!(app.double().calls().is_empty(), "no call to GoTrue");
}

#[tokio::test]
async fn gotrue_down_is_502_and_slow_is_504_within_the_timeout() {
    // Down: nothing listens at GOTRUE_URL.
    let port = support::closed_port();
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| {
            s.gotrue.as_mut().unwrap().url = format!("http://127.0.0.1:{port}");
        })
        .spawn()
        .await;
    let body = assert_error(
        app.login("a@example.com", PASSWORD).await,
        502,
        "auth_unavailable",
    )
    .await;
    assert!(
        !body.to_string().contains("127.0.0.1"),
        "no internal detail: {body}"
    );

    // Slow: GoTrue answers after 3 s, the timeout is 300 ms.
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.gotrue.as_mut().unwrap().timeout = Duration::from_millis(300))
        .spawn()
        .await;
    app.double()
        .push_faults(Endpoint::Token, 1, Fault::Delay(Duration::from_secs(3)));
    let started = Instant::now();
    let (status, body) = status_json(app.login("a@example.com", PASSWORD).await).await;
    let took = started.elapsed();
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("auth_timeout")),
        "{body}"
    );
    assert!(took < Duration::from_secs(2), "answered after {took:?}");

    // 5xx from GoTrue, and a gateway that refuses our key.
    app.double()
        .push_faults(Endpoint::Token, 1, Fault::Status(500, "unexpected_failure"));
    assert_error(
        app.login("a@example.com", PASSWORD).await,
        502,
        "auth_unavailable",
    )
    .await;
    let wrong_key = app
        .another_instance()
        .configure(|s| s.gotrue.as_mut().unwrap().anon_key = "wrong".into())
        .spawn()
        .await;
    let (status, _) = status_json(wrong_key.login("a@example.com", PASSWORD).await).await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn gotrue_rate_limits_pass_through_with_retry_after() {
    let app = TestApp::builder().gotrue().spawn().await;
    app.double()
        .push_faults(Endpoint::Token, 1, Fault::RateLimited(Some(42)));
    let res = app.login("a@example.com", PASSWORD).await;
    assert_eq!(
        res.headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap()),
        Some("42")
    );
    assert_error(res, 429, "rate_limited").await;
}

#[tokio::test]
async fn every_gotrue_error_shape_is_understood() {
    let app = TestApp::builder().gotrue().spawn().await;
    let user = app.signed_up("Shay", "shay@example.com", "Brand").await;
    for style in [ErrorStyle::ByHeader, ErrorStyle::Legacy, ErrorStyle::OAuth] {
        app.double().set_style(style);
        sqlx::query(
            "update auth.users set email_confirmed_at = null, banned_until = null where id = $1",
        )
        .bind(user)
        .execute(&app.db.pool)
        .await
        .unwrap();
        let (status, body) = status_json(app.login("shay@example.com", "nope nope").await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_credentials")),
            "{style:?}: {body}"
        );
        let (status, body) = status_json(app.login("shay@example.com", PASSWORD).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("email_not_confirmed")),
            "{style:?}: {body}"
        );
        sqlx::query("update auth.users set banned_until = now() + interval '1 hour' where id = $1")
            .bind(user)
            .execute(&app.db.pool)
            .await
            .unwrap();
        let (status, body) = status_json(app.login("shay@example.com", PASSWORD).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("invalid_credentials")),
            "{style:?}: {body}"
        );
    }
}

#[tokio::test]
async fn a_row_gotrue_cannot_scan_fails_every_login_and_ours_never_are() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.require_email_confirmation = false)
        .spawn()
        .await;
    let good = app.signed_up("Good", "good@example.com", "Brand").await;
    let bad = app.signed_up("Bad", "bad@example.com", "Brand").await;
    assert_eq!(
        status_json(app.login("good@example.com", PASSWORD).await)
            .await
            .0,
        200
    );

    // The failure mode the recipe prevents: one NULL where GoTrue scans a Go string.
    sqlx::query("update auth.users set confirmation_token = null where id = $1")
        .bind(bad)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_error(
        app.login("bad@example.com", PASSWORD).await,
        502,
        "auth_unavailable",
    )
    .await;
    let last = app.double().calls_to(Endpoint::Token).pop().unwrap();
    assert_eq!(
        last.status, 500,
        "the double answers GoTrue's 500 Database error querying schema"
    );

    // …and a NULL identity timestamp does the same.
    sqlx::query("update auth.identities set created_at = null where user_id = $1")
        .bind(good)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        status_json(app.login("good@example.com", PASSWORD).await)
            .await
            .0,
        502
    );
}

#[tokio::test]
async fn login_without_gotrue_configured_is_503() {
    let app = TestApp::spawn().await;
    assert_error(
        app.login("a@example.com", PASSWORD).await,
        503,
        "login_not_configured",
    )
    .await;
}

#[tokio::test]
async fn a_bcrypt_user_made_elsewhere_logs_in_too() {
    let app = TestApp::builder()
        .gotrue()
        .configure(|s| s.require_email_confirmation = false)
        .spawn()
        .await;
    let user = app.signed_up("Old", "old@example.com", "Brand").await;
    let hash = bcrypt::hash("legacy password", 4).unwrap();
    sqlx::query("update auth.users set encrypted_password = $2 where id = $1")
        .bind(user)
        .bind(hash)
        .execute(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(
        status_json(app.login("old@example.com", "legacy password").await)
            .await
            .0,
        200
    );
    assert_eq!(
        status_json(app.login("old@example.com", PASSWORD).await)
            .await
            .0,
        401
    );
}
