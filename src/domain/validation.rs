use std::collections::BTreeMap;

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

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, Self> {
        match value() {
            Some(v) if self.is_empty() => Ok(v),
            _ => Err(self),
        }
    }
}
