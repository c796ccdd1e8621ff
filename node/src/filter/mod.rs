//! The verdict on one message: pure, synchronous, deterministic.
//!
//! Invariant: the filter does no I/O and never reads the clock. Everything it may look at
//! is in [`MessageFacts`], gathered beforehand (parse, DNS, SPF/DKIM/DMARC, DNSBL, virus
//! scan); the rules come compiled in a [`RuleSet`]; the answer is a [`Verdict`].
//! [`RuleSet::decide`] adds the spam score (`crate::spam`): the rules, which may read
//! the score, its symbols and the Bayes probability, run first; when none matches, the
//! score's thresholds decide.
//!
//! Layout: [`facts`] and [`content`] (the input), `fields` (what each rule field reads
//! from the facts), `compile` (rules → matchers, once per rule book change), [`evaluate`]
//! (first match wins, then the score).

pub mod content;
pub mod evaluate;
pub mod facts;

mod compile;
mod fields;

pub use compile::CompileError;
pub use evaluate::{Decision, RuleSet, SkippedRule, Verdict};
pub use facts::{
    AttachmentFacts, ContentFacts, Direction, HtmlFacts, ListHit, ListKind, ListTarget, Mailbox,
    MessageFacts, PartFacts, ReverseName, UriblListing, UrlFact, is_public_client,
};
pub(crate) use fields::canonical_ip;
