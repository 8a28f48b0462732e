//! `POST /api/auth/signup`: request → [`NewUser`] → argon2id hash → one transaction → 201.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use uuid::Uuid;

use super::{AppState, JsonObject};
use crate::domain::{NewUser, SignupForm, ValidationErrors};
use crate::error::ApiError;
use crate::store::signup::{NewAccount, create_account};

#[derive(Debug, Serialize)]
pub struct SignupResponse {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub onboarding_completed: bool,
    pub email_confirmed: bool,
}

#[tracing::instrument(name = "signup", skip_all, fields(user_id = tracing::field::Empty))]
pub async fn signup(
    State(state): State<AppState>,
    body: JsonObject,
) -> Result<(StatusCode, Json<SignupResponse>), ApiError> {
    let mut errors = ValidationErrors::default();
    let [name, email, password, role] =
        body.string_fields(["name", "email", "password", "role"], &mut errors);
    let form = SignupForm {
        name,
        email,
        password,
        role,
    };
    let user = NewUser::parse(form, &state.signup_roles, errors)?;

    // Hash before the transaction: a pooled connection is held for one round trip, not a hash.
    let password_hash = state.hasher.hash(&user.password).await?;

    let user_id = Uuid::new_v4();
    tracing::Span::current().record("user_id", tracing::field::display(user_id));
    let created = create_account(
        &state.pool,
        NewAccount {
            user_id,
            user: &user,
            password_hash: &password_hash,
            email_confirmed: !state.require_email_confirmation,
        },
    )
    .await?;
    tracing::info!("user signed up");

    Ok((
        StatusCode::CREATED,
        Json(SignupResponse {
            user_id,
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            role: user.role.as_str().to_owned(),
            onboarding_completed: created.onboarding_completed,
            email_confirmed: created.email_confirmed_at.is_some(),
        }),
    ))
}
