//! The stable 64-bit token hash and the sink that collects one message's tokens.
//!
//! A token is `xxh3_64(prefix ++ ":" ++ text)` with seed 0, where `prefix` names the
//! [`Kind`] of feature and `text` is its UTF-8 text. XXH3 is a fixed, published algorithm
//! (xxHash specification, <https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md>)
//! and xxhash-rust implements it bit for bit, so the value depends on neither the crate
//! version, the platform nor the process. Tokens are replicated between nodes and stored
//! with every learned message: **neither the prefixes nor this layout may ever change**; a
//! new feature gets a new prefix.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

use xxhash_rust::xxh3::xxh3_64;

/// Tokens kept per message at most, the first ones in document order (header features,
/// then subject, then body text, URLs and HTML features, then attachments). A message
/// carries a few hundred distinct tokens on average; the bound keeps a learned record and
/// a classification small whatever the message.
pub const TOKENS_PER_MESSAGE_MAX: usize = 1500;

/// Bytes of one feature's text at most (longer words become a `skip` feature first).
const FEATURE_TEXT_MAX_BYTES: usize = 200;

/// What a feature describes; its prefix is part of the token hash and never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A word of the decoded body text (plain text and text derived from HTML).
    Word,
    /// A word too long to be one: its first character and its length in tens.
    Skip,
    /// A word of the decoded subject.
    Subject,
    /// A word of the From display name.
    FromName,
    /// The registrable domain of the From address.
    FromDomain,
    /// The mail program, first word of `X-Mailer` or `User-Agent`.
    Mailer,
    /// A MIME type of the message or of one of its parts.
    ContentType,
    /// A declared charset.
    Charset,
    /// The transfer encoding of a text part.
    Encoding,
    /// The registrable domain of a URL's host (or a note about the host).
    Url,
    /// A structural feature of the HTML.
    Html,
    /// An attachment's type or file name extension.
    Attachment,
}

impl Kind {
    /// Every kind, for mapping a prefix back to its kind.
    pub const ALL: [Kind; 12] = [
        Kind::Word,
        Kind::Skip,
        Kind::Subject,
        Kind::FromName,
        Kind::FromDomain,
        Kind::Mailer,
        Kind::ContentType,
        Kind::Charset,
        Kind::Encoding,
        Kind::Url,
        Kind::Html,
        Kind::Attachment,
    ];

    /// The prefix hashed before the feature text.
    pub fn prefix(self) -> &'static str {
        match self {
            Kind::Word => "w",
            Kind::Skip => "skip",
            Kind::Subject => "s",
            Kind::FromName => "fn",
            Kind::FromDomain => "fd",
            Kind::Mailer => "xm",
            Kind::ContentType => "ct",
            Kind::Charset => "cs",
            Kind::Encoding => "cte",
            Kind::Url => "u",
            Kind::Html => "h",
            Kind::Attachment => "at",
        }
    }
}

/// The token of one feature: `xxh3_64(prefix ":" text)`, seed 0.
pub fn token_hash(kind: Kind, text: &str) -> u64 {
    let mut buf = Vec::with_capacity(kind.prefix().len() + 1 + text.len());
    feature_bytes(kind, text, &mut buf);
    xxh3_64(&buf)
}

fn feature_bytes(kind: Kind, text: &str, buf: &mut Vec<u8>) {
    buf.clear();
    buf.extend_from_slice(kind.prefix().as_bytes());
    buf.push(b':');
    buf.extend_from_slice(truncate(text, FEATURE_TEXT_MAX_BYTES).as_bytes());
}

/// `s` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A `Hasher` for keys that are already uniformly distributed 64-bit hashes (tokens): it
/// passes the value through instead of hashing it again.
#[derive(Default)]
pub struct TokenHasher(u64);

impl Hasher for TokenHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are expected; fold anything else in, FNV-style, to stay correct.
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Builds [`TokenHasher`]s: for `HashMap<u64, _>` / `HashSet<u64>` keyed by tokens.
pub type TokenBuildHasher = BuildHasherDefault<TokenHasher>;

/// Receives the features of one message in document order.
pub(crate) trait Sink {
    /// Adds one feature; returns false once the sink is full (callers may stop early).
    fn push(&mut self, kind: Kind, text: &str) -> bool;
    /// True once no further feature will be kept.
    fn full(&self) -> bool;
}

/// Hashes features, deduplicates them and keeps the first [`TOKENS_PER_MESSAGE_MAX`].
pub(crate) struct HashSink {
    seen: HashSet<u64, TokenBuildHasher>,
    tokens: Vec<u64>,
    /// The kept tokens that are plain words of the body or subject (see [`plain_word`]).
    words: Vec<u64>,
    buf: Vec<u8>,
}

/// Whether a body or subject word is made of letters only (any script; `'` and `-` inside
/// allowed) and at least 3 characters: a word of a language, not a number, code or price.
pub(crate) fn plain_word(text: &str) -> bool {
    let mut letters = 0usize;
    for c in text.chars() {
        if c.is_alphabetic() {
            letters += 1;
        } else if !matches!(c, '\'' | '-') {
            return false;
        }
    }
    letters > 0 && text.chars().count() >= 3
}

impl HashSink {
    pub(crate) fn new() -> Self {
        HashSink {
            seen: HashSet::with_capacity_and_hasher(512, TokenBuildHasher::default()),
            tokens: Vec::with_capacity(512),
            words: Vec::with_capacity(256),
            buf: Vec::with_capacity(64),
        }
    }

    /// The tokens, sorted ascending and distinct.
    pub(crate) fn into_sorted(self) -> Vec<u64> {
        self.into_sorted_with_words().0
    }

    /// The tokens and, apart, those of them that are plain words, both sorted ascending.
    pub(crate) fn into_sorted_with_words(self) -> (Vec<u64>, Vec<u64>) {
        let (mut tokens, mut words) = (self.tokens, self.words);
        tokens.sort_unstable();
        words.sort_unstable();
        (tokens, words)
    }
}

impl Sink for HashSink {
    fn push(&mut self, kind: Kind, text: &str) -> bool {
        if self.full() {
            return false;
        }
        feature_bytes(kind, text, &mut self.buf);
        let token = xxh3_64(&self.buf);
        if self.seen.insert(token) {
            self.tokens.push(token);
            if matches!(kind, Kind::Word | Kind::Subject) && plain_word(text) {
                self.words.push(token);
            }
        }
        !self.full()
    }

    fn full(&self) -> bool {
        self.tokens.len() >= TOKENS_PER_MESSAGE_MAX
    }
}

/// Keeps the features as readable `prefix:text` strings (same dedupe and bound), for
/// explaining a token set and for tests.
/// Features in document order with repeats, for evaluation programs that study word
/// sequences (at most [`SEQUENCE_FEATURES_MAX`]).
pub(crate) struct SequenceSink {
    features: Vec<String>,
}

/// Features a [`SequenceSink`] keeps at most.
pub const SEQUENCE_FEATURES_MAX: usize = 20_000;

impl SequenceSink {
    pub(crate) fn new() -> Self {
        SequenceSink {
            features: Vec::new(),
        }
    }

    pub(crate) fn into_features(self) -> Vec<String> {
        self.features
    }
}

impl Sink for SequenceSink {
    fn push(&mut self, kind: Kind, text: &str) -> bool {
        if self.full() {
            return false;
        }
        let text = truncate(text, FEATURE_TEXT_MAX_BYTES);
        self.features.push(format!("{}:{text}", kind.prefix()));
        !self.full()
    }

    fn full(&self) -> bool {
        self.features.len() >= SEQUENCE_FEATURES_MAX
    }
}

pub(crate) struct TextSink {
    seen: HashSet<String>,
    features: Vec<String>,
}

impl TextSink {
    pub(crate) fn new() -> Self {
        TextSink {
            seen: HashSet::new(),
            features: Vec::new(),
        }
    }

    /// The features in document order.
    pub(crate) fn into_features(self) -> Vec<String> {
        self.features
    }
}

impl Sink for TextSink {
    fn push(&mut self, kind: Kind, text: &str) -> bool {
        if self.full() {
            return false;
        }
        let feature = format!(
            "{}:{}",
            kind.prefix(),
            truncate(text, FEATURE_TEXT_MAX_BYTES)
        );
        if self.seen.insert(feature.clone()) {
            self.features.push(feature);
        }
        !self.full()
    }

    fn full(&self) -> bool {
        self.features.len() >= TOKENS_PER_MESSAGE_MAX
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_xxh3_of_prefix_colon_text() {
        assert_eq!(token_hash(Kind::Word, "free"), xxh3_64(b"w:free"));
        // Pinned: replicated values must never change between versions.
        assert_eq!(xxh3_64(b""), 0x2D06_8005_38D3_94C2);
        assert_eq!(token_hash(Kind::Word, "free"), 0xc10c_516c_fd43_c4ff);
        assert_eq!(token_hash(Kind::Url, "example.com"), 0x123b_2338_6971_777b);
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
