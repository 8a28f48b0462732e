//! Parse, don't validate: the request's strings become these types once, at the edge, and the
//! rest of the service only ever sees values that are known to be valid.

mod credentials;
mod email;
mod idempotency_key;
mod name;
mod new_user;
mod password;
mod profile;
mod role;
mod signup_rules;
mod validation;

pub use credentials::Credentials;
pub use email::Email;
pub use idempotency_key::{FingerprintSecret, IdempotencyKey, MAX_KEY_LEN, MIN_SECRET_BYTES};
pub use name::{DisplayName, MAX_NAME_CHARS};
pub use new_user::{NewUser, SignupForm};
pub use password::Password;
pub use profile::{
    DEFAULT_SCHEMA as DEFAULT_PROFILE_SCHEMA, FieldType, ProfileField, ProfileSchema, ProfileTable,
    ProfileValues, RESERVED_FIELDS,
};
pub use role::{Role, RoleSet};
pub use signup_rules::{EmailDomains, PasswordPolicy, SignupRules, Weakness};
pub use validation::ValidationErrors;
