//! The service's database objects by name, and how they are found in `pg_catalog`: the one place
//! that lists the functions' signatures and looks a function up by signature. The startup schema
//! check (does it exist?) and `check`'s grants (may this role call it?) both ask here.
//!
//! Everything is read from `pg_catalog`, which every role may read (`to_regprocedure` would need
//! USAGE on the schema, which the least-privilege role has not on `auth`).

use sqlx::PgConnection;

/// `atomic_signup.create_user`: THE signup's inserts, called only by `create_user_idempotent`.
pub const CREATE_USER: &str = "atomic_signup.create_user(uuid,text,text,text,boolean,jsonb)";

/// The functions the service role calls.
pub const SERVICE_FUNCTIONS: [&str; 8] = [
    "atomic_signup.create_user_idempotent(uuid,text,text,text,boolean,jsonb,text,uuid,smallint,jsonb)",
    "atomic_signup.claim_idempotency_key(text,bytea,uuid,interval,interval)",
    "atomic_signup.complete_idempotency_key(text,uuid,smallint,jsonb)",
    "atomic_signup.release_idempotency_key(text,uuid)",
    "atomic_signup.purge_idempotency_keys()",
    "atomic_signup.find_profile(uuid)",
    "atomic_signup.find_profile_by_email(text)",
    "atomic_signup.claim_confirmation()",
];

/// Every function the service relies on.
pub fn functions() -> impl Iterator<Item = &'static str> {
    std::iter::once(CREATE_USER).chain(SERVICE_FUNCTIONS)
}

/// `schema.name(argument types)` → (schema, name, argument types without spaces or parentheses);
/// a name without a schema is in `public`, one without parentheses has no arguments.
pub fn object_parts(object: &str) -> (&str, &str, &str) {
    let (qualified, arguments) = object
        .trim_end_matches(')')
        .split_once('(')
        .unwrap_or((object, ""));
    let (schema, name) = qualified.split_once('.').unwrap_or(("public", qualified));
    (schema, name, arguments)
}

/// The `pg_proc` rows of the function `$1.$2($3)` (see [`object_parts`]), as `p`.
macro_rules! function_by_signature {
    () => {
        "from pg_catalog.pg_proc p \
         join pg_catalog.pg_namespace n on n.oid = p.pronamespace \
         where n.nspname = $1 and p.proname = $2 \
           and replace(pg_catalog.oidvectortypes(p.proargtypes), ' ', '') = $3"
    };
}

/// Whether the function `signature` exists.
pub async fn function_exists(
    conn: &mut PgConnection,
    signature: &str,
) -> Result<bool, sqlx::Error> {
    let (schema, name, arguments) = object_parts(signature);
    sqlx::query_scalar(concat!(
        "select exists (select 1 ",
        function_by_signature!(),
        ")"
    ))
    .bind(schema)
    .bind(name)
    .bind(arguments)
    .fetch_one(conn)
    .await
}

/// Whether the connection's role holds `privilege` on the function `signature`; `None` when
/// there is no such function.
pub async fn function_privilege(
    conn: &mut PgConnection,
    signature: &str,
    privilege: &str,
) -> Result<Option<bool>, sqlx::Error> {
    let (schema, name, arguments) = object_parts(signature);
    sqlx::query_scalar(concat!(
        "select pg_catalog.has_function_privilege(p.oid, $4) ",
        function_by_signature!()
    ))
    .bind(schema)
    .bind(name)
    .bind(arguments)
    .bind(privilege)
    .fetch_optional(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names_split_into_schema_name_and_arguments() {
        assert_eq!(
            object_parts("atomic_signup.find_profile(uuid)"),
            ("atomic_signup", "find_profile", "uuid")
        );
        assert_eq!(
            object_parts("atomic_signup.claim_confirmation()"),
            ("atomic_signup", "claim_confirmation", "")
        );
        assert_eq!(object_parts("profiles"), ("public", "profiles", ""));
        assert_eq!(functions().count(), 9);
    }
}
