use std::fmt;

/// A password: at most 256 characters, kept exactly as typed (no trimming). How short or simple
/// it may be is the project's policy ([`super::PasswordPolicy`]). Its `Debug` never shows it and
/// it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

pub const MAX_PASSWORD_CHARS: usize = 256;

impl Password {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("is required".to_owned());
        }
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        Ok(Self(raw))
    }

    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_is_counted_in_characters() {
        assert!(Password::parse(String::new()).is_err());
        assert!(
            Password::parse("1".into()).is_ok(),
            "the policy judges short ones"
        );
        assert!(Password::parse("\u{e9}".repeat(256)).is_ok());
        assert!(Password::parse("\u{e9}".repeat(257)).is_err());
        assert!(
            Password::parse("        ".into()).is_ok(),
            "kept as typed, spaces count"
        );
    }

    #[test]
    fn debug_hides_the_secret() {
        let p = Password::parse("hunter2hunter2".into()).unwrap();
        assert!(!format!("{p:?}").contains("hunter2"));
    }
}
