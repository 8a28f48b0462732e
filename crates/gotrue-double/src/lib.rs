//! A GoTrue test double: an axum app on 127.0.0.1:0 that reads the SAME test database and behaves
//! as `docs/gotrue-rows.md` describes GoTrue (v2.196):
//!
//! - the gateway's `apikey` check (401 without the right key);
//! - `POST /token?grant_type=password` (section 5.2): lookup by nil instance id, lower(email),
//!   aud and is_sso_user = false; a NULL in a column GoTrue scans into a non-nullable Go type →
//!   500 "Database error querying schema"; no password → invalid_credentials; banned (checked
//!   before the password) → user_banned; argon2 (GoTrue's PHC rules) or bcrypt comparison;
//!   unconfirmed (checked after the password) → email_not_confirmed; success → a session and
//!   last_sign_in_at = now;
//! - `POST /resend` (section 6): same lookup; unknown or confirmed user → 200 {} and no mail;
//!   confirmation_sent_at newer than SMTP_MAX_FREQUENCY (60 s) → 429 over_email_send_rate_limit;
//!   otherwise "mails" (records, with the confirmation link) and sets confirmation_sent_at and
//!   confirmation_token (hex SHA-224 of email + OTP, as GoTrue);
//! - `GET /verify?token=…&type=signup` (the mail's link): confirms the user once, 303 to
//!   `redirect_to` (fragment `type=signup`, or GoTrue's `otp_expired` error);
//! - errors in the legacy shape, or the 2024-01-01 shape when `X-Supabase-Api-Version` asks for it,
//!   or (forced) the OAuth shape of GoTrue before v2.158; `x-sb-error-code` always set;
//! - every call recorded (path, email, X-Forwarded-For, API version), and faults on demand.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sha2::{Digest, Sha224};
use sqlx::PgPool;
use uuid::Uuid;

pub mod rules;

use rules::{GOTRUE_USER_LOOKUP, gotrue_argon2_verifies, null_scan_columns};

pub const ANON_KEY: &str = "test-anon-key-0123456789";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// Honour `X-Supabase-Api-Version` (2024-01-01 shape), else legacy: what GoTrue does today.
    ByHeader,
    /// Always `{code: <status>, error_code, msg}` (a GoTrue that predates API versions).
    Legacy,
    /// `{error, error_description}` (GoTrue before v2.158).
    OAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Resend,
    Health,
}

/// A fault served instead of the real answer, once per queued entry.
#[derive(Debug, Clone)]
pub enum Fault {
    /// An error answer with this status and GoTrue error code.
    Status(u16, &'static str),
    /// 429 with an optional Retry-After (seconds).
    RateLimited(Option<u64>),
    /// Wait this long, then answer normally.
    Delay(Duration),
}

#[derive(Debug, Clone)]
pub struct Call {
    pub endpoint: Endpoint,
    pub email: Option<String>,
    pub forwarded_for: Option<String>,
    /// The W3C `traceparent` the caller sent (GoTrue continues that trace).
    pub traceparent: Option<String>,
    pub api_version: Option<String>,
    pub apikey_ok: bool,
    /// The status the double answered.
    pub status: u16,
}

struct DoubleState {
    pool: PgPool,
    style: Mutex<ErrorStyle>,
    faults: Mutex<Vec<(Endpoint, Fault)>>,
    calls: Mutex<Vec<Call>>,
    /// Emails "sent" (successful /resend for an unconfirmed user), in order.
    mails: Mutex<Vec<String>>,
    /// The confirmation link of each mail, by address (the latest one).
    links: Mutex<Vec<(String, String)>>,
    /// This double's base URL (for the links).
    url: String,
    /// What `/health` reports as `version`.
    version: Mutex<String>,
}

/// The release the double stands for (its `/health` version, as a release build reports it).
pub const VERSION: &str = "v2.196.0";

#[derive(Clone)]
pub struct GoTrueDouble {
    pub url: String,
    state: Arc<DoubleState>,
}

impl GoTrueDouble {
    pub async fn start(pool: PgPool) -> Self {
        Self::start_on(pool, ("127.0.0.1", 0)).await
    }

    pub async fn start_on(pool: PgPool, addr: (&str, u16)) -> Self {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .expect("bind double");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(DoubleState {
            pool,
            style: Mutex::new(ErrorStyle::ByHeader),
            faults: Mutex::new(Vec::new()),
            calls: Mutex::new(Vec::new()),
            mails: Mutex::new(Vec::new()),
            links: Mutex::new(Vec::new()),
            url: url.clone(),
            version: Mutex::new(VERSION.to_owned()),
        });
        let app = Router::new()
            .route("/token", post(token))
            .route("/resend", post(resend))
            .route("/verify", get(verify))
            .route("/health", get(health))
            .with_state(Arc::clone(&state));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    /// What `/health` reports from now on.
    pub fn set_version(&self, version: &str) {
        *self.state.version.lock().unwrap() = version.to_owned();
    }

    pub fn set_style(&self, style: ErrorStyle) {
        *self.state.style.lock().unwrap() = style;
    }

    /// Queue `n` copies of `fault` for `endpoint` (served before any normal answer).
    pub fn push_faults(&self, endpoint: Endpoint, n: usize, fault: Fault) {
        let mut faults = self.state.faults.lock().unwrap();
        for _ in 0..n {
            faults.push((endpoint, fault.clone()));
        }
    }

    pub fn clear_faults(&self) {
        self.state.faults.lock().unwrap().clear();
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.calls.lock().unwrap().clone()
    }

    pub fn calls_to(&self, endpoint: Endpoint) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.endpoint == endpoint)
            .collect()
    }

    pub fn mails(&self) -> Vec<String> {
        self.state.mails.lock().unwrap().clone()
    }

    /// The link in the latest confirmation mail to `email`, as GoTrue's mail template builds it
    /// (`{url}/verify?token=<token hash>&type=signup`).
    pub fn confirmation_link(&self, email: &str) -> Option<String> {
        let email = email.to_lowercase();
        self.state
            .links
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(to, _)| *to == email)
            .map(|(_, link)| link.clone())
    }
}

impl DoubleState {
    fn take_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap();
        let i = faults.iter().position(|(e, _)| *e == endpoint)?;
        Some(faults.remove(i).1)
    }

    /// Records a call: the request's `email` field, the headers we check, the status answered.
    fn record(&self, endpoint: Endpoint, headers: &HeaderMap, fields: &Value, status: u16) {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        self.calls.lock().unwrap().push(Call {
            endpoint,
            email: fields
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_owned),
            forwarded_for: header("x-forwarded-for"),
            traceparent: header("traceparent"),
            api_version: header("x-supabase-api-version"),
            apikey_ok: header("apikey").as_deref() == Some(ANON_KEY),
            status,
        });
    }

    /// An error in the shape this GoTrue would use for this request.
    fn error(&self, headers: &HeaderMap, status: u16, code: &str, message: &str) -> Response {
        let style = *self.style.lock().unwrap();
        let versioned = headers
            .get("x-supabase-api-version")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v >= "2024-01-01");
        let body = match style {
            ErrorStyle::OAuth => {
                let error = if status == 400 {
                    "invalid_grant"
                } else {
                    "server_error"
                };
                json!({"error": error, "error_description": message})
            }
            ErrorStyle::ByHeader if versioned => json!({"code": code, "message": message}),
            ErrorStyle::ByHeader | ErrorStyle::Legacy => {
                let mut b = json!({"code": status, "error_code": code, "msg": message});
                if status >= 500 {
                    b["error_id"] = json!(Uuid::new_v4().to_string());
                }
                b
            }
        };
        let mut response =
            (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response();
        if style != ErrorStyle::OAuth {
            response
                .headers_mut()
                .insert("x-sb-error-code", HeaderValue::from_str(code).unwrap());
        }
        response
    }

    /// A queued fault as a response (None: answer normally, after any delay).
    async fn fault_response(&self, endpoint: Endpoint, headers: &HeaderMap) -> Option<Response> {
        match self.take_fault(endpoint)? {
            Fault::Delay(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Fault::Status(status, code) => {
                Some(self.error(headers, status, code, "injected fault"))
            }
            Fault::RateLimited(retry_after) => {
                let mut r = self.error(
                    headers,
                    429,
                    "over_request_rate_limit",
                    "Request rate limit reached",
                );
                if let Some(secs) = retry_after {
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from(secs));
                }
                Some(r)
            }
        }
    }
}

/// The gateway's key check (Kong key-auth on /auth/v1/*).
fn gateway_rejects(headers: &HeaderMap) -> Option<Response> {
    match headers.get("apikey").and_then(|v| v.to_str().ok()) {
        Some(ANON_KEY) => None,
        Some(_) => Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "Invalid authentication credentials"})),
            )
                .into_response(),
        ),
        None => Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "No API key found in request"})),
            )
                .into_response(),
        ),
    }
}

#[derive(sqlx::FromRow)]
struct FoundUser {
    id: Uuid,
    email: Option<String>,
    encrypted_password: Option<String>,
    banned: bool,
    email_confirmed_at: Option<String>,
    confirmation_sent_recently: bool,
}

/// FindUserByEmailAndAudience, then the scan of every NULL-intolerant column.
async fn find_user(pool: &PgPool, email: &str) -> Result<Option<FoundUser>, ()> {
    let user: Option<FoundUser> = sqlx::query_as(&format!(
        "select id, email::text as email, encrypted_password::text as encrypted_password, \
                coalesce(banned_until > now(), false) as banned, \
                to_char(email_confirmed_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') \
                  as email_confirmed_at, \
                coalesce(confirmation_sent_at > now() - interval '60 seconds', false) \
                  as confirmation_sent_recently \
         {GOTRUE_USER_LOOKUP}"
    ))
    .bind(email)
    .fetch_optional(pool)
    .await
    .map_err(|_| ())?;
    let Some(user) = user else {
        return Ok(None);
    };
    // The eager load scans users + identities into Go structs: any NULL there is a scan error.
    if !null_scan_columns(pool, user.id).await.is_empty() {
        return Err(());
    }
    Ok(Some(user))
}

/// GoTrue's `CompareHashAndPassword`: `$argon2…` → argon2 (a malformed one is just "no match");
/// `$fbscrypt…` is not implemented here (no match); anything else → bcrypt (malformed → error).
fn compare(hash: &str, password: &str) -> Result<bool, ()> {
    if hash.starts_with("$argon2") {
        return Ok(gotrue_argon2_verifies(hash, password).unwrap_or(false));
    }
    if hash.starts_with("$fbscrypt") {
        return Ok(false);
    }
    bcrypt::verify(password, hash).map_err(|_| ())
}

fn body_fields(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

async fn token(
    State(state): State<Arc<DoubleState>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = body_fields(&body);
    let response = token_answer(&state, &uri, &headers, &fields).await;
    state.record(
        Endpoint::Token,
        &headers,
        &fields,
        response.status().as_u16(),
    );
    response
}

async fn token_answer(
    state: &DoubleState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    fields: &Value,
) -> Response {
    if let Some(r) = gateway_rejects(headers) {
        return r;
    }
    if let Some(r) = state.fault_response(Endpoint::Token, headers).await {
        return r;
    }
    if uri.query() != Some("grant_type=password") {
        return state.error(headers, 400, "validation_failed", "unsupported_grant_type");
    }
    let email = fields.get("email").and_then(Value::as_str).unwrap_or("");
    let password = fields.get("password").and_then(Value::as_str).unwrap_or("");
    let invalid = || {
        state.error(
            headers,
            400,
            "invalid_credentials",
            "Invalid login credentials",
        )
    };
    let user = match find_user(&state.pool, email).await {
        Ok(Some(u)) => u,
        Ok(None) => return invalid(),
        Err(()) => {
            return state.error(
                headers,
                500,
                "unexpected_failure",
                "Database error querying schema",
            );
        }
    };
    let Some(hash) = user.encrypted_password.filter(|h| !h.is_empty()) else {
        return invalid();
    };
    if user.banned {
        return state.error(headers, 400, "user_banned", "User is banned");
    }
    // On a blocking thread, as a GoTrue of its own would hash on its own CPU time: on a runtime
    // worker, the tens of milliseconds of an argon2 hash stalled the tasks of the service under
    // test that share this process's runtime.
    let password_owned = password.to_owned();
    let compared = tokio::task::spawn_blocking(move || compare(&hash, &password_owned))
        .await
        .unwrap_or(Err(()));
    match compared {
        Ok(true) => {}
        Ok(false) => return invalid(),
        Err(()) => return state.error(headers, 500, "unexpected_failure", "Unexpected failure"),
    }
    if user.email_confirmed_at.is_none() {
        return state.error(headers, 400, "email_not_confirmed", "Email not confirmed");
    }
    let _ = sqlx::query(
        "update auth.users set last_sign_in_at = now(), updated_at = now() where id = $1",
    )
    .bind(user.id)
    .execute(&state.pool)
    .await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut response = axum::Json(json!({
        "access_token": format!("double-access-{}", Uuid::new_v4().simple()),
        "token_type": "bearer",
        "expires_in": 3600,
        "expires_at": now + 3600,
        "refresh_token": format!("double-refresh-{}", Uuid::new_v4().simple()),
        "user": {
            "id": user.id, "aud": "authenticated", "role": "authenticated",
            "email": user.email, "email_confirmed_at": user.email_confirmed_at,
            "app_metadata": {"provider": "email", "providers": ["email"]},
            "identities": [], "is_anonymous": false
        }
    }))
    .into_response();
    response.headers_mut().insert(
        "sb-auth-user-id",
        HeaderValue::from_str(&user.id.to_string()).unwrap(),
    );
    response
}

async fn resend(
    State(state): State<Arc<DoubleState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let fields = body_fields(&body);
    let response = resend_answer(&state, &headers, &fields).await;
    state.record(
        Endpoint::Resend,
        &headers,
        &fields,
        response.status().as_u16(),
    );
    response
}

async fn resend_answer(state: &DoubleState, headers: &HeaderMap, fields: &Value) -> Response {
    if let Some(r) = gateway_rejects(headers) {
        return r;
    }
    if let Some(r) = state.fault_response(Endpoint::Resend, headers).await {
        return r;
    }
    if fields.get("type").and_then(Value::as_str) != Some("signup") {
        return state.error(
            headers,
            400,
            "validation_failed",
            "Missing one of these types: signup, ...",
        );
    }
    let email = fields.get("email").and_then(Value::as_str).unwrap_or("");
    let user = match find_user(&state.pool, email).await {
        Ok(Some(u)) => u,
        Ok(None) => return axum::Json(json!({})).into_response(),
        Err(()) => {
            return state.error(
                headers,
                500,
                "unexpected_failure",
                "Database error finding user",
            );
        }
    };
    if user.email_confirmed_at.is_some() {
        return axum::Json(json!({})).into_response();
    }
    if user.confirmation_sent_recently {
        return state.error(
            headers,
            429,
            "over_email_send_rate_limit",
            "For security purposes, you can only request this after 60 seconds.",
        );
    }
    // GoTrue: a 6-digit OTP, and the token hash = hex SHA-224 of (email + otp), stored as
    // confirmation_token (GoTrue also keeps it in auth.one_time_tokens, which the test schema
    // does not have; the double finds the user by confirmation_token instead).
    let email = user.email.unwrap_or_default();
    let otp = format!("{:06}", Uuid::new_v4().as_u128() % 1_000_000);
    let token_hash = hex(&Sha224::digest(format!("{email}{otp}").as_bytes()));
    let _ = sqlx::query(
        "update auth.users set confirmation_sent_at = now(), confirmation_token = $2 where id = $1",
    )
    .bind(user.id)
    .bind(&token_hash)
    .execute(&state.pool)
    .await;
    let link = format!("{}/verify?token={token_hash}&type=signup", state.url);
    state.links.lock().unwrap().push((email.clone(), link));
    state.mails.lock().unwrap().push(email);
    axum::Json(json!({})).into_response()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(serde::Deserialize)]
struct VerifyQuery {
    token: String,
    #[serde(rename = "type")]
    kind: String,
    redirect_to: Option<String>,
}

/// `GET /verify?token=…&type=signup[&redirect_to=…]`, the link of the confirmation mail: confirms
/// the user (email_confirmed_at, confirmation_token cleared, email_verified true in the user's
/// metadata and the email identity, as GoTrue's verify does) and redirects (303) to
/// `redirect_to` (default: the site URL) with the outcome in the fragment.
async fn verify(
    State(state): State<Arc<DoubleState>>,
    axum::extract::Query(query): axum::extract::Query<VerifyQuery>,
) -> Response {
    let site = query
        .redirect_to
        .unwrap_or_else(|| "http://localhost:3000".to_owned());
    let redirect = |fragment: &str| {
        let mut r = StatusCode::SEE_OTHER.into_response();
        r.headers_mut().insert(
            "location",
            HeaderValue::from_str(&format!("{site}#{fragment}")).unwrap(),
        );
        r
    };
    let expired = "error=access_denied&error_code=otp_expired\
                   &error_description=Email+link+is+invalid+or+has+expired";
    if query.kind != "signup" || query.token.is_empty() {
        return redirect(expired);
    }
    let confirmed: Result<Option<Uuid>, sqlx::Error> = sqlx::query_scalar(
        "with u as ( \
           update auth.users set email_confirmed_at = now(), confirmation_token = '', \
             raw_user_meta_data = coalesce(raw_user_meta_data, '{}') || '{\"email_verified\": true}', \
             updated_at = now() \
           where confirmation_token = $1 and email_confirmed_at is null \
           returning id) \
         , i as ( \
           update auth.identities set identity_data = identity_data || '{\"email_verified\": true}' \
           where user_id = (select id from u) and provider = 'email' returning 1) \
         select id from u",
    )
    .bind(&query.token)
    .fetch_optional(&state.pool)
    .await;
    match confirmed {
        Ok(Some(_)) => redirect("type=signup"),
        _ => redirect(expired),
    }
}

/// GoTrue's `GET /health` (internal/api/api.go HealthCheck): these three fields, always 200.
async fn health(State(state): State<Arc<DoubleState>>, headers: HeaderMap) -> axum::Json<Value> {
    state.record(Endpoint::Health, &headers, &Value::Null, 200);
    let version = state.version.lock().unwrap().clone();
    axum::Json(json!({
        "version": version,
        "name": "GoTrue",
        "description": "GoTrue is a user registration and authentication API",
    }))
}
