//! `POST /api/auth/signup`: request → [`NewUser`] → argon2id hash → one transaction → 201.
//!
//! With CONCEAL_EXISTING_EMAILS=true a new and an existing email get the same 202 after the same
//! work (the hash is computed either way; for an existing email the insert fails on the unique
//! index and writes nothing), so the answer does not tell whether an email is registered.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use uuid::Uuid;

use super::{AppState, JsonObject};
use crate::domain::{NewUser, SignupForm, ValidationErrors};
use crate::error::ApiError;
use crate::store::signup::{NewAccount, SignupError, create_account};

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
pub async fn signup(State(state): State<AppState>, body: JsonObject) -> Result<Response, ApiError> {
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
    .await;

    if state.conceal_existing_emails {
        match created {
            Ok(_) => {
                tracing::info!("user signed up");
                state.outbox_wake.notify_one();
            }
            Err(SignupError::EmailTaken) => tracing::info!("signup for a taken email concealed"),
            Err(err) => return Err(err.into()),
        }
        return Ok(concealed_answer());
    }

    let created = created?;
    tracing::info!("user signed up");
    if state.require_email_confirmation {
        state.outbox_wake.notify_one();
    }
    let body = SignupResponse {
        user_id,
        email: user.email.as_str().to_owned(),
        name: user.name.as_str().to_owned(),
        role: user.role.as_str().to_owned(),
        onboarding_completed: created.onboarding_completed,
        email_confirmed: created.email_confirmed_at.is_some(),
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The one answer of concealing mode, for new and existing emails alike.
fn concealed_answer() -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({ "status": "confirmation_sent" })),
    )
        .into_response()
}
