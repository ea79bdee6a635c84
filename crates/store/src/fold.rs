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

/// The smallest string greater than every string that starts with `prefix`,
/// for the range `prefix <= s < end`; `None` when there is none (a prefix
/// of only `char::MAX`), and then the range is open.
pub(crate) fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // Surrogates are no chars: the next one after U+D7FF is U+E000.
        let next = match last {
            '\u{D7FF}' => Some('\u{E000}'),
            c => char::from_u32(u32::from(c) + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
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

    #[test]
    fn prefix_ends_bound_exactly_the_strings_with_the_prefix() {
        assert_eq!(prefix_end("mul").as_deref(), Some("mum"));
        assert_eq!(prefix_end("").as_deref(), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        let end = prefix_end("mül").unwrap();
        for s in ["mül", "müller", "mül\u{10FFFF}x"] {
            assert!(s >= "mül" && s < end.as_str(), "{s}");
        }
        for s in ["mum", "mö", "mz"] {
            assert!(!(s >= "mül" && s < end.as_str()), "{s}");
        }
    }
}
