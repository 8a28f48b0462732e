//! The startup check: the tables, columns and functions the service relies on exist, and every
//! embedded migration is applied. Reads only pg_catalog (visible to any role) and, when the role
//! may read it, sqlx's `_sqlx_migrations`.

use super::inspect::{self, Inspect};
use super::{Database, StoreError, catalog, unit};

/// Tables and the columns of each that the service writes or reads.
const TABLES: [(&str, &[&str]); 7] = [
    (
        "auth.users",
        &[
            "instance_id",
            "id",
            "aud",
            "role",
            "email",
            "encrypted_password",
            "email_confirmed_at",
            "confirmation_token",
            "recovery_token",
            "email_change_token_new",
            "email_change",
            "email_change_token_current",
            "phone_change",
            "phone_change_token",
            "reauthentication_token",
            "email_change_confirm_status",
            "phone",
            "raw_app_meta_data",
            "raw_user_meta_data",
            "is_super_admin",
            "is_sso_user",
            "is_anonymous",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "auth.identities",
        &[
            "id",
            "provider_id",
            "user_id",
            "provider",
            "identity_data",
            "last_sign_in_at",
            "created_at",
            "updated_at",
        ],
    ),
    (
        "auth.audit_log_entries",
        &["instance_id", "id", "payload", "created_at", "ip_address"],
    ),
    // The profile table (PROFILE_TABLE) is checked with the profile's fields
    // (store::profile_columns), and what migrate writes of them here.
    (
        "atomic_signup.profile_table",
        &["table_schema", "table_name"],
    ),
    ("atomic_signup.profile_columns", &["column_name"]),
    (
        "atomic_signup.confirmation_outbox",
        &[
            "id",
            "user_id",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "sent_at",
            "failed_at",
        ],
    ),
    (
        "atomic_signup.idempotency_keys",
        &[
            "key",
            "fingerprint",
            "state",
            "claim",
            "locked_until",
            "response_status",
            "response_body",
            "onboarding_completed",
            "user_id",
            "expires_at",
        ],
    ),
];

/// Everything missing, in words an operator can act on (empty: all there).
///
/// Objects are looked up in `pg_catalog` by name (not with `to_regclass`, which needs USAGE on
/// the schema: the least-privilege role has none on `auth`).
pub async fn missing_schema(db: &Database) -> Result<Vec<String>, StoreError> {
    let mut missing = missing_objects(db).await?;
    missing.extend(unapplied_migrations(db).await?);
    Ok(missing)
}

/// The tables, columns and functions of [`missing_schema`], without the migrations.
pub async fn missing_objects(db: &Database) -> Result<Vec<String>, StoreError> {
    let mut missing = Vec::new();
    for (table, columns) in TABLES {
        let (schema, name, _) = catalog::object_parts(table);
        let present: Option<Vec<String>> = unit!(db, |conn| sqlx::query_scalar!(
            "select case when c.oid is null then null else \
               array(select a.attname::text from pg_catalog.pg_attribute a \
                     where a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped) end \
             from (select 1) one \
             left join (pg_catalog.pg_class c join pg_catalog.pg_namespace n \
                        on n.oid = c.relnamespace and n.nspname = $1) \
               on c.relname = $2 and c.relkind in ('r', 'p')",
            schema,
            name
        )
        .fetch_one(conn)
        .await)?;
        match present {
            None => missing.push(format!("table {table}")),
            Some(present) => {
                let absent: Vec<&str> = columns
                    .iter()
                    .filter(|c| !present.iter().any(|p| p == *c))
                    .copied()
                    .collect();
                if !absent.is_empty() {
                    missing.push(format!("columns of {table}: {}", absent.join(", ")));
                }
            }
        }
    }
    for function in catalog::functions() {
        let exists = unit!(db, |conn| catalog::function_exists(conn, function).await)?;
        if !exists {
            missing.push(format!("function {function}"));
        }
    }
    Ok(missing)
}

/// Embedded migrations the database has not applied (or applied and failed). Empty when the
/// role may not read `_sqlx_migrations` (a least-privilege role): the functions checked above
/// then stand for the migrations.
async fn unapplied_migrations(db: &Database) -> Result<Vec<String>, StoreError> {
    match inspect::migrations(db).await? {
        Inspect::Answer(migrations) => Ok(migrations
            .missing
            .into_iter()
            .map(|m| format!("migration {m}"))
            .collect()),
        Inspect::NotAllowed(_) | Inspect::Missing(_) => {
            // No right to read it, or no such table (then the checks above fail anyway).
            tracing::info!(
                "migrations not compared: this role may not read _sqlx_migrations \
                     (the tables and functions above were checked)"
            );
            Ok(Vec::new())
        }
    }
}
