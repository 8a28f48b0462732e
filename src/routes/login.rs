//! `POST /api/auth/login`: GoTrue's password grant, plus the user's profile.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use serde::Serialize;
use uuid::Uuid;

use super::{AppState, JsonObject};
use crate::domain::{Credentials, ValidationErrors};
use crate::error::ApiError;
use crate::store::profiles::{Profile, find_profile};

#[derive(Debug, Serialize)]
pub struct LoginResponse {
    pub session: SessionBody,
    pub user: UserBody,
    /// `null` for a user made outside this service.
    pub profile: Option<Profile>,
}

#[derive(Debug, Serialize)]
pub struct SessionBody {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub expires_at: Option<i64>,
}

#[derive(Debug, Serialize)]
pub struct UserBody {
    pub id: Uuid,
    pub email: Option<String>,
    pub email_confirmed_at: Option<String>,
}

#[tracing::instrument(name = "login", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: JsonObject,
) -> Result<Json<LoginResponse>, ApiError> {
    let mut errors = ValidationErrors::default();
    let [email, password] = body.string_fields(["email", "password"], &mut errors);
    let credentials = Credentials::parse(email, password, errors)?;
    let gotrue = state.gotrue.as_ref().ok_or(ApiError::LoginNotConfigured)?;

    let session = gotrue
        .password_grant(
            credentials.email.as_str(),
            credentials.expose_password(),
            Some(peer.ip()),
        )
        .await?;
    tracing::Span::current().record("user_id", tracing::field::display(session.user.id));
    let profile = find_profile(&state.pool, session.user.id).await?;
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
