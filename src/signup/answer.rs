//! The answers of a signup, in the one shape both the first answer and its replays have.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::NewUser;
use crate::idempotency::StoredAnswer;

/// A new user (201): the user, and the profile fields as the signup wrote them (by default,
/// `name`), next to the other fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignupResponse {
    pub user_id: Uuid,
    pub email: String,
    pub role: String,
    pub onboarding_completed: bool,
    pub email_confirmed: bool,
    #[serde(flatten)]
    pub profile: Map<String, Value>,
}

/// [`SignupResponse`] in the OpenAPI document; the profile's fields are added from
/// PROFILE_SCHEMA_PATH when the document is built (`routes::openapi`).
#[derive(ToSchema)]
#[schema(as = SignupResponse)]
#[allow(dead_code)] // documentation only
pub struct SignupResponseDoc {
    user_id: Uuid,
    #[schema(example = "ada@example.com")]
    email: String,
    #[schema(example = "Creator")]
    role: String,
    /// The profile's `onboarding_completed` as the transaction wrote it.
    onboarding_completed: bool,
    /// False while the confirmation email is pending (REQUIRE_EMAIL_CONFIRMATION=true).
    email_confirmed: bool,
}

impl SignupResponse {
    /// The answer for `user` before the transaction: `onboarding_completed` false (the
    /// transaction says what the profile holds) and `email_confirmed` as the settings say.
    pub fn new(user_id: Uuid, user: &NewUser, email_confirmed: bool) -> Self {
        Self {
            user_id,
            email: user.email.as_str().to_owned(),
            role: user.role.as_str().to_owned(),
            onboarding_completed: false,
            email_confirmed,
            profile: user.profile.as_map().clone(),
        }
    }

    /// The answer with what only the transaction knows filled in (the profile's
    /// `onboarding_completed`: a trigger may set it): for the first answer and for its replays.
    pub fn written(self, onboarding_completed: bool) -> Self {
        Self {
            onboarding_completed,
            ..self
        }
    }
}

/// A key's stored answer as it is sent again: a new user's answer (201, stored as built before
/// the transaction) completed from the transaction's column, like the first answer; anything
/// else (the concealed 202, a key completed before the column existed) as it was stored.
pub fn replayed(stored: StoredAnswer) -> Result<(u16, serde_json::Value), AnswerError> {
    match (stored.status, stored.onboarding_completed) {
        (201, Some(onboarding_completed)) => {
            let body: SignupResponse = serde_json::from_value(stored.body)?;
            Ok((stored.status, to_json(&body.written(onboarding_completed))?))
        }
        _ => Ok((stored.status, stored.body)),
    }
}

/// The answer of CONCEAL_EXISTING_EMAILS=true, for new and registered emails alike (202).
#[derive(Debug, Serialize, ToSchema)]
pub struct ConcealedResponse {
    #[schema(example = "confirmation_sent")]
    pub status: &'static str,
}

pub const CONCEALED: ConcealedResponse = ConcealedResponse {
    status: "confirmation_sent",
};

/// An answer that could not be turned into JSON, or a stored one that is not a signup's answer
/// (a bug).
#[derive(Debug, thiserror::Error)]
#[error("the signup's answer could not be converted: {0}")]
pub struct AnswerError(#[from] serde_json::Error);

/// `answer` as a JSON value: the form it is stored in with an Idempotency-Key and sent in, so
/// the first answer and its replays are the same bytes (one key order).
pub fn to_json(answer: &impl Serialize) -> Result<serde_json::Value, AnswerError> {
    Ok(serde_json::to_value(answer)?)
}

pub fn concealed_json() -> Result<serde_json::Value, AnswerError> {
    to_json(&CONCEALED)
}
