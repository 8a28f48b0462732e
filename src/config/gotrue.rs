//! GoTrue: where it is and how to call it.

use std::time::Duration;

use secrecy::SecretString;

use super::ConfigError;
use super::parse::{Lookup, env_lookup, millis, parse_or};

/// Where GoTrue is and how to call it.
#[derive(Debug, Clone)]
pub struct GoTrueSettings {
    /// GoTrue's base URL, without a trailing slash (`…/auth/v1` behind the Supabase gateway).
    pub url: String,
    /// Sent as `apikey`. Never shown by `Debug`.
    pub anon_key: SecretString,
    pub timeout: Duration,
}

impl GoTrueSettings {
    /// [`GoTrueSettings::from_lookup`] on the process environment.
    pub fn from_env() -> Result<Option<Self>, ConfigError> {
        Self::from_lookup(&env_lookup)
    }

    /// `GOTRUE_URL`, else `SUPABASE_URL` + `/auth/v1`; `SUPABASE_ANON_KEY` (or the older
    /// `SUPABASE_KEY`); `GOTRUE_TIMEOUT_MS`. `None` when no URL is set at all.
    pub fn from_lookup(get: &Lookup<'_>) -> Result<Option<Self>, ConfigError> {
        let set = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let url = match (set("GOTRUE_URL"), set("SUPABASE_URL")) {
            (Some(url), _) => parse_http_url("GOTRUE_URL", &url)?,
            (None, Some(url)) => format!("{}/auth/v1", parse_http_url("SUPABASE_URL", &url)?),
            (None, None) => {
                if set("SUPABASE_ANON_KEY").is_some() || set("SUPABASE_KEY").is_some() {
                    return Err(ConfigError::Missing {
                        name: "SUPABASE_URL",
                    });
                }
                return Ok(None);
            }
        };
        let anon_key = set("SUPABASE_ANON_KEY")
            .or_else(|| set("SUPABASE_KEY"))
            .ok_or(ConfigError::Missing {
                name: "SUPABASE_ANON_KEY",
            })?;
        let timeout = parse_or(
            get,
            "GOTRUE_TIMEOUT_MS",
            Duration::from_millis(10_000),
            millis(600_000),
        )?;
        Ok(Some(Self {
            url,
            anon_key: SecretString::from(anon_key.trim()),
            timeout,
        }))
    }
}

/// An http(s) URL without credentials, query or fragment; returned without a trailing slash.
fn parse_http_url(name: &'static str, value: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        name,
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(value.trim().trim_end_matches('/'))
        .map_err(|_| invalid("not a valid URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("expected an http:// or https:// URL"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(invalid("must not carry credentials, a query or a fragment"));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}
