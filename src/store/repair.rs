//! `atomic-signup repair`'s SQL: the orphans (auth users without a profile), and for one of them,
//! in one transaction of its own, a profile or GoTrue's deletion. Run on the operator's
//! privileged, direct connection (as `migrate`).
//!
//! Each change locks its user's row (`FOR UPDATE`) and looks again before it writes: a user that
//! got a profile meanwhile (a retried signup, a trigger, another repair), or that confirmed or
//! signed in meanwhile, is left alone. The lock also holds back a concurrent insert of that
//! user's profile (its foreign key takes a share lock on the user's row) until the transaction
//! ends: a user never ends up with two profiles.

use serde_json::Value;
use sqlx::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::ProfileTable;

/// An auth user without a profile, and what repair reads of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Orphan {
    pub id: Uuid,
    pub email: Option<String>,
    pub created_at: Option<OffsetDateTime>,
    pub confirmed_at: Option<OffsetDateTime>,
    pub last_sign_in_at: Option<OffsetDateTime>,
    /// `raw_user_meta_data` (a JSON object, or `{}`).
    pub user_metadata: Value,
    /// `raw_app_meta_data` (a JSON object, or `{}`).
    pub app_metadata: Value,
}

/// Every auth user (not soft-deleted) without a row in `table`, oldest first.
pub async fn orphans(
    conn: &mut PgConnection,
    table: &ProfileTable,
) -> Result<Vec<Orphan>, sqlx::Error> {
    // The table's name is two checked identifiers, quoted.
    let sql = format!(
        "select u.id, u.email::text as email, u.created_at, u.confirmed_at, u.last_sign_in_at, \
                case when jsonb_typeof(u.raw_user_meta_data) = 'object' \
                     then u.raw_user_meta_data else '{{}}'::jsonb end as user_metadata, \
                case when jsonb_typeof(u.raw_app_meta_data) = 'object' \
                     then u.raw_app_meta_data else '{{}}'::jsonb end as app_metadata \
         from auth.users u \
         where u.deleted_at is null \
           and not exists (select 1 from {} p where p.id = u.id) \
         order by u.created_at nulls first, u.id",
        table.quoted()
    );
    sqlx::query_as(&sql).fetch_all(conn).await
}

/// What became of one orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    Changed,
    /// It was no longer an orphan (or no longer one to delete) when its turn came.
    LeftAlone,
}

/// Gives `user` its profile (`role` and `profile`, as the signup writes them, through
/// `atomic_signup.insert_profile`) and puts the role in its app metadata, unless it has a
/// profile by now.
pub async fn create_profile(
    conn: &mut PgConnection,
    table: &ProfileTable,
    user: Uuid,
    role: &str,
    profile: &Value,
) -> Result<Done, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if !lock_orphan(&mut tx, table, user).await? {
        tx.rollback().await?;
        return Ok(Done::LeftAlone);
    }
    sqlx::query("select atomic_signup.insert_profile($1, $2, $3)")
        .bind(user)
        .bind(role)
        .bind(profile)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "update auth.users set raw_app_meta_data = \
           (case when jsonb_typeof(raw_app_meta_data) = 'object' then raw_app_meta_data \
                 else '{}'::jsonb end) || jsonb_build_object('role', $2::text) \
         where id = $1",
    )
    .bind(user)
    .bind(role)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Done::Changed)
}

/// Deletes `user` as GoTrue's admin API does (`DELETE /admin/users/{id}`: GoTrue's audit entry
/// `user_deleted` by the service role, then the row, whose identities, sessions and factors go
/// with it by their foreign keys), unless by now it has a profile, is confirmed, has signed in,
/// or is younger than `created_before`. Its rows in the service's own tables go too.
pub async fn delete_user(
    conn: &mut PgConnection,
    table: &ProfileTable,
    user: Uuid,
    created_before: OffsetDateTime,
) -> Result<Done, sqlx::Error> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    if !lock_orphan(&mut tx, table, user).await? {
        tx.rollback().await?;
        return Ok(Done::LeftAlone);
    }
    let deletable: bool = sqlx::query_scalar(
        "select confirmed_at is null and last_sign_in_at is null and created_at < $2 \
         from auth.users where id = $1",
    )
    .bind(user)
    .bind(created_before)
    .fetch_one(&mut *tx)
    .await?;
    if !deletable {
        tx.rollback().await?;
        return Ok(Done::LeftAlone);
    }
    sqlx::query(
        "insert into auth.audit_log_entries (instance_id, id, payload, created_at, ip_address) \
         select '00000000-0000-0000-0000-000000000000', gen_random_uuid(), \
                json_build_object( \
                  'actor_id', '00000000-0000-0000-0000-000000000000', 'actor_via_sso', false, \
                  'actor_username', 'service_role', 'action', 'user_deleted', 'log_type', 'team', \
                  'traits', json_build_object('user_id', u.id, 'user_email', coalesce(u.email, ''), \
                                              'user_phone', coalesce(u.phone, ''))), \
                now(), '' \
         from auth.users u where u.id = $1",
    )
    .bind(user)
    .execute(&mut *tx)
    .await?;
    sqlx::query("delete from atomic_signup.idempotency_keys where user_id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    sqlx::query("delete from auth.users where id = $1")
        .bind(user)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Done::Changed)
}

/// Locks `user`'s row and says whether it is still an orphan (not soft-deleted, no profile).
async fn lock_orphan(
    tx: &mut PgConnection,
    table: &ProfileTable,
    user: Uuid,
) -> Result<bool, sqlx::Error> {
    let locked: Option<bool> =
        sqlx::query_scalar("select deleted_at is null from auth.users where id = $1 for update")
            .bind(user)
            .fetch_optional(&mut *tx)
            .await?;
    if locked != Some(true) {
        return Ok(false);
    }
    let has_profile: bool = sqlx::query_scalar(&format!(
        "select exists (select 1 from {} p where p.id = $1)",
        table.quoted()
    ))
    .bind(user)
    .fetch_one(&mut *tx)
    .await?;
    Ok(!has_profile)
}
