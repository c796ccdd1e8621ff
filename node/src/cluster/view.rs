//! A mesh member read as this application publishes it (see [`super::keys`]).

use mxmesh_crdt::counters::Counters;

use super::keys;
use crate::mesh::members::Member;

/// What a member publishes, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// The member as the mesh sees it (id, liveness, version, address, last seen).
    pub member: Member,
    /// Its health: `ok`, `draining` or `store_error` (empty when it publishes none).
    pub health: String,
    /// The SMTP address it listens on.
    pub smtp_addr: String,
    /// The admin API address it listens on.
    pub admin_addr: String,
    /// Digest of its rule book's heads (differs ⇒ the rules sync).
    pub rules_digest: String,
    /// Live quarantine entries on that node.
    pub quarantine_entries: u64,
    /// Its own quarantine index position (highest own sequence number).
    pub qindex_seq: u64,
    /// Its counters (default when absent or unreadable).
    pub counters: Counters,
    /// The address it publishes in DNS (`[dns] publish_address`), if configured.
    pub dns_addr: Option<String>,
}

impl NodeView {
    /// Decodes what `member` publishes (absent or unreadable keys read as empty/zero).
    pub fn of(member: &Member) -> NodeView {
        let get = |k: &str| member.get(k).unwrap_or_default().to_string();
        NodeView {
            health: get(keys::HEALTH),
            smtp_addr: get(keys::SMTP_ADDR),
            admin_addr: get(keys::ADMIN_ADDR),
            rules_digest: get(keys::RULES_DIGEST),
            quarantine_entries: get(keys::QUARANTINE_ENTRIES).parse().unwrap_or(0),
            qindex_seq: get(keys::QINDEX_SEQ).parse().unwrap_or(0),
            counters: serde_json::from_str(member.get(keys::COUNTERS).unwrap_or_default())
                .unwrap_or_default(),
            dns_addr: member.get(keys::DNS_ADDR).map(str::to_string),
            member: member.clone(),
        }
    }
}

/// The health `member` publishes (empty when it publishes none).
pub fn health(member: &Member) -> &str {
    member.get(keys::HEALTH).unwrap_or_default()
}

/// The DNS address `member` publishes, if any.
pub fn dns_addr(member: &Member) -> Option<&str> {
    member.get(keys::DNS_ADDR)
}

/// Whether `member` publishes `feature` in its [`keys::FEATURES`] list.
pub fn has_feature(member: &Member, feature: &str) -> bool {
    member
        .get(keys::FEATURES)
        .unwrap_or_default()
        .split(',')
        .any(|f| f.trim() == feature)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn a_feature_counts_only_when_the_member_lists_it() {
        let with = |features: Option<&str>| {
            let mut published = BTreeMap::new();
            if let Some(f) = features {
                published.insert(keys::FEATURES.to_string(), f.to_string());
            }
            Member::new("mx1", "0.1.0", published)
        };
        let rcpt = keys::RCPT_DECISIONS;
        assert!(
            !has_feature(&with(None), rcpt),
            "an older node publishes none"
        );
        assert!(has_feature(&with(Some(rcpt)), rcpt));
        assert!(has_feature(&with(Some("x, rcpt-decisions")), rcpt));
        assert!(!has_feature(&with(Some("rcpt-decisions-v0")), rcpt));
    }
}
