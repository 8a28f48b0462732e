use serde_json::{Map, Value};

use super::{Email, Password, ProfileValues, Role, SignupRules, ValidationErrors};

/// A signup request that passed every check: the only way to get one is [`NewUser::parse`].
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: Email,
    pub password: Password,
    pub role: Role,
    /// The profile fields PROFILE_SCHEMA_PATH declares (by default, `name`).
    pub profile: ProfileValues,
}

/// A signup request's fields: the signup's own strings (`None` = absent or not a string; the
/// caller has recorded why in the errors it passes on), and every other field, which the
/// profile schema reads (refusing those it does not declare).
#[derive(Debug, Default)]
pub struct SignupForm {
    pub email: Option<String>,
    pub password: Option<String>,
    pub role: Option<String>,
    pub profile: Map<String, Value>,
}

impl NewUser {
    /// Checks every field and reports every bad one, together with `errors` found earlier
    /// (unknown fields, wrong JSON types).
    pub fn parse(
        form: SignupForm,
        rules: &SignupRules,
        mut errors: ValidationErrors,
    ) -> Result<Self, ValidationErrors> {
        let profile = rules.profile.read(form.profile, &mut errors);
        let email = form
            .email
            .and_then(|v| errors.check("email", Email::parse(&v)))
            .and_then(|email| {
                if rules.email_domains.allows(email.domain()) {
                    Some(email)
                } else {
                    errors.add("email", "this email domain may not sign up");
                    None
                }
            });
        let password = form
            .password
            .and_then(|v| errors.check("password", Password::parse(v)))
            .and_then(
                |password| match rules.password.weakness(password.expose_secret()) {
                    Some(weakness) => {
                        errors.weak_password(weakness);
                        None
                    }
                    None => Some(password),
                },
            );
        let role = form
            .role
            .and_then(|v| errors.check("role", rules.roles.parse_role(&v)));
        errors.into_result(|| {
            Some(Self {
                email: email?,
                password: password?,
                role: role?,
                profile,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str, email: &str, password: &str, role: &str) -> SignupForm {
        SignupForm {
            email: Some(email.into()),
            password: Some(password.into()),
            role: Some(role.into()),
            profile: Map::from_iter([("name".to_owned(), Value::from(name))]),
        }
    }

    #[test]
    fn all_good() {
        let u = NewUser::parse(
            form(" Ada ", "ADA@example.com", "correct horse", "Creator"),
            &SignupRules::default(),
            ValidationErrors::default(),
        )
        .unwrap();
        assert_eq!(u.profile.name(), Some("Ada"));
        assert_eq!(u.email.as_str(), "ada@example.com");
        assert_eq!(u.role.as_str(), "Creator");
    }

    #[test]
    fn reports_every_bad_field() {
        let errs = NewUser::parse(
            form("", "nope", "short", "admin"),
            &SignupRules::default(),
            ValidationErrors::default(),
        )
        .unwrap_err();
        let fields: Vec<&String> = errs.fields().keys().collect();
        assert_eq!(fields, ["email", "name", "password", "role"]);
    }

    #[test]
    fn earlier_errors_are_kept() {
        let mut earlier = ValidationErrors::default();
        earlier.add("extra", "unknown field");
        let errs = NewUser::parse(
            form("Ada", "ada@example.com", "correct horse", "Brand"),
            &SignupRules::default(),
            earlier,
        )
        .unwrap_err();
        assert_eq!(
            errs.fields().get("extra").map(String::as_str),
            Some("unknown field")
        );
    }
}
