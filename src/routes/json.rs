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
    /// recorded in `errors` and comes back as `None`; any other key is recorded as unknown.
    pub fn string_fields<const N: usize>(
        self,
        names: [&str; N],
        errors: &mut ValidationErrors,
    ) -> [Option<String>; N] {
        let mut map = self.0;
        let values = names.map(|name| match map.remove(name) {
            Some(Value::String(s)) => Some(s),
            None | Some(Value::Null) => {
                errors.add(name, "is required");
                None
            }
            Some(_) => {
                errors.add(name, "must be a string");
                None
            }
        });
        report_unknown(map.keys(), errors);
        values
    }
}

/// Unknown field names echoed in a 422 at most (the rest are counted, not named).
const UNKNOWN_FIELDS_NAMED: usize = 5;
/// Characters of an unknown field's name that are echoed.
const UNKNOWN_NAME_CHARS: usize = 64;

/// Records unknown field names in `errors`: the first [`UNKNOWN_FIELDS_NAMED`], each cut to
/// [`UNKNOWN_NAME_CHARS`] characters, so an answer never grows with what the client sent.
fn report_unknown<'a>(
    names: impl ExactSizeIterator<Item = &'a String>,
    errors: &mut ValidationErrors,
) {
    let left = names.len().saturating_sub(UNKNOWN_FIELDS_NAMED);
    for (i, name) in names.take(UNKNOWN_FIELDS_NAMED).enumerate() {
        let shown: String = name.chars().take(UNKNOWN_NAME_CHARS).collect();
        if i + 1 == UNKNOWN_FIELDS_NAMED && left > 0 {
            errors.add(
                shown,
                format!("unknown field (and {left} more unknown fields)"),
            );
        } else {
            errors.add(shown, "unknown field");
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_a_few_at_a_time_and_cut_short() {
        let names: Vec<String> = (0..500)
            .map(|i| format!("{i:03}{}", "x".repeat(300)))
            .collect();
        let mut errors = ValidationErrors::default();
        report_unknown(names.iter(), &mut errors);
        let fields = errors.fields();
        assert_eq!(fields.len(), UNKNOWN_FIELDS_NAMED);
        assert!(
            fields
                .keys()
                .all(|k| k.chars().count() == UNKNOWN_NAME_CHARS)
        );
        assert_eq!(
            fields.values().last().map(String::as_str),
            Some("unknown field (and 495 more unknown fields)")
        );
        let mut errors = ValidationErrors::default();
        report_unknown([String::from("extra")].iter(), &mut errors);
        assert_eq!(
            errors.fields().get("extra").map(String::as_str),
            Some("unknown field")
        );
    }
}
