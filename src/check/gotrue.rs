//! GoTrue's checks: its migrations in the database, and its `/health` version.

use std::time::Duration;

use serde_json::json;

use super::{Check, failed};
use crate::config::GoTrueSettings;
use crate::gotrue::GoTrueClient;
use crate::store::Database;
use crate::store::inspect::{self, Inspect};

/// The GoTrue releases the service was tested with (`/health`'s `version`), oldest and newest.
pub const TESTED_GOTRUE: (&str, &str) = ("v2.186.0", "v2.196.0");
/// Their newest migrations (`auth.schema_migrations.version`): v2.186.0's and v2.196.0's.
pub const TESTED_GOTRUE_MIGRATIONS: (&str, &str) = ("20260121000000", "20260625000000");

pub(super) async fn gotrue_migrations(db: &Database) -> Check {
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

pub(super) async fn gotrue_health(gotrue: Option<&GoTrueSettings>) -> Check {
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
