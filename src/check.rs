//! `atomic-signup check`: an operator's health report of a Supabase project, one line per check,
//! each ok or a problem with what to do. It changes nothing (see `store::inspect`).

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{DatabaseSettings, GoTrueSettings, PoolMode};
use crate::gotrue::GoTrueClient;
use crate::store::inspect::{self, Inspect};
use crate::store::{Database, pooler, schema_check};

/// The GoTrue releases the service was tested with (`/health`'s `version`), oldest and newest.
pub const TESTED_GOTRUE: (&str, &str) = ("v2.186.0", "v2.196.0");
/// Their newest migrations (`auth.schema_migrations.version`): v2.186.0's and v2.196.0's.
pub const TESTED_GOTRUE_MIGRATIONS: (&str, &str) = ("20260121000000", "20260625000000");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Problem,
    /// Not checked: this role may not look, or what it needs is not configured. Says why.
    Skipped,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub status: Status,
    pub summary: String,
    /// What to do, for a problem (or how to run a skipped check).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Numbers for machines (counts, versions).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

impl Check {
    fn ok(check: &'static str, summary: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Ok,
            summary: summary.into(),
            fix: None,
            details: Value::Null,
        }
    }

    fn problem(check: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Problem,
            summary: summary.into(),
            fix: Some(fix.into()),
            details: Value::Null,
        }
    }

    fn skipped(check: &'static str, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            status: Status::Skipped,
            summary: summary.into(),
            fix: Some(fix.into()),
            details: Value::Null,
        }
    }

    fn with(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    /// No check found a problem.
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// One line per check (and an indented `fix:` line under a problem or a skipped check).
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let status = match c.status {
                Status::Ok => "ok",
                Status::Problem => "PROBLEM",
                Status::Skipped => "skipped",
            };
            out.push_str(&format!("{status:<8} {:<20} {}\n", c.check, c.summary));
            if let Some(fix) = &c.fix {
                out.push_str(&format!("{:<29} fix: {fix}\n", ""));
            }
        }
        let problems = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Problem)
            .count();
        out.push_str(&if problems == 0 {
            "all checks hold\n".to_owned()
        } else {
            format!("{problems} problem(s)\n")
        });
        out
    }
}

const NOT_ALLOWED_FIX: &str = "run check with a role that may read the auth schema and \
     _sqlx_migrations (the one migrate uses, e.g. DATABASE_URL=<MIGRATE_DATABASE_URL> atomic-signup check)";

/// Runs every check. `gotrue` is `None` when neither GOTRUE_URL nor SUPABASE_URL is set.
pub async fn run(database: &DatabaseSettings, gotrue: Option<&GoTrueSettings>) -> Report {
    let mut checks = Vec::new();
    // Pooler-safe whatever DATABASE_POOL_MODE says (the pooler check compares the two): no
    // startup parameter a pooler refuses, nothing left on a server connection.
    let db = Database::new(&DatabaseSettings {
        pool_mode: PoolMode::Transaction,
        ..database.clone()
    });
    match inspect::connection(&db).await {
        Ok(c) => checks.push(
            Check::ok(
                "database",
                format!(
                    "reachable: PostgreSQL {} (database {}) as role {}{}",
                    c.server_version,
                    c.database,
                    c.role,
                    if c.superuser { ", a superuser" } else { "" }
                ),
            )
            .with(json!({"role": c.role, "superuser": c.superuser,
                         "server_version": c.server_version})),
        ),
        Err(err) => {
            checks.push(Check::problem(
                "database",
                format!("not reachable through DATABASE_URL: {}", describe(&err)),
                "check DATABASE_URL (host, port, user, password, database) and that the \
                 database accepts this client",
            ));
            checks.push(gotrue_health(gotrue).await);
            return finish(checks);
        }
    }
    checks.push(pooler_check(database).await);
    checks.push(grants(&db).await);
    checks.push(migrations(&db).await);
    checks.push(schema(&db).await);
    checks.push(gotrue_migrations(&db).await);
    checks.push(gotrue_health(gotrue).await);
    checks.push(orphans(&db).await);
    checks.push(role_metadata(&db).await);
    finish(checks)
}

fn finish(checks: Vec<Check>) -> Report {
    Report {
        ok: checks.iter().all(|c| c.status != Status::Problem),
        checks,
    }
}

/// An error in words, without SQL or the URL.
fn describe(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        sqlx::Error::PoolTimedOut => "no connection within the acquire timeout".to_owned(),
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::Tls(_) => "TLS failed".to_owned(),
        other => other.to_string(),
    }
}

async fn pooler_check(database: &DatabaseSettings) -> Check {
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

async fn grants(db: &Database) -> Check {
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

fn failed(check: &'static str, err: &sqlx::Error) -> Check {
    Check::problem(
        check,
        format!("the check's query failed: {}", describe(err)),
        "run check again; if it persists, the database is not answering normally",
    )
}

async fn migrations(db: &Database) -> Check {
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

async fn schema(db: &Database) -> Check {
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

async fn gotrue_migrations(db: &Database) -> Check {
    let (oldest, newest) = TESTED_GOTRUE_MIGRATIONS;
    match inspect::gotrue_migration(db).await {
        Ok(Inspect::Answer(Some(version))) => {
            let details = json!({"version": version, "tested": [oldest, newest]});
            if version.as_str() < oldest || version.as_str() > newest {
                Check::problem(
                    "gotrue_migrations",
                    format!(
                        "GoTrue's newest migration is {version}, outside the tested range \
                         {oldest}..{newest} (GoTrue {}..{})",
                        TESTED_GOTRUE.0, TESTED_GOTRUE.1
                    ),
                    "run the test suite against this GoTrue before relying on it, or use a \
                     tested GoTrue release",
                )
                .with(details)
            } else {
                Check::ok(
                    "gotrue_migrations",
                    format!("GoTrue's newest migration {version} is in the tested range"),
                )
                .with(details)
            }
        }
        Ok(Inspect::Answer(None)) => Check::problem(
            "gotrue_migrations",
            "auth.schema_migrations is empty: GoTrue never migrated this database",
            "start GoTrue once against this database",
        ),
        Ok(Inspect::NotAllowed(why) | Inspect::Missing(why)) => Check::skipped(
            "gotrue_migrations",
            format!("auth.schema_migrations: {why}"),
            "hosted Supabase lets no customer role read it; the schema check above covers what \
             the service writes",
        ),
        Err(err) => failed("gotrue_migrations", &err),
    }
}

/// `v2.196.0`, `2.196.0-rc.3`, `v2.196.0-2-gbc32168e` → (2, 196, 0).
fn release(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim().trim_start_matches('v');
    let core = core.split(['-', '+']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
    let parsed = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(parsed)
}

async fn gotrue_health(gotrue: Option<&GoTrueSettings>) -> Check {
    let Some(settings) = gotrue else {
        return Check::skipped(
            "gotrue",
            "GOTRUE_URL / SUPABASE_URL not set",
            "set them as for serve to check GoTrue's /health",
        );
    };
    let client = match GoTrueClient::new(settings) {
        Ok(client) => client,
        Err(_) => {
            return Check::problem(
                "gotrue",
                "cannot build an HTTP client",
                "check the TLS setup",
            );
        }
    };
    let version = match client.version(Duration::from_secs(10)).await {
        Ok(version) => version,
        Err(err) => {
            return Check::problem(
                "gotrue",
                format!("GoTrue's /health did not answer: {err}"),
                "check GOTRUE_URL / SUPABASE_URL and SUPABASE_ANON_KEY, and that GoTrue runs",
            );
        }
    };
    let (oldest, newest) = TESTED_GOTRUE;
    let details = json!({"version": version, "tested": [oldest, newest]});
    match (release(&version), release(oldest), release(newest)) {
        (Some(v), Some(lo), Some(hi)) if lo <= v && v <= hi => Check::ok(
            "gotrue",
            format!("GoTrue {version} answers /health, in the tested range {oldest}..{newest}"),
        ),
        _ => Check::problem(
            "gotrue",
            format!("GoTrue {version:?} is outside the tested range {oldest}..{newest}"),
            "run the test suite against this GoTrue before relying on it, or use a tested \
             GoTrue release",
        ),
    }
    .with(details)
}

async fn orphans(db: &Database) -> Check {
    match inspect::orphans(db).await {
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
                    "give each a profile (insert into public.profiles) or delete the auth user; \
                     users made in the dashboard with a password are counted here too",
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

async fn role_metadata(db: &Database) -> Check {
    match inspect::roles_only_in_user_metadata(db).await {
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

#[cfg(test)]
mod tests {
    use super::release;

    #[test]
    fn release_versions_parse_with_or_without_v_and_suffixes() {
        assert_eq!(release("v2.196.0"), Some((2, 196, 0)));
        assert_eq!(release("2.186.0"), Some((2, 186, 0)));
        assert_eq!(release("v2.196.0-rc.23"), Some((2, 196, 0)));
        assert_eq!(release("v2.196.0-2-gbc32168e"), Some((2, 196, 0)));
        assert_eq!(release("vunspecified"), None);
        assert_eq!(release("unknown version"), None);
        assert_eq!(release("v2.196"), None);
    }
}
