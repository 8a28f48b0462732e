//! `POST /api/auth/login`: GoTrue's password grant, plus the user's profile.

use std::collections::{HashMap, VecDeque};
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
use crate::password::{Hasher, dummy_password};
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
    #[schema(value_type = Option<ProfileBody>)]
    pub profile: Option<serde_json::Map<String, serde_json::Value>>,
}

/// The profile in the OpenAPI document; the profile's fields (PROFILE_SCHEMA_PATH; by default
/// `name`) are added when the document is built (`routes::openapi`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documentation only
pub struct ProfileBody {
    #[schema(example = "Creator")]
    role: String,
    /// Present when the profile table has the column.
    onboarding_completed: Option<bool>,
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
        find_user_by_email(&state.db, credentials.email.as_str()),
    );
    let session = match session {
        Ok(session) => session,
        Err(err) => return Err(conceal_failed_login(&state, started, err, &by_email).await),
    };
    tracing::Span::current().record("user_id", tracing::field::display(session.user.id));
    let profile = match by_email {
        Ok(Some(found)) if found.user_id == session.user.id => found.profile,
        _ => find_profile(&state.db, session.user.id).await?,
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
        profile,
    }))
}

/// A failed login, as the client sees it. An unknown email, a wrong password and a banned user
/// all answer 401 `invalid_credentials`, after the same time. GoTrue compares a hash only for a
/// known, unbanned user with a password, so the other kinds would answer sooner. Every failed
/// login is therefore held until the floor of [`FailedLoginTimes`], plus [`IDLE_BEFORE_ANSWER`]
/// (the same wait for every kind, so their times match; only a known user's login slower than
/// the floor answers later).
///
/// The floor is learnt only from failures where GoTrue compared a hash: a known user whose
/// row has a password (`password_kind`). Users without one (invited, magic-link, OAuth) fail
/// inside GoTrue at once; learning from them let an attacker drag the floor down.
async fn conceal_failed_login(
    state: &AppState,
    started: Instant,
    err: GoTrueError,
    by_email: &Result<Option<LoginUser>, StoreError>,
) -> ApiError {
    let hashed_kind = match (&err, by_email) {
        (GoTrueError::InvalidCredentials, Ok(Some(user))) => user.password_kind.as_deref(),
        (GoTrueError::InvalidCredentials | GoTrueError::UserBanned, _) => None,
        _ => return err.into(),
    };
    // Logged before the wait: after it, only what all kinds do may run.
    if matches!(err, GoTrueError::UserBanned) {
        tracing::info!("login of a banned user answered as invalid credentials");
    }
    if let Some(kind) = hashed_kind {
        state.failed_logins.record(kind, started.elapsed());
    }
    wait_until(started + state.failed_logins.floor() + IDLE_BEFORE_ANSWER).await;
    ApiError::InvalidCredentials
}

/// How long past the floor every failed login waits, so that a known user's login, too, has
/// idled for milliseconds before its answer is written. Without it, the answer to a known user
/// went out right after GoTrue's hash, on a CPU still busy and with the HTTP and TCP code warm in
/// its caches, while the other kinds had idled for the whole wait: their answers were written a
/// little later (every step after the wait ran slower), a measurable lean towards "unknown"
/// (figures in docs/guarantees.md).
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

/// How long failed logins of known users took, per kind of password hash (algorithm and cost:
/// an argon2id of 19 MiB and a bcrypt of cost 10 take different times), the last
/// [`FailedLoginTimes::KEPT`] of each kind.
///
/// The floor is the largest 95th percentile over the kinds, and never less than one hash of the
/// service's own configured cost, measured at startup ([`FailedLoginTimes::measure`]). So the
/// floor cannot be steered down: failures without a hash are never recorded, failing only on
/// accounts with a cheap kind of hash does not displace the costly kinds' samples, and no sample
/// set goes below the startup measurement. It can go up with a slow GoTrue (every failed login
/// then waits longer, up to GoTrue's own timeout), and comes down again as fresh samples of that
/// kind replace the slow ones.
#[derive(Debug)]
pub struct FailedLoginTimes {
    /// One hash of the configured cost, measured at startup.
    minimum: Duration,
    kinds: Mutex<HashMap<String, KindTimes>>,
}

#[derive(Debug)]
struct KindTimes {
    times: VecDeque<Duration>,
    /// When the last sample came (the least recently used kind goes first when the table is full).
    last: Instant,
}

impl KindTimes {
    /// The 95th percentile of the recorded durations.
    fn p95(&self) -> Option<Duration> {
        let mut times: Vec<Duration> = self.times.iter().copied().collect();
        times.sort_unstable();
        let at = (times.len() * 95).div_ceil(100).checked_sub(1)?;
        times.get(at).copied()
    }
}

impl FailedLoginTimes {
    /// Samples kept per kind.
    const KEPT: usize = 64;
    /// Kinds kept: a project has a handful (this service's argon2id, GoTrue's bcrypt, imported
    /// hashes); the table stays bounded whatever the rows hold.
    const MAX_KINDS: usize = 16;
    /// Characters of a kind that count (the SQL sends at most 64).
    const KIND_LENGTH: usize = 64;

    pub fn new(minimum: Duration) -> Self {
        Self {
            minimum,
            kinds: Mutex::new(HashMap::new()),
        }
    }

    /// Starts with the median of three hashes of `hasher`'s configured cost as the minimum.
    pub async fn measure(hasher: &Hasher) -> Self {
        let mut took = Vec::with_capacity(3);
        for _ in 0..3 {
            let started = Instant::now();
            if hasher.hash(dummy_password()).await.is_ok() {
                took.push(started.elapsed());
            }
        }
        took.sort_unstable();
        let minimum = took.get(took.len() / 2).copied().unwrap_or_default();
        tracing::debug!(?minimum, "failed-login floor measured");
        Self::new(minimum)
    }

    fn record(&self, kind: &str, took: Duration) {
        let kind: String = kind.chars().take(Self::KIND_LENGTH).collect();
        let Ok(mut kinds) = self.kinds.lock() else {
            return;
        };
        if !kinds.contains_key(&kind) && kinds.len() >= Self::MAX_KINDS {
            let oldest = kinds
                .iter()
                .min_by_key(|(_, t)| t.last)
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                kinds.remove(&oldest);
            }
        }
        let now = Instant::now();
        let entry = kinds.entry(kind).or_insert_with(|| KindTimes {
            times: VecDeque::with_capacity(Self::KEPT),
            last: now,
        });
        if entry.times.len() == Self::KEPT {
            entry.times.pop_front();
        }
        entry.times.push_back(took);
        entry.last = now;
    }

    /// How long every failed login takes at least (before [`IDLE_BEFORE_ANSWER`]).
    fn floor(&self) -> Duration {
        let learnt = self
            .kinds
            .lock()
            .ok()
            .and_then(|kinds| kinds.values().filter_map(KindTimes::p95).max());
        learnt.map_or(self.minimum, |p95| p95.max(self.minimum))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_floor_never_falls_below_the_minimum() {
        let times = FailedLoginTimes::new(20 * MS);
        assert_eq!(times.floor(), 20 * MS);
        for _ in 0..100 {
            times.record("$argon2id$v=19$m=8,t=1,p=1", MS);
        }
        assert_eq!(times.floor(), 20 * MS);
    }

    #[test]
    fn cheap_kinds_do_not_displace_costly_ones() {
        let times = FailedLoginTimes::new(MS);
        for _ in 0..10 {
            times.record("$2a$10", 70 * MS);
        }
        for _ in 0..1000 {
            times.record("$argon2id$v=19$m=19456,t=2,p=1", 30 * MS);
        }
        assert_eq!(times.floor(), 70 * MS);
    }

    #[test]
    fn the_kinds_table_is_bounded() {
        let times = FailedLoginTimes::new(MS);
        for i in 0..1000 {
            times.record(&format!("kind-{i}-{}", "x".repeat(500)), MS);
        }
        let kinds = times.kinds.lock().unwrap();
        assert_eq!(kinds.len(), FailedLoginTimes::MAX_KINDS);
        assert!(
            kinds
                .keys()
                .all(|k| k.chars().count() <= FailedLoginTimes::KIND_LENGTH)
        );
    }

    #[test]
    fn the_floor_is_the_95th_percentile_of_a_kind() {
        let times = FailedLoginTimes::new(MS);
        for i in 1..=100u32 {
            times.record("k", i * MS);
        }
        // The last 64: 37..=100 ms; the 95th percentile of 64 is the 61st.
        assert_eq!(times.floor(), 97 * MS);
    }
}
