//! String normalisation for `string` search parameters.
//!
//! Both indexed strings and query strings are normalised the same way: Unicode compatibility
//! decomposition (NFKD) with combining marks dropped (accents removed: `Müller` → `muller`),
//! case folding by lowercasing, every character that is neither a letter nor a digit turned
//! into a space (punctuation, symbols, control characters), and runs of whitespace collapsed
//! to one space with leading and trailing space trimmed. Letters without a decomposition
//! (`ß`, `æ`, `ø`) are kept as lowercase letters. Matching then is prefix (default),
//! substring (`:contains`) or, per word, prefix (`:text` on tokens).

use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Normalises `s` for string search (see the module documentation).
pub fn normalize(s: &str) -> String {
    if s.is_ascii() {
        return normalize_ascii(s);
    }
    normalize_unicode(s)
}

/// [`normalize`] for ASCII text, which has no decompositions or combining marks.
fn normalize_ascii(s: &str) -> String {
    words(s.len(), s.chars())
}

/// [`normalize`] for any text: NFKD with combining marks dropped.
fn normalize_unicode(s: &str) -> String {
    words(s.len(), s.nfkd().filter(|c| !is_combining_mark(*c)))
}

/// Lowercased letters and digits of `chars`, other runs of characters as one space, trimmed.
fn words(len: usize, chars: impl Iterator<Item = char>) -> String {
    let mut out = String::with_capacity(len);
    let mut pending_space = false;
    for c in chars {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            if c.is_ascii() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.extend(c.to_lowercase());
            }
        } else {
            pending_space = true;
        }
    }
    out
}

/// Whether normalised `text` has a word starting with normalised `query` (or starts with it).
pub fn word_prefix(text: &str, query: &str) -> bool {
    if query.is_empty() {
        return true;
    }
    text.starts_with(query)
        || text
            .match_indices(' ')
            .any(|(i, _)| text[i + 1..].starts_with(query))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises() {
        assert_eq!(
            normalize("  Müller-Lüdenscheidt,  Hans "),
            "muller ludenscheidt hans"
        );
        assert_eq!(normalize("ÉLODIE"), "elodie");
        assert_eq!(normalize("O'Brien"), "o brien");
        assert_eq!(normalize("Straße"), "straße");
        assert_eq!(normalize("ﬁne\t\n tuning!!"), "fine tuning");
        assert_eq!(normalize("Chalmers"), "chalmers");
        assert_eq!(normalize("..."), "");
        assert_eq!(normalize(""), "");
        assert_eq!(normalize("São Paulo"), "sao paulo");
        assert_eq!(normalize("Ångström 12.5"), "angstrom 12 5");
        assert_eq!(normalize("İstanbul"), "istanbul");
        assert_eq!(normalize("日本語"), "日本語");
    }

    #[test]
    fn ascii_fast_path_agrees_with_unicode_path() {
        let all: String = (0u8..128).map(char::from).collect();
        let samples = [
            all.as_str(),
            "  Body Weight, 29463-7 ",
            "O'Brien--Smith\t\r\n",
            "ABC xyz 0123456789 !@#$%^&*()_+{}|:<>?",
        ];
        for s in samples {
            assert_eq!(normalize_ascii(s), normalize_unicode(s), "{s:?}");
        }
        for b in 0u8..128 {
            let s = format!("a{}b", char::from(b));
            assert_eq!(normalize_ascii(&s), normalize_unicode(&s), "{s:?}");
        }
    }

    #[test]
    fn word_prefixes() {
        assert!(word_prefix("body weight", "wei"));
        assert!(word_prefix("body weight", "body w"));
        assert!(!word_prefix("body weight", "eight"));
        assert!(word_prefix("x", ""));
    }
}
