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
