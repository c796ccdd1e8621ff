//! Bayesian spam classification, pure: message → tokens, message → digest, counts +
//! tokens → probability. No I/O, no clock; the counts live behind [`TokenCounts`] (a
//! replicated CRDT in the node, [`MemoryCounts`] in tests and the evaluation program).
//!
//! - [`tokens`]: the features of a message (decoded body text and HTML text, subject, a
//!   few sender-chosen headers, URL domains, HTML and MIME structure) as distinct, stable
//!   64-bit hashes, at most [`TOKENS_PER_MESSAGE_MAX`]. The hash is fixed forever (tokens
//!   are replicated and stored); `hash.rs` pins it.
//! - [`digest`](mod@digest): the normalised SHA-256 that identifies a learned message, the same
//!   whatever path or line endings the message had.
//! - [`classify`](mod@classify): Robinson's f(w), the strongest clues, summed log-odds;
//!   silent below [`MIN_LEARNED_PER_CLASS`] of either class.
//!
//! The design rationale for each part is in its module; the measured accuracy and cost on
//! the SpamAssassin public corpus are in BENCHMARKS.md ("Bayes classifier on the
//! SpamAssassin corpus"), reproduced by `cargo run --release -p mxmesh-node --example
//! bayes_eval`.

pub mod classify;
pub mod digest;
mod hash;
mod html;
pub mod tokens;
mod url;

/// Parses `raw` as [`tokenize`] and [`digest()`] do: the MIME headers, Subject, From, Date
/// and Message-ID parsed, every other header kept raw (trace headers are never used here,
/// and parsing `Received` was the largest single cost of mail-parser's default parser).
pub fn parse(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    parser().parse(raw)
}

fn parser() -> &'static mail_parser::MessageParser {
    use mail_parser::{HeaderName, MessageParser};
    static PARSER: std::sync::LazyLock<MessageParser> = std::sync::LazyLock::new(|| {
        MessageParser::new()
            .with_mime_headers()
            .header_text(HeaderName::Subject)
            .header_address(HeaderName::From)
            .header_date(HeaderName::Date)
            .header_id(HeaderName::MessageId)
    });
    &PARSER
}

pub use classify::{
    Class, MIN_LEARNED_PER_CLASS, MemoryCounts, TokenCounts, UNFAMILIAR_WORDS_MIN, Verdict,
    classify, clues, verdict,
};
pub use digest::{digest, digest_hex};
pub use hash::{Kind, TOKENS_PER_MESSAGE_MAX, TokenBuildHasher, TokenHasher, token_hash};
pub use tokens::{
    Tokens, feature_sequence, features, tokenize, tokenize_parsed, tokenize_with_words,
};
