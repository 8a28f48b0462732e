//! What a signup must satisfy beyond the shape of its fields, as the project's GoTrue is set up:
//! the roles a signup may ask for, the password policy (GOTRUE_PASSWORD_MIN_LENGTH,
//! GOTRUE_PASSWORD_REQUIRED_CHARACTERS) and, optionally, which email domains may sign up.

use super::{ProfileSchema, ProfileTable, RoleSet};

/// Everything [`super::NewUser::parse`] checks against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignupRules {
    pub roles: RoleSet,
    pub password: PasswordPolicy,
    pub email_domains: EmailDomains,
    /// PROFILE_SCHEMA_PATH: the profile fields a signup takes.
    pub profile: ProfileSchema,
    /// PROFILE_TABLE: the table they are columns of.
    pub profile_table: ProfileTable,
}

/// GoTrue's password policy: a minimum length and character groups of which the password must
/// contain at least one character each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// In characters (GoTrue counts bytes: a non-ASCII password may need more characters here).
    pub min_length: usize,
    pub required_characters: Vec<String>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: 8,
            required_characters: Vec::new(),
        }
    }
}

/// Why a password is weak, in GoTrue's words (`weak_password.reasons`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Weakness {
    pub reasons: Vec<&'static str>,
    pub message: String,
}

impl PasswordPolicy {
    /// GoTrue never accepts a minimum below 6.
    pub const LOWEST_MIN_LENGTH: usize = 6;

    /// GOTRUE_PASSWORD_REQUIRED_CHARACTERS's format: groups separated by `:`, `\:` for a literal
    /// colon inside a group; empty groups are ignored.
    pub fn parse_required_characters(value: &str) -> Vec<String> {
        let mut groups = Vec::new();
        let mut current = String::new();
        let mut chars = value.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&':') => {
                    current.push(':');
                    chars.next();
                }
                ':' => groups.push(std::mem::take(&mut current)),
                c => current.push(c),
            }
        }
        groups.push(current);
        groups.retain(|g| !g.is_empty());
        groups
    }

    /// `None` when `password` meets the policy; otherwise every reason (`length`, `characters`).
    pub fn weakness(&self, password: &str) -> Option<Weakness> {
        let mut reasons = Vec::new();
        let mut messages = Vec::new();
        if password.chars().count() < self.min_length {
            reasons.push("length");
            messages.push(format!("must be at least {} characters", self.min_length));
        }
        if self
            .required_characters
            .iter()
            .any(|group| !password.chars().any(|c| group.contains(c)))
        {
            reasons.push("characters");
            messages.push(format!(
                "must contain at least one character of each: {}",
                self.required_characters.join(", ")
            ));
        }
        (!reasons.is_empty()).then(|| Weakness {
            reasons,
            message: messages.join("; "),
        })
    }
}

/// Which email domains may sign up: all (default), only those listed, or all but those listed.
/// A domain matches itself and its subdomains; compared lower-case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EmailDomains {
    #[default]
    Any,
    Only(Vec<String>),
    AllBut(Vec<String>),
}

impl EmailDomains {
    /// A comma-separated list of domains (`example.com, example.org`).
    pub fn parse_list(value: &str) -> Result<Vec<String>, String> {
        let domains: Vec<String> = value
            .split(',')
            .map(|d| d.trim().trim_start_matches('@').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect();
        if let Some(bad) = domains.iter().find(|d| {
            !d.contains('.')
                || d.starts_with('.')
                || d.ends_with('.')
                || !d
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        }) {
            return Err(format!("`{bad}` is not a domain like example.com"));
        }
        Ok(domains)
    }

    /// Whether an address at `domain` (already lower-case) may sign up.
    pub fn allows(&self, domain: &str) -> bool {
        let listed = |list: &[String]| {
            list.iter().any(|d| {
                domain == d
                    || domain
                        .strip_suffix(d.as_str())
                        .is_some_and(|rest| rest.ends_with('.'))
            })
        };
        match self {
            Self::Any => true,
            Self::Only(list) => listed(list),
            Self::AllBut(list) => !listed(list),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_characters_use_gotrue_s_format() {
        assert_eq!(
            PasswordPolicy::parse_required_characters("abc:ABC:0123456789"),
            ["abc", "ABC", "0123456789"]
        );
        assert_eq!(
            PasswordPolicy::parse_required_characters(r"!@#\:$:xyz"),
            ["!@#:$", "xyz"]
        );
        assert_eq!(PasswordPolicy::parse_required_characters("::a::"), ["a"]);
        assert!(PasswordPolicy::parse_required_characters("").is_empty());
    }

    #[test]
    fn weakness_names_every_reason() {
        let policy = PasswordPolicy {
            min_length: 10,
            required_characters: PasswordPolicy::parse_required_characters(
                "abcdefghijklmnopqrstuvwxyz:0123456789",
            ),
        };
        assert_eq!(policy.weakness("abcdefghij1"), None);
        assert_eq!(
            policy.weakness("abcdefghijk").unwrap().reasons,
            ["characters"]
        );
        assert_eq!(policy.weakness("abc1").unwrap().reasons, ["length"]);
        assert_eq!(
            policy.weakness("ABCD").unwrap().reasons,
            ["length", "characters"]
        );
        // Characters, not bytes.
        let short = PasswordPolicy::default();
        assert!(short.weakness(&"\u{e9}".repeat(7)).is_some());
        assert!(short.weakness(&"\u{e9}".repeat(8)).is_none());
    }

    #[test]
    fn email_domains_match_themselves_and_subdomains() {
        let list = EmailDomains::parse_list(" Example.com, @corp.example.org ").unwrap();
        assert_eq!(list, ["example.com", "corp.example.org"]);
        let only = EmailDomains::Only(list.clone());
        assert!(only.allows("example.com"));
        assert!(only.allows("mail.example.com"));
        assert!(!only.allows("badexample.com"));
        assert!(!only.allows("example.com.evil.test"));
        let all_but = EmailDomains::AllBut(list);
        assert!(!all_but.allows("corp.example.org"));
        assert!(all_but.allows("example.org"));
        assert!(EmailDomains::Any.allows("anything.test"));
        for bad in ["localhost", "exa mple.com", ".com", "example."] {
            assert!(EmailDomains::parse_list(bad).is_err(), "{bad}");
        }
    }
}
