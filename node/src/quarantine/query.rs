//! The local listing query of a node's quarantine (`Quarantine::list`).

use super::Entry;

/// A listing query (all filters are case-insensitive substrings, `since` in ms).
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// `sender=`: a substring of the envelope sender (`None`: any).
    pub sender: Option<String>,
    /// `rcpt=`: a substring of any recipient (`None`: any).
    pub rcpt: Option<String>,
    /// `subject=`: a substring of the subject (`None`: any).
    pub subject: Option<String>,
    /// `node=`: only entries this node holds, by exact id (`None`: any).
    pub node: Option<String>,
    /// `since=`: only entries received at or after this time, ms since the epoch.
    pub since_ms: Option<u64>,
    /// Entries to return at most (clamped to 1..=`LIST_LIMIT_MAX`).
    pub limit: usize,
    /// Continue after this id (newest first order).
    pub cursor: Option<String>,
}

impl Query {
    pub(super) fn matches(&self, e: &Entry) -> bool {
        let has = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        self.sender.as_ref().is_none_or(|s| has(&e.meta.sender, s))
            && self
                .rcpt
                .as_ref()
                .is_none_or(|r| e.meta.recipients.iter().any(|x| has(x, r)))
            && self
                .subject
                .as_ref()
                .is_none_or(|s| has(&e.meta.subject, s))
            && self.node.as_ref().is_none_or(|n| &e.meta.node == n)
            && self.since_ms.is_none_or(|t| e.meta.received_ms >= t)
    }
}
