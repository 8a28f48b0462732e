use std::collections::BTreeMap;

/// Every problem found in one request, one message per field (the first found for that field).
#[derive(Debug, Default, Clone, PartialEq, Eq, thiserror::Error)]
#[error("validation failed for {} field(s)", .fields.len())]
pub struct ValidationErrors {
    fields: BTreeMap<String, String>,
}

impl ValidationErrors {
    pub fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.fields
            .entry(field.into())
            .or_insert_with(|| message.into());
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
