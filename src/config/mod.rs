//! Settings from the environment (and `.env`, loaded by `main`), validated once at startup.
//!
//! A missing or malformed variable is an error that names it. The database password never
//! appears in `Debug` output or in an error message.
//!
//! Every settings type lives here, one file per concern (database, GoTrue, hashing, outbox, CORS);
//! nothing here depends on the modules it configures.

mod captcha;
mod cors;
mod database;
mod gotrue;
mod hashing;
mod outbox;

use std::net::SocketAddr;
use std::time::Duration;

pub use captcha::{CaptchaProvider, CaptchaSettings};
pub use cors::{CorsOrigins, CorsSettings};
pub use database::{DatabaseSettings, DatabaseUrl, PoolMode, SUPABASE_TRANSACTION_POOLER_PORT};
pub use gotrue::GoTrueSettings;
pub use hashing::{DEFAULT_QUEUE_PER_CORE, HashSettings};
pub use outbox::OutboxSettings;

use crate::domain::{EmailDomains, PasswordPolicy, RoleSet, SignupRules};
use crate::idempotency::FingerprintSecret;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{name} is required but not set")]
    Missing { name: &'static str },
    #[error("{name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Everything `atomic-signup serve` needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub bind_addr: SocketAddr,
    /// Roles a signup may ask for, the password policy and the email domains.
    pub signup: SignupRules,
    /// DISABLE_SIGNUP: every signup answers 422 `signup_disabled` (login keeps working).
    pub disable_signup: bool,
    /// Captcha on signup; `None` = off.
    pub captcha: Option<CaptchaSettings>,
    pub require_email_confirmation: bool,
    /// Answer 202 for new and existing emails alike (needs REQUIRE_EMAIL_CONFIRMATION=true).
    pub conceal_existing_emails: bool,
    /// With concealment: the signup transaction step (and a taken email's rollback) takes at
    /// least this long, so a new email's commit cannot be told from a taken email's rollback.
    pub conceal_min_duration: Duration,
    /// The metrics listener (`GET /metrics`); `None` = metrics not served.
    pub metrics_bind_addr: Option<SocketAddr>,
    /// A request head must arrive within this; also how long an idle keep-alive connection lasts.
    pub http_header_read_timeout: Duration,
    /// Open client connections at most.
    pub http_max_connections: usize,
    /// Open connections per client address (IPv6: per /64) at most; 0 = no bound (behind a
    /// proxy, every connection comes from the proxy's address).
    pub http_max_connections_per_ip: usize,
    /// How often the rate limiters forget clients whose bucket is full again.
    pub rate_limit_prune_interval: Duration,
    pub argon2: HashSettings,
    /// Signups that may wait for a hashing thread, per core; beyond that, 503 `overloaded`.
    pub hash_queue_per_core: usize,
    /// After SIGTERM/SIGINT, how long in-flight requests and the outbox worker may take.
    pub shutdown_timeout: Duration,
    /// A request still unanswered after this gets 503 `request_timeout`.
    pub request_timeout: Duration,
    /// Requests per minute per client IP (0 = no limit).
    pub rate_limit_signup_per_minute: u32,
    pub rate_limit_login_per_minute: u32,
    /// Take the client IP from `X-Forwarded-For` (behind a trusted proxy only).
    pub trust_forwarded_for: bool,
    /// GoTrue, for login and for confirmation emails; `None` when not configured.
    pub gotrue: Option<GoTrueSettings>,
    pub idempotency: IdempotencySettings,
    pub outbox: OutboxSettings,
    /// Browser frontends on other origins.
    pub cors: CorsSettings,
}

/// Idempotency-Key on signup.
#[derive(Debug, Clone)]
pub struct IdempotencySettings {
    /// Keys the request fingerprints; the same on every replica (IDEMPOTENCY_SECRET).
    pub secret: FingerprintSecret,
    /// How often expired keys (older than 24 h) are deleted.
    pub purge_interval: Duration,
}

impl IdempotencySettings {
    fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let name = "IDEMPOTENCY_SECRET";
        let raw = get(name)
            .filter(|v| !v.trim().is_empty())
            .ok_or(ConfigError::Missing { name })?;
        let secret = FingerprintSecret::parse(raw.trim())
            .map_err(|reason| ConfigError::Invalid { name, reason })?;
        let purge_interval = parse_or(
            get,
            "IDEMPOTENCY_PURGE_INTERVAL_S",
            Duration::from_secs(3600),
            seconds(86_400),
        )?;
        Ok(Self {
            secret,
            purge_interval,
        })
    }
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(&env_lookup)
    }

    /// Reads every variable through `get`, so tests need not touch the process environment.
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let database = DatabaseSettings::from_lookup(get)?;
        let bind_addr = bind_addr(get)?;
        let signup = SignupRules {
            roles: signup_roles(get)?,
            password: PasswordPolicy {
                min_length: parse_or(
                    get,
                    "PASSWORD_MIN_LENGTH",
                    PasswordPolicy::default().min_length,
                    |v| {
                        count(PasswordPolicy::LOWEST_MIN_LENGTH as u32, 256)(v)
                            .map_err(|e| format!("{e} (GoTrue never accepts less than 6)"))
                    },
                )?,
                required_characters: get("PASSWORD_REQUIRED_CHARACTERS")
                    .map(|v| PasswordPolicy::parse_required_characters(&v))
                    .unwrap_or_default(),
            },
            email_domains: email_domains(get)?,
        };
        let disable_signup = parse_or(get, "DISABLE_SIGNUP", false, parse_bool)?;
        let captcha = CaptchaSettings::from_lookup(get)?;
        let require_email_confirmation =
            parse_or(get, "REQUIRE_EMAIL_CONFIRMATION", true, parse_bool)?;
        let defaults = HashSettings::default();
        let argon2 = HashSettings {
            memory_kib: parse_or(get, "ARGON2_MEMORY_KIB", defaults.memory_kib, |v| {
                parse_in_range(v, 8, HashSettings::MAX_MEMORY_KIB)
            })?,
            iterations: parse_or(get, "ARGON2_ITERATIONS", defaults.iterations, |v| {
                parse_in_range(v, 1, HashSettings::MAX_ITERATIONS)
            })?,
            parallelism: parse_or(get, "ARGON2_PARALLELISM", defaults.parallelism, |v| {
                parse_in_range(v, 1, HashSettings::MAX_PARALLELISM)
            })?,
        };
        argon2.params().map_err(|e| ConfigError::Invalid {
            name: "ARGON2_MEMORY_KIB",
            reason: format!("rejected by argon2 with these ARGON2_* values: {e}"),
        })?;
        let conceal_existing_emails = parse_or(get, "CONCEAL_EXISTING_EMAILS", false, parse_bool)?;
        if conceal_existing_emails && !require_email_confirmation {
            return Err(ConfigError::Invalid {
                name: "CONCEAL_EXISTING_EMAILS",
                reason: "true needs REQUIRE_EMAIL_CONFIRMATION=true (otherwise a new account \
                         could log in at once, and a taken email could not)"
                    .to_owned(),
            });
        }
        let conceal_min_duration = parse_or(
            get,
            "CONCEAL_MIN_DURATION_MS",
            Duration::from_millis(100),
            millis(60_000),
        )?;
        let metrics_bind_addr = match get("METRICS_BIND_ADDR") {
            // Set but empty: metrics off.
            Some(v) if v.trim().is_empty() => None,
            v => Some(parse_or(
                &|_| v.clone(),
                "METRICS_BIND_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9100)),
                parse_socket_addr,
            )?),
        };
        let metrics_allow_public = parse_or(get, "METRICS_ALLOW_PUBLIC", false, parse_bool)?;
        if conceal_existing_emails
            && !metrics_allow_public
            && metrics_bind_addr.is_some_and(|addr| !addr.ip().is_loopback())
        {
            return Err(ConfigError::Invalid {
                name: "METRICS_BIND_ADDR",
                reason: "with CONCEAL_EXISTING_EMAILS=true the metrics must stay on a loopback \
                         address: the outbox and confirmation counters move only for new emails, \
                         so whoever reads them tells new from registered addresses. Use \
                         127.0.0.1:9100, leave it empty (metrics off), or set \
                         METRICS_ALLOW_PUBLIC=true if only your monitoring can reach this address"
                    .to_owned(),
            });
        }
        let http_header_read_timeout = parse_or(
            get,
            "HTTP_HEADER_READ_TIMEOUT_S",
            Duration::from_secs(10),
            seconds(3600),
        )?;
        let http_max_connections =
            parse_or(get, "HTTP_MAX_CONNECTIONS", 1024, count(1, 1_000_000))?;
        let http_max_connections_per_ip =
            parse_or(get, "HTTP_MAX_CONNECTIONS_PER_IP", 64, count(0, 1_000_000))?;
        let rate_limit_prune_interval = parse_or(
            get,
            "RATE_LIMIT_PRUNE_INTERVAL_S",
            Duration::from_secs(60),
            seconds(86_400),
        )?;
        let hash_queue_per_core = parse_or(
            get,
            "HASH_QUEUE_PER_CORE",
            DEFAULT_QUEUE_PER_CORE,
            count(1, 100_000),
        )?;
        let shutdown_timeout = parse_or(
            get,
            "SHUTDOWN_TIMEOUT_S",
            Duration::from_secs(30),
            seconds(3600),
        )?;
        let request_timeout = parse_or(
            get,
            "REQUEST_TIMEOUT_S",
            Duration::from_secs(15),
            seconds(3600),
        )?;
        let per_minute = |v: &str| parse_in_range(v, 0, 60_000);
        let rate_limit_signup_per_minute =
            parse_or(get, "RATE_LIMIT_SIGNUP_PER_MINUTE", 20, per_minute)?;
        let rate_limit_login_per_minute =
            parse_or(get, "RATE_LIMIT_LOGIN_PER_MINUTE", 60, per_minute)?;
        let trust_forwarded_for = parse_or(get, "TRUST_FORWARDED_FOR", false, parse_bool)?;
        let gotrue = GoTrueSettings::from_lookup(get)?;
        let idempotency = IdempotencySettings::from_lookup(get)?;
        let ms = millis(86_400_000);
        let d = OutboxSettings::default();
        let outbox = OutboxSettings {
            max_attempts: parse_or(get, "OUTBOX_MAX_ATTEMPTS", d.max_attempts, |v| {
                parse_in_range(v, 1, 1000)
            })?,
            backoff_base: parse_or(get, "OUTBOX_BACKOFF_BASE_MS", d.backoff_base, &ms)?,
            backoff_max: parse_or(get, "OUTBOX_BACKOFF_MAX_MS", d.backoff_max, &ms)?,
            poll_interval: parse_or(get, "OUTBOX_POLL_INTERVAL_MS", d.poll_interval, &ms)?,
        };
        let cors = CorsSettings {
            origins: parse_or(
                get,
                "CORS_ALLOWED_ORIGINS",
                CorsOrigins::Off,
                CorsOrigins::parse,
            )?,
            max_age: parse_or(
                get,
                "CORS_MAX_AGE_S",
                CorsSettings::default().max_age,
                seconds(86_400),
            )?,
        };
        Ok(Self {
            database,
            bind_addr,
            signup,
            disable_signup,
            captcha,
            require_email_confirmation,
            conceal_existing_emails,
            conceal_min_duration,
            metrics_bind_addr,
            http_header_read_timeout,
            http_max_connections,
            http_max_connections_per_ip,
            rate_limit_prune_interval,
            argon2,
            hash_queue_per_core,
            shutdown_timeout,
            request_timeout,
            rate_limit_signup_per_minute,
            rate_limit_login_per_minute,
            trust_forwarded_for,
            gotrue,
            idempotency,
            outbox,
            cors,
        })
    }
}

/// Loads `.env` from the working directory, or the file named by `ENV_FILE`, into the
/// environment (variables already set win). A missing `./.env` is fine; a missing `ENV_FILE` is
/// an error. Never a parent directory's `.env`: one in a directory that others can write to (the
/// temporary directory, say) could point GOTRUE_URL at an attacker. A malformed line is reported
/// by its number only: the line itself may hold a password or a key.
pub fn load_dotenv() -> Result<(), String> {
    let (path, named) = match std::env::var_os("ENV_FILE") {
        Some(path) if !path.is_empty() => (std::path::PathBuf::from(path), true),
        _ => (std::path::PathBuf::from(".env"), false),
    };
    match dotenvy::from_path(&path) {
        Ok(()) => Ok(()),
        Err(err) if err.not_found() && !named => Ok(()),
        Err(dotenvy::Error::LineParse(line, _)) => {
            let number = std::fs::read_to_string(&path)
                .ok()
                .and_then(|text| line_number_of(&text, &line));
            Err(match number {
                Some(n) => format!("line {n} is malformed (its content is not shown)"),
                None => "a line is malformed (its content is not shown)".to_owned(),
            })
        }
        Err(dotenvy::Error::Io(err)) if named => Err(format!("ENV_FILE={}: {err}", path.display())),
        Err(dotenvy::Error::Io(err)) => Err(err.to_string()),
        Err(_) => Err("it is not valid".to_owned()),
    }
}

/// The 1-based number of the line where `line` starts in `text`.
fn line_number_of(text: &str, line: &str) -> Option<usize> {
    let at = text.find(line.trim_start())?;
    Some(text[..at].matches('\n').count() + 1)
}

/// BIND_ADDR: where `serve` listens (and where `healthcheck` looks).
pub fn bind_addr(get: &dyn Fn(&str) -> Option<String>) -> Result<SocketAddr, ConfigError> {
    parse_or(
        get,
        "BIND_ADDR",
        SocketAddr::from(([0, 0, 0, 0], 8000)),
        parse_socket_addr,
    )
}

/// [`bind_addr`] from the process environment.
pub fn bind_addr_from_env() -> Result<SocketAddr, ConfigError> {
    bind_addr(&env_lookup)
}

/// SIGNUP_ROLES: the roles a signup may ask for (`serve`), written into the database by `migrate`.
pub fn signup_roles(get: &dyn Fn(&str) -> Option<String>) -> Result<RoleSet, ConfigError> {
    parse_or(get, "SIGNUP_ROLES", RoleSet::default(), RoleSet::parse_list)
}

/// [`signup_roles`] from the process environment.
pub fn signup_roles_from_env() -> Result<RoleSet, ConfigError> {
    signup_roles(&env_lookup)
}

/// SIGNUP_EMAIL_DOMAIN_ALLOWLIST or SIGNUP_EMAIL_DOMAIN_DENYLIST (not both).
fn email_domains(get: &dyn Fn(&str) -> Option<String>) -> Result<EmailDomains, ConfigError> {
    let list = |name| parse_opt(get, name, EmailDomains::parse_list);
    match (
        list("SIGNUP_EMAIL_DOMAIN_ALLOWLIST")?,
        list("SIGNUP_EMAIL_DOMAIN_DENYLIST")?,
    ) {
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            name: "SIGNUP_EMAIL_DOMAIN_DENYLIST",
            reason: "set SIGNUP_EMAIL_DOMAIN_ALLOWLIST or the deny list, not both".to_owned(),
        }),
        (Some(only), None) => Ok(EmailDomains::Only(only)),
        (None, Some(but)) => Ok(EmailDomains::AllBut(but)),
        (None, None) => Ok(EmailDomains::Any),
    }
}

fn env_lookup(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// Reads `name`; unset or empty means `None`. A value `parse` rejects is an error naming it.
fn parse_opt<T>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, ConfigError> {
    get(name)
        .filter(|v| !v.trim().is_empty())
        .map(|v| parse(v.trim()).map_err(|reason| ConfigError::Invalid { name, reason }))
        .transpose()
}

/// Reads `name`; unset or empty means `default`. A value `parse` rejects is an error naming it.
fn parse_or<T>(
    get: &dyn Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    Ok(parse_opt(get, name, parse)?.unwrap_or(default))
}

fn parse_socket_addr(v: &str) -> Result<SocketAddr, String> {
    v.parse::<SocketAddr>()
        .map_err(|_| "expected an address like 0.0.0.0:8000".to_owned())
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// A count, `min` to `max`.
fn count(min: u32, max: u32) -> impl Fn(&str) -> Result<usize, String> {
    move |v| {
        parse_in_range(v, min, max)
            .and_then(|n| usize::try_from(n).map_err(|_| "too large for this machine".to_owned()))
    }
}

/// A duration given as a whole number of milliseconds, 1 to `max`.
fn millis(max: u32) -> impl Fn(&str) -> Result<Duration, String> {
    move |v| parse_in_range(v, 1, max).map(|n| Duration::from_millis(n.into()))
}

/// A duration given as a whole number of seconds, 1 to `max`.
fn seconds(max: u32) -> impl Fn(&str) -> Result<Duration, String> {
    move |v| parse_in_range(v, 1, max).map(|n| Duration::from_secs(n.into()))
}

fn parse_in_range(v: &str, min: u32, max: u32) -> Result<u32, String> {
    match v.parse::<u32>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!("expected a whole number from {min} to {max}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const URL: &str = "postgres://svc:s3cret-pw@db.example:6543/postgres";
    const SECRET: &str = "idempotency-secret-0123456789abcdef";

    /// `vars`, plus an IDEMPOTENCY_SECRET unless `vars` sets one.
    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = [("IDEMPOTENCY_SECRET", SECRET)]
            .iter()
            .chain(vars)
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(&move |k| map.get(k).cloned())
    }

    #[test]
    fn gotrue_s_signup_protections() {
        let s = settings(&[("DATABASE_URL", URL)]).unwrap();
        assert!(!s.disable_signup && s.captcha.is_none());
        assert_eq!(s.signup.password, PasswordPolicy::default());
        let s = settings(&[
            ("DATABASE_URL", URL),
            ("DISABLE_SIGNUP", "true"),
            ("PASSWORD_MIN_LENGTH", "12"),
            ("PASSWORD_REQUIRED_CHARACTERS", r"abc:ABC:\:"),
            ("CAPTCHA_PROVIDER", "turnstile"),
            ("CAPTCHA_SECRET", "s3cret"),
            ("SIGNUP_EMAIL_DOMAIN_DENYLIST", "spam.test"),
        ])
        .unwrap();
        assert!(s.disable_signup);
        assert_eq!(s.signup.password.min_length, 12);
        assert_eq!(s.signup.password.required_characters, ["abc", "ABC", ":"]);
        let captcha = s.captcha.unwrap();
        assert_eq!(captcha.provider, CaptchaProvider::Turnstile);
        assert_eq!(
            captcha.verify_url,
            "https://challenges.cloudflare.com/turnstile/v0/siteverify"
        );
        assert_eq!(captcha.timeout, Duration::from_secs(10));
        assert!(!format!("{captcha:?}").contains("s3cret"));
        assert_eq!(
            s.signup.email_domains,
            EmailDomains::AllBut(vec!["spam.test".into()])
        );
        for (vars, name) in [
            (vec![("PASSWORD_MIN_LENGTH", "5")], "PASSWORD_MIN_LENGTH"),
            (vec![("CAPTCHA_PROVIDER", "recaptcha")], "CAPTCHA_PROVIDER"),
            (vec![("CAPTCHA_PROVIDER", "hcaptcha")], "CAPTCHA_SECRET"),
            (
                vec![
                    ("CAPTCHA_PROVIDER", "hcaptcha"),
                    ("CAPTCHA_SECRET", "x"),
                    ("CAPTCHA_VERIFY_URL", "siteverify"),
                ],
                "CAPTCHA_VERIFY_URL",
            ),
            (
                vec![
                    ("SIGNUP_EMAIL_DOMAIN_ALLOWLIST", "a.test"),
                    ("SIGNUP_EMAIL_DOMAIN_DENYLIST", "b.test"),
                ],
                "SIGNUP_EMAIL_DOMAIN_DENYLIST",
            ),
        ] {
            let mut all = vec![("DATABASE_URL", URL)];
            all.extend(vars);
            let err = settings(&all).unwrap_err().to_string();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn a_bad_migrate_url_is_named_as_such() {
        let err = settings(&[
            ("DATABASE_URL", URL),
            ("MIGRATE_DATABASE_URL", "mysql://db/app"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("MIGRATE_DATABASE_URL"), "{err}");
        let err = settings(&[("DATABASE_URL", "mysql://db/app")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("DATABASE_URL"), "{err}");
    }

    #[test]
    fn cors_origins_and_max_age() {
        let s = settings(&[("DATABASE_URL", URL)]).unwrap();
        assert_eq!(s.cors, CorsSettings::default());
        assert_eq!(s.cors.origins, CorsOrigins::Off);
        let s = settings(&[
            ("DATABASE_URL", URL),
            ("CORS_ALLOWED_ORIGINS", "http://localhost:3000"),
            ("CORS_MAX_AGE_S", "120"),
        ])
        .unwrap();
        assert_eq!(
            s.cors.origins,
            CorsOrigins::List(vec!["http://localhost:3000".into()])
        );
        assert_eq!(s.cors.max_age, Duration::from_secs(120));
        let err = settings(&[
            ("DATABASE_URL", URL),
            ("CORS_ALLOWED_ORIGINS", "https://app.example.com/"),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("CORS_ALLOWED_ORIGINS is invalid")
                && err.contains("`https://app.example.com/`"),
            "{err}"
        );
    }

    #[test]
    fn defaults_apply_when_only_the_url_is_set() {
        let s = settings(&[("DATABASE_URL", URL)]).unwrap();
        assert_eq!(s.bind_addr.to_string(), "0.0.0.0:8000");
        assert_eq!(s.signup.roles.names(), ["Creator", "Brand"]);
        assert!(s.require_email_confirmation);
        assert_eq!(s.argon2, HashSettings::default());
        assert_eq!(
            (
                s.argon2.memory_kib,
                s.argon2.iterations,
                s.argon2.parallelism
            ),
            (19456, 2, 1)
        );
        assert_eq!(s.database.max_connections, 10);
        assert_eq!(s.database.statement_timeout, Duration::from_secs(5));
        assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(s.request_timeout, Duration::from_secs(15));
        assert_eq!(s.database.acquire_timeout, Duration::from_secs(2));
        assert_eq!(
            s.metrics_bind_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9100)))
        );
        assert_eq!(s.http_header_read_timeout, Duration::from_secs(10));
        assert_eq!(s.http_max_connections, 1024);
        assert_eq!(s.http_max_connections_per_ip, 64);
        assert_eq!(s.conceal_min_duration, Duration::from_millis(100));
        assert_eq!(s.rate_limit_prune_interval, Duration::from_secs(60));
        assert_eq!(
            (
                s.rate_limit_signup_per_minute,
                s.rate_limit_login_per_minute,
                s.trust_forwarded_for
            ),
            (20, 60, false)
        );
    }

    #[test]
    fn the_idempotency_secret_is_required_long_and_never_shown() {
        let err = settings(&[("DATABASE_URL", URL), ("IDEMPOTENCY_SECRET", "")]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "IDEMPOTENCY_SECRET is required but not set"
        );
        let err =
            settings(&[("DATABASE_URL", URL), ("IDEMPOTENCY_SECRET", "too-short")]).unwrap_err();
        assert!(err.to_string().starts_with("IDEMPOTENCY_SECRET is invalid"));
        let s = settings(&[("DATABASE_URL", URL)]).unwrap();
        assert!(!format!("{s:?}").contains(SECRET));
        assert_eq!(s.idempotency.purge_interval, Duration::from_secs(3600));
    }

    #[test]
    fn an_empty_metrics_address_switches_metrics_off() {
        let s = settings(&[("DATABASE_URL", URL), ("METRICS_BIND_ADDR", "")]).unwrap();
        assert_eq!(s.metrics_bind_addr, None);
        let s = settings(&[
            ("DATABASE_URL", URL),
            ("METRICS_BIND_ADDR", "127.0.0.1:9191"),
        ])
        .unwrap();
        assert_eq!(
            s.metrics_bind_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9191)))
        );
        let err = settings(&[("DATABASE_URL", URL), ("METRICS_BIND_ADDR", "nine")]).unwrap_err();
        assert!(err.to_string().starts_with("METRICS_BIND_ADDR is invalid"));
    }

    #[test]
    fn concealment_keeps_metrics_on_loopback_unless_allowed() {
        let conceal = [("DATABASE_URL", URL), ("CONCEAL_EXISTING_EMAILS", "true")];
        assert!(settings(&conceal).is_ok(), "the default is loopback");
        let public = [conceal.as_slice(), &[("METRICS_BIND_ADDR", "0.0.0.0:9100")]].concat();
        let err = settings(&public).unwrap_err().to_string();
        assert!(
            err.starts_with("METRICS_BIND_ADDR is invalid")
                && err.contains("METRICS_ALLOW_PUBLIC=true"),
            "{err}"
        );
        let allowed = [public.as_slice(), &[("METRICS_ALLOW_PUBLIC", "true")]].concat();
        assert!(settings(&allowed).is_ok());
        let v6 = [conceal.as_slice(), &[("METRICS_BIND_ADDR", "[::1]:9100")]].concat();
        assert!(settings(&v6).is_ok(), "::1 is loopback");
        let off = [conceal.as_slice(), &[("METRICS_BIND_ADDR", "")]].concat();
        assert!(settings(&off).is_ok());
        let open = [("DATABASE_URL", URL), ("METRICS_BIND_ADDR", "0.0.0.0:9100")];
        assert!(
            settings(&open).is_ok(),
            "without concealment nothing is hidden"
        );
    }

    #[test]
    fn a_malformed_env_line_is_found_by_number() {
        let text = "# comment\nA=1\n\nDATABASE_URL=\"postgres://u:pw@h/db\n";
        assert_eq!(
            line_number_of(text, "DATABASE_URL=\"postgres://u:pw@h/db"),
            Some(4)
        );
        assert_eq!(line_number_of(text, "nowhere"), None);
    }

    #[test]
    fn missing_database_url_is_named() {
        let err = settings(&[]).unwrap_err();
        assert_eq!(err.to_string(), "DATABASE_URL is required but not set");
    }

    #[test]
    fn malformed_variables_are_named() {
        let cases = [
            ("BIND_ADDR", "localhost"),
            ("SIGNUP_ROLES", " , "),
            ("REQUIRE_EMAIL_CONFIRMATION", "maybe"),
            ("ARGON2_MEMORY_KIB", "1048577"),
            ("ARGON2_ITERATIONS", "21"),
            ("ARGON2_ITERATIONS", "0"),
            ("ARGON2_PARALLELISM", "17"),
            ("DATABASE_MAX_CONNECTIONS", "zero"),
        ];
        for (name, value) in cases {
            let err = settings(&[("DATABASE_URL", URL), (name, value)]).unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("{name} is invalid")),
                "{name}={value}: {err}"
            );
        }
    }

    #[test]
    fn gotrue_limits_are_accepted_at_the_edge() {
        let s = settings(&[
            ("DATABASE_URL", URL),
            ("ARGON2_MEMORY_KIB", "1048576"),
            ("ARGON2_ITERATIONS", "20"),
            ("ARGON2_PARALLELISM", "16"),
        ])
        .unwrap();
        assert_eq!(s.argon2.memory_kib, 1_048_576);
    }

    #[test]
    fn argon2_memory_below_8_per_lane_is_refused() {
        let err = settings(&[
            ("DATABASE_URL", URL),
            ("ARGON2_MEMORY_KIB", "8"),
            ("ARGON2_PARALLELISM", "4"),
        ])
        .unwrap_err();
        assert!(err.to_string().contains("ARGON2_MEMORY_KIB is invalid"));
    }

    #[test]
    fn the_database_password_never_shows() {
        let s = settings(&[("DATABASE_URL", URL)]).unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("s3cret-pw"), "{debug}");
        assert!(debug.contains("db.example"), "{debug}");

        let bad = "postgres://svc:s3cret-pw@db.example:notaport/postgres";
        let err = settings(&[("DATABASE_URL", bad)]).unwrap_err().to_string();
        assert!(!err.contains("s3cret-pw"), "{err}");
        assert!(err.starts_with("DATABASE_URL is invalid"), "{err}");
    }

    #[test]
    fn gotrue_comes_from_supabase_url_or_gotrue_url() {
        let s = settings(&[("DATABASE_URL", URL)]).unwrap();
        assert!(s.gotrue.is_none(), "login is optional");

        let s = settings(&[
            ("DATABASE_URL", URL),
            ("SUPABASE_URL", "https://abc.supabase.co/"),
            ("SUPABASE_ANON_KEY", "anon-key-123"),
        ])
        .unwrap();
        let g = s.gotrue.unwrap();
        assert_eq!(g.url, "https://abc.supabase.co/auth/v1");
        assert_eq!(g.timeout, Duration::from_secs(10));
        assert!(!format!("{g:?}").contains("anon-key-123"));

        let s = settings(&[
            ("DATABASE_URL", URL),
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("GOTRUE_URL", "http://localhost:9999"),
            ("SUPABASE_KEY", "older-name"),
            ("GOTRUE_TIMEOUT_MS", "250"),
        ])
        .unwrap();
        let g = s.gotrue.unwrap();
        assert_eq!(g.url, "http://localhost:9999");
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&g.anon_key),
            "older-name"
        );
        assert_eq!(g.timeout, Duration::from_millis(250));
    }

    #[test]
    fn gotrue_half_configured_is_an_error() {
        let err = settings(&[
            ("DATABASE_URL", URL),
            ("SUPABASE_URL", "https://x.supabase.co"),
        ]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "SUPABASE_ANON_KEY is required but not set"
        );
        let err = settings(&[("DATABASE_URL", URL), ("SUPABASE_ANON_KEY", "k")]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "SUPABASE_URL is required but not set"
        );
        let err = settings(&[
            ("DATABASE_URL", URL),
            ("GOTRUE_URL", "ftp://x"),
            ("SUPABASE_ANON_KEY", "k"),
        ]);
        assert!(
            err.unwrap_err()
                .to_string()
                .starts_with("GOTRUE_URL is invalid")
        );
    }

    #[test]
    fn concealing_emails_needs_confirmation() {
        let err = settings(&[
            ("DATABASE_URL", URL),
            ("CONCEAL_EXISTING_EMAILS", "true"),
            ("REQUIRE_EMAIL_CONFIRMATION", "false"),
        ])
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("CONCEAL_EXISTING_EMAILS is invalid")
        );
        let s = settings(&[("DATABASE_URL", URL), ("CONCEAL_EXISTING_EMAILS", "true")]).unwrap();
        assert!(s.conceal_existing_emails);
    }

    #[test]
    fn outbox_settings() {
        let s = settings(&[("DATABASE_URL", URL)]).unwrap();
        assert_eq!(s.outbox.max_attempts, 10);
        let s = settings(&[
            ("DATABASE_URL", URL),
            ("OUTBOX_MAX_ATTEMPTS", "3"),
            ("OUTBOX_BACKOFF_BASE_MS", "5"),
        ])
        .unwrap();
        assert_eq!(
            (s.outbox.max_attempts, s.outbox.backoff_base),
            (3, Duration::from_millis(5))
        );
        assert!(settings(&[("DATABASE_URL", URL), ("OUTBOX_MAX_ATTEMPTS", "0")]).is_err());
    }

    #[test]
    fn non_postgres_urls_are_refused() {
        let err = settings(&[("DATABASE_URL", "mysql://a:b@c/d")]).unwrap_err();
        assert!(err.to_string().starts_with("DATABASE_URL is invalid"));
    }
}
