//! GoTrue's auth hooks on user creation, configured with GoTrue's own variables (without the
//! `GOTRUE_` prefix; the prefixed names are read too, so a GoTrue env file works, and the
//! unprefixed name wins when both are set): `HOOK_BEFORE_USER_CREATED_{ENABLED,URI,SECRETS}` and
//! the same three for `AFTER_USER_CREATED`. URIs are checked as GoTrue v2.196.0 checks them
//! (`internal/conf/configuration.go`): `pg-functions://<host>/<schema>/<function>`, `https://…`,
//! and `http://` only for localhost, 127.0.0.1, ::1 and host.docker.internal; HTTP hooks need
//! Standard Webhooks secrets (`v1,whsec_<base64>`, several separated by `|`).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use super::parse::{Lookup, parse_bool, parse_opt, parse_or};

/// The two hooks of user creation.
#[derive(Debug, Clone, Default)]
pub struct HookSettings {
    /// `None` unless HOOK_BEFORE_USER_CREATED_ENABLED=true.
    pub before_user_created: Option<Hook>,
    /// `None` unless HOOK_AFTER_USER_CREATED_ENABLED=true.
    pub after_user_created: Option<Hook>,
}

impl HookSettings {
    /// The enabled hooks, with GoTrue's name of each.
    pub fn enabled(&self) -> impl Iterator<Item = (&'static str, &Hook)> {
        [
            ("before_user_created", self.before_user_created.as_ref()),
            ("after_user_created", self.after_user_created.as_ref()),
        ]
        .into_iter()
        .filter_map(|(name, hook)| hook.map(|h| (name, h)))
    }
}

/// Where a hook is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// `pg-functions://…/<schema>/<function>`: a function taking and returning one jsonb.
    PgFunction { schema: String, function: String },
    /// An HTTP endpoint, signed with every secret.
    Http {
        url: String,
        secrets: Vec<WebhookSecret>,
    },
}

impl fmt::Display for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PgFunction { schema, function } => {
                write!(f, "the Postgres function {schema}.{function}")
            }
            // Scheme and host only: a URL may carry a token in its path or query.
            Self::Http { url, .. } => match reqwest::Url::parse(url) {
                Ok(u) => write!(f, "{}://{}/…", u.scheme(), u.host_str().unwrap_or("")),
                Err(_) => f.write_str("an HTTP endpoint"),
            },
        }
    }
}

/// A Standard Webhooks symmetric secret (`v1,whsec_<base64>`): the base64 key is kept secret.
#[derive(Clone)]
pub struct WebhookSecret(SecretString);

impl WebhookSecret {
    /// GoTrue's format (`^v1,whsec_[A-Za-z0-9+/=]{32,88}`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("v1a,") {
            return Err(
                "asymmetric (v1a) secrets cannot sign a hook call (GoTrue v2.196.0 \
                        fails such calls too): use a v1,whsec_ secret"
                    .to_owned(),
            );
        }
        let key = text
            .strip_prefix("v1,whsec_")
            .ok_or("a secret must look like v1,whsec_<base64>")?;
        let valid = (32..=88).contains(&key.len())
            && key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
        if !valid {
            return Err("after v1,whsec_ a secret has 32-88 base64 characters".to_owned());
        }
        Ok(Self(SecretString::from(key.to_owned())))
    }

    /// The base64 key (what Standard Webhooks signs with, once decoded).
    pub fn key(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for WebhookSecret {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for WebhookSecret {}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

/// The variables of one hook.
struct Names {
    enabled: &'static str,
    uri: &'static str,
    secrets: &'static str,
}

const BEFORE_USER_CREATED: Names = Names {
    enabled: "HOOK_BEFORE_USER_CREATED_ENABLED",
    uri: "HOOK_BEFORE_USER_CREATED_URI",
    secrets: "HOOK_BEFORE_USER_CREATED_SECRETS",
};

const AFTER_USER_CREATED: Names = Names {
    enabled: "HOOK_AFTER_USER_CREATED_ENABLED",
    uri: "HOOK_AFTER_USER_CREATED_URI",
    secrets: "HOOK_AFTER_USER_CREATED_SECRETS",
};

impl HookSettings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&super::parse::env_lookup)
    }

    pub(super) fn from_lookup(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        // GoTrue's names are ours with a GOTRUE_ prefix; ours win.
        let aliased = |name: &str| get(name).or_else(|| get(&format!("GOTRUE_{name}")));
        Ok(Self {
            before_user_created: hook(&aliased, &BEFORE_USER_CREATED)?,
            after_user_created: hook(&aliased, &AFTER_USER_CREATED)?,
        })
    }
}

/// One hook: `None` when not enabled. As GoTrue does, a URI is checked even when the hook is
/// off, so a typo is found before the hook is switched on.
fn hook(get: &Lookup<'_>, names: &Names) -> Result<Option<Hook>, ConfigError> {
    let enabled = parse_or(get, names.enabled, false, parse_bool)?;
    let secrets = parse_opt(get, names.secrets, parse_secrets)?.unwrap_or_default();
    let hook = parse_opt(get, names.uri, |uri| parse_uri(uri, &secrets))?;
    match (enabled, hook) {
        (false, _) => Ok(None),
        (true, None) => Err(ConfigError::Invalid {
            name: names.uri,
            reason: format!("required when {}=true", names.enabled),
        }),
        (true, Some(Hook::Http { secrets, .. })) if secrets.is_empty() => {
            Err(ConfigError::Invalid {
                name: names.secrets,
                reason: "an HTTP hook needs at least one v1,whsec_ secret to sign its calls"
                    .to_owned(),
            })
        }
        (true, Some(hook)) => Ok(Some(hook)),
    }
}

/// Secrets separated by `|` (empty parts skipped), as GoTrue reads them.
fn parse_secrets(text: &str) -> Result<Vec<WebhookSecret>, String> {
    text.split('|')
        .filter(|s| !s.is_empty())
        .map(WebhookSecret::parse)
        .collect()
}

/// GoTrue's Postgres names: `^[a-zA-Z_][a-zA-Z0-9_]{0,62}$`.
fn is_postgres_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 63
}

fn parse_uri(uri: &str, secrets: &[WebhookSecret]) -> Result<Hook, String> {
    let url = reqwest::Url::parse(uri).map_err(|_| "not a URI".to_owned())?;
    match url.scheme() {
        "pg-functions" => {
            let mut parts = url.path().split('/').skip(1);
            let (Some(schema), Some(function)) = (parts.next(), parts.next()) else {
                return Err("expected pg-functions://postgres/<schema>/<function>".to_owned());
            };
            for (what, name) in [("schema", schema), ("function", function)] {
                if !is_postgres_name(name) {
                    return Err(format!(
                        "invalid {what} name (letters, digits and _, 1-63, not starting with a digit)"
                    ));
                }
            }
            Ok(Hook::PgFunction {
                schema: schema.to_owned(),
                function: function.to_owned(),
            })
        }
        "https" => Ok(Hook::Http {
            url: uri.to_owned(),
            secrets: secrets.to_vec(),
        }),
        "http" => match url.host_str() {
            Some("localhost" | "127.0.0.1" | "[::1]" | "host.docker.internal") => Ok(Hook::Http {
                url: uri.to_owned(),
                secrets: secrets.to_vec(),
            }),
            _ => Err(
                "http:// only for localhost, 127.0.0.1, ::1 and host.docker.internal (use https)"
                    .to_owned(),
            ),
        },
        _ => Err("only pg-functions://, https:// (and http:// to this host) hooks".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn settings(vars: &[(&str, &str)]) -> Result<HookSettings, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        HookSettings::from_lookup(&|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    fn refused(vars: &[(&str, &str)]) -> String {
        settings(vars).unwrap_err().to_string()
    }

    #[test]
    fn off_by_default_and_each_form_of_uri_as_gotrue_reads_it() {
        let none = settings(&[]).unwrap();
        assert!(none.before_user_created.is_none() && none.after_user_created.is_none());
        let pg = settings(&[
            ("HOOK_BEFORE_USER_CREATED_ENABLED", "true"),
            (
                "HOOK_BEFORE_USER_CREATED_URI",
                "pg-functions://postgres/public/before_signup",
            ),
        ])
        .unwrap();
        assert_eq!(
            pg.before_user_created,
            Some(Hook::PgFunction {
                schema: "public".into(),
                function: "before_signup".into()
            })
        );
        for uri in [
            "https://hooks.example.com/after?token=x",
            "http://localhost:9999/hook",
            "http://127.0.0.1/hook",
            "http://[::1]:80/hook",
            "http://host.docker.internal/hook",
        ] {
            let http = settings(&[
                ("GOTRUE_HOOK_AFTER_USER_CREATED_ENABLED", "true"),
                ("GOTRUE_HOOK_AFTER_USER_CREATED_URI", uri),
                (
                    "GOTRUE_HOOK_AFTER_USER_CREATED_SECRETS",
                    &format!("{SECRET}|"),
                ),
            ])
            .unwrap();
            let Some(Hook::Http { url, secrets }) = http.after_user_created else {
                panic!("{uri}");
            };
            assert_eq!((url.as_str(), secrets.len()), (uri, 1));
        }
        // The display never shows a URL's path or query, nor a secret.
        let shown = Hook::Http {
            url: "https://hooks.example.com/after?token=x".into(),
            secrets: vec![WebhookSecret::parse(SECRET).unwrap()],
        };
        assert_eq!(shown.to_string(), "https://hooks.example.com/…");
        assert!(!format!("{shown:?}").contains("MfKQ9r8G"));
    }

    #[test]
    fn invalid_combinations_stop_startup_naming_the_variable() {
        let cases: [(&[(&str, &str)], &str); 8] = [
            (
                &[("HOOK_BEFORE_USER_CREATED_ENABLED", "true")],
                "HOOK_BEFORE_USER_CREATED_URI is invalid: required when",
            ),
            (
                &[("HOOK_BEFORE_USER_CREATED_URI", "http://hooks.example.com/x")],
                "HOOK_BEFORE_USER_CREATED_URI is invalid: http:// only for localhost",
            ),
            (
                &[("HOOK_AFTER_USER_CREATED_URI", "ftp://localhost/x")],
                "HOOK_AFTER_USER_CREATED_URI is invalid: only pg-functions://",
            ),
            (
                &[(
                    "HOOK_AFTER_USER_CREATED_URI",
                    "pg-functions://postgres/public",
                )],
                "HOOK_AFTER_USER_CREATED_URI is invalid: expected pg-functions://",
            ),
            (
                &[(
                    "HOOK_AFTER_USER_CREATED_URI",
                    "pg-functions://postgres/public/x;drop",
                )],
                "invalid function name",
            ),
            (
                &[
                    ("HOOK_AFTER_USER_CREATED_ENABLED", "true"),
                    ("HOOK_AFTER_USER_CREATED_URI", "https://hooks.example.com/x"),
                ],
                "HOOK_AFTER_USER_CREATED_SECRETS is invalid: an HTTP hook needs",
            ),
            (
                &[("HOOK_AFTER_USER_CREATED_SECRETS", "whsec_abc")],
                "HOOK_AFTER_USER_CREATED_SECRETS is invalid: a secret must look like",
            ),
            (
                &[("GOTRUE_HOOK_BEFORE_USER_CREATED_ENABLED", "maybe")],
                "HOOK_BEFORE_USER_CREATED_ENABLED is invalid: expected true or false",
            ),
        ];
        for (vars, expected) in cases {
            let error = refused(vars);
            assert!(error.contains(expected), "{vars:?}: {error}");
        }
        assert!(
            refused(&[("HOOK_AFTER_USER_CREATED_SECRETS", "v1a,whpk_x:whsk_y")])
                .contains("asymmetric")
        );
    }

    #[test]
    fn the_unprefixed_name_wins_over_gotrues() {
        let hooks = settings(&[
            ("HOOK_BEFORE_USER_CREATED_ENABLED", "false"),
            ("GOTRUE_HOOK_BEFORE_USER_CREATED_ENABLED", "true"),
            (
                "GOTRUE_HOOK_BEFORE_USER_CREATED_URI",
                "pg-functions://postgres/public/f",
            ),
        ])
        .unwrap();
        assert!(hooks.before_user_created.is_none());
    }
}
