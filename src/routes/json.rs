//! The JSON body of our POST endpoints: an object, read once, with rejections mapped to our
//! error codes (415 not JSON, 400 malformed, 413 too large).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde_json::{Map, Value};

use crate::domain::ValidationErrors;
use crate::error::ApiError;

pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<Value>::from_request(req, state).await {
            Ok(Json(Value::Object(map))) => Ok(Self(map)),
            Ok(Json(_)) => Err(ApiError::InvalidJson("expected a JSON object".to_owned())),
            Err(JsonRejection::MissingJsonContentType(_)) => Err(ApiError::UnsupportedMediaType),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(ApiError::PayloadTooLarge)
            }
            Err(rejection) => Err(ApiError::InvalidJson(innermost_cause(&rejection))),
        }
    }
}

impl JsonObject {
    /// Takes the captcha token out of the object, in either shape GoTrue's clients send it:
    /// `captcha_token`, or supabase-js's `gotrue_meta_security.captcha_token` (an empty
    /// `gotrue_meta_security` is fine). A token that is not a string is recorded in `errors`.
    pub fn take_captcha_token(&mut self, errors: &mut ValidationErrors) -> Option<String> {
        let mut token = None;
        match self.0.remove("gotrue_meta_security") {
            None | Some(Value::Null) => {}
            Some(Value::Object(mut meta)) => match meta.remove("captcha_token") {
                None | Some(Value::Null) => {}
                Some(Value::String(t)) => token = Some(t),
                Some(_) => errors.add("gotrue_meta_security.captcha_token", "must be a string"),
            },
            Some(_) => errors.add("gotrue_meta_security", "must be an object"),
        }
        match self.0.remove("captcha_token") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) => token = token.or(Some(t)),
            Some(_) => errors.add("captcha_token", "must be a string"),
        }
        token.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
    }

    /// Takes the string fields `names` out of the object. An absent, null or non-string field is
    /// recorded in `errors` and comes back as `None`.
    pub fn take_string_fields<const N: usize>(
        &mut self,
        names: [&str; N],
        errors: &mut ValidationErrors,
    ) -> [Option<String>; N] {
        names.map(|name| match self.0.remove(name) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => {
                errors.add(name, "is required");
                None
            }
            Some(_) => {
                errors.add(name, "must be a string");
                None
            }
        })
    }

    /// [`Self::take_string_fields`], and every other key is recorded as unknown.
    pub fn string_fields<const N: usize>(
        mut self,
        names: [&str; N],
        errors: &mut ValidationErrors,
    ) -> [Option<String>; N] {
        let values = self.take_string_fields(names, errors);
        errors.unknown_fields(self.0.keys());
        values
    }
}

/// The message of the innermost error in `err`'s chain (serde's "expected value at line 1
/// column 2"), without the layers of "Failed to parse the request body as JSON" above it.
fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}
