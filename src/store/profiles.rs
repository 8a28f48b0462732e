//! Reading the profiles (login adds the profile to GoTrue's session), through the definer
//! functions that know the profile table (PROFILE_TABLE) and its columns.

use serde_json::{Map, Value};
use uuid::Uuid;

use super::{Database, StoreError, unit};

/// A profile as the service answers it: `role`, `onboarding_completed` when the table has it,
/// and the declared profile fields.
pub type Profile = Map<String, Value>;

/// The user GoTrue's password grant would find for `email`, and that user's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginUser {
    pub user_id: Uuid,
    /// `None` for a user made outside this service.
    pub profile: Option<Profile>,
    /// The algorithm and cost of the user's password hash (`$argon2id$v=19$m=19456,t=2,p=1`,
    /// `$2a$10`, …; never the salt or the hash); `None` when the user has no password, so that
    /// GoTrue fails their login without comparing a hash.
    pub password_kind: Option<String>,
}

/// What `find_profile_by_email` answers (`profile` NULL without a profile).
struct ProfileByEmail {
    user_id: Uuid,
    profile: Option<Value>,
    password_kind: Option<String>,
}

fn object(value: Option<Value>) -> Option<Profile> {
    match value {
        Some(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// The user GoTrue would find for `email` (same lookup), with the profile if any; `None` when
/// there is no such user.
pub async fn find_user_by_email(
    db: &Database,
    email: &str,
) -> Result<Option<LoginUser>, StoreError> {
    let row = unit!(db, |conn| sqlx::query_as!(
        ProfileByEmail,
        r#"select user_id as "user_id!", profile, password_kind
           from atomic_signup.find_profile_by_email($1)"#,
        email
    )
    .fetch_optional(conn)
    .await)?;
    Ok(row.map(|r| LoginUser {
        user_id: r.user_id,
        profile: object(r.profile),
        password_kind: r.password_kind,
    }))
}

/// The user's profile; `None` for a user made outside this service.
pub async fn find_profile(db: &Database, user_id: Uuid) -> Result<Option<Profile>, StoreError> {
    // A SECURITY DEFINER function: profiles have RLS for the API roles, and the service's
    // least-privilege role reads through it (its live definition: migrations/README.md).
    let profile = unit!(db, |conn| sqlx::query_scalar!(
        r#"select atomic_signup.find_profile($1) as profile"#,
        user_id
    )
    .fetch_one(conn)
    .await)?;
    Ok(object(profile))
}
