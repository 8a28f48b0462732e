//! Reading `public.profiles` (login adds the profile to GoTrue's session).

use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use super::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Profile {
    pub name: String,
    pub role: String,
    pub onboarding_completed: bool,
}

/// The user's profile; `None` for a user made outside this service.
pub async fn find_profile(pool: &PgPool, user_id: Uuid) -> Result<Option<Profile>, StoreError> {
    Ok(sqlx::query_as::<_, Profile>(
        // A SECURITY DEFINER function: profiles has RLS for the API roles, and the service's
        // least-privilege role reads through it (migrations/20261124000004_service_role.sql).
        "select name, role, onboarding_completed from atomic_signup.find_profile($1)",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}
