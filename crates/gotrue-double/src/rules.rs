//! What GoTrue requires of a row written by SQL and of a password hash, as
//! `docs/gotrue-rows.md` states it. The signup tests check our rows with these, and the
//! GoTrue test double (login) applies the same rules.

use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use sqlx::PgPool;
use uuid::Uuid;

/// The parts of an argon2 PHC string, as GoTrue's `ParseArgon2Hash` reads them.
#[derive(Debug)]
pub struct GoTrueArgon2 {
    pub algorithm: Algorithm,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    pub salt: Vec<u8>,
    pub hash: Vec<u8>,
}

/// Parses `encoded` with GoTrue's rules (facts, section 4): `$argon2i|argon2id$v=19$m=..,t=..,p=..`
/// (that order; no keyid/data), limits m ≤ 1048576, t ≤ 20, p ≤ 16, salt and hash in standard
/// base64 without padding, both non-empty.
pub fn parse_gotrue_argon2(encoded: &str) -> Result<GoTrueArgon2, String> {
    let parts: Vec<&str> = encoded.split('$').collect();
    // "", alg, v=.., params, salt, hash (the hash is the rest of the string)
    if parts.len() < 6 || !parts[0].is_empty() {
        return Err("not of the form $alg$v=..$m=..,t=..,p=..$salt$hash".into());
    }
    let algorithm = match parts[1] {
        "argon2id" => Algorithm::Argon2id,
        "argon2i" => Algorithm::Argon2i,
        "argon2d" => return Err("argon2d is rejected".into()),
        other => return Err(format!("unknown algorithm {other}")),
    };
    match parts[2] {
        "v=19" => {}
        "v=16" => return Err("version 16 is rejected by the parser".into()),
        other => return Err(format!("version segment {other:?} is not v=19")),
    }
    let params: Vec<&str> = parts[3].split(',').collect();
    if params.len() != 3 {
        return Err(format!(
            "parameters must be exactly m,t,p (got {:?})",
            parts[3]
        ));
    }
    let number = |segment: &str, key: &str| -> Result<u64, String> {
        let digits = segment
            .strip_prefix(key)
            .ok_or_else(|| format!("expected {key}<digits>, got {segment:?}"))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("{key} is not a number"));
        }
        digits.parse::<u64>().map_err(|e| e.to_string())
    };
    let m = number(params[0], "m=")?;
    let t = number(params[1], "t=")?;
    let p = number(params[2], "p=")?;
    if m > 1_048_576 || t > 20 || p > 16 {
        return Err(format!("over GoTrue's limits: m={m} t={t} p={p}"));
    }
    let salt_b64 = parts[4];
    let hash_b64 = parts[5..].join("$");
    let salt = STANDARD_NO_PAD
        .decode(salt_b64)
        .map_err(|e| format!("salt is not unpadded standard base64: {e}"))?;
    let hash = STANDARD_NO_PAD
        .decode(&hash_b64)
        .map_err(|e| format!("hash is not unpadded standard base64: {e}"))?;
    if salt.is_empty() || hash.is_empty() {
        return Err("empty salt or hash".into());
    }
    Ok(GoTrueArgon2 {
        algorithm,
        memory_kib: m as u32,
        iterations: t as u32,
        parallelism: p as u32,
        salt,
        hash,
    })
}

/// GoTrue's argon2 comparison: re-derive with the parsed parameters and the decoded hash's
/// length, compare.
pub fn gotrue_argon2_verifies(encoded: &str, password: &str) -> Result<bool, String> {
    let h = parse_gotrue_argon2(encoded)?;
    if h.iterations == 0 || h.parallelism == 0 {
        return Err("t=0 or p=0 would panic in GoTrue".into());
    }
    let params = Params::new(
        h.memory_kib,
        h.iterations,
        h.parallelism,
        Some(h.hash.len()),
    )
    .map_err(|e| e.to_string())?;
    let mut out = vec![0u8; h.hash.len()];
    Argon2::new(h.algorithm, Version::V0x13, params)
        .hash_password_into(password.as_bytes(), &h.salt, &mut out)
        .map_err(|e| e.to_string())?;
    Ok(out == h.hash)
}

/// Columns GoTrue scans into non-nullable Go types (facts 1.3): a NULL in any of them makes the
/// password grant answer 500 "Database error querying schema".
pub const USERS_NOT_NULL_FOR_GOTRUE: [&str; 17] = [
    "id",
    "instance_id",
    "aud",
    "role",
    "confirmation_token",
    "recovery_token",
    "email_change_token_current",
    "email_change_token_new",
    "email_change",
    "phone_change_token",
    "phone_change",
    "reauthentication_token",
    "email_change_confirm_status",
    "created_at",
    "updated_at",
    "is_sso_user",
    "is_anonymous",
];

pub const IDENTITIES_NOT_NULL_FOR_GOTRUE: [&str; 2] = ["created_at", "updated_at"];

/// The NULL-intolerant columns of this user's row and identities that hold NULL (empty = GoTrue
/// can scan it). One query, so the GoTrue double stays cheap under the login benchmark.
pub async fn null_scan_columns(pool: &PgPool, user_id: Uuid) -> Vec<String> {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| {
        let mut checks: Vec<String> = USERS_NOT_NULL_FOR_GOTRUE
            .iter()
            .map(|c| format!("case when u.{c} is null then 'auth.users.{c}' end"))
            .collect();
        for c in IDENTITIES_NOT_NULL_FOR_GOTRUE {
            checks.push(format!(
                "(select case when bool_or(i.{c} is null) then 'auth.identities.{c}' end \
                  from auth.identities i where i.user_id = u.id)"
            ));
        }
        // Metadata: NULL is fine, but it must be a JSON object if present (an array fails).
        checks.push(
            "case when coalesce(jsonb_typeof(u.raw_app_meta_data), 'object') <> 'object' \
                    or coalesce(jsonb_typeof(u.raw_user_meta_data), 'object') <> 'object' \
             then 'auth.users.raw_*_meta_data (not an object)' end"
                .to_owned(),
        );
        format!(
            "select array_remove(array[{}]::text[], null) from auth.users u where u.id = $1",
            checks.join(", ")
        )
    });
    sqlx::query_scalar(sql)
        .bind(user_id)
        .fetch_one(pool)
        .await
        .expect("read auth.users / auth.identities")
}

/// `FindUserByEmailAndAudience` (facts 5.2 step 4): the rows of `auth.users` GoTrue's password
/// grant and `/resend` consider for the email bound as `$1`; they take the first.
pub const GOTRUE_USER_LOOKUP: &str = "from auth.users \
     where instance_id = '00000000-0000-0000-0000-000000000000' \
       and lower(email) = lower($1) and aud = 'authenticated' and is_sso_user = false \
     limit 1";

/// GoTrue's password-grant user lookup: the id it would find for `email`.
pub async fn find_user_by_email_and_audience(pool: &PgPool, email: &str) -> Option<Uuid> {
    sqlx::query_scalar(&format!("select id {GOTRUE_USER_LOOKUP}"))
        .bind(email)
        .fetch_optional(pool)
        .await
        .expect("gotrue lookup")
}
