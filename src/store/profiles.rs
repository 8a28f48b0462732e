//! Reading `public.profiles` (login adds the profile to GoTrue's session).

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Profile {
    pub name: String,
    pub role: String,
    pub onboarding_completed: bool,
}

/// The profile of the user GoTrue would find for `email`, with that user's id; `None` when
/// there is no such user or no profile.
pub async fn find_profile_by_email(
    pool: &PgPool,
    email: &str,
) -> Result<Option<(Uuid, Profile)>, StoreError> {
    let row = sqlx::query!(
        r#"select user_id as "user_id!", name as "name!", role as "role!",
                  onboarding_completed as "onboarding_completed!"
           from atomic_signup.find_profile_by_email($1)"#,
        email
    )
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|r| {
        (
            r.user_id,
            Profile {
                name: r.name,
                role: r.role,
                onboarding_completed: r.onboarding_completed,
            },
        )
    }))
}

/// The user's profile; `None` for a user made outside this service.
pub async fn find_profile(pool: &PgPool, user_id: Uuid) -> Result<Option<Profile>, StoreError> {
    // A SECURITY DEFINER function: profiles has RLS for the API roles, and the service's
    // least-privilege role reads through it (migrations/20261124000004_service_role.sql).
    Ok(sqlx::query_as!(
        Profile,
        r#"select name as "name!", role as "role!", onboarding_completed as "onboarding_completed!"
           from atomic_signup.find_profile($1)"#,
        user_id
    )
    .fetch_optional(pool)
    .await?)
}
