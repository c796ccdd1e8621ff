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
//! - [`classify`](mod@classify): Robinson's f(w), the strongest clues, Fisher/χ² combining;
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

pub use classify::{Class, MIN_LEARNED_PER_CLASS, MemoryCounts, TokenCounts, classify, clues};
pub use digest::{digest, digest_hex};
pub use hash::{Kind, TOKENS_PER_MESSAGE_MAX, token_hash};
pub use tokens::{features, tokenize};
