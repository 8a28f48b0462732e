/// A role a signup may ask for: exactly one of the configured `SIGNUP_ROLES`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role(String);

impl Role {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The roles a signup may choose from (`SIGNUP_ROLES`). Matching is exact: `creator` is not
/// `Creator`, and nothing outside the list (say `admin`) can ever be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleSet(Vec<String>);

impl Default for RoleSet {
    fn default() -> Self {
        Self(vec!["Creator".into(), "Brand".into()])
    }
}

impl RoleSet {
    /// Parses a comma-separated list: names are trimmed, must be non-empty, printable and unique.
    pub fn parse_list(list: &str) -> Result<Self, String> {
        let mut roles: Vec<String> = Vec::new();
        for name in list.split(',').map(str::trim) {
            if name.is_empty() {
                return Err(
                    "expected a comma-separated list of role names, with no empty entry".into(),
                );
            }
            if name.chars().any(char::is_control) || name.chars().count() > 100 {
                return Err("role names must be printable and at most 100 characters".into());
            }
            if roles.iter().any(|r| r == name) {
                return Err(format!("role {name} is listed twice"));
            }
            roles.push(name.to_owned());
        }
        Ok(Self(roles))
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    pub fn parse_role(&self, raw: &str) -> Result<Role, String> {
        self.0
            .iter()
            .find(|r| r.as_str() == raw)
            .map(|r| Role(r.clone()))
            .ok_or_else(|| format!("must be one of: {}", self.0.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_list() {
        let set = RoleSet::parse_list(" Creator , Brand,Agency ").unwrap();
        assert_eq!(set.names(), ["Creator", "Brand", "Agency"]);
        assert!(RoleSet::parse_list("A,,B").is_err());
        assert!(RoleSet::parse_list("A,A").is_err());
        assert!(RoleSet::parse_list("").is_err());
    }

    #[test]
    fn only_listed_roles_exactly() {
        let set = RoleSet::default();
        assert_eq!(set.parse_role("Brand").unwrap().as_str(), "Brand");
        for bad in ["brand", "admin", "Admin", " Brand", "", "Creator,Brand"] {
            let err = set.parse_role(bad).unwrap_err();
            assert_eq!(err, "must be one of: Creator, Brand", "{bad:?}");
        }
    }
}
