use std::fmt;

/// An email address as GoTrue stores and finds it: trimmed, lower-cased, ASCII only.
///
/// ASCII only because GoTrue lower-cases with Go's Unicode rules, which differ from Rust's for
/// some letters: a non-ASCII address could be stored in a form GoTrue's `lower(email)` lookup
/// never finds. The syntax is GoTrue's own (`[atext.]+@label(.label)*`), plus a dot in the domain,
/// no leading, trailing or doubled dot in the local part, and the usual length limits.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

pub const MAX_EMAIL_BYTES: usize = 254;

impl Email {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let email = raw.trim();
        if email.is_empty() {
            return Err("is required".into());
        }
        if !email.is_ascii() {
            return Err(
                "must contain only ASCII characters (non-ASCII addresses are not supported)".into(),
            );
        }
        if email.len() > MAX_EMAIL_BYTES {
            return Err(format!("must be at most {MAX_EMAIL_BYTES} characters"));
        }
        let email = email.to_ascii_lowercase();
        let invalid = || "must be a valid email address".to_owned();
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        if !valid_local_part(local) || !valid_domain(domain) {
            return Err(invalid());
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the `@` (the local part cannot hold one), lower-case.
    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, domain)| domain)
    }
}

fn valid_local_part(local: &str) -> bool {
    const ATEXT_SPECIALS: &str = "!#$%&'*+/=?^_`{|}~-";
    (1..=64).contains(&local.len())
        && local.split('.').all(|atom| {
            !atom.is_empty()
                && atom
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ATEXT_SPECIALS.contains(c))
        })
}

fn valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|label| {
            (1..=63).contains(&label.len())
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_lower_cases() {
        assert_eq!(
            Email::parse("  Ada.Lovelace@Example.COM \n")
                .unwrap()
                .as_str(),
            "ada.lovelace@example.com"
        );
    }

    #[test]
    fn accepts_common_shapes() {
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "o'neil@example.ie",
            "x_y-z@a-b.example",
        ] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@@b.com",
            "a@b@c.com",
            "a b@example.com",
            "a@localhost",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "a@-b.com",
            "a@b-.com",
            "a@b..com",
            "a@.b.com",
            "a@b.com.",
            "\"quoted\"@example.com",
            "a@exa_mple.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn rejects_non_ascii_with_a_clear_message() {
        for bad in [
            "jos\u{e9}@example.com",
            "a@b\u{fc}cher.de",
            "\u{130}@example.com",
            "K\u{212a}@example.com",
        ] {
            let err = Email::parse(bad).unwrap_err();
            assert!(err.contains("ASCII"), "{bad}: {err}");
        }
    }

    #[test]
    fn length_limits() {
        let local = "a".repeat(64);
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        let at_limit = format!("{local}@{domain}");
        assert_eq!(at_limit.len(), 254);
        assert!(Email::parse(&at_limit).is_ok());
        let err = Email::parse(&format!("{local}@x{domain}")).unwrap_err();
        assert_eq!(err, "must be at most 254 characters");
        assert!(Email::parse(&format!("{}@example.com", "a".repeat(65))).is_err());
    }
}
