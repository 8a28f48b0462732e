//! Reading `public.profiles` (login adds the profile to GoTrue's session).

use serde::Serialize;
use uuid::Uuid;

use super::{Database, StoreError, unit};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub name: String,
    pub role: String,
    pub onboarding_completed: bool,
}

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

/// What `find_profile_by_email` answers (the profile's columns are NULL without a profile).
struct ProfileByEmail {
    user_id: Uuid,
    name: Option<String>,
    role: Option<String>,
    onboarding_completed: Option<bool>,
    password_kind: Option<String>,
}

/// The user GoTrue would find for `email` (same lookup), with the profile if any; `None` when
/// there is no such user.
pub async fn find_user_by_email(
    db: &Database,
    email: &str,
) -> Result<Option<LoginUser>, StoreError> {
    let row = unit!(db, |conn| sqlx::query_as!(
        ProfileByEmail,
        r#"select user_id as "user_id!", name, role, onboarding_completed, password_kind
           from atomic_signup.find_profile_by_email($1)"#,
        email
    )
    .fetch_optional(conn)
    .await)?;
    Ok(row.map(|r| LoginUser {
        user_id: r.user_id,
        profile: match (r.name, r.role, r.onboarding_completed) {
            (Some(name), Some(role), Some(onboarding_completed)) => Some(Profile {
                name,
                role,
                onboarding_completed,
            }),
            _ => None,
        },
        password_kind: r.password_kind,
    }))
}

/// The user's profile; `None` for a user made outside this service.
pub async fn find_profile(db: &Database, user_id: Uuid) -> Result<Option<Profile>, StoreError> {
    // A SECURITY DEFINER function: profiles has RLS for the API roles, and the service's
    // least-privilege role reads through it (its live definition: migrations/README.md).
    Ok(unit!(db, |conn| sqlx::query_as!(
        Profile,
        r#"select name as "name!", role as "role!", onboarding_completed as "onboarding_completed!"
           from atomic_signup.find_profile($1)"#,
        user_id
    )
    .fetch_optional(conn)
    .await)?)
}
