//! The SQL of `atomic-signup check`: read-only questions about a Supabase project's database.
//!
//! Each question runs in a transaction of its own that is set `READ ONLY` and always rolled
//! back, so `check` cannot change anything, even through a bug here. A question the role may not
//! ask (no right on `auth`, say) answers [`Inspect::NotAllowed`], and one about something that does
//! not exist [`Inspect::Missing`], instead of failing the others.

use std::future::Future;
use std::pin::Pin;

use sqlx::PgConnection;
use time::OffsetDateTime;

use super::{Database, MIGRATOR, catalog, unit};
use crate::domain::ProfileTable;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An answer, or why there is none.
#[derive(Debug)]
pub enum Inspect<T> {
    Answer(T),
    /// The role may not read what the question needs (SQLSTATE 42501); the database's words.
    NotAllowed(String),
    /// What the question reads does not exist (42P01 undefined table, 3F000 undefined schema).
    Missing(String),
}

/// Runs `question` in a read-only transaction that is rolled back.
async fn read_only<T: Send>(
    db: &Database,
    question: impl for<'c> FnOnce(&'c mut PgConnection) -> BoxFuture<'c, Result<T, sqlx::Error>>,
) -> Result<Inspect<T>, sqlx::Error> {
    let result: Result<T, sqlx::Error> = unit!(read_only db, |conn| question(conn).await);
    match result {
        Ok(answer) => Ok(Inspect::Answer(answer)),
        Err(sqlx::Error::Database(err)) if err.code().as_deref() == Some("42501") => {
            Ok(Inspect::NotAllowed(err.message().to_owned()))
        }
        Err(sqlx::Error::Database(err))
            if matches!(err.code().as_deref(), Some("42P01" | "3F000")) =>
        {
            Ok(Inspect::Missing(err.message().to_owned()))
        }
        Err(err) => Err(err),
    }
}

/// Who the connection is.
#[derive(Debug)]
pub struct Connection {
    pub role: String,
    pub superuser: bool,
    pub server_version: String,
    pub database: String,
}

pub async fn connection(db: &Database) -> Result<Connection, sqlx::Error> {
    let answer = read_only(db, |conn| {
        Box::pin(async move {
            let (role, superuser, server_version, database): (String, bool, String, String) =
                sqlx::query_as(
                    "select current_user::text, \
                       coalesce((select rolsuper from pg_catalog.pg_roles \
                                 where rolname = current_user), false), \
                       pg_catalog.current_setting('server_version'), \
                       pg_catalog.current_database()::text",
                )
                .fetch_one(conn)
                .await?;
            Ok(Connection {
                role,
                superuser,
                server_version,
                database,
            })
        })
    })
    .await?;
    match answer {
        Inspect::Answer(connection) => Ok(connection),
        // pg_catalog is readable by every role.
        Inspect::NotAllowed(message) | Inspect::Missing(message) => {
            Err(sqlx::Error::Protocol(message))
        }
    }
}

/// Tables whose privileges the service needs, as (kind, object, privilege), besides EXECUTE on
/// [`catalog::SERVICE_FUNCTIONS`]. A `columns` object names its columns in parentheses: the
/// privilege is needed on each of them.
const NEEDED_ON_TABLES: [(&str, &str, &str); 3] = [
    ("table", "atomic_signup.confirmation_outbox", "SELECT"),
    (
        "columns",
        "atomic_signup.confirmation_outbox(status,attempts,next_attempt_at,last_error,sent_at,failed_at)",
        "UPDATE",
    ),
    ("table", "atomic_signup.signup_roles", "SELECT"),
];

/// The privileges the service needs that the connection's role lacks, as
/// "EXECUTE on function …" (objects that do not exist are left to the schema check). Looked up
/// by oid in pg_catalog, which works without USAGE on the schema (that is checked too).
pub async fn missing_privileges(db: &Database) -> Result<Inspect<Vec<String>>, sqlx::Error> {
    read_only(db, |conn| {
        Box::pin(async move {
            let mut missing = Vec::new();
            let usage: Option<bool> = sqlx::query_scalar(
                "select pg_catalog.has_schema_privilege(n.oid, 'USAGE') \
                 from pg_catalog.pg_namespace n where n.nspname = 'atomic_signup'",
            )
            .fetch_optional(&mut *conn)
            .await?;
            if usage == Some(false) {
                missing.push("USAGE on schema atomic_signup".to_owned());
            }
            for function in catalog::SERVICE_FUNCTIONS {
                let held = catalog::function_privilege(&mut *conn, function, "EXECUTE").await?;
                if held == Some(false) {
                    missing.push(format!("EXECUTE on function {function}"));
                }
            }
            for (kind, object, privilege) in NEEDED_ON_TABLES {
                let (schema, name, arguments) = catalog::object_parts(object);
                let sql = if kind == "columns" {
                    "select pg_catalog.bool_and(pg_catalog.has_column_privilege(c.oid, a.attnum, $4)) \
                     from pg_catalog.pg_class c \
                     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
                     join pg_catalog.pg_attribute a on a.attrelid = c.oid and not a.attisdropped \
                       and a.attname = any(pg_catalog.string_to_array($3, ',')) \
                     where n.nspname = $1 and c.relname = $2 \
                     having pg_catalog.count(*) > 0"
                } else {
                    "select pg_catalog.has_table_privilege(c.oid, $4) \
                     from pg_catalog.pg_class c \
                     join pg_catalog.pg_namespace n on n.oid = c.relnamespace \
                     where n.nspname = $1 and c.relname = $2 and $3 = ''"
                };
                let held: Option<bool> = sqlx::query_scalar(sql)
                    .bind(schema)
                    .bind(name)
                    .bind(arguments)
                    .bind(privilege)
                    .fetch_optional(&mut *conn)
                    .await?;
                if held == Some(false) {
                    missing.push(format!("{privilege} on {kind} {object}"));
                }
            }
            Ok(missing)
        })
    })
    .await
}

/// The embedded migrations against `_sqlx_migrations`.
#[derive(Debug, Default)]
pub struct Migrations {
    /// Embedded, not applied (or applied and failed): "version (description)".
    pub missing: Vec<String>,
    /// Applied with another checksum than the embedded file's: the file or the database was
    /// changed after it was applied.
    pub modified: Vec<String>,
    /// Applied, unknown to this binary (a newer release applied them).
    pub unknown: Vec<i64>,
    pub applied: usize,
}

pub async fn migrations(db: &Database) -> Result<Inspect<Migrations>, sqlx::Error> {
    read_only(db, |conn| {
        Box::pin(async move {
            let rows: Vec<(i64, bool, Vec<u8>)> =
                sqlx::query_as("select version, success, checksum from _sqlx_migrations")
                    .fetch_all(conn)
                    .await?;
            let mut report = Migrations::default();
            for m in MIGRATOR.iter() {
                let name = format!("{} ({})", m.version, m.description);
                match rows.iter().find(|(v, ..)| *v == m.version) {
                    Some((_, true, checksum)) if *checksum == *m.checksum => report.applied += 1,
                    Some((_, true, _)) => report.modified.push(name),
                    _ => report.missing.push(name),
                }
            }
            report.unknown = rows
                .iter()
                .map(|(v, ..)| *v)
                .filter(|v| !MIGRATOR.iter().any(|m| m.version == *v))
                .collect();
            Ok(report)
        })
    })
    .await
}

/// GoTrue's newest applied migration (`auth.schema_migrations.version`, a 14-digit timestamp).
pub async fn gotrue_migration(db: &Database) -> Result<Inspect<Option<String>>, sqlx::Error> {
    read_only(db, |conn| {
        Box::pin(async move {
            sqlx::query_scalar("select max(version)::text from auth.schema_migrations")
                .fetch_one(conn)
                .await
        })
    })
    .await
}

/// Auth users without a profile.
#[derive(Debug, Default)]
pub struct Orphans {
    /// Email-and-password users (what a two-call signup leaves behind when its second call
    /// fails; users created in the dashboard with a password look the same).
    pub email_users: i64,
    pub oldest: Option<OffsetDateTime>,
    pub confirmed: i64,
    pub logged_in: i64,
    /// Users from other paths (OAuth / SSO, phone, anonymous, invited): not the service's.
    pub other_paths: i64,
}

pub async fn orphans(db: &Database, table: &ProfileTable) -> Result<Inspect<Orphans>, sqlx::Error> {
    // The table's name is two checked identifiers, quoted (ProfileTable::quoted).
    let sql = format!(
        "with orphan as ( \
                   select u.created_at, u.email_confirmed_at, u.last_sign_in_at, \
                     (exists (select 1 from auth.identities i \
                              where i.user_id = u.id and i.provider = 'email') \
                      and not u.is_sso_user and not coalesce(u.is_anonymous, false) \
                      and u.invited_at is null) as by_email \
                   from auth.users u \
                   where u.deleted_at is null \
                     and not exists (select 1 from {} p where p.id = u.id)) \
                 select count(*) filter (where by_email), \
                   min(created_at) filter (where by_email), \
                   count(*) filter (where by_email and email_confirmed_at is not null), \
                   count(*) filter (where by_email and last_sign_in_at is not null), \
                   count(*) filter (where not by_email) \
                 from orphan",
        table.quoted()
    );
    read_only(db, |conn| {
        Box::pin(async move {
            let row: (i64, Option<OffsetDateTime>, i64, i64, i64) =
                sqlx::query_as(&sql).fetch_one(conn).await?;
            Ok(Orphans {
                email_users: row.0,
                oldest: row.1,
                confirmed: row.2,
                logged_in: row.3,
                other_paths: row.4,
            })
        })
    })
    .await
}

/// Users with a profile whose role is in user metadata (which they may edit themselves) and not
/// in app metadata, where the service keeps it since migration 0011.
pub async fn roles_only_in_user_metadata(
    db: &Database,
    table: &ProfileTable,
) -> Result<Inspect<i64>, sqlx::Error> {
    let sql = format!(
        "select count(*) from auth.users u \
         join {} p on p.id = u.id \
         where jsonb_typeof(u.raw_user_meta_data) = 'object' \
           and u.raw_user_meta_data ? 'role' \
           and not (jsonb_typeof(u.raw_app_meta_data) = 'object' \
                    and u.raw_app_meta_data ? 'role')",
        table.quoted()
    );
    read_only(db, |conn| {
        Box::pin(async move { sqlx::query_scalar(&sql).fetch_one(conn).await })
    })
    .await
}
