//! `atomic_signup.signup_roles`: the roles a signup may ask for, kept in the database too, so the
//! signup function refuses any other role even when called around the service
//! (`migrations/20261204000013_signup_argument_checks.sql`).

use sqlx::PgPool;

use super::{Database, StoreError, unit};

/// Makes the table hold exactly `roles` (SIGNUP_ROLES), in one transaction. Run by
/// `atomic-signup migrate` on the owner's connection: the service role may only read the table.
pub async fn write(pool: &PgPool, roles: &[String]) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    sqlx::query!(
        "delete from atomic_signup.signup_roles where role <> all($1::text[])",
        roles
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "insert into atomic_signup.signup_roles (role) select unnest($1::text[]) \
         on conflict (role) do nothing",
        roles
    )
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

/// The roles of `roles` that the table does not hold (the signup function would refuse them).
pub async fn missing(db: &Database, roles: &[String]) -> Result<Vec<String>, StoreError> {
    let stored: Vec<String> = unit!(db, |conn| sqlx::query_scalar!(
        r#"select role as "role!" from atomic_signup.signup_roles"#
    )
    .fetch_all(conn)
    .await)?;
    Ok(roles
        .iter()
        .filter(|role| !stored.contains(role))
        .cloned()
        .collect())
}
