//! `POST /api/auth/login`: GoTrue's password grant, plus the user's profile.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppState, JsonObject};
use crate::domain::{Credentials, ValidationErrors};
use crate::error::ApiError;
use crate::error::ErrorResponse;
use crate::gotrue::GoTrueError;
use crate::password::dummy_password;
use crate::store::StoreError;
use crate::store::profiles::{LoginUser, find_profile, find_user_by_email};

/// The login request (documentation of the body).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(example = "correct horse battery")]
    password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    pub session: SessionBody,
    pub user: UserBody,
    /// `null` for a user made outside this service.
    pub profile: Option<ProfileBody>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ProfileBody {
    pub name: String,
    pub role: String,
    pub onboarding_completed: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionBody {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserBody {
    pub id: Uuid,
    pub email: Option<String>,
    /// RFC 3339.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub email_confirmed_at: Option<time::OffsetDateTime>,
}

#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body(content = LoginRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "GoTrue's session, the user, and the profile (null if none)", body = LoginResponse),
        (status = 400, description = "`invalid_json`", body = ErrorResponse),
        (status = 401, description = "`invalid_credentials`: unknown email, wrong password, or a banned user (all three alike, in body and timing)", body = ErrorResponse),
        (status = 403, description = "`email_not_confirmed` (GoTrue says so only after a correct password)", body = ErrorResponse),
        (status = 413, description = "`payload_too_large`", body = ErrorResponse),
        (status = 415, description = "`unsupported_media_type`", body = ErrorResponse),
        (status = 422, description = "`validation_failed`: malformed email or empty password", body = ErrorResponse),
        (status = 429, description = "`rate_limited`: over RATE_LIMIT_LOGIN_PER_MINUTE, or GoTrue's own limit (its Retry-After is passed on)", body = ErrorResponse,
            headers(("Retry-After" = String, description = "seconds, from GoTrue"))),
        (status = 500, description = "`internal`", body = ErrorResponse),
        (status = 502, description = "`auth_unavailable`: GoTrue unreachable or failing", body = ErrorResponse),
        (status = 503, description = "`login_not_configured`, `database_unavailable` or `request_timeout` (REQUEST_TIMEOUT_S passed)", body = ErrorResponse),
        (status = 504, description = "`auth_timeout`", body = ErrorResponse),
    ))]
#[tracing::instrument(name = "login", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: JsonObject,
) -> Result<Json<LoginResponse>, ApiError> {
    let mut errors = ValidationErrors::default();
    let [email, password] = body.string_fields(["email", "password"], &mut errors);
    let credentials = Credentials::parse(email, password, errors)?;
    let started = Instant::now();
    let gotrue = state.gotrue.as_ref().ok_or(ApiError::LoginNotConfigured)?;

    // The profile is read while GoTrue checks the password (by email, as GoTrue finds the user),
    // and used only if GoTrue's session is for the same user id; otherwise it is read by id.
    let (session, by_email) = tokio::join!(
        gotrue.password_grant(
            credentials.email.as_str(),
            credentials.expose_password(),
            state.client_ip.resolve(&headers, Some(peer)),
        ),
        find_user_by_email(&state.pool, credentials.email.as_str()),
    );
    let session = match session {
        Ok(session) => session,
        Err(err) => return Err(conceal_failed_login(&state, started, err, &by_email).await),
    };
    tracing::Span::current().record("user_id", tracing::field::display(session.user.id));
    let profile = match by_email {
        Ok(Some(found)) if found.user_id == session.user.id => found.profile,
        _ => find_profile(&state.pool, session.user.id).await?,
    };
    tracing::info!(has_profile = profile.is_some(), "user logged in");

    Ok(Json(LoginResponse {
        session: SessionBody {
            access_token: session.access_token,
            refresh_token: session.refresh_token,
            token_type: session.token_type,
            expires_in: session.expires_in,
            expires_at: session.expires_at,
        },
        user: UserBody {
            id: session.user.id,
            email: session.user.email,
            email_confirmed_at: session.user.email_confirmed_at,
        },
        profile: profile.map(|p| ProfileBody {
            name: p.name,
            role: p.role,
            onboarding_completed: p.onboarding_completed,
        }),
    }))
}

/// A failed login, as the client sees it. An unknown email, a wrong password and a banned user
/// all answer 401 `invalid_credentials`, after the same time. GoTrue compares a hash only for a
/// known, unbanned user, so the other two would answer sooner. Every failed login is therefore
/// held until a floor: the 95th percentile of the recent failed logins of known users, plus
/// [`IDLE_BEFORE_ANSWER`] (the same wait for all three kinds, so their times match; only a known
/// user's login slower than that floor answers later). Before any such login was seen, the
/// unknown and banned ones hash the password once instead, the work GoTrue would have done.
async fn conceal_failed_login(
    state: &AppState,
    started: Instant,
    err: GoTrueError,
    by_email: &Result<Option<LoginUser>, StoreError>,
) -> ApiError {
    let hashed_by_gotrue = match &err {
        GoTrueError::InvalidCredentials => matches!(by_email, Ok(Some(_))),
        GoTrueError::UserBanned => false,
        _ => return err.into(),
    };
    // Logged before the wait: after it, only what all three kinds do may run.
    if matches!(err, GoTrueError::UserBanned) {
        tracing::info!("login of a banned user answered as invalid credentials");
    }
    if hashed_by_gotrue {
        state.failed_logins.record(started.elapsed());
    }
    match state.failed_logins.floor() {
        Some(floor) => wait_until(started + floor + IDLE_BEFORE_ANSWER).await,
        None if !hashed_by_gotrue => {
            if let Err(hash_err) = state.hasher.hash(dummy_password()).await {
                tracing::debug!(error = %hash_err, "the equalising hash was not computed");
            }
        }
        None => {}
    }
    ApiError::InvalidCredentials
}

/// How long past the 95th percentile every padded failed login waits, so that a known user's
/// login, too, has idled for milliseconds before its answer is written. Without it, the answer
/// to a known user went out right after GoTrue's hash, on a CPU still busy and with the HTTP and
/// TCP code warm in its caches, while the other kinds had idled for the whole wait: their answers
/// were written ~0.05–0.1 ms slower (measured from the end of the wait to the client: every step
/// after it, ~40 % slower), a lean towards "unknown" in every run (2026-12-03, GoTrue double on
/// the same host, z between -0.2 and -2.0 over 5 runs, at times beyond -3.3). With 5 ms of idling
/// for every kind the lean was gone (z between -1.2 and +0.6 over 10 comparisons).
const IDLE_BEFORE_ANSWER: Duration = Duration::from_millis(5);

/// Waits until `deadline`, to within microseconds: tokio's timer has a 1 ms resolution and rounds
/// up, so the last 2 ms are spent yielding.
async fn wait_until(deadline: Instant) {
    const TIMER_SLACK: Duration = Duration::from_millis(2);
    if let Some(early) = deadline.checked_sub(TIMER_SLACK) {
        tokio::time::sleep_until(early.into()).await;
    }
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// How long the last failed logins of known users took (GoTrue compared a hash for them): at
/// most [`FailedLoginTimes::KEPT`], the oldest dropped first.
#[derive(Debug, Default)]
pub struct FailedLoginTimes(Mutex<VecDeque<Duration>>);

impl FailedLoginTimes {
    const KEPT: usize = 64;

    fn record(&self, took: Duration) {
        if let Ok(mut times) = self.0.lock() {
            if times.len() == Self::KEPT {
                times.pop_front();
            }
            times.push_back(took);
        }
    }

    /// The 95th percentile of the recorded durations.
    fn floor(&self) -> Option<Duration> {
        let mut times: Vec<Duration> = self.0.lock().ok()?.iter().copied().collect();
        if times.is_empty() {
            return None;
        }
        times.sort_unstable();
        let at = (times.len() * 95).div_ceil(100).saturating_sub(1);
        times.get(at).copied()
    }
}
