use unicode_properties::{GeneralCategoryGroup, UnicodeGeneralCategory};

/// A display name: trimmed, 1 to 100 characters, at least one visible character, and none of the
/// characters that can hide or disguise text: control characters (Cc), format characters (Cf:
/// bidi overrides and isolates, zero-width spaces and joiners, soft hyphens …) and line or
/// paragraph separators (Zl, Zp).
///
/// The database holds the same rule as a CHECK on `public.profiles.name`
/// (`atomic_signup.display_name_is_valid`), since users may change their name through PostgREST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

pub const MAX_NAME_CHARS: usize = 100;

/// Letters (by category) that render as blank space: a name of only these is not visible.
const BLANK_LETTERS: [char; 5] = ['\u{115F}', '\u{1160}', '\u{3164}', '\u{FFA0}', '\u{2800}'];

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let name = raw.trim();
        if name.is_empty() {
            return Err("is required".into());
        }
        if name.chars().count() > MAX_NAME_CHARS {
            return Err(format!("must be at most {MAX_NAME_CHARS} characters"));
        }
        if name.chars().any(char::is_control) {
            return Err("must not contain control characters".into());
        }
        if name.chars().any(is_hidden_format) {
            return Err(
                "must not contain invisible formatting characters (such as bidi overrides or \
                 zero-width spaces) or line separators"
                    .into(),
            );
        }
        if !name.chars().any(is_visible) {
            return Err("must contain at least one visible character".into());
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Format characters (Cf) and the line and paragraph separators (Zl, Zp).
fn is_hidden_format(c: char) -> bool {
    use unicode_properties::GeneralCategory::{Format, LineSeparator, ParagraphSeparator};
    matches!(
        c.general_category(),
        Format | LineSeparator | ParagraphSeparator
    )
}

/// A letter, number, punctuation mark or symbol that is not drawn as blank space.
fn is_visible(c: char) -> bool {
    matches!(
        c.general_category_group(),
        GeneralCategoryGroup::Letter
            | GeneralCategoryGroup::Number
            | GeneralCategoryGroup::Punctuation
            | GeneralCategoryGroup::Symbol
    ) && !BLANK_LETTERS.contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_checks_length_in_characters() {
        assert_eq!(DisplayName::parse("  Ada  ").unwrap().as_str(), "Ada");
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse(&"\u{e9}".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn rejects_control_characters() {
        for bad in ["a\u{0}b", "a\nb", "a\tb", "a\u{7f}b", "a\u{85}b"] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
        assert!(DisplayName::parse("Robert'); DROP TABLE profiles;--").is_ok());
    }

    #[test]
    fn rejects_invisible_and_disguising_characters() {
        for bad in [
            "admin\u{202E}txt.exe", // right-to-left override
            "a\u{2066}b\u{2069}",   // isolates
            "Ad\u{200B}a",          // zero-width space
            "Ad\u{200D}a",          // zero-width joiner
            "Ad\u{00AD}a",          // soft hyphen
            "a\u{FEFF}b",           // byte order mark
            "a\u{2028}b",           // line separator
            "a\u{2029}b",           // paragraph separator
            "a\u{E0041}b",          // tag character
        ] {
            let err = DisplayName::parse(bad).unwrap_err();
            assert!(err.contains("invisible"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn needs_a_visible_character() {
        for bad in [
            "\u{3164}",
            "\u{2800}\u{2800}",
            "\u{0301}",
            "\u{FE0F}",
            "\u{3000}",
        ] {
            assert!(DisplayName::parse(bad).is_err(), "{bad:?}");
        }
        for good in ["Ada", "李", "😀", "-", "7", "e\u{0301}", "Zoë Ann", "ﷺ"] {
            assert!(DisplayName::parse(good).is_ok(), "{good:?}");
        }
    }
}
