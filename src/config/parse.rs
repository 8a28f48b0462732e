//! How a variable's text becomes a value: the helpers every settings file parses with. A value
//! that does not parse is an error naming the variable; an unset or empty variable is "not set".

use std::net::SocketAddr;
use std::time::Duration;

use super::ConfigError;

/// Where variables are read from: the process environment, or a table in tests.
pub type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

pub(super) fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads `name`, which must be set and not empty.
pub(super) fn required<T>(
    get: &Lookup<'_>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    match get(name) {
        Some(v) if !v.trim().is_empty() => parse(v.trim()),
        _ => Err(ConfigError::Missing { name }),
    }
}

/// Reads `name`; unset or empty means `None`. A value `parse` rejects is an error naming it.
pub(super) fn parse_opt<T>(
    get: &Lookup<'_>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    get(name)
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse(v.trim()).map_err(|reason| ConfigError::Invalid { name, reason }))
        .transpose()
}

/// Reads `name`; unset or empty means `default`. A value `parse` rejects is an error naming it.
pub(super) fn parse_or<T>(
    get: &Lookup<'_>,
    name: &'static str,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    Ok(parse_opt(get, name, parse)?.unwrap_or(default))
}

pub(super) fn parse_socket_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse::<SocketAddr>()
        .map_err(|_| "expected an address like 0.0.0.0:8000".to_owned())
}

pub(super) fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// A count, `min` to `max`.
pub(super) fn count(min: u32, max: u32) -> impl Fn(&str) -> Result<usize, String> {
    move |v| {
        parse_in_range(v, min, max)
            .and_then(|n| usize::try_from(n).map_err(|_| "too large for this machine".to_owned()))
    }
}

/// A duration given as a whole number of milliseconds, 1 to `max`.
pub(super) fn millis(max: u32) -> impl Fn(&str) -> Result<Duration, String> {
    move |v| parse_in_range(v, 1, max).map(|n| Duration::from_millis(n.into()))
}

/// A duration given as a whole number of seconds, 1 to `max`.
pub(super) fn seconds(max: u32) -> impl Fn(&str) -> Result<Duration, String> {
    move |v| parse_in_range(v, 1, max).map(|n| Duration::from_secs(n.into()))
}

pub(super) fn parse_in_range(v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}
