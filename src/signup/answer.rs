//! The answers of a signup, in the one shape both the first answer and its replays have.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::NewUser;

/// A new user (201).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct SignupResponse {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: String,
    pub onboarding_completed: bool,
    pub email_confirmed: bool,
}

impl SignupResponse {
    /// The answer for `user` before the transaction: `onboarding_completed` false (the
    /// transaction says what the profile holds) and `email_confirmed` as the settings say.
    pub fn new(user_id: Uuid, user: &NewUser, email_confirmed: bool) -> Self {
        Self {
            user_id,
            email: user.email.as_str().to_owned(),
            name: user.name.as_str().to_owned(),
            role: user.role.as_str().to_owned(),
            onboarding_completed: false,
            email_confirmed,
        }
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

/// An answer that could not be turned into JSON (a bug).
#[derive(Debug, thiserror::Error)]
#[error("the signup's answer could not be written as JSON: {0}")]
pub struct AnswerError(#[from] serde_json::Error);

/// `answer` as a JSON value: the form it is stored in with an Idempotency-Key and sent in, so
/// the first answer and its replays are the same bytes (one key order).
pub fn to_json(answer: &impl Serialize) -> Result<serde_json::Value, AnswerError> {
    Ok(serde_json::to_value(answer)?)
}

pub fn concealed_json() -> Result<serde_json::Value, AnswerError> {
    to_json(&CONCEALED)
}
