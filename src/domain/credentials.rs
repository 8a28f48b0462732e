use super::{Email, ValidationErrors};

/// A login request that passed the edge checks: a well-formed email and a non-empty password.
/// No length rules beyond that: the account may have been made elsewhere, under other rules.
#[derive(Clone)]
pub struct Credentials {
    pub email: Email,
    password: String,
}

pub const MAX_LOGIN_PASSWORD_CHARS: usize = 1024;

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .finish()
    }
}

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
                password: password?,
            })
        })
    }

    pub fn expose_password(&self) -> &str {
        &self.password
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
