//! `Idempotency-Key`: the header's value, and the fingerprint that tells "the same request
//! again" from "another request under the same key".

use std::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::NewUser;

/// 1 to 255 printable ASCII characters (0x21–0x7E, and inner spaces), as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

pub const MAX_KEY_LEN: usize = 255;

impl IdempotencyKey {
    pub fn parse(raw: &[u8]) -> Result<Self, String> {
        if raw.is_empty() || raw.len() > MAX_KEY_LEN {
            return Err(format!("must be 1 to {MAX_KEY_LEN} characters"));
        }
        if !raw.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Err("must be printable ASCII".to_owned());
        }
        // Printable ASCII only: this cannot fail.
        let key = String::from_utf8(raw.to_vec()).map_err(|_| "must be printable ASCII")?;
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The secret that keys request fingerprints (IDEMPOTENCY_SECRET, the same on every replica).
/// Its `Debug` never shows it.
#[derive(Clone)]
pub struct FingerprintSecret(Hmac<Sha256>);

pub const MIN_SECRET_BYTES: usize = 32;

impl FingerprintSecret {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if raw.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "must be at least {MIN_SECRET_BYTES} bytes (e.g. `openssl rand -hex 32`)"
            ));
        }
        Hmac::<Sha256>::new_from_slice(raw.as_bytes())
            .map(Self)
            .map_err(|_| "is not usable as an HMAC key".to_owned())
    }

    /// HMAC-SHA256 over the validated request (email already lower-cased, name trimmed): two
    /// requests get the same fingerprint exactly when they would create the same user. Keyed,
    /// because the request holds a password: a plain hash stored for 24 h would be a fast,
    /// unsalted password hash.
    pub fn fingerprint(&self, user: &NewUser) -> [u8; 32] {
        let mut mac = self.0.clone();
        mac.update(b"atomic-signup/signup/v1");
        // Length-prefixed, so no two different field lists give the same bytes.
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        };
        for value in [
            user.email.as_str(),
            user.profile.name().unwrap_or_default(),
            user.role.as_str(),
            user.password.expose_secret(),
        ] {
            field(value.as_bytes());
        }
        // The other profile fields, by name (with only `name`, the bytes of the fields above
        // alone: keys stored before profile fields existed keep their fingerprints).
        for (name, value) in user.profile.as_map() {
            if name != "name" {
                field(name.as_bytes());
                field(value.to_string().as_bytes());
            }
        }
        mac.finalize().into_bytes().into()
    }
}

/// Written by hand: the secret is kept as the HMAC's keyed state, not as text, and secrecy's
/// `SecretBox` needs a type it can zeroize, which `Hmac` is not.
impl fmt::Debug for FingerprintSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FingerprintSecret([redacted])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{SignupForm, SignupRules, ValidationErrors};

    fn user(email: &str, name: &str, password: &str) -> NewUser {
        let mut profile = serde_json::Map::new();
        profile.insert("name".into(), name.into());
        let form = SignupForm {
            email: Some(email.into()),
            password: Some(password.into()),
            role: Some("Creator".into()),
            profile,
        };
        NewUser::parse(form, &SignupRules::default(), ValidationErrors::default()).unwrap()
    }

    fn secret(s: &str) -> FingerprintSecret {
        FingerprintSecret::parse(&s.repeat(32)).unwrap()
    }

    #[test]
    fn keys_are_1_to_255_printable_ascii() {
        assert!(IdempotencyKey::parse(b"a").is_ok());
        assert!(IdempotencyKey::parse(b"order 42/retry-1 ~!").is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 255]).is_ok());
        assert!(IdempotencyKey::parse(&[b'k'; 256]).is_err());
        assert!(IdempotencyKey::parse(b"").is_err());
        assert!(IdempotencyKey::parse(b"tab\there").is_err());
        assert!(IdempotencyKey::parse("caf\u{e9}".as_bytes()).is_err());
        assert!(IdempotencyKey::parse(b"nul\0").is_err());
    }

    #[test]
    fn the_fingerprint_follows_the_validated_request() {
        let s = secret("x");
        let a = s.fingerprint(&user("Ada@Example.com", " Ada ", "correct horse"));
        assert_eq!(
            a,
            s.fingerprint(&user("ada@example.com", "Ada", "correct horse"))
        );
        assert_ne!(
            a,
            s.fingerprint(&user("ada@example.com", "Ada", "correct horsf"))
        );
        assert_ne!(
            a,
            s.fingerprint(&user("ada@example.com", "Ada L", "correct horse"))
        );
        assert_ne!(
            a,
            s.fingerprint(&user("bob@example.com", "Ada", "correct horse"))
        );
        // Another secret, another fingerprint: it is keyed.
        assert_ne!(
            a,
            secret("y").fingerprint(&user("ada@example.com", "Ada", "correct horse"))
        );
    }

    #[test]
    fn the_secret_is_long_and_never_shown() {
        assert!(FingerprintSecret::parse("short").is_err());
        let s = FingerprintSecret::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert!(!format!("{s:?}").contains("0123"));
    }
}
