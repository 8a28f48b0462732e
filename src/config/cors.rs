//! CORS for browser frontends on other origins (CORS_ALLOWED_ORIGINS, CORS_MAX_AGE_S).

use std::time::Duration;

use super::ConfigError;
use super::parse::{Lookup, parse_or, seconds};

/// Which origins may call the API from a browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorsOrigins {
    /// No CORS headers at all (same-origin deployments).
    Off,
    /// `*`: any origin (the API uses no cookies, so no credentials mode).
    Any,
    /// These exact origins (`scheme://host[:port]`, lower-case).
    List(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsSettings {
    pub origins: CorsOrigins,
    /// How long a browser may cache a preflight answer (`Access-Control-Max-Age`).
    pub max_age: Duration,
}

impl Default for CorsSettings {
    fn default() -> Self {
        Self {
            origins: CorsOrigins::Off,
            max_age: Duration::from_secs(600),
        }
    }
}

impl CorsSettings {
    /// CORS_ALLOWED_ORIGINS, CORS_MAX_AGE_S.
    pub(super) fn from_lookup(get: &Lookup<'_>) -> Result<Self, ConfigError> {
        Ok(Self {
            origins: parse_or(
                get,
                "CORS_ALLOWED_ORIGINS",
                CorsOrigins::Off,
                CorsOrigins::parse,
            )?,
            max_age: parse_or(
                get,
                "CORS_MAX_AGE_S",
                Self::default().max_age,
                seconds(86_400),
            )?,
        })
    }
}

impl CorsOrigins {
    /// A comma-separated list of exact origins, or `*` alone. The error names the bad value.
    pub fn parse(list: &str) -> Result<Self, String> {
        let entries: Vec<&str> = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .collect();
        if entries.is_empty() {
            return Ok(Self::Off);
        }
        if entries.contains(&"*") {
            return if entries.len() == 1 {
                Ok(Self::Any)
            } else {
                Err("`*` cannot be combined with other origins".to_owned())
            };
        }
        entries
            .into_iter()
            .map(parse_origin)
            .collect::<Result<Vec<_>, _>>()
            .map(Self::List)
    }
}

/// `scheme://host[:port]` as a browser sends it in `Origin`: http or https, a host, an optional
/// port, and nothing after it (no path, not even a trailing slash).
fn parse_origin(value: &str) -> Result<String, String> {
    let bad = |why: &str| {
        Err(format!(
            "`{value}` is not an origin like https://app.example.com ({why})"
        ))
    };
    let lower = value.to_ascii_lowercase();
    let Some((scheme, rest)) = lower.split_once("://") else {
        return bad("missing scheme");
    };
    if scheme != "http" && scheme != "https" {
        return bad("the scheme must be http or https");
    }
    if rest.contains(['/', '?', '#']) {
        return bad("no path or trailing slash");
    }
    if rest.contains('@') {
        return bad("no user name");
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((host, _)) if !host.ends_with(']') && host.contains(':') => (rest, None),
        Some((host, port)) => (host, Some(port)),
        None => (rest, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        inner.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    };
    if !host_ok {
        return bad("not a valid host");
    }
    if let Some(port) = port
        && !matches!(port.parse::<u16>(), Ok(p) if p > 0 && !port.starts_with('0'))
    {
        return bad("not a valid port");
    }
    Ok(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_scheme_host_and_port() {
        assert_eq!(CorsOrigins::parse(""), Ok(CorsOrigins::Off));
        assert_eq!(CorsOrigins::parse(" , "), Ok(CorsOrigins::Off));
        assert_eq!(CorsOrigins::parse("*"), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::parse("https://App.Example.com, http://localhost:3000,http://[::1]:8080"),
            Ok(CorsOrigins::List(vec![
                "https://app.example.com".into(),
                "http://localhost:3000".into(),
                "http://[::1]:8080".into(),
            ]))
        );
        for bad in [
            "https://app.example.com/",
            "https://app.example.com/path",
            "app.example.com",
            "localhost:3000",
            "ftp://example.com",
            "https://",
            "https://user@example.com",
            "https://example.com:0",
            "https://example.com:99999",
            "https://example.com:x",
            "https://exa mple.com",
            "*, https://example.com",
        ] {
            let err = CorsOrigins::parse(bad).unwrap_err();
            if bad.starts_with('*') {
                assert!(err.contains('*'), "{bad}: {err}");
            } else {
                assert!(err.contains(bad.trim()), "{bad}: {err}");
            }
        }
    }
}
