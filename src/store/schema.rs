//! The startup check: the tables, columns and functions the service relies on exist, and every
//! embedded migration is applied. Reads only pg_catalog (visible to any role) and, when the role
//! may read it, sqlx's `_sqlx_migrations`.

use sqlx::PgPool;

use super::{MIGRATOR, StoreError};

/// Tables and the columns of each that the service writes or reads.
const TABLES: [(&str, &[&str]); 6] = [
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
    (
        "public.profiles",
        &[
            "id",
            "name",
            "role",
            "onboarding_completed",
            "created_at",
            "updated_at",
        ],
    ),
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
            "user_id",
            "expires_at",
        ],
    ),
];

const FUNCTIONS: [&str; 8] = [
    "atomic_signup.create_user(uuid,text,text,text,text,boolean)",
    "atomic_signup.create_user_idempotent(uuid,text,text,text,text,boolean,text,uuid,smallint,jsonb)",
    "atomic_signup.claim_idempotency_key(text,bytea,uuid,interval,interval)",
    "atomic_signup.release_idempotency_key(text,uuid)",
    "atomic_signup.purge_idempotency_keys()",
    "atomic_signup.find_profile(uuid)",
    "atomic_signup.find_profile_by_email(text)",
    "atomic_signup.claim_confirmation()",
];

/// Everything missing, in words an operator can act on (empty: all there).
pub async fn missing_schema(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let mut missing = Vec::new();
    for (table, columns) in TABLES {
        let present: Option<Vec<String>> = sqlx::query_scalar!(
            "select case when to_regclass($1) is null then null else \
               array(select attname::text from pg_attribute \
                     where attrelid = to_regclass($1) and attnum > 0 and not attisdropped) end",
            table
        )
        .fetch_one(pool)
        .await?;
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
    for function in FUNCTIONS {
        let exists: bool = sqlx::query_scalar!(
            r#"select to_regprocedure($1) is not null as "exists!""#,
            function
        )
        .fetch_one(pool)
        .await?;
        if !exists {
            missing.push(format!("function {function}"));
        }
    }
    missing.extend(unapplied_migrations(pool).await?);
    Ok(missing)
}

/// Embedded migrations the database has not applied (or applied and failed). Empty when the
/// role may not read `_sqlx_migrations` (a least-privilege role): the functions checked above
/// then stand for the migrations.
async fn unapplied_migrations(pool: &PgPool) -> Result<Vec<String>, StoreError> {
    let applied: Vec<(i64, bool)> =
        match sqlx::query!("select version, success from _sqlx_migrations")
            .fetch_all(pool)
            .await
        {
            Ok(rows) => rows.into_iter().map(|r| (r.version, r.success)).collect(),
            Err(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("42501" | "42P01")) =>
            {
                // No right to read it, or no such table (then the checks above fail anyway).
                return Ok(Vec::new());
            }
            Err(err) => return Err(err.into()),
        };
    Ok(MIGRATOR
        .iter()
        .filter(|m| !applied.iter().any(|(v, ok)| *v == m.version && *ok))
        .map(|m| format!("migration {} ({})", m.version, m.description))
        .collect())
}
