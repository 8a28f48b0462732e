//! Whether users created outside the service (by GoTrue: OAuth, invites, magic links, the
//! dashboard) get a profile from the database's trigger (`atomic_signup.external_user_profiles`,
//! read by `atomic_signup.profile_for_external_user`): written by `migrate`
//! (PROFILE_FOR_EXTERNAL_USERS), read by `check`.

use serde_json::{Map, Value};
use sqlx::PgPool;

use super::{Database, StoreError, unit};

/// Switches the trigger on with `role` for users whose app metadata names no signup role, and
/// `defaults` (the profile fields' schema defaults); `None` switches it off.
pub async fn write(
    pool: &PgPool,
    on: Option<(&str, &Map<String, Value>)>,
) -> Result<(), StoreError> {
    let (role, defaults) = match on {
        Some((role, defaults)) => (Some(role), Value::Object(defaults.clone())),
        None => (None, Value::Object(Map::new())),
    };
    sqlx::query!(
        "update atomic_signup.external_user_profiles \
         set enabled = $1, default_role = $2, defaults = $3",
        on.is_some(),
        role,
        defaults
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// `Some(role)` when the trigger is on.
pub async fn read(db: &Database) -> Result<Option<String>, StoreError> {
    let row = unit!(db, |conn| sqlx::query!(
        "select enabled, default_role from atomic_signup.external_user_profiles"
    )
    .fetch_optional(conn)
    .await)?;
    Ok(row.filter(|r| r.enabled).and_then(|r| r.default_role))
}
