//! Blind indexing: searching text that is stored encrypted without storing its words. A
//! text becomes a set of tokens — its normalized words, and a few capped prefixes of each
//! — and each token is stored only as a keyed hash (HMAC-SHA256 under a per-tenant index
//! key, truncated to 64 bits). A query is tokenized the same way; matching hashes find
//! candidates, which the caller confirms against the decrypted text (truncation and
//! prefixes admit false positives, never false negatives).
//!
//! What the index reveals to someone with the database but not the key: how many distinct
//! tokens a text has, and which texts share a token — not which token it is.

use std::collections::BTreeSet;

use ring::hmac;

/// Prefix lengths indexed for each word (in characters); a query word is matched by the
/// longest of these it reaches, or exactly when it is shorter than all of them.
pub const PREFIXES: [usize; 3] = [3, 5, 8];
/// Words longer than this are cut (in characters).
pub const WORD_MAX: usize = 40;
/// Most words of a query.
pub const QUERY_WORDS_MAX: usize = 8;

/// The normalized words of `text`: lower case, split at anything that is not a letter
/// or digit, at least two characters, cut at [`WORD_MAX`], in order of appearance.
pub fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 2)
        .map(|w| w.to_lowercase().chars().take(WORD_MAX).collect())
        .collect()
}

/// The tokens that index `text`: each word (`w:`) and its [`PREFIXES`] (`p<n>:`).
pub fn document_tokens(text: &str) -> BTreeSet<String> {
    let mut tokens = BTreeSet::new();
    for word in words(text) {
        let chars: Vec<char> = word.chars().collect();
        for n in PREFIXES {
            if chars.len() >= n {
                tokens.insert(format!("p{n}:{}", chars[..n].iter().collect::<String>()));
            }
        }
        tokens.insert(format!("w:{word}"));
    }
    tokens
}

/// The token a query word is looked up by: the longest indexed prefix it reaches (so it
/// matches words it begins), or the whole word when shorter than every prefix.
pub fn query_token(word: &str) -> String {
    let chars: Vec<char> = word.chars().collect();
    match PREFIXES.iter().rev().find(|n| chars.len() >= **n) {
        Some(n) => format!("p{n}:{}", chars[..*n].iter().collect::<String>()),
        None => format!("w:{word}"),
    }
}

/// Whether every word of `query` begins a word of `text` (how candidates are confirmed).
pub fn matches(query: &[String], text: &str) -> bool {
    let found = words(text);
    query
        .iter()
        .all(|q| found.iter().any(|word| word.starts_with(q.as_str())))
}

/// A token's stored form under `key`: HMAC-SHA256 truncated to 64 bits.
pub fn hash(key: &[u8; 32], token: &str) -> i64 {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), token.as_bytes());
    let mut first = [0_u8; 8];
    first.copy_from_slice(&tag.as_ref()[..8]);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_index_words_and_capped_prefixes() {
        let tokens = document_tokens("Invoice 2026-118: PAID, thanks!");
        for expected in [
            "w:invoice",
            "p3:inv",
            "p5:invoi",
            "w:2026",
            "p3:202",
            "w:118",
            "p3:118",
            "w:paid",
            "p3:pai",
            "w:thanks",
            "p5:thank",
        ] {
            assert!(tokens.contains(expected), "{expected} in {tokens:?}");
        }
        assert!(!tokens.iter().any(|t| t.ends_with(":,")));
        assert_eq!(document_tokens("a ! ?"), BTreeSet::new());
    }

    #[test]
    fn query_words_use_the_longest_prefix_they_reach() {
        assert_eq!(query_token("in"), "w:in");
        assert_eq!(query_token("invo"), "p3:inv");
        assert_eq!(query_token("invoices"), "p8:invoices");
        assert_eq!(query_token("reconciliation"), "p8:reconcil");
        assert!(document_tokens("Reconciliation done").contains(&query_token("reconciliation")));
        assert!(matches(&["invo".into()], "Your invoice"));
        assert!(!matches(&["invo".into(), "paid".into()], "Your invoice"));
        assert!(matches(&["ÉTÉ".to_lowercase()], "L'été dernier"));
    }

    #[test]
    fn hashes_depend_on_the_key() {
        let (a, b) = ([1_u8; 32], [2_u8; 32]);
        assert_eq!(hash(&a, "w:invoice"), hash(&a, "w:invoice"));
        assert_ne!(hash(&a, "w:invoice"), hash(&b, "w:invoice"));
        assert_ne!(hash(&a, "w:invoice"), hash(&a, "w:invoices"));
    }
}
