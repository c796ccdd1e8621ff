//! The verdict on one message: pure, synchronous, deterministic.
//!
//! Invariant: the filter does no I/O and never reads the clock. Everything it may look at
//! is in [`MessageFacts`], gathered beforehand (parse, DNS, SPF/DKIM/DMARC, DNSBL, virus
//! scan); the rules come compiled in a [`RuleSet`]; the answer is a [`Verdict`].
//!
//! Layout: [`facts`] (the input), `fields` (what each rule field reads from the facts),
//! `compile` (rules → matchers, once per rule book change), [`evaluate`] (first match wins).

pub mod evaluate;
pub mod facts;

mod compile;
mod fields;

pub use compile::CompileError;
pub use evaluate::{RuleSet, SkippedRule, Verdict};
pub use facts::{AttachmentFacts, MessageFacts};
pub(crate) use fields::canonical_ip;
