//! The database's checks: pooler, grants, migrations, schema, profile fields, orphaned users,
//! roles in metadata.

use serde_json::json;

use super::{Check, NOT_ALLOWED_FIX, describe, failed};
use crate::config::{DatabaseSettings, PoolMode};
use crate::domain::{ProfileSchema, ProfileTable};
use crate::store::inspect::{self, Inspect};
use crate::store::{Database, pooler, profile_columns, schema_check};

pub(super) async fn pooler_check(database: &DatabaseSettings) -> Check {
    let pooled = match pooler::behind_transaction_pooler(&database.url.connect_options()).await {
        Ok(pooled) => pooled,
        Err(err) => {
            return Check::problem(
                "pooler",
                format!(
                    "could not probe for a transaction pooler: {}",
                    describe(&err)
                ),
                "the probe opens two connections: allow them",
            );
        }
    };
    let details = json!({"transaction_pooler": pooled,
                         "pool_mode": format!("{:?}", database.pool_mode).to_lowercase()});
    let migrate_through_pooler = database.migrate_url.is_none() && pooled;
    match (pooled, database.pool_mode) {
        (true, PoolMode::Session) => Check::problem(
            "pooler",
            "DATABASE_URL goes through a transaction pooler, but DATABASE_POOL_MODE is session",
            "set DATABASE_POOL_MODE=transaction (and MIGRATE_DATABASE_URL for migrate)",
        ),
        (true, PoolMode::Transaction) if migrate_through_pooler => Check::problem(
            "pooler",
            "DATABASE_URL goes through a transaction pooler (DATABASE_POOL_MODE=transaction), \
             and MIGRATE_DATABASE_URL is not set: migrate will refuse",
            "set MIGRATE_DATABASE_URL to the direct connection or the session pooler",
        ),
        (true, PoolMode::Transaction) => Check::ok(
            "pooler",
            "through a transaction pooler, and DATABASE_POOL_MODE=transaction",
        ),
        (false, PoolMode::Transaction) => Check::ok(
            "pooler",
            "no transaction pooler found; DATABASE_POOL_MODE=transaction works here too (at the \
             cost of per-transaction setup; session would do)",
        ),
        (false, PoolMode::Session) => Check::ok(
            "pooler",
            "direct or session-mode connection (no transaction pooler found)",
        ),
    }
    .with(details)
}

pub(super) async fn grants(db: &Database) -> Check {
    match inspect::missing_privileges(db).await {
        Ok(Inspect::Answer(missing)) if missing.is_empty() => Check::ok(
            "grants",
            "the role may run every statement the service runs",
        ),
        Ok(Inspect::Answer(missing)) => Check::problem(
            "grants",
            format!("the role lacks {}", missing.join("; ")),
            "grant atomic_signup_service to this role (the migrations create it; see \
             docs/operations.md, Least privilege), or run migrate if the objects are older",
        )
        .with(json!({"missing": missing})),
        Ok(Inspect::NotAllowed(why) | Inspect::Missing(why)) => {
            Check::skipped("grants", why, NOT_ALLOWED_FIX)
        }
        Err(err) => failed("grants", &err),
    }
}

pub(super) async fn migrations(db: &Database) -> Check {
    let m = match inspect::migrations(db).await {
        Ok(Inspect::Answer(m)) => m,
        Ok(Inspect::Missing(_)) => {
            return Check::problem(
                "migrations",
                "none of the service's migrations is applied (no _sqlx_migrations table)",
                "run atomic-signup migrate",
            );
        }
        Ok(Inspect::NotAllowed(why)) => {
            return Check::skipped("migrations", why, NOT_ALLOWED_FIX);
        }
        Err(err) => return failed("migrations", &err),
    };
    let details = json!({"applied": m.applied, "missing": m.missing, "modified": m.modified,
                         "unknown": m.unknown});
    let mut wrong = Vec::new();
    if !m.missing.is_empty() {
        wrong.push(format!("not applied: {}", m.missing.join(", ")));
    }
    if !m.modified.is_empty() {
        wrong.push(format!(
            "applied from a different file than this release's: {}",
            m.modified.join(", ")
        ));
    }
    if !m.unknown.is_empty() {
        wrong.push(format!(
            "applied but unknown to this release (a newer one applied them): {:?}",
            m.unknown
        ));
    }
    if wrong.is_empty() {
        Check::ok(
            "migrations",
            format!("all {} applied and unchanged", m.applied),
        )
        .with(details)
    } else {
        Check::problem(
            "migrations",
            wrong.join("; "),
            "run atomic-signup migrate for missing ones; a modified migration means an applied \
             file was edited or the row was changed: restore the released file (never edit an \
             applied migration, add a new one); unknown ones: run the release that applied them",
        )
        .with(details)
    }
}

pub(super) async fn schema(db: &Database) -> Check {
    match schema_check::missing_objects(db).await {
        Ok(missing) if missing.is_empty() => Check::ok(
            "schema",
            "GoTrue's tables and columns, the profiles table and the service's functions are as \
             the service writes them",
        ),
        Ok(missing) => Check::problem(
            "schema",
            format!("missing: {}", missing.join("; ")),
            "auth.* comes from GoTrue (start GoTrue once so it migrates, or upgrade it); the \
             rest comes from atomic-signup migrate",
        )
        .with(json!({"missing": missing})),
        Err(err) => Check::problem(
            "schema",
            format!("the check's query failed: {err}"),
            "run check again",
        ),
    }
}

/// PROFILE_SCHEMA_PATH and PROFILE_TABLE against the table and what `migrate` wrote: what
/// `serve` refuses to start with.
pub(super) async fn profile(db: &Database, schema: &ProfileSchema, table: &ProfileTable) -> Check {
    let fields: Vec<&str> = schema.fields().iter().map(|f| f.name.as_str()).collect();
    match profile_columns::check(db, table, schema).await {
        Ok(problems) if problems.is_empty() => Check::ok(
            "profile",
            format!(
                "the profile fields ({}) are columns of {table} that the signup may write",
                fields.join(", ")
            ),
        )
        .with(json!({"table": table.to_string(), "fields": fields})),
        Ok(problems) => Check::problem(
            "profile",
            problems.join("; "),
            "change PROFILE_SCHEMA_PATH's schema or the table so that they agree, then run \
             atomic-signup migrate with that PROFILE_SCHEMA_PATH and PROFILE_TABLE",
        )
        .with(json!({"table": table.to_string(), "fields": fields, "problems": problems})),
        Err(err) => Check::problem(
            "profile",
            format!("the check's query failed: {err}"),
            "run check again",
        ),
    }
}

pub(super) async fn orphans(db: &Database, table: &ProfileTable) -> Check {
    match inspect::orphans(db, table).await {
        Ok(Inspect::Answer(o)) => {
            let oldest = o.oldest.and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            });
            let details = json!({"email_users": o.email_users, "oldest": oldest,
                                 "confirmed": o.confirmed, "logged_in": o.logged_in,
                                 "other_paths": o.other_paths});
            let others = format!(
                "{} user(s) from other paths (OAuth / SSO, phone, anonymous, invited) have no \
                 profile: not the service's, listed only",
                o.other_paths
            );
            if o.email_users == 0 {
                Check::ok(
                    "orphans",
                    format!("no email user without a profile; {others}"),
                )
                .with(details)
            } else {
                Check::problem(
                    "orphans",
                    format!(
                        "{} email user(s) have no profile (oldest created {}; {} confirmed, {} \
                         ever logged in): what a two-call signup leaves behind; {others}",
                        o.email_users,
                        oldest.as_deref().unwrap_or("?"),
                        o.confirmed,
                        o.logged_in
                    ),
                    "run `atomic-signup repair` to list them and what it would do, then \
                     `atomic-signup repair --apply` to give each a profile (or, with \
                     --delete-unconfirmed-older-than, to delete abandoned ones); users made in \
                     the dashboard with a password are counted here too",
                )
                .with(details)
            }
        }
        Ok(Inspect::NotAllowed(why) | Inspect::Missing(why)) => {
            Check::skipped("orphans", why, NOT_ALLOWED_FIX)
        }
        Err(err) => failed("orphans", &err),
    }
}

/// Whether users that GoTrue creates itself get a profile from the database's trigger
/// (PROFILE_FOR_EXTERNAL_USERS, as `migrate` last wrote it): said either way, never a problem.
pub(super) async fn external_users(db: &Database) -> Check {
    match crate::store::external_users::read(db).await {
        Ok(Some(role)) => Check::ok(
            "external_users",
            format!(
                "on: users that GoTrue creates itself (OAuth, invites, magic links, the \
                 dashboard) get a profile in the same transaction (role {role} when their app \
                 metadata names none of SIGNUP_ROLES)"
            ),
        )
        .with(json!({"enabled": true, "default_role": role})),
        Ok(None) => Check::ok(
            "external_users",
            "off: users that GoTrue creates itself get no profile from this service \
             (PROFILE_FOR_EXTERNAL_USERS=true with `migrate` switches it on)",
        )
        .with(json!({"enabled": false})),
        Err(err) => Check::skipped(
            "external_users",
            format!("could not be read: {err}"),
            "run `atomic-signup migrate`, or check with the role migrate uses",
        ),
    }
}

pub(super) async fn role_metadata(db: &Database, table: &ProfileTable) -> Check {
    match inspect::roles_only_in_user_metadata(db, table).await {
        Ok(Inspect::Answer(0)) => Check::ok(
            "role_metadata",
            "every profile's user has its role in app metadata, none only in user metadata",
        ),
        Ok(Inspect::Answer(n)) => Check::problem(
            "role_metadata",
            format!(
                "{n} user(s) have their role only in user metadata, which they may edit \
                 themselves"
            ),
            "copy the role into app metadata (docs/operations.md, section `atomic-signup check`, has the update) and \
             authorise on public.profiles.role or app_metadata.role, never user_metadata",
        )
        .with(json!({"users": n})),
        Ok(Inspect::NotAllowed(why) | Inspect::Missing(why)) => {
            Check::skipped("role_metadata", why, NOT_ALLOWED_FIX)
        }
        Err(err) => failed("role_metadata", &err),
    }
}
