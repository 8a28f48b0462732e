//! Who may sign up and how: roles, password policy, email domains, DISABLE_SIGNUP, email
//! confirmation and concealment.

use std::time::Duration;

use super::ConfigError;
use super::parse::{Lookup, count, env_lookup, millis, parse_bool, parse_opt, parse_or};
use crate::domain::{
    EmailDomains, PasswordPolicy, ProfileSchema, ProfileTable, RoleSet, SignupRules,
};

/// The signup's settings, as [`super::Settings`] keeps them.
pub(super) struct SignupSettings {
    pub rules: SignupRules,
    /// DISABLE_SIGNUP
    pub disabled: bool,
    /// REQUIRE_EMAIL_CONFIRMATION
    pub require_email_confirmation: bool,
    /// CONCEAL_EXISTING_EMAILS
    pub conceal_existing_emails: bool,
    /// CONCEAL_MIN_DURATION_MS
    pub conceal_min_duration: Duration,
}

impl SignupSettings {
    pub(super) fn from_lookup(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        let rules = SignupRules {
            roles: signup_roles(get)?,
            password: password_policy(get)?,
            email_domains: email_domains(get)?,
            profile: profile_schema(get)?,
            profile_table: profile_table(get)?,
        };
        let require_email_confirmation =
            parse_or(get, "REQUIRE_EMAIL_CONFIRMATION", true, parse_bool)?;
        let conceal_existing_emails = parse_or(get, "CONCEAL_EXISTING_EMAILS", false, parse_bool)?;
        if conceal_existing_emails && !require_email_confirmation {
            return Err(ConfigError::Invalid {
                name: "CONCEAL_EXISTING_EMAILS",
                reason: "true needs REQUIRE_EMAIL_CONFIRMATION=true (otherwise a new account \
                         could log in at once, and a taken email could not)"
                    .to_owned(),
            });
        }
        Ok(Self {
            rules,
            disabled: parse_or(get, "DISABLE_SIGNUP", false, parse_bool)?,
            require_email_confirmation,
            conceal_existing_emails,
            conceal_min_duration: parse_or(
                get,
                "CONCEAL_MIN_DURATION_MS",
                Duration::from_millis(100),
                millis(60_000),
            )?,
        })
    }
}

/// SIGNUP_ROLES: the roles a signup may ask for (`serve`), written into the database by `migrate`.
pub fn signup_roles(get: &Lookup<'_>) -> Result<RoleSet, ConfigError> {
    parse_or(get, "SIGNUP_ROLES", RoleSet::default(), RoleSet::parse_list)
}

/// [`signup_roles`] from the process environment.
pub fn signup_roles_from_env() -> Result<RoleSet, ConfigError> {
    signup_roles(&env_lookup)
}

/// PROFILE_SCHEMA_PATH: the profile fields a signup takes (`serve`, `check`), written into the
/// database by `migrate`. Unset: today's profile, a display name ([`ProfileSchema::default`]).
pub fn profile_schema(get: &Lookup<'_>) -> Result<ProfileSchema, ConfigError> {
    parse_or(
        get,
        "PROFILE_SCHEMA_PATH",
        ProfileSchema::default(),
        |path| {
            let text =
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
            ProfileSchema::parse(&text).map_err(|e| format!("{path}: {e}"))
        },
    )
}

/// PROFILE_TABLE: the table the profile fields are columns of (`schema.table`).
pub fn profile_table(get: &Lookup<'_>) -> Result<ProfileTable, ConfigError> {
    parse_or(
        get,
        "PROFILE_TABLE",
        ProfileTable::default(),
        ProfileTable::parse,
    )
}

/// [`profile_schema`] and [`profile_table`] from the process environment.
pub fn profile_from_env() -> Result<(ProfileSchema, ProfileTable), ConfigError> {
    Ok((profile_schema(&env_lookup)?, profile_table(&env_lookup)?))
}

/// PROFILE_FOR_EXTERNAL_USERS (`migrate`): `Some(role)` when users created outside the service
/// get a profile from the database's trigger, with `role` (PROFILE_FOR_EXTERNAL_USERS_ROLE, one
/// of `roles`; by default the first) for those whose app metadata names none of `roles`.
pub fn external_users(get: &Lookup<'_>, roles: &RoleSet) -> Result<Option<String>, ConfigError> {
    if !parse_or(get, "PROFILE_FOR_EXTERNAL_USERS", false, parse_bool)? {
        return Ok(None);
    }
    let role = parse_opt(get, "PROFILE_FOR_EXTERNAL_USERS_ROLE", |v| {
        roles.parse_role(v.trim()).map(|r| r.as_str().to_owned())
    })?;
    match role.or_else(|| roles.names().first().cloned()) {
        Some(role) => Ok(Some(role)),
        None => Err(ConfigError::Invalid {
            name: "PROFILE_FOR_EXTERNAL_USERS_ROLE",
            reason: "SIGNUP_ROLES names no role".to_owned(),
        }),
    }
}

/// [`external_users`] from the process environment.
pub fn external_users_from_env(roles: &RoleSet) -> Result<Option<String>, ConfigError> {
    external_users(&env_lookup, roles)
}

/// PASSWORD_MIN_LENGTH and PASSWORD_REQUIRED_CHARACTERS (GoTrue's policy variables).
fn password_policy(get: &Lookup<'_>) -> Result<PasswordPolicy, ConfigError> {
    Ok(PasswordPolicy {
        min_length: parse_or(
            get,
            "PASSWORD_MIN_LENGTH",
            PasswordPolicy::default().min_length,
            |v| {
                count(PasswordPolicy::LOWEST_MIN_LENGTH as u32, 256)(v)
                    .map_err(|e| format!("{e} (GoTrue never accepts less than 6)"))
            },
        )?,
        required_characters: get("PASSWORD_REQUIRED_CHARACTERS")
            .map(|v| PasswordPolicy::parse_required_characters(&v))
            .unwrap_or_default(),
    })
}

/// SIGNUP_EMAIL_DOMAIN_ALLOWLIST or SIGNUP_EMAIL_DOMAIN_DENYLIST (not both).
fn email_domains(get: &Lookup<'_>) -> Result<EmailDomains, ConfigError> {
    let list = |name| parse_opt(get, name, EmailDomains::parse_list);
    match (
        list("SIGNUP_EMAIL_DOMAIN_ALLOWLIST")?,
        list("SIGNUP_EMAIL_DOMAIN_DENYLIST")?,
    ) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            name: "SIGNUP_EMAIL_DOMAIN_DENYLIST",
            reason: "set SIGNUP_EMAIL_DOMAIN_ALLOWLIST or the deny list, not both".to_owned(),
        }),
        (Some(only), None) => Ok(EmailDomains::Only(only)),
        (None, Some(but)) => Ok(EmailDomains::AllBut(but)),
        (None, None) => Ok(EmailDomains::Any),
    }
}
