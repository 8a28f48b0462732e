//! The profile schema (PROFILE_SCHEMA_PATH) held against the database: the profile table's
//! (PROFILE_TABLE) columns as `pg_catalog` describes them, and what the signup function reads:
//! `atomic_signup.profile_columns`, the allow-list of columns it writes, and
//! `atomic_signup.profile_table` (migrations 20261205000016 and 20261205000017). [`check`] is
//! what startup and `check` report.

use sqlx::PgPool;

use super::{Database, StoreError, unit};
use crate::domain::{FieldType, ProfileField, ProfileSchema, ProfileTable};

/// Columns the service writes itself: never a profile field, never required of the schema.
const SERVICE_COLUMNS: [&str; 2] = ["id", "role"];

/// A column of the profile table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    /// As `format_type` writes it (`character varying(20)`), for messages.
    pub type_name: String,
    /// `pg_type.typname` (`varchar`, `int4`, `date` …).
    pub base: String,
    /// The declared length of `varchar(n)` / `char(n)`.
    pub max_chars: Option<i32>,
    pub not_null: bool,
    pub has_default: bool,
    /// Generated or identity: written by Postgres.
    pub generated: bool,
    /// The column alone is unique (a primary key or a unique index on it only).
    pub unique: bool,
}

/// The profile table's columns; `None` when there is no such table.
pub async fn columns(
    db: &Database,
    table: &ProfileTable,
) -> Result<Option<Vec<Column>>, StoreError> {
    let (schema, table) = (table.schema(), table.table());
    let rows = unit!(db, |conn| sqlx::query!(
        r#"select a.attname::text as "name!",
                  pg_catalog.format_type(a.atttypid, a.atttypmod) as "type_name!",
                  t.typname::text as "base!",
                  case when t.typname in ('varchar', 'bpchar') and a.atttypmod > 4
                       then a.atttypmod - 4 end as max_chars,
                  a.attnotnull as "not_null!",
                  a.atthasdef as "has_default!",
                  (a.attgenerated <> '' or a.attidentity <> '') as "generated!",
                  exists (select 1 from pg_catalog.pg_index i
                          where i.indrelid = c.oid and i.indisunique and i.indnatts = 1
                            and i.indkey[0] = a.attnum and i.indpred is null) as "unique!"
           from pg_catalog.pg_class c
           join pg_catalog.pg_namespace n on n.oid = c.relnamespace
           join pg_catalog.pg_attribute a on a.attrelid = c.oid
           join pg_catalog.pg_type t on t.oid = a.atttypid
           where n.nspname = $1 and c.relname = $2 and c.relkind in ('r', 'p')
             and a.attnum > 0 and not a.attisdropped
           order by a.attnum"#,
        schema,
        table
    )
    .fetch_all(conn)
    .await)?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .map(|r| Column {
                name: r.name,
                type_name: r.type_name,
                base: r.base,
                max_chars: r.max_chars,
                not_null: r.not_null,
                has_default: r.has_default,
                generated: r.generated,
                unique: r.unique,
            })
            .collect(),
    ))
}

/// Makes `atomic_signup.profile_columns` hold exactly the schema's fields and
/// `atomic_signup.profile_table` name `table`, and generates the functions that write and read
/// profiles for them (`atomic_signup.define_profile`, one statement). Run by `atomic-signup
/// migrate` on the owner's connection: the service role may only read the two tables.
pub async fn write(
    pool: &PgPool,
    table: &ProfileTable,
    schema: &ProfileSchema,
) -> Result<(), StoreError> {
    let names: Vec<String> = schema.fields().iter().map(|f| f.name.clone()).collect();
    sqlx::query!(
        "select atomic_signup.define_profile($1, $2, $3)",
        table.schema(),
        table.table(),
        &names
    )
    .execute(pool)
    .await?;
    Ok(())
}

/// Everything that keeps the schema from working against this database, each naming the field
/// and the column (empty: it fits). Reads the table's columns and what `migrate` wrote.
pub async fn check(
    db: &Database,
    table: &ProfileTable,
    schema: &ProfileSchema,
) -> Result<Vec<String>, StoreError> {
    let Some(columns) = columns(db, table).await? else {
        return Ok(vec![format!(
            "table {table} does not exist (PROFILE_TABLE)"
        )]);
    };
    let mut found = problems(table, schema, &columns);
    let written = unit!(db, |conn| sqlx::query!(
        r#"select table_schema as "table_schema!", table_name as "table_name!",
                  array(select column_name from atomic_signup.profile_columns) as "columns!"
           from atomic_signup.profile_table"#
    )
    .fetch_one(conn)
    .await)?;
    if (written.table_schema.as_str(), written.table_name.as_str())
        != (table.schema(), table.table())
    {
        found.push(format!(
            "the database writes profiles into {}.{}, not {table}: run atomic-signup migrate \
             with this PROFILE_TABLE",
            written.table_schema, written.table_name
        ));
    }
    for field in schema.fields() {
        if !written.columns.contains(&field.name) {
            found.push(format!(
                "profile field `{}` is not in atomic_signup.profile_columns: run atomic-signup \
                 migrate with this PROFILE_SCHEMA_PATH",
                field.name
            ));
        }
    }
    Ok(found)
}

/// The schema against the table's `columns` (see [`check`]).
pub fn problems(table: &ProfileTable, schema: &ProfileSchema, columns: &[Column]) -> Vec<String> {
    let mut found = Vec::new();
    let column = |name: &str| columns.iter().find(|c| c.name == name);
    match column("id") {
        Some(id) if id.base == "uuid" && id.unique => {}
        _ => found.push(format!(
            "{table} needs a column id uuid, its primary key (the user's id)"
        )),
    }
    match column("role") {
        Some(role) if matches!(role.base.as_str(), "text" | "varchar" | "citext") => {}
        _ => found.push(format!(
            "{table} needs a column role text (the signup's role)"
        )),
    }
    for field in schema.fields() {
        let Some(column) = column(&field.name) else {
            found.push(format!(
                "profile field `{}`: {table} has no column `{}`",
                field.name, field.name
            ));
            continue;
        };
        if let Some(problem) = mismatch(field, column) {
            found.push(format!(
                "profile field `{}` and column {table}.{} ({}): {problem}",
                field.name, column.name, column.type_name
            ));
        }
    }
    for column in columns {
        let needs_value = column.not_null && !column.has_default && !column.generated;
        if !needs_value || SERVICE_COLUMNS.contains(&column.name.as_str()) {
            continue;
        }
        match schema.fields().iter().find(|f| f.name == column.name) {
            None => found.push(format!(
                "column {table}.{} is NOT NULL without a default: declare it as a required \
                 profile field (or give the column a default)",
                column.name
            )),
            Some(field) if !field.required && field.default.is_none() => found.push(format!(
                "profile field `{}` may be left out, but column {table}.{} is NOT NULL \
                 without a default: make it required or give it a default",
                field.name, column.name
            )),
            Some(_) => {}
        }
    }
    found
}

/// Why `column` cannot hold `field`'s values, if it cannot.
fn mismatch(field: &ProfileField, column: &Column) -> Option<String> {
    if column.generated {
        return Some("the column is generated by Postgres; it cannot be a profile field".into());
    }
    let base = column.base.as_str();
    let fits = match (field.kind, field.format.as_deref()) {
        (FieldType::String, Some("date")) => base == "date",
        (FieldType::String, _) => matches!(base, "text" | "varchar" | "bpchar" | "citext"),
        (FieldType::Integer, _) => matches!(base, "int2" | "int4" | "int8" | "numeric"),
        (FieldType::Number, _) => matches!(base, "numeric" | "float4" | "float8"),
        (FieldType::Boolean, _) => base == "bool",
    };
    if !fits {
        let wanted = match (field.kind, field.format.as_deref()) {
            (FieldType::String, Some("date")) => "date",
            (FieldType::String, _) => "text, varchar, char or citext",
            (FieldType::Integer, _) => "smallint, integer, bigint or numeric",
            (FieldType::Number, _) => "numeric, real or double precision",
            (FieldType::Boolean, _) => "boolean",
        };
        return Some(format!("{} needs a column of type {wanted}", field.kind));
    }
    if let Some(chars) = column.max_chars {
        let chars = u64::try_from(chars).unwrap_or(0);
        if field.max_length.is_none_or(|max| max > chars) {
            return Some(format!(
                "the column holds at most {chars} characters: declare maxLength {chars} or less"
            ));
        }
    }
    let range = match base {
        "int2" => Some((f64::from(i16::MIN), f64::from(i16::MAX))),
        "int4" => Some((f64::from(i32::MIN), f64::from(i32::MAX))),
        // i64's bounds as f64 round outwards: keep well inside them.
        "int8" => Some((-9.0e18, 9.0e18)),
        _ => None,
    };
    if let Some((low, high)) = range {
        let inside = |v: Option<f64>| v.is_some_and(|v| (low..=high).contains(&v));
        if !inside(field.minimum) || !inside(field.maximum) {
            return Some(format!(
                "declare minimum and maximum within the column's range ({low} to {high})"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, base: &str, not_null: bool, has_default: bool) -> Column {
        Column {
            name: name.into(),
            type_name: base.into(),
            base: base.into(),
            max_chars: None,
            not_null,
            has_default,
            generated: false,
            unique: name == "id",
        }
    }

    fn today() -> Vec<Column> {
        vec![
            column("id", "uuid", true, false),
            column("name", "text", true, false),
            column("role", "text", true, false),
            column("onboarding_completed", "bool", true, true),
            column("created_at", "timestamptz", true, true),
            column("updated_at", "timestamptz", true, true),
        ]
    }

    #[test]
    fn the_default_schema_fits_todays_table() {
        let table = ProfileTable::default();
        assert_eq!(
            problems(&table, &ProfileSchema::default(), &today()),
            Vec::<String>::new()
        );
        // Without a unique id or a role column, no profile can be written.
        let mut columns = today();
        columns[0].unique = false;
        columns.retain(|c| c.name != "role");
        assert_eq!(
            problems(&table, &ProfileSchema::default(), &columns),
            [
                "public.profiles needs a column id uuid, its primary key (the user's id)",
                "public.profiles needs a column role text (the signup's role)"
            ]
        );
    }

    #[test]
    fn a_missing_column_a_wrong_type_and_an_undeclared_not_null_column_are_named() {
        let schema = ProfileSchema::parse(
            r#"{"properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                               "nickname": {"type": "string", "maxLength": 40},
                               "code": {"type": "string"}, "opt_in": {"type": "boolean"}},
                "required": ["name"]}"#,
        )
        .unwrap();
        let mut columns = today();
        columns.push(column("age", "int4", false, false));
        columns.push(Column {
            max_chars: Some(20),
            type_name: "character varying(20)".into(),
            ..column("nickname", "varchar", false, false)
        });
        columns.push(column("opt_in", "text", false, false));
        columns.push(column("company", "text", true, false));
        columns.push(column("code", "text", true, false));
        let table = ProfileTable::default();
        let found = problems(&table, &schema, &columns);
        let expected = [
            "profile field `age` and column public.profiles.age (int4): declare minimum and maximum",
            "profile field `nickname` and column public.profiles.nickname (character varying(20)): the column holds at most 20",
            "profile field `opt_in` and column public.profiles.opt_in (text): a boolean needs a column of type boolean",
            "column public.profiles.company is NOT NULL without a default",
            "profile field `code` may be left out",
        ];
        assert_eq!(found.len(), expected.len(), "{found:#?}");
        for (found, expected) in found.iter().zip(expected) {
            assert!(found.starts_with(expected), "{found}");
        }
        let schema = ProfileSchema::parse(
            r#"{"properties": {"name": {"type": "string"}, "bio": {"type": "string"}},
                "required": ["name"]}"#,
        )
        .unwrap();
        assert_eq!(
            problems(&table, &schema, &today()),
            ["profile field `bio`: public.profiles has no column `bio`"]
        );
    }
}
