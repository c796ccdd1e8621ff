//! Keys this node publishes in gossip besides the mesh's own (`mesh::members::keys`).

/// `ok`, `draining` or `store_error` (see `crate::health`).
pub const HEALTH: &str = "health";
/// The SMTP address it listens on.
pub const SMTP_ADDR: &str = "smtp_addr";
/// The admin API address it listens on.
pub const ADMIN_ADDR: &str = "admin_addr";
/// Digest of the rule book's heads: differs ⇒ sync ([`super::rules`]).
pub const RULES_DIGEST: &str = "rules_digest";
/// Live quarantine entries on that node.
pub const QUARANTINE_ENTRIES: &str = "quarantine_entries";
/// The node's own quarantine index position (highest own sequence number).
pub const QINDEX_SEQ: &str = "qindex_seq";
/// The node's counters, JSON.
pub const COUNTERS: &str = "counters";
/// Address published in DNS (the `[dns] publish_address`), when configured.
pub const DNS_ADDR: &str = "dns_addr";
/// Fingerprint of the learned Bayes corpus: differs ⇒ sync ([`super::bayes`]).
pub const BAYES_DIGEST: &str = "bayes_digest";
/// What this node's release can do beyond the first release's wire, comma-separated
/// (e.g. [`RCPT_DECISIONS`]); absent on nodes that predate it.
pub const FEATURES: &str = "features";
/// Feature: carries out release and delete for one recipient (`release_for`,
/// `delete_for`, per-recipient requests in the quarantine index).
pub const RCPT_DECISIONS: &str = "rcpt-decisions";
