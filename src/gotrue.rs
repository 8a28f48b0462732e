//! The HTTP client for GoTrue: the password grant (login) and `/resend` (confirmation email).
//!
//! GoTrue answers errors in three shapes (`docs/gotrue-rows.md`, "Error shapes"): the legacy
//! `{code: <status>, error_code, msg}`, the 2024-01-01 API version's `{code: <error_code>,
//! message}` (we ask for it with `X-Supabase-Api-Version`), and before v2.158 OAuth's
//! `{error, error_description}`. All three, and the `x-sb-error-code` header, are understood.

use std::net::IpAddr;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::config::GoTrueSettings;

pub const API_VERSION: &str = "2024-01-01";

#[derive(Debug, thiserror::Error)]
pub enum GoTrueError {
    #[error("invalid login credentials")]
    InvalidCredentials,
    #[error("email not confirmed")]
    EmailNotConfirmed,
    #[error("user is banned")]
    UserBanned,
    /// GoTrue's 429; `retry_after` is its `Retry-After` header, passed on as is.
    #[error("rate limited by GoTrue ({code})")]
    RateLimited {
        code: String,
        retry_after: Option<HeaderValue>,
    },
    #[error("GoTrue did not answer in time")]
    Timeout,
    /// Unreachable, 5xx, or an answer we cannot use; the text is for logs only.
    #[error("GoTrue unavailable: {0}")]
    Unavailable(String),
}

/// A GoTrue session (the password grant's 200 answer, reduced to what we pass on).
#[derive(Debug, Clone, Deserialize)]
pub struct Session {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: i64,
    #[serde(default)]
    pub expires_at: Option<i64>,
    pub user: SessionUser,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SessionUser {
    pub id: Uuid,
    #[serde(default)]
    pub email: Option<String>,
    /// RFC 3339, as GoTrue writes it.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub email_confirmed_at: Option<time::OffsetDateTime>,
}

#[derive(Clone)]
pub struct GoTrueClient {
    http: reqwest::Client,
    base_url: String,
    anon_key: SecretString,
    /// GoTrue's host and port, for the client spans' `server.address` / `server.port`.
    server: (String, u16),
}

impl GoTrueClient {
    pub fn new(settings: &GoTrueSettings) -> Result<Self, reqwest::Error> {
        // No redirects: a 307 would have the client send the login's password again, to
        // wherever GoTrue's answer pointed. A redirect is an answer we cannot use (unavailable).
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        // The URL was checked at startup (http(s), a host; no user, query or fragment).
        let server = reqwest::Url::parse(&settings.url)
            .ok()
            .map(|url| {
                let host = url.host_str().unwrap_or_default().to_owned();
                (host, url.port_or_known_default().unwrap_or_default())
            })
            .unwrap_or_default();
        Ok(Self {
            http,
            base_url: settings.url.clone(),
            anon_key: settings.anon_key.clone(),
            server,
        })
    }

    /// A POST to GoTrue, with the current trace's `traceparent` when tracing is on (GoTrue
    /// continues the trace when its own tracing is on).
    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base_url))
            .header("apikey", self.anon_key.expose_secret())
            .header("X-Supabase-Api-Version", API_VERSION)
            .headers(crate::traces::current_headers())
    }

    /// Times `call`, a POST to `path` (GoTrue request `endpoint`), labelled with its outcome.
    async fn timed<T>(
        &self,
        endpoint: &'static str,
        path: &'static str,
        call: impl std::future::Future<Output = Result<T, GoTrueError>>,
    ) -> Result<T, GoTrueError> {
        use tracing::Instrument as _;
        let started = std::time::Instant::now();
        // A client span per call (its traceparent goes to GoTrue: `post`), with the HTTP client
        // span's attributes; the status is recorded when GoTrue answers (`answered`).
        let span = tracing::info_span!(
            "gotrue",
            otel.name = tracing::field::Empty,
            otel.kind = "client",
            gotrue.endpoint = endpoint,
            http.request.method = "POST",
            server.address = tracing::field::Empty,
            server.port = self.server.1,
            url.full = tracing::field::Empty,
            http.response.status_code = tracing::field::Empty,
        );
        crate::traces::record(&span, "otel.name", || format!("gotrue {endpoint}"));
        crate::traces::record(&span, "server.address", || self.server.0.clone());
        crate::traces::record(&span, "url.full", || format!("{}{path}", self.base_url));
        let result = call.instrument(span).await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(GoTrueError::InvalidCredentials) => "invalid_credentials",
            Err(GoTrueError::EmailNotConfirmed) => "email_not_confirmed",
            Err(GoTrueError::UserBanned) => "user_banned",
            Err(GoTrueError::RateLimited { .. }) => "rate_limited",
            Err(GoTrueError::Timeout) => "timeout",
            Err(GoTrueError::Unavailable(_)) => "unavailable",
        };
        metrics::histogram!(crate::observe::GOTRUE_DURATION, "endpoint" => endpoint, "outcome" => outcome)
            .record(started.elapsed().as_secs_f64());
        result
    }

    /// `POST /token?grant_type=password`. `client_ip` goes out as `X-Forwarded-For`, so that
    /// GoTrue (with `GOTRUE_RATE_LIMIT_HEADER=X-Forwarded-For`) limits per end user, not per
    /// service.
    pub async fn password_grant(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Session, GoTrueError> {
        self.timed(
            "token",
            TOKEN_PATH,
            self.password_grant_call(email, password, client_ip),
        )
        .await
    }

    async fn password_grant_call(
        &self,
        email: &str,
        password: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Session, GoTrueError> {
        let mut request = self
            .post(TOKEN_PATH)
            .json(&json!({ "email": email, "password": password }));
        if let Some(ip) = client_ip {
            request = request.header("X-Forwarded-For", ip.to_string());
        }
        let response = answered(request.send().await.map_err(transport_error)?);
        if response.status() == StatusCode::OK {
            return response
                .json::<Session>()
                .await
                .map_err(|e| GoTrueError::Unavailable(format!("unreadable session: {e}")));
        }
        Err(error_from(response).await)
    }

    /// `POST /resend` with `{"type":"signup","email"}`: GoTrue mails a confirmation link to an
    /// unconfirmed user (and answers 200 without mailing for unknown or confirmed ones).
    pub async fn resend_signup(&self, email: &str) -> Result<(), GoTrueError> {
        self.timed("resend", RESEND_PATH, self.resend_signup_call(email))
            .await
    }

    async fn resend_signup_call(&self, email: &str) -> Result<(), GoTrueError> {
        let response = answered(
            self.post(RESEND_PATH)
                .json(&json!({ "type": "signup", "email": email }))
                .send()
                .await
                .map_err(transport_error)?,
        );
        if response.status().is_success() {
            return Ok(());
        }
        Err(error_from(response).await)
    }
}

impl GoTrueClient {
    /// `GET /health` within `timeout` (for `/readyz`).
    pub async fn health(&self, timeout: std::time::Duration) -> Result<(), GoTrueError> {
        self.get_health(timeout).await.map(|_| ())
    }

    /// The `version` that `GET /health` reports (`v2.196.0` for a release build).
    pub async fn version(&self, timeout: std::time::Duration) -> Result<String, GoTrueError> {
        let body: Value = self
            .get_health(timeout)
            .await?
            .json()
            .await
            .map_err(transport_error)?;
        match body.get("version").and_then(Value::as_str) {
            Some(version) => Ok(version.to_owned()),
            None => Err(GoTrueError::Unavailable(
                "GoTrue /health answered without a version".to_owned(),
            )),
        }
    }

    /// `GET /health`, a success status or an error.
    async fn get_health(
        &self,
        timeout: std::time::Duration,
    ) -> Result<reqwest::Response, GoTrueError> {
        let response = self
            .http
            .get(format!("{}/health", self.base_url))
            .header("apikey", self.anon_key.expose_secret())
            .timeout(timeout)
            .send()
            .await
            .map_err(transport_error)?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(GoTrueError::Unavailable(format!(
                "GoTrue /health answered {}",
                response.status()
            )))
        }
    }
}

const TOKEN_PATH: &str = "/token?grant_type=password";
const RESEND_PATH: &str = "/resend";

/// `response`, its status recorded on the current (client) span.
fn answered(response: reqwest::Response) -> reqwest::Response {
    tracing::Span::current().record("http.response.status_code", response.status().as_u16());
    response
}

fn transport_error(err: reqwest::Error) -> GoTrueError {
    if err.is_timeout() {
        GoTrueError::Timeout
    } else {
        // Without the URL: it is ours, not news, and keeps logs short.
        GoTrueError::Unavailable(err.without_url().to_string())
    }
}

async fn error_from(response: reqwest::Response) -> GoTrueError {
    let status = response.status();
    let headers = response.headers().clone();
    let body: Value = match response.bytes().await {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        Err(err) if err.is_timeout() => return GoTrueError::Timeout,
        Err(_) => Value::Null,
    };
    classify(status, &headers, &body)
}

/// GoTrue's error code, from whichever shape it used.
pub fn error_code(headers: &HeaderMap, body: &Value) -> Option<String> {
    if let Some(code) = headers.get("x-sb-error-code").and_then(|v| v.to_str().ok()) {
        return Some(code.to_owned());
    }
    if let Some(code) = body.get("error_code").and_then(Value::as_str) {
        return Some(code.to_owned()); // legacy shape
    }
    if let Some(code) = body.get("code").and_then(Value::as_str) {
        return Some(code.to_owned()); // 2024-01-01 shape
    }
    // OAuth shape of GoTrue before v2.158: the description says what happened.
    let description = body.get("error_description").and_then(Value::as_str)?;
    let code = match description {
        "Invalid login credentials" => "invalid_credentials",
        "Email not confirmed" => "email_not_confirmed",
        "User is banned" => "user_banned",
        _ => body.get("error").and_then(Value::as_str)?,
    };
    Some(code.to_owned())
}

fn classify(status: StatusCode, headers: &HeaderMap, body: &Value) -> GoTrueError {
    let code = error_code(headers, body);
    match (status, code.as_deref()) {
        (_, Some("invalid_credentials")) if status.is_client_error() => {
            GoTrueError::InvalidCredentials
        }
        (_, Some("email_not_confirmed")) if status.is_client_error() => {
            GoTrueError::EmailNotConfirmed
        }
        (_, Some("user_banned")) if status.is_client_error() => GoTrueError::UserBanned,
        (StatusCode::TOO_MANY_REQUESTS, code) => GoTrueError::RateLimited {
            code: code.unwrap_or("too_many_requests").to_owned(),
            retry_after: headers.get(RETRY_AFTER).cloned(),
        },
        (status, code) => GoTrueError::Unavailable(format!(
            "GoTrue answered {status} ({})",
            code.unwrap_or("no error code")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(status: u16, headers: &[(&'static str, &'static str)], body: Value) -> GoTrueError {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        classify(StatusCode::from_u16(status).unwrap(), &map, &body)
    }

    #[test]
    fn understands_all_three_error_shapes() {
        let legacy = json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"});
        let v2024 = json!({"code": "email_not_confirmed", "message": "Email not confirmed"});
        let oauth = json!({"error": "invalid_grant", "error_description": "User is banned"});
        assert!(matches!(
            code(400, &[], legacy),
            GoTrueError::InvalidCredentials
        ));
        assert!(matches!(
            code(400, &[], v2024),
            GoTrueError::EmailNotConfirmed
        ));
        assert!(matches!(code(400, &[], oauth), GoTrueError::UserBanned));
        let header_only = code(400, &[("x-sb-error-code", "user_banned")], Value::Null);
        assert!(matches!(header_only, GoTrueError::UserBanned));
    }

    #[test]
    fn rate_limits_keep_retry_after() {
        match code(
            429,
            &[("retry-after", "17")],
            json!({"code": "over_request_rate_limit"}),
        ) {
            GoTrueError::RateLimited { code, retry_after } => {
                assert_eq!(code, "over_request_rate_limit");
                assert_eq!(retry_after.unwrap(), "17");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn server_errors_and_unknown_answers_are_unavailable() {
        assert!(matches!(
            code(
                500,
                &[],
                json!({"code": 500, "error_code": "unexpected_failure", "msg": "Database error querying schema"})
            ),
            GoTrueError::Unavailable(_)
        ));
        assert!(matches!(
            code(502, &[], Value::Null),
            GoTrueError::Unavailable(_)
        ));
        assert!(matches!(
            code(422, &[], json!({"code": "email_provider_disabled"})),
            GoTrueError::Unavailable(_)
        ));
        assert!(matches!(
            code(401, &[], json!({"message": "Invalid API key"})),
            GoTrueError::Unavailable(_)
        ));
    }
}
