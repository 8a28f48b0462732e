//! The settings, read from a lookup table instead of the process environment.
use super::env_file::line_number_of;
use super::*;
use crate::domain::{EmailDomains, PasswordPolicy};
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
    let err = settings(&[("DATABASE_URL", URL), ("IDEMPOTENCY_SECRET", "too-short")]).unwrap_err();
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

#[test]
fn profiles_for_external_users_are_off_unless_asked_and_take_a_signup_role() {
    let roles = crate::domain::RoleSet::parse_list("Creator,Brand").unwrap();
    let external = |vars: &[(&str, &str)]| {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        external_users(&move |k| map.get(k).cloned(), &roles)
    };
    assert_eq!(external(&[]), Ok(None));
    assert_eq!(
        external(&[("PROFILE_FOR_EXTERNAL_USERS", "false")]),
        Ok(None)
    );
    assert_eq!(
        external(&[("PROFILE_FOR_EXTERNAL_USERS", "true")]),
        Ok(Some("Creator".to_owned())),
        "the first of SIGNUP_ROLES"
    );
    assert_eq!(
        external(&[
            ("PROFILE_FOR_EXTERNAL_USERS", "true"),
            ("PROFILE_FOR_EXTERNAL_USERS_ROLE", "Brand")
        ]),
        Ok(Some("Brand".to_owned()))
    );
    let err = external(&[
        ("PROFILE_FOR_EXTERNAL_USERS", "true"),
        ("PROFILE_FOR_EXTERNAL_USERS_ROLE", "Admin"),
    ])
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("PROFILE_FOR_EXTERNAL_USERS_ROLE is invalid"),
        "{err}"
    );
}
