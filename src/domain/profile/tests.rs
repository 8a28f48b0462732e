use serde_json::json;

use super::*;

/// The five typed fields of the issue: a string with a pattern, an enum, an integer with bounds,
/// a boolean with a default and a date.
pub const FIVE_FIELDS: &str = r#"{
  "type": "object",
  "properties": {
    "name": {"type": "string"},
    "username": {"type": "string", "pattern": "^[a-z0-9_]{3,20}$", "maxLength": 20},
    "plan": {"type": "string", "enum": ["free", "pro"]},
    "age": {"type": "integer", "minimum": 13, "maximum": 130},
    "marketing_opt_in": {"type": "boolean", "default": false},
    "date_of_birth": {"type": "string", "format": "date"}
  },
  "required": ["name", "username", "plan"]
}"#;

fn read(schema: &ProfileSchema, body: Value) -> Result<ProfileValues, ValidationErrors> {
    let mut errors = ValidationErrors::default();
    let Value::Object(map) = body else { panic!() };
    let values = schema.read(map, &mut errors);
    errors.into_result(|| Some(values))
}

fn messages(errors: &ValidationErrors) -> Vec<(&str, &str)> {
    errors
        .fields()
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

#[test]
fn the_default_schema_is_the_documented_one() {
    assert_eq!(
        ProfileSchema::parse(DEFAULT_SCHEMA).unwrap(),
        ProfileSchema::default()
    );
    let schema = ProfileSchema::default();
    let values = read(&schema, json!({"name": "  Ada "})).unwrap();
    assert_eq!(values.as_map(), json!({"name": "Ada"}).as_object().unwrap());
    let errors = read(&schema, json!({"name": "\u{202e}x"})).unwrap_err();
    assert_eq!(errors.fields().len(), 1);
    assert!(errors.fields()["name"].contains("invisible"));
}

#[test]
fn five_typed_fields_are_read_normalised_and_defaulted() {
    let schema = ProfileSchema::parse(FIVE_FIELDS).unwrap();
    let values = read(
        &schema,
        json!({"name": "Ada", "username": "ada_l", "plan": "pro", "age": 36.0,
               "date_of_birth": "1815-12-10"}),
    )
    .unwrap();
    assert_eq!(
        Value::Object(values.as_map().clone()),
        json!({"name": "Ada", "username": "ada_l", "plan": "pro", "age": 36,
               "marketing_opt_in": false, "date_of_birth": "1815-12-10"})
    );
    // null counts as absent.
    let values = read(
        &schema,
        json!({"name": "Ada", "username": "ada_l", "plan": "free", "age": null}),
    )
    .unwrap();
    assert!(!values.as_map().contains_key("age"));
}

#[test]
fn each_invalid_field_is_named_in_plain_words() {
    let schema = ProfileSchema::parse(FIVE_FIELDS).unwrap();
    let errors = read(
        &schema,
        json!({"username": "A!", "plan": "gold", "age": 12.5, "marketing_opt_in": "yes",
               "date_of_birth": "1815-13-10", "nickname": "x"}),
    )
    .unwrap_err();
    assert_eq!(
        messages(&errors),
        [
            ("age", "must be an integer"),
            ("date_of_birth", "must be a date (YYYY-MM-DD)"),
            ("marketing_opt_in", "must be a boolean"),
            ("name", "is required"),
            ("nickname", "unknown field"),
            ("plan", "must be one of: free, pro"),
            ("username", "must match the pattern ^[a-z0-9_]{3,20}$"),
        ]
    );
    let errors = read(
        &schema,
        json!({"name": "Ada", "username": "a".repeat(21), "plan": "pro", "age": 200,
               "date_of_birth": "0000-01-01"}),
    )
    .unwrap_err();
    assert_eq!(
        messages(&errors),
        [
            ("age", "must be at most 130"),
            ("date_of_birth", "must be a date (YYYY-MM-DD)"),
            ("username", "must be at most 20 characters"),
        ]
    );
    let errors = read(
        &schema,
        json!({"name": "Ada", "username": "ada\u{0}", "plan": "pro", "age": 1e30}),
    )
    .unwrap_err();
    assert_eq!(
        messages(&errors),
        [
            ("age", "must be an integer"),
            ("username", "must not contain NUL characters")
        ]
    );
}

#[test]
fn schemas_outside_the_supported_subset_are_refused_naming_the_property() {
    let refused = |schema: Value| ProfileSchema::parse(&schema.to_string()).unwrap_err();
    let cases = [
        (
            json!({"properties": {"role": {"type": "string"}}}),
            "property `role`",
        ),
        (
            json!({"properties": {"id": {"type": "string"}}}),
            "property `id`",
        ),
        (
            json!({"properties": {"Bad-Name": {"type": "string"}}}),
            "property `Bad-Name`",
        ),
        (
            json!({"properties": {"a": {"type": "object"}}}),
            "property `a`: `type`",
        ),
        (
            json!({"properties": {"a": {"type": "string", "$ref": "#"}}}),
            "keyword `$ref`",
        ),
        (
            json!({"properties": {"a": {"type": "boolean", "maxLength": 3}}}),
            "keyword `maxLength`",
        ),
        (
            json!({"properties": {"a": {"type": "string", "format": "ipv4"}}}),
            "`format`",
        ),
        (
            json!({"properties": {"a": {"type": "string", "pattern": "("}}}),
            "property `a`: not a valid schema",
        ),
        (
            json!({"properties": {"a": {"type": "integer", "default": "x"}}}),
            "`default` must be an integer",
        ),
        (
            json!({"properties": {"a": {"type": "string"}}, "required": ["b"]}),
            "`b`, which is not a property",
        ),
        (
            json!({"properties": {}, "additionalProperties": true}),
            "additionalProperties",
        ),
        (json!({"properties": {}, "allOf": []}), "keyword `allOf`"),
        (json!({"type": "array"}), "\"object\""),
    ];
    for (schema, expected) in cases {
        let error = refused(schema.clone());
        assert!(error.contains(expected), "{schema}: {error}");
    }
}

#[test]
fn the_defaults_are_the_declared_ones_only() {
    let schema = ProfileSchema::parse(FIVE_FIELDS).unwrap();
    assert_eq!(
        Value::Object(schema.defaults()),
        json!({"marketing_opt_in": false})
    );
    assert!(ProfileSchema::default().defaults().is_empty());
}
