use std::collections::BTreeMap;

/// Unknown field names echoed in a 422 at most (the rest are counted, not named).
pub const UNKNOWN_FIELDS_NAMED: usize = 5;
/// Characters of an unknown field's name that are echoed.
pub const UNKNOWN_NAME_CHARS: usize = 64;

/// Every problem found in one request, one message per field (the first found for that field).
#[derive(Debug, Default, Clone, PartialEq, Eq, thiserror::Error)]
#[error("validation failed for {} field(s)", .fields.len())]
pub struct ValidationErrors {
    fields: BTreeMap<String, String>,
    /// GoTrue's `weak_password.reasons` when the password failed the policy.
    weak_password: Vec<&'static str>,
}

impl ValidationErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.fields
            .entry(field.into())
            .or_insert_with(|| message.into());
    }

    /// The password failed the policy: its message under `password`, and the reasons.
    pub fn weak_password(&mut self, weakness: super::Weakness) {
        self.add("password", weakness.message);
        self.weak_password = weakness.reasons;
    }

    /// Empty unless the password failed the policy.
    pub fn weak_password_reasons(&self) -> &[&'static str] {
        &self.weak_password
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn fields(&self) -> &BTreeMap<String, String> {
        &self.fields
    }

    /// Records the error of `result` under `field`, and hands back the value if there was one.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|message| self.add(field, message)).ok()
    }

    /// Records unknown field names: the first [`UNKNOWN_FIELDS_NAMED`], each cut to
    /// [`UNKNOWN_NAME_CHARS`] characters, so an answer never grows with what the client sent.
    pub fn unknown_fields<'a>(&mut self, names: impl ExactSizeIterator<Item = &'a String>) {
        let left = names.len().saturating_sub(UNKNOWN_FIELDS_NAMED);
        for (i, name) in names.take(UNKNOWN_FIELDS_NAMED).enumerate() {
            let shown: String = name.chars().take(UNKNOWN_NAME_CHARS).collect();
            if i + 1 == UNKNOWN_FIELDS_NAMED && left > 0 {
                self.add(
                    shown,
                    format!("unknown field (and {left} more unknown fields)"),
                );
            } else {
                self.add(shown, "unknown field");
            }
        }
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Self> {
        match value() {
            Some(v) if self.is_empty() => Ok(v),
            _ => Err(self),
        }
    }
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
        errors.unknown_fields(names.iter());
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
        errors.unknown_fields([String::from("extra")].iter());
        assert_eq!(
            errors.fields().get("extra").map(String::as_str),
            Some("unknown field")
        );
    }
}
