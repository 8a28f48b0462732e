//! The project's profile fields (PROFILE_SCHEMA_PATH): a JSON Schema whose properties are columns
//! of `public.profiles` that a signup writes, read once at startup into a [`ProfileSchema`];
//! [`ProfileSchema::read`] turns a request's fields into [`ProfileValues`], reporting every bad
//! field in plain words.
//!
//! The schema is a subset of JSON Schema (draft 2020-12) that maps onto columns: an object of
//! properties, each of type string, integer, number or boolean, with `format` (email, uri,
//! date), `minLength`/`maxLength`, `pattern`, `enum`, `minimum`/`maximum` (and the exclusive
//! ones), `default`, `title`, `description` and `examples`; and a `required` list. Anything else
//! is refused when the schema is read, so what the schema says is what is checked. Constraints
//! are checked with the `jsonschema` crate, compiled once per field (patterns with the linear-time
//! `regex` engine).
//!
//! `name`, when declared, also follows the display-name rules ([`super::DisplayName`]) and is
//! copied into the user's metadata, as GoTrue's clients expect.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::{DisplayName, ValidationErrors};

/// Names a property may not have: the signup's own fields, and the columns the service writes
/// itself (`id`, `role`, the timestamps) or reports from the row (`onboarding_completed`).
pub const RESERVED_FIELDS: [&str; 11] = [
    "id",
    "role",
    "email",
    "password",
    "captcha_token",
    "gotrue_meta_security",
    "user_id",
    "email_confirmed",
    "onboarding_completed",
    "created_at",
    "updated_at",
];

/// At most this many profile fields (the login's profile is built with one
/// `jsonb_build_object`, which takes at most 100 arguments: these and `role`,
/// `onboarding_completed`).
pub const MAX_FIELDS: usize = 48;

/// The schema used when PROFILE_SCHEMA_PATH is not set: today's profile (a display name);
/// [`ProfileSchema::default`] is built from it by hand, and a test holds the two together.
pub const DEFAULT_SCHEMA: &str = include_str!("profile/default-schema.json");

const SCHEMA_KEYWORDS: [&str; 8] = [
    "$schema",
    "$id",
    "title",
    "description",
    "type",
    "properties",
    "required",
    "additionalProperties",
];
/// Keywords that only document a property.
const ANNOTATIONS: [&str; 4] = ["title", "description", "examples", "default"];
const STRING_KEYWORDS: [&str; 4] = ["format", "minLength", "maxLength", "pattern"];
const NUMBER_KEYWORDS: [&str; 4] = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];
const FORMATS: [&str; 3] = ["email", "uri", "date"];

/// The JSON type of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    Integer,
    Number,
    Boolean,
}

impl FieldType {
    fn parse(value: &Value) -> Option<Self> {
        match value.as_str()? {
            "string" => Some(Self::String),
            "integer" => Some(Self::Integer),
            "number" => Some(Self::Number),
            "boolean" => Some(Self::Boolean),
            _ => None,
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::String => "a string",
            Self::Integer => "an integer",
            Self::Number => "a number",
            Self::Boolean => "a boolean",
        })
    }
}

/// One declared field.
#[derive(Clone)]
pub struct ProfileField {
    pub name: String,
    pub kind: FieldType,
    /// `email`, `uri` or `date` (strings only).
    pub format: Option<String>,
    pub max_length: Option<u64>,
    pub minimum: Option<f64>,
    pub maximum: Option<f64>,
    pub required: bool,
    pub default: Option<Value>,
    /// The property as declared (for the OpenAPI document).
    pub schema: Value,
    /// The property's constraints, compiled; `None` when it has none beyond its type.
    validator: Option<Arc<jsonschema::Validator>>,
}

impl fmt::Debug for ProfileField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProfileField")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

/// The profile fields a signup takes (see the module's comment).
#[derive(Debug, Clone)]
pub struct ProfileSchema {
    source: Value,
    fields: Vec<ProfileField>,
}

impl PartialEq for ProfileSchema {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for ProfileSchema {}

impl Default for ProfileSchema {
    /// [`DEFAULT_SCHEMA`]: a required `name` (no constraint beyond the display-name rules, so
    /// nothing to compile).
    fn default() -> Self {
        let name = serde_json::json!({
            "type": "string",
            "description": "Display name: trimmed, 1-100 characters, no control or invisible formatting characters.",
            "examples": ["Ada Lovelace"]
        });
        let mut source = serde_json::json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {},
            "required": ["name"],
            "additionalProperties": false
        });
        source["properties"]["name"] = name.clone();
        Self {
            source,
            fields: vec![ProfileField {
                name: "name".to_owned(),
                kind: FieldType::String,
                format: None,
                max_length: None,
                minimum: None,
                maximum: None,
                required: true,
                default: None,
                schema: name,
                validator: None,
            }],
        }
    }
}

/// The profile of one signup: every declared field that was sent or has a default, checked and
/// normalised (a trimmed `name`, integers as integers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileValues(Map<String, Value>);

impl ProfileValues {
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    /// The display name, when the schema declares `name`.
    pub fn name(&self) -> Option<&str> {
        self.0.get("name").and_then(Value::as_str)
    }
}

/// The table the profile fields are columns of (PROFILE_TABLE): `schema.table`, both parts
/// lower-case identifiers, so the name is safe to quote into SQL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileTable {
    schema: String,
    table: String,
}

impl Default for ProfileTable {
    fn default() -> Self {
        Self {
            schema: "public".to_owned(),
            table: "profiles".to_owned(),
        }
    }
}

impl ProfileTable {
    /// `schema.table` (a table without a schema is in `public`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (schema, table) = text
            .trim()
            .split_once('.')
            .unwrap_or(("public", text.trim()));
        if !is_column_name(schema) || !is_column_name(table) {
            return Err(
                "expected schema.table, each 1-63 of a-z, 0-9 and _, not starting with a digit"
                    .to_owned(),
            );
        }
        if schema == "auth" || schema == "atomic_signup" || schema.starts_with("pg_") {
            return Err(format!("the profile table cannot be in schema {schema}"));
        }
        Ok(Self {
            schema: schema.to_owned(),
            table: table.to_owned(),
        })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// `"schema"."table"`, for SQL text (both parts are plain identifiers, see [`Self::parse`]).
    pub fn quoted(&self) -> String {
        format!("\"{}\".\"{}\"", self.schema, self.table)
    }
}

impl fmt::Display for ProfileTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

impl ProfileSchema {
    /// Reads a schema (the text of PROFILE_SCHEMA_PATH); the error names the property at fault.
    pub fn parse(text: &str) -> Result<Self, String> {
        let source: Value =
            serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
        let top = source
            .as_object()
            .ok_or("the schema must be a JSON object")?;
        if let Some(k) = top.keys().find(|k| !SCHEMA_KEYWORDS.contains(&k.as_str())) {
            return Err(format!("unsupported keyword `{k}` at the top level"));
        }
        if top.get("type").is_some_and(|t| t != "object") {
            return Err("`type` must be \"object\"".to_owned());
        }
        if top
            .get("additionalProperties")
            .is_some_and(|a| a != &Value::Bool(false))
        {
            return Err(
                "`additionalProperties` may only be false (unknown fields are always refused)"
                    .to_owned(),
            );
        }
        let properties = match top.get("properties") {
            None => &Map::new(),
            Some(Value::Object(p)) => p,
            Some(_) => return Err("`properties` must be an object".to_owned()),
        };
        if properties.len() > MAX_FIELDS {
            return Err(format!("at most {MAX_FIELDS} properties"));
        }
        let required = required_list(top.get("required"), properties)?;
        let fields = properties
            .iter()
            .map(|(name, schema)| {
                field(name, schema, required.contains(name.as_str()))
                    .map_err(|e| format!("property `{name}`: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { source, fields })
    }

    pub fn fields(&self) -> &[ProfileField] {
        &self.fields
    }

    /// The declared defaults, by field (the fields without one are absent).
    pub fn defaults(&self) -> Map<String, Value> {
        self.fields
            .iter()
            .filter_map(|f| Some((f.name.clone(), f.default.clone()?)))
            .collect()
    }

    /// The schema as it was declared.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// Reads the profile out of a request's remaining fields: unknown fields, missing required
    /// ones and invalid values are recorded in `errors` (the first problem per field).
    pub fn read(
        &self,
        mut sent: Map<String, Value>,
        errors: &mut ValidationErrors,
    ) -> ProfileValues {
        let mut values = Map::new();
        for field in &self.fields {
            match sent.remove(&field.name) {
                None | Some(Value::Null) if field.required => {
                    errors.add(&field.name, "is required")
                }
                None | Some(Value::Null) => {
                    if let Some(default) = &field.default {
                        values.insert(field.name.clone(), default.clone());
                    }
                }
                Some(value) => match field.check(value) {
                    Ok(value) => {
                        values.insert(field.name.clone(), value);
                    }
                    Err(message) => errors.add(&field.name, message),
                },
            }
        }
        errors.unknown_fields(sent.keys());
        ProfileValues(values)
    }
}

/// The `required` list: declared properties, each once.
fn required_list<'a>(
    required: Option<&'a Value>,
    properties: &Map<String, Value>,
) -> Result<BTreeSet<&'a str>, String> {
    let mut names = BTreeSet::new();
    let Some(required) = required else {
        return Ok(names);
    };
    let list = required
        .as_array()
        .ok_or("`required` must be an array of property names")?;
    for name in list {
        let name = name
            .as_str()
            .ok_or("`required` must be an array of property names")?;
        if !properties.contains_key(name) {
            return Err(format!(
                "`required` names `{name}`, which is not a property"
            ));
        }
        if !names.insert(name) {
            return Err(format!("`required` names `{name}` twice"));
        }
    }
    Ok(names)
}

/// A column name a field may have: lower-case ASCII letters, digits and `_`, 1–63 characters.
fn is_column_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 63
}

fn field(name: &str, schema: &Value, required: bool) -> Result<ProfileField, String> {
    if !is_column_name(name) {
        return Err("a property name must be a column name: 1-63 of a-z, 0-9 and _, not starting with a digit".to_owned());
    }
    if RESERVED_FIELDS.contains(&name) {
        return Err("this name is the service's own and cannot be a profile field".to_owned());
    }
    let object = schema.as_object().ok_or("must be an object")?;
    let kind = object
        .get("type")
        .and_then(FieldType::parse)
        .ok_or("`type` must be one of string, integer, number, boolean")?;
    let mut allowed: Vec<&str> = vec!["type", "enum"];
    allowed.extend(ANNOTATIONS);
    match kind {
        FieldType::String => allowed.extend(STRING_KEYWORDS),
        FieldType::Integer | FieldType::Number => allowed.extend(NUMBER_KEYWORDS),
        FieldType::Boolean => {}
    }
    if let Some(k) = object.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!("keyword `{k}` is not supported for {kind}"));
    }
    let format = match object.get("format") {
        None => None,
        Some(f) => match f.as_str() {
            Some(f) if FORMATS.contains(&f) => Some(f.to_owned()),
            _ => return Err("`format` must be one of email, uri, date".to_owned()),
        },
    };
    if let Some(options) = object.get("enum")
        && options.as_array().is_none_or(|o| o.is_empty())
    {
        return Err("`enum` must be a non-empty array".to_owned());
    }
    // Everything but the annotations is a constraint the validator checks.
    let constraints: Map<String, Value> = object
        .iter()
        .filter(|(k, _)| !ANNOTATIONS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let validator = if constraints.len() > 1 {
        Some(Arc::new(compile(&Value::Object(constraints))?))
    } else {
        None
    };
    let number = |k: &str| object.get(k).and_then(Value::as_f64);
    let mut field = ProfileField {
        name: name.to_owned(),
        kind,
        format,
        max_length: object.get("maxLength").and_then(Value::as_u64),
        minimum: number("minimum").or_else(|| number("exclusiveMinimum")),
        maximum: number("maximum").or_else(|| number("exclusiveMaximum")),
        required,
        default: None,
        schema: schema.clone(),
        validator,
    };
    if let Some(default) = object.get("default") {
        let checked = field
            .check(default.clone())
            .map_err(|e| format!("`default` {e}"))?;
        field.default = Some(checked);
    }
    Ok(field)
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, String> {
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_pattern_options(jsonschema::PatternOptions::regex())
        .build(schema)
        .map_err(|e| format!("not a valid schema: {e}"))
}

impl ProfileField {
    /// `value` checked against this field, normalised; or why not, in plain words.
    fn check(&self, value: Value) -> Result<Value, String> {
        let value = match (self.kind, value) {
            (FieldType::String, Value::String(s)) => Value::String(self.check_string(s)?),
            (FieldType::Integer, Value::Number(n)) => {
                Value::Number(integer(&n).ok_or_else(|| format!("must be {}", FieldType::Integer))?)
            }
            (FieldType::Number, Value::Number(n)) => Value::Number(n),
            (FieldType::Boolean, Value::Bool(b)) => Value::Bool(b),
            (kind, _) => return Err(format!("must be {kind}")),
        };
        if let Some(validator) = &self.validator
            && let Some(error) = validator.iter_errors(&value).next()
        {
            return Err(self.explain(error.kind()));
        }
        if self.format.as_deref() == Some("date")
            && value.as_str().is_some_and(|d| d.starts_with("0000"))
        {
            // RFC 3339 has a year 0; Postgres's calendar does not.
            return Err(explain_format("date"));
        }
        Ok(value)
    }

    fn check_string(&self, s: String) -> Result<String, String> {
        if s.contains('\0') {
            // Postgres text cannot hold it.
            return Err("must not contain NUL characters".to_owned());
        }
        if self.name == "name" {
            return DisplayName::parse(&s).map(|n| n.as_str().to_owned());
        }
        Ok(s)
    }

    /// A failed constraint in words (never the value: it may be long, and it is the client's).
    fn explain(&self, kind: &jsonschema::error::ValidationErrorKind) -> String {
        use jsonschema::error::ValidationErrorKind as K;
        match kind {
            K::Type { .. } => format!("must be {}", self.kind),
            K::Format { format } => explain_format(format),
            K::MinLength { limit: 1 } => "must not be empty".to_owned(),
            K::MinLength { limit } => format!("must be at least {limit} characters"),
            K::MaxLength { limit } => format!("must be at most {limit} characters"),
            K::Pattern { pattern } => format!("must match the pattern {pattern}"),
            K::Enum { options } => format!("must be one of: {}", one_of(options)),
            K::Minimum { limit } => format!("must be at least {limit}"),
            K::Maximum { limit } => format!("must be at most {limit}"),
            K::ExclusiveMinimum { limit } => format!("must be greater than {limit}"),
            K::ExclusiveMaximum { limit } => format!("must be less than {limit}"),
            _ => "is not valid".to_owned(),
        }
    }
}

fn explain_format(format: &str) -> String {
    match format {
        "date" => "must be a date (YYYY-MM-DD)".to_owned(),
        "email" => "must be an email address".to_owned(),
        "uri" => "must be an absolute URI".to_owned(),
        other => format!("must be in the format {other}"),
    }
}

fn one_of(options: &Value) -> String {
    match options.as_array() {
        Some(options) => options
            .iter()
            .map(|o| match o {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(", "),
        None => options.to_string(),
    }
}

/// `n` as an integer JSON number (`3.0` becomes `3`, which an integer column accepts), or `None`
/// when it has a fraction or is beyond 64 bits.
fn integer(n: &serde_json::Number) -> Option<serde_json::Number> {
    if n.is_i64() || n.is_u64() {
        return Some(n.clone());
    }
    let f = n.as_f64()?;
    // i64's range, exactly representable bounds.
    (f.fract() == 0.0 && (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&f))
        .then(|| serde_json::Number::from(f as i64))
}

#[cfg(test)]
mod tests;
