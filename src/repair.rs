//! `atomic-signup repair`: the orphans that a two-call signup left behind (auth users without a
//! profile), listed with what would be done (the default, a dry run), or fixed (`--apply`).
//!
//! For each orphan, by these rules (docs/operations.md, "Adopting on an existing project"):
//! - its profile: the name from the user's metadata, `name` then `full_name` (as OAuth providers
//!   fill it), the first that passes the display-name rules; else the email's local part made into
//!   a name (`ada.lovelace+x@…` → `ada lovelace x`), or `User` when that is empty; with
//!   `--skip-invalid` the orphan is skipped instead. The other declared fields take `--set`
//!   values, else their schema defaults; a required field with neither skips the orphan.
//! - its role: `app_metadata.role` when it is in SIGNUP_ROLES, else `--default-role`; none of
//!   the two skips the orphan, and `--apply` refuses to run while any orphan lacks a role.
//! - with `--delete-unconfirmed-older-than`: an orphan that never confirmed, never signed in
//!   and is older than that is deleted instead (as GoTrue's admin API deletes a user).
//!
//! Every change is one short transaction of its own ([`crate::store::repair`]), safe next to
//! live signups.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{DisplayName, ProfileSchema, ProfileTable, RoleSet, ValidationErrors};
use crate::store::repair::{self as sql, Done, Orphan};

/// The command line's choices.
#[derive(Debug, Clone, Default)]
pub struct RepairOptions {
    pub apply: bool,
    /// For orphans whose app metadata holds no role of SIGNUP_ROLES.
    pub default_role: Option<String>,
    /// Skip orphans without a valid name in their metadata instead of making one up.
    pub skip_invalid: bool,
    /// `field=value` for declared profile fields (a JSON value, or else a string).
    pub set: Vec<(String, Value)>,
    /// Delete instead orphans never confirmed, never signed in, created longer ago than this.
    pub delete_unconfirmed_older_than: Option<Duration>,
}

/// What repair does (or would do) with one orphan.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    CreateProfile {
        role: String,
        /// `app_metadata` or `--default-role`.
        role_from: &'static str,
        profile: Map<String, Value>,
        /// `metadata name`, `metadata full_name`, `email`, `fallback` or `--set`; absent when the
        /// schema has no `name`.
        #[serde(skip_serializing_if = "Option::is_none")]
        name_from: Option<&'static str>,
    },
    Delete,
    Skip {
        reason: SkipReason,
    },
}

/// Why an orphan is left as it is (listed in its words).
#[derive(Debug, Clone, PartialEq)]
pub enum SkipReason {
    /// Its app metadata names no role of SIGNUP_ROLES and there is no `--default-role`: with
    /// `--apply`, the run is refused ([`RepairError::RoleNeeded`]).
    NoRole,
    /// `--skip-invalid`, and its metadata holds no valid name.
    NoValidName,
    /// The profile the schema asks for cannot be made (the fields' problems).
    Profile(String),
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoRole => f.write_str(
                "no role of SIGNUP_ROLES in app metadata (give one with --default-role)",
            ),
            Self::NoValidName => {
                f.write_str("no valid name in the user's metadata (--skip-invalid)")
            }
            Self::Profile(problems) => write!(
                f,
                "profile: {problems} (give a value with --set <field>=<value>)"
            ),
        }
    }
}

impl Serialize for SkipReason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// What `--apply` did with one orphan.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// No longer an orphan (or no longer one to delete) when its turn came.
    LeftAlone,
    Skipped,
    /// The database refused the change (its message).
    Failed(String),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Done => f.write_str("done"),
            Self::LeftAlone => f.write_str("left_alone"),
            Self::Skipped => f.write_str("skipped"),
            Self::Failed(message) => write!(f, "failed: {message}"),
        }
    }
}

impl Serialize for Outcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One orphan and its action, as listed.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedOrphan {
    pub id: Uuid,
    pub email: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub created_at: Option<OffsetDateTime>,
    pub confirmed: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_sign_in_at: Option<OffsetDateTime>,
    #[serde(flatten)]
    pub action: Action,
    /// After `--apply`: `done`, `left_alone`, `skipped` or `failed: …`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
}

/// The whole run: every orphan, and the counts.
#[derive(Debug, Clone, Serialize)]
pub struct RepairReport {
    pub applied: bool,
    pub orphans: Vec<PlannedOrphan>,
    pub summary: BTreeMap<&'static str, usize>,
}

impl RepairReport {
    /// Nothing was to do (dry run), or nothing is left undone (after `--apply`).
    pub fn nothing_left(&self) -> bool {
        if !self.applied {
            return self.orphans.is_empty();
        }
        self.orphans
            .iter()
            .all(|o| matches!(o.outcome, Some(Outcome::Done | Outcome::LeftAlone)))
    }

    /// The report as lines of text.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for o in &self.orphans {
            let what = match &o.action {
                Action::CreateProfile {
                    role,
                    role_from,
                    profile,
                    name_from,
                } => format!(
                    "create profile {} (role {role} from {role_from}{})",
                    Value::Object(profile.clone()),
                    name_from.map_or(String::new(), |n| format!(", name from {n}"))
                ),
                Action::Delete => "delete (never confirmed, never signed in)".to_owned(),
                Action::Skip { reason } => format!("skip: {reason}"),
            };
            let when = |t: Option<OffsetDateTime>| {
                t.and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_else(|| "-".to_owned())
            };
            out.push_str(&format!(
                "{} {} created {} {} last sign-in {}: {what}{}\n",
                o.id,
                o.email.as_deref().unwrap_or("(no email)"),
                when(o.created_at),
                if o.confirmed {
                    "confirmed"
                } else {
                    "unconfirmed"
                },
                when(o.last_sign_in_at),
                o.outcome
                    .as_ref()
                    .map_or(String::new(), |outcome| format!(" → {outcome}")),
            ));
        }
        let counts: Vec<String> = self
            .summary
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect();
        out.push_str(&format!(
            "{} orphan(s){}: {}\n",
            self.orphans.len(),
            if self.applied {
                ""
            } else {
                " (dry run: nothing changed; --apply does it)"
            },
            if counts.is_empty() {
                "nothing to do".to_owned()
            } else {
                counts.join(", ")
            }
        ));
        out
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RepairError {
    #[error("{0}")]
    Options(String),
    #[error(
        "{0} orphan(s) have no role of SIGNUP_ROLES in their app metadata: pass --default-role \
         <role> (one of: {1}); nothing was changed"
    )]
    RoleNeeded(usize, String),
    #[error("the database: {0}")]
    Database(#[from] sqlx::Error),
}

/// The rules repair applies, from the configuration and the command line.
pub struct Rules<'a> {
    pub schema: &'a ProfileSchema,
    pub table: &'a ProfileTable,
    pub roles: &'a RoleSet,
    pub options: &'a RepairOptions,
}

impl Rules<'_> {
    /// Checks the options against the configuration (a `--default-role` of SIGNUP_ROLES,
    /// `--set` fields that are declared).
    pub fn validate(&self) -> Result<(), RepairError> {
        if let Some(role) = &self.options.default_role {
            self.roles
                .parse_role(role)
                .map_err(|e| RepairError::Options(format!("--default-role {role}: {e}")))?;
        }
        for (field, _) in &self.options.set {
            if !self.schema.fields().iter().any(|f| &f.name == field) {
                return Err(RepairError::Options(format!(
                    "--set {field}: not a field of the profile schema (PROFILE_SCHEMA_PATH)"
                )));
            }
        }
        Ok(())
    }

    /// What to do with `orphan`; `now` decides who is old enough to delete.
    pub fn plan(&self, orphan: &Orphan, now: OffsetDateTime) -> Action {
        if let Some(age) = self.options.delete_unconfirmed_older_than
            && orphan.confirmed_at.is_none()
            && orphan.last_sign_in_at.is_none()
            && orphan.created_at.is_some_and(|c| c < now - age)
        {
            return Action::Delete;
        }
        let role = orphan.app_metadata.get("role").and_then(Value::as_str);
        let (role, role_from) = match (
            role.filter(|r| self.roles.parse_role(r).is_ok()),
            &self.options.default_role,
        ) {
            (Some(role), _) => (role.to_owned(), "app_metadata"),
            (None, Some(default)) => (default.clone(), "--default-role"),
            (None, None) => {
                return Action::Skip {
                    reason: SkipReason::NoRole,
                };
            }
        };
        let mut fields: Map<String, Value> = self.options.set.iter().cloned().collect();
        let declares_name = self.schema.fields().iter().any(|f| f.name == "name");
        let name_from = if !declares_name {
            None
        } else if fields.contains_key("name") {
            Some("--set")
        } else {
            match name_from_metadata(&orphan.user_metadata) {
                Some((name, from)) => {
                    fields.insert("name".to_owned(), Value::String(name));
                    Some(from)
                }
                None if self.options.skip_invalid => {
                    return Action::Skip {
                        reason: SkipReason::NoValidName,
                    };
                }
                None => {
                    let (name, from) = fallback_name(orphan.email.as_deref());
                    fields.insert("name".to_owned(), Value::String(name));
                    Some(from)
                }
            }
        };
        let mut errors = ValidationErrors::default();
        let profile = self.schema.read(fields, &mut errors);
        if !errors.is_empty() {
            let problems: Vec<String> = errors
                .fields()
                .iter()
                .map(|(field, message)| format!("{field} {message}"))
                .collect();
            return Action::Skip {
                reason: SkipReason::Profile(problems.join("; ")),
            };
        }
        Action::CreateProfile {
            role,
            role_from,
            profile: profile.as_map().clone(),
            name_from,
        }
    }
}

/// `name`, then `full_name`, of the user's metadata: the first that is a valid display name.
fn name_from_metadata(metadata: &Value) -> Option<(String, &'static str)> {
    [
        ("name", "metadata name"),
        ("full_name", "metadata full_name"),
    ]
    .into_iter()
    .find_map(|(key, from)| {
        let name = DisplayName::parse(metadata.get(key)?.as_str()?).ok()?;
        Some((name.as_str().to_owned(), from))
    })
}

/// The email's local part as a name (runs of `.`, `_`, `-`, `+` and anything not alphanumeric
/// become one space), or `User`.
fn fallback_name(email: Option<&str>) -> (String, &'static str) {
    let local = email.and_then(|e| e.split('@').next()).unwrap_or_default();
    let words: Vec<String> = local
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect();
    let name: String = words
        .join(" ")
        .chars()
        .take(crate::domain::MAX_NAME_CHARS)
        .collect();
    match DisplayName::parse(&name) {
        Ok(name) => (name.as_str().to_owned(), "email"),
        Err(_) => ("User".to_owned(), "fallback"),
    }
}

/// Lists the orphans and plans each; with `--apply`, carries the plan out, one transaction per
/// orphan, reporting progress through `progress(done, total)`.
pub async fn run(
    conn: &mut sqlx::PgConnection,
    rules: &Rules<'_>,
    mut progress: impl FnMut(usize, usize),
) -> Result<RepairReport, RepairError> {
    rules.validate()?;
    let now = OffsetDateTime::now_utc();
    let found = sql::orphans(conn, rules.table).await?;
    let mut orphans: Vec<PlannedOrphan> = found
        .iter()
        .map(|o| PlannedOrphan {
            id: o.id,
            email: o.email.clone(),
            created_at: o.created_at,
            confirmed: o.confirmed_at.is_some(),
            last_sign_in_at: o.last_sign_in_at,
            action: rules.plan(o, now),
            outcome: None,
        })
        .collect();
    let role_needed = orphans
        .iter()
        .filter(|o| {
            matches!(
                o.action,
                Action::Skip {
                    reason: SkipReason::NoRole
                }
            )
        })
        .count();
    if rules.options.apply && role_needed > 0 {
        return Err(RepairError::RoleNeeded(
            role_needed,
            rules.roles.names().join(", "),
        ));
    }
    if rules.options.apply {
        let created_before = now
            - rules
                .options
                .delete_unconfirmed_older_than
                .unwrap_or_default();
        let total = orphans.len();
        for (i, orphan) in orphans.iter_mut().enumerate() {
            let done = match &orphan.action {
                Action::CreateProfile { role, profile, .. } => Some(
                    sql::create_profile(
                        conn,
                        rules.table,
                        orphan.id,
                        role,
                        &Value::Object(profile.clone()),
                    )
                    .await,
                ),
                Action::Delete => {
                    Some(sql::delete_user(conn, rules.table, orphan.id, created_before).await)
                }
                Action::Skip { .. } => None,
            };
            orphan.outcome = Some(match done {
                None => Outcome::Skipped,
                Some(Ok(Done::Changed)) => Outcome::Done,
                Some(Ok(Done::LeftAlone)) => Outcome::LeftAlone,
                Some(Err(err)) if crate::store::is_unavailable(&err) => return Err(err.into()),
                Some(Err(err)) => Outcome::Failed(database_message(&err)),
            });
            progress(i + 1, total);
        }
    }
    let mut summary = BTreeMap::new();
    for o in &orphans {
        let key = match (&o.action, &o.outcome) {
            (_, Some(Outcome::LeftAlone)) => "left alone",
            (_, Some(Outcome::Failed(_))) => "failed",
            (Action::CreateProfile { .. }, Some(_)) => "profiles created",
            (Action::CreateProfile { .. }, None) => "profiles to create",
            (Action::Delete, Some(_)) => "deleted",
            (Action::Delete, None) => "to delete",
            (Action::Skip { .. }, _) => "skipped",
        };
        *summary.entry(key).or_insert(0) += 1;
    }
    Ok(RepairReport {
        applied: rules.options.apply,
        orphans,
        summary,
    })
}

/// A failed statement's message (the database's own words, no parameters).
fn database_message(err: &sqlx::Error) -> String {
    match err {
        sqlx::Error::Database(db) => db.message().to_owned(),
        other => other.to_string(),
    }
}

/// `30d`, `12h`, `90m`, `45s` (one number and one unit).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}`: give a unit (d, h, m or s), e.g. 30d"))?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}`: a whole number and a unit, e.g. 30d"))?;
    let seconds = match unit {
        "d" => 86_400,
        "h" => 3_600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("`{text}`: the unit is d, h, m or s")),
    };
    number
        .checked_mul(seconds)
        .map(Duration::from_secs)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}`: out of range"))
}

/// `field=value`: the value as JSON when it parses (`true`, `3`, `"x"`), else as a string.
pub fn parse_set(text: &str) -> Result<(String, Value), String> {
    let (field, value) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected field=value"))?;
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    Ok((field.trim().to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_come_from_metadata_then_the_email() {
        assert_eq!(
            name_from_metadata(&json!({"name": " Ada ", "full_name": "Ada L"})),
            Some(("Ada".to_owned(), "metadata name"))
        );
        assert_eq!(
            name_from_metadata(&json!({"name": "\u{202e}x", "full_name": "Ada Lovelace"})),
            Some(("Ada Lovelace".to_owned(), "metadata full_name"))
        );
        assert_eq!(name_from_metadata(&json!({"name": 3})), None);
        assert_eq!(
            fallback_name(Some("ada.lovelace+news@example.com")),
            ("ada lovelace news".to_owned(), "email")
        );
        assert_eq!(
            fallback_name(Some("..@example.com")),
            ("User".to_owned(), "fallback")
        );
        assert_eq!(fallback_name(None), ("User".to_owned(), "fallback"));
    }

    #[test]
    fn durations_and_set_values_parse() {
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("90m"), Ok(Duration::from_secs(5_400)));
        assert!(parse_duration("30").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
        assert_eq!(parse_set("age=3"), Ok(("age".to_owned(), json!(3))));
        assert_eq!(
            parse_set("city=Paris"),
            Ok(("city".to_owned(), json!("Paris")))
        );
        assert!(parse_set("city").is_err());
    }
}
