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
        "select name, role, onboarding_completed from public.profiles where id = $1",
    )
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}
