//! `atomic-signup check`: an operator's health report of a Supabase project, one line per check,
//! each ok or a problem with what to do. It changes nothing (see `store::inspect`).

use serde::Serialize;
use serde_json::{Value, json};

mod database;
mod gotrue;
mod hooks;

pub use gotrue::{TESTED_GOTRUE, TESTED_GOTRUE_MIGRATIONS};

use crate::config::{DatabaseSettings, GoTrueSettings, HookSettings, PoolMode};
use crate::domain::{ProfileSchema, ProfileTable};
use crate::store::Database;
use crate::store::inspect;

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
pub async fn run(
    database: &DatabaseSettings,
    gotrue: Option<&GoTrueSettings>,
    profile: (&ProfileSchema, &ProfileTable),
    hook_settings: &HookSettings,
) -> Report {
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
            checks.push(gotrue::gotrue_health(gotrue).await);
            return finish(checks);
        }
    }
    checks.push(database::pooler_check(database).await);
    checks.push(database::grants(&db).await);
    checks.push(database::migrations(&db).await);
    checks.push(database::schema(&db).await);
    checks.push(database::profile(&db, profile.0, profile.1).await);
    checks.push(hooks::hooks(&db, hook_settings).await);
    checks.push(gotrue::gotrue_migrations(&db).await);
    checks.push(gotrue::gotrue_health(gotrue).await);
    checks.push(database::orphans(&db, profile.1).await);
    checks.push(database::external_users(&db).await);
    checks.push(database::role_metadata(&db, profile.1).await);
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

fn failed(check: &'static str, err: &sqlx::Error) -> Check {
    Check::problem(
        check,
        format!("the check's query failed: {}", describe(err)),
        "run check again; if it persists, the database is not answering normally",
    )
}
