use secrecy::{ExposeSecret, SecretString};

use super::{Email, ValidationErrors};

/// A login request that passed the edge checks: a well-formed email and a non-empty password.
/// No length rules beyond that: the account may have been made elsewhere, under other rules.
/// `Debug` never shows the password.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub email: Email,
    password: SecretString,
}

pub const MAX_LOGIN_PASSWORD_CHARS: usize = 1024;

impl Credentials {
    pub fn parse(
        email: Option<String>,
        password: Option<String>,
        mut errors: ValidationErrors,
    ) -> Result<Self, ValidationErrors> {
        let email = email.and_then(|v| errors.check("email", Email::parse(&v)));
        let password = password.and_then(|v| {
            let result = match v.chars().count() {
                0 => Err("is required".to_owned()),
                n if n > MAX_LOGIN_PASSWORD_CHARS => Err(format!(
                    "must be at most {MAX_LOGIN_PASSWORD_CHARS} characters"
                )),
                _ => Ok(v),
            };
            errors.check("password", result)
        });
        errors.into_result(|| {
            Some(Self {
                email: email?,
                password: SecretString::from(password?),
            })
        })
    }

    pub fn expose_password(&self) -> &str {
        self.password.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_an_email_and_a_password() {
        let ok = Credentials::parse(
            Some(" A@Example.com".into()),
            Some("hunter2hunter2".into()),
            ValidationErrors::default(),
        )
        .unwrap();
        assert_eq!(ok.email.as_str(), "a@example.com");
        assert!(!format!("{ok:?}").contains("hunter2hunter2"));
        let errs = Credentials::parse(
            Some("nope".into()),
            Some(String::new()),
            ValidationErrors::default(),
        )
        .unwrap_err();
        assert_eq!(
            errs.fields().keys().collect::<Vec<_>>(),
            ["email", "password"]
        );
    }
}
