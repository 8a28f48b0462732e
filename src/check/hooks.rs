//! GoTrue's auth hooks on user creation (HOOK_*_USER_CREATED_*): each enabled hook's target is
//! looked at (a Postgres function: it exists, takes one jsonb, returns jsonb, and this role may
//! run it; an HTTP hook: its secrets are well formed, the endpoint is not called).

use serde_json::json;

use super::Check;
use crate::config::{Hook, HookSettings};
use crate::store::{Database, StoreError, unit};

pub(super) async fn hooks(db: &Database, hooks: &HookSettings) -> Check {
    let enabled: Vec<(&str, &Hook)> = hooks.enabled().collect();
    if enabled.is_empty() {
        return Check::ok("hooks", "no auth hook on user creation is enabled");
    }
    let mut found = Vec::new();
    let mut fine = true;
    for (name, hook) in &enabled {
        found.push(match hook {
            Hook::PgFunction { schema, function } => {
                match pg_function(db, schema, function).await {
                    Ok((state, usable)) => {
                        fine &= usable;
                        format!("{name}: {hook} {state}")
                    }
                    Err(err) => {
                        fine = false;
                        format!("{name}: {hook} could not be looked up ({err})")
                    }
                }
            }
            Hook::Http { secrets, .. } => format!(
                "{name}: {hook}, {} well-formed secret(s) (the endpoint is not called by check)",
                secrets.len()
            ),
        });
    }
    let names: Vec<&str> = enabled.iter().map(|(name, _)| *name).collect();
    if !fine {
        return Check::problem(
            "hooks",
            found.join("; "),
            "create the function (one jsonb argument, returning jsonb) and grant EXECUTE on it \
             to the service's role",
        )
        .with(json!({"enabled": names}));
    }
    Check::ok("hooks", found.join("; ")).with(json!({"enabled": names}))
}

/// What the catalog says of `schema.function`, in words.
async fn pg_function(
    db: &Database,
    schema: &str,
    function: &str,
) -> Result<(String, bool), StoreError> {
    let row: Option<(bool, bool)> = unit!(db, |conn| sqlx::query_as(
        "select p.pronargs = 1 and p.proargtypes[0] = 'jsonb'::regtype \
                  and p.prorettype = 'jsonb'::regtype, \
                pg_catalog.has_function_privilege(p.oid, 'execute') \
         from pg_catalog.pg_proc p \
         join pg_catalog.pg_namespace n on n.oid = p.pronamespace \
         where n.nspname = $1 and p.proname = $2 \
         order by 1 desc limit 1"
    )
    .bind(schema)
    .bind(function)
    .fetch_optional(conn)
    .await)?;
    Ok(match row {
        None => ("does not exist".to_owned(), false),
        Some((false, _)) => ("does not take one jsonb and return jsonb".to_owned(), false),
        Some((true, false)) => (
            "may not be run by this role (grant it EXECUTE)".to_owned(),
            false,
        ),
        Some((true, true)) => (
            "takes and returns jsonb, and this role may run it".to_owned(),
            true,
        ),
    })
}
