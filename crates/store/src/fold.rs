//! Folding text for FHIR string search, which matches "regardless of case
//! and accents" (R4 search §3.1.1.4.8): compatibility decomposition (NFKD),
//! combining marks removed, then case folded by upper- and lower-casing
//! (so `ß` and `ẞ` become `ss`). Stored names and searched values go through
//! the same function, so only consistency matters, not one language's rules.

use unicode_normalization::UnicodeNormalization as _;
use unicode_normalization::char::is_combining_mark;

/// `Müller` → `muller`, `STRASSE` and `Straße` → `strasse`, `Ｍａｘ` → `max`.
pub fn fold(text: &str) -> String {
    if text.is_ascii() {
        return text.to_ascii_lowercase();
    }
    text.nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_uppercase)
        .flat_map(char::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_case_accents_and_compatibility_forms() {
        assert_eq!(fold("Müller"), "muller");
        assert_eq!(fold("MÜLLER"), "muller");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("STRASSE"), "strasse");
        assert_eq!(fold("Ｍａｘ"), "max");
        assert_eq!(fold("Ångström"), "angstrom");
        assert_eq!(fold("Łukasz"), "łukasz", "a letter of its own, not a mark");
        assert_eq!(fold("Çelik"), "celik");
        assert_eq!(fold(""), "");
    }
}
