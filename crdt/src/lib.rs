//! The replicated data types of mxmesh. No I/O, no clock: time is always a parameter
//! (`now_ms`), bytes go in and out as `&[u8]`/`Vec<u8>`, and the caller owns disks and
//! networks. Rule ids come from [`rule_id_at`] (time and seed given by the caller) or from
//! [`RuleBook::create`]. The one draw of randomness is automerge's: a book made by
//! [`RuleBook::new`], [`RuleBook::load`] or [`RuleBook::fork`] writes under a random actor
//! id (through the `getrandom` crate, which the simulator seeds) unless
//! [`RuleBook::with_actor`] sets one.
//!
//! Layout:
//!
//! - [`rule`]: the rule model (a condition over message facts and an action), its JSON form
//!   and the validation that names the bad part of a refused rule.
//! - [`rulebook`]: the rule book, an automerge document of rules with change history, merge
//!   and the sync protocol; its module doc states the concurrency semantics.
//! - [`lists`]: per-user allow and deny list entries (kept in the rule book), their
//!   validation and matching.
//! - [`counters`]: per-node message counters, a grow-only map merged by maximum.
//! - [`qindex`]: the quarantine index, every node's quarantine entries and the release/delete
//!   requests for them, each node the only writer of its own log, exchanged by version
//!   vector and deltas; its module doc states the purge, restart and request semantics.
//! - [`bayes`]: the learned corpus of the Bayesian classifier, each node the only writer of
//!   its own log of learn/forget records, the winner per message digest by hybrid-clock
//!   stamp, token counts derived from the winners; its module doc states the merge rules.
//! - [`owned`]: a bounded, expiring map in which each node is the only writer of its own
//!   entries, synced by version vector: the greylist triplets and the mesh-wide rate counters.

pub mod bayes;
pub mod counters;
pub mod lists;
pub mod owned;
pub mod qindex;
pub mod rule;
pub mod rulebook;

pub use bayes::{BayesCorpus, BayesDelta, BayesError};
pub use counters::{CounterKind, CounterSet, Counters};
pub use lists::{LIST_ENTRIES_MAX, ListEntry, ListError, ListKind, list_decision};
pub use owned::{OwnedDelta, OwnedError, OwnedMap};
pub use rule::{Action, Condition, Field, Match, MatchValue, Op, Rule, RuleError, rule_id_at};
pub use rulebook::{Author, ChangeOp, HistoryEntry, RuleBook, RuleBookError, SyncSession};
