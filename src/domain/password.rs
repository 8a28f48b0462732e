use secrecy::{ExposeSecret, SecretString};

/// A password: at most 256 characters, kept exactly as typed (no trimming). How short or simple
/// it may be is the project's policy ([`super::PasswordPolicy`]). A [`SecretString`]: its `Debug`
/// never shows it, it has no `Display`, and its memory is zeroed when dropped.
#[derive(Clone, Debug)]
pub struct Password(SecretString);

pub const MAX_PASSWORD_CHARS: usize = 256;

impl Password {
    pub fn parse(raw: String) -> Result<Self, String> {
        if raw.is_empty() {
            return Err("is required".to_owned());
        }
        if raw.chars().count() > MAX_PASSWORD_CHARS {
            return Err(format!("must be at most {MAX_PASSWORD_CHARS} characters"));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
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
