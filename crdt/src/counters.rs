//! Per-node message counters, replicated as a grow-only map.
//!
//! Each node is the only writer of its own entry and its counters only grow, so a merge
//! takes the per-field maximum: merging is commutative, associative and idempotent, and
//! replicas that have seen the same entries agree whatever the order. A node that restarts
//! with lower counters (lost store) is caught up by the max, never counted backwards.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One node's counters. Unknown fields from newer nodes are ignored, missing ones read as 0.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Messages received (end of DATA reached).
    pub received: u64,
    /// Verdicts `accept`.
    pub accepted: u64,
    /// Verdicts `tag`.
    pub tagged: u64,
    /// Verdicts `quarantine`.
    pub quarantined: u64,
    /// Verdicts `reject`.
    pub rejected: u64,
    /// Messages relayed downstream.
    pub relayed: u64,
    /// Relay attempts deferred for a retry.
    pub deferred: u64,
    /// Messages bounced to the sender (DSN).
    pub bounced: u64,
    /// Verdicts `tempfail`.
    pub tempfailed: u64,
}

/// Names one counter of [`Counters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CounterKind {
    /// [`Counters::received`].
    Received,
    /// [`Counters::accepted`].
    Accepted,
    /// [`Counters::tagged`].
    Tagged,
    /// [`Counters::quarantined`].
    Quarantined,
    /// [`Counters::rejected`].
    Rejected,
    /// [`Counters::relayed`].
    Relayed,
    /// [`Counters::deferred`].
    Deferred,
    /// [`Counters::bounced`].
    Bounced,
    /// [`Counters::tempfailed`].
    Tempfailed,
}

impl Counters {
    /// The counter named by `kind`.
    pub fn get(&self, kind: CounterKind) -> u64 {
        *self.slot(kind)
    }

    /// Adds one to the counter named by `kind` (saturating).
    pub fn increment(&mut self, kind: CounterKind) {
        let slot = self.slot_mut(kind);
        *slot = slot.saturating_add(1);
    }

    /// Raises every counter to at least `other`'s value (the merge of one node's entry).
    pub fn merge(&mut self, other: &Counters) {
        self.combine(other, u64::max);
    }

    /// Adds `other` field by field (saturating), for totals over nodes.
    pub fn add(&mut self, other: &Counters) {
        self.combine(other, u64::saturating_add);
    }

    fn combine(&mut self, other: &Counters, op: fn(u64, u64) -> u64) {
        for kind in CounterKind::ALL {
            let mine = self.slot_mut(kind);
            *mine = op(*mine, other.get(kind));
        }
    }

    fn slot(&self, kind: CounterKind) -> &u64 {
        match kind {
            CounterKind::Received => &self.received,
            CounterKind::Accepted => &self.accepted,
            CounterKind::Tagged => &self.tagged,
            CounterKind::Quarantined => &self.quarantined,
            CounterKind::Rejected => &self.rejected,
            CounterKind::Relayed => &self.relayed,
            CounterKind::Deferred => &self.deferred,
            CounterKind::Bounced => &self.bounced,
            CounterKind::Tempfailed => &self.tempfailed,
        }
    }

    fn slot_mut(&mut self, kind: CounterKind) -> &mut u64 {
        match kind {
            CounterKind::Received => &mut self.received,
            CounterKind::Accepted => &mut self.accepted,
            CounterKind::Tagged => &mut self.tagged,
            CounterKind::Quarantined => &mut self.quarantined,
            CounterKind::Rejected => &mut self.rejected,
            CounterKind::Relayed => &mut self.relayed,
            CounterKind::Deferred => &mut self.deferred,
            CounterKind::Bounced => &mut self.bounced,
            CounterKind::Tempfailed => &mut self.tempfailed,
        }
    }
}

impl CounterKind {
    /// Every counter, in field order.
    pub const ALL: [CounterKind; 9] = [
        CounterKind::Received,
        CounterKind::Accepted,
        CounterKind::Tagged,
        CounterKind::Quarantined,
        CounterKind::Rejected,
        CounterKind::Relayed,
        CounterKind::Deferred,
        CounterKind::Bounced,
        CounterKind::Tempfailed,
    ];

    /// The field name, as in the JSON of [`Counters`].
    pub fn as_str(self) -> &'static str {
        match self {
            CounterKind::Received => "received",
            CounterKind::Accepted => "accepted",
            CounterKind::Tagged => "tagged",
            CounterKind::Quarantined => "quarantined",
            CounterKind::Rejected => "rejected",
            CounterKind::Relayed => "relayed",
            CounterKind::Deferred => "deferred",
            CounterKind::Bounced => "bounced",
            CounterKind::Tempfailed => "tempfailed",
        }
    }
}

/// Every node's counters, keyed by node id. Serialises as a JSON object `{node: counters}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CounterSet {
    nodes: BTreeMap<String, Counters>,
}

impl CounterSet {
    /// An empty set.
    pub fn new() -> Self {
        CounterSet::default()
    }

    /// The counters of `node`, if known.
    pub fn get(&self, node: &str) -> Option<&Counters> {
        self.nodes.get(node)
    }

    /// Adds one to counter `kind` of `node`. Call it only for the local node: each node
    /// is the only writer of its entry.
    pub fn increment(&mut self, node: &str, kind: CounterKind) {
        self.nodes
            .entry(node.to_string())
            .or_default()
            .increment(kind);
    }

    /// Records a snapshot of `node`'s counters, e.g. gossiped by that node. Merged by max,
    /// so a stale snapshot never lowers what is known.
    pub fn observe(&mut self, node: &str, counters: &Counters) {
        self.nodes
            .entry(node.to_string())
            .or_default()
            .merge(counters);
    }

    /// Merges `other` into this set: per node, per field maximum.
    pub fn merge(&mut self, other: &CounterSet) {
        for (node, counters) in &other.nodes {
            self.observe(node, counters);
        }
    }

    /// The sum over all nodes.
    pub fn total(&self) -> Counters {
        let mut total = Counters::default();
        self.nodes.values().for_each(|counters| total.add(counters));
        total
    }

    /// Every node with its counters, in node id order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Counters)> {
        self.nodes
            .iter()
            .map(|(node, counters)| (node.as_str(), counters))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn counters() -> impl Strategy<Value = Counters> {
        proptest::array::uniform9(0u64..1_000).prop_map(|v| Counters {
            received: v[0],
            accepted: v[1],
            tagged: v[2],
            quarantined: v[3],
            rejected: v[4],
            relayed: v[5],
            deferred: v[6],
            bounced: v[7],
            tempfailed: v[8],
        })
    }

    fn counter_set() -> impl Strategy<Value = CounterSet> {
        proptest::collection::btree_map("n[0-3]", counters(), 0..4)
            .prop_map(|nodes| CounterSet { nodes })
    }

    fn merged(a: &CounterSet, b: &CounterSet) -> CounterSet {
        let mut out = a.clone();
        out.merge(b);
        out
    }

    proptest! {
        #[test]
        fn merge_is_commutative(a in counter_set(), b in counter_set()) {
            prop_assert_eq!(merged(&a, &b), merged(&b, &a));
        }

        #[test]
        fn merge_is_associative(a in counter_set(), b in counter_set(), c in counter_set()) {
            prop_assert_eq!(merged(&merged(&a, &b), &c), merged(&a, &merged(&b, &c)));
        }

        #[test]
        fn merge_is_idempotent(a in counter_set(), b in counter_set()) {
            prop_assert_eq!(merged(&a, &a), a.clone());
            let once = merged(&a, &b);
            prop_assert_eq!(merged(&once, &b), once);
        }

        #[test]
        fn merge_never_lowers_a_counter(a in counter_set(), b in counter_set()) {
            let out = merged(&a, &b);
            for (node, counters) in a.iter() {
                let after = out.get(node).copied().unwrap_or_default();
                for kind in CounterKind::ALL {
                    prop_assert!(after.get(kind) >= counters.get(kind));
                }
            }
        }
    }

    #[test]
    fn increment_and_total() {
        let mut set = CounterSet::new();
        set.increment("n1", CounterKind::Received);
        set.increment("n1", CounterKind::Received);
        set.increment("n2", CounterKind::Received);
        set.increment("n2", CounterKind::Tempfailed);
        let total = set.total();
        assert_eq!(
            (total.received, total.tempfailed, total.accepted),
            (3, 1, 0)
        );
        assert_eq!(set.get("n1").map(|c| c.received), Some(2));
    }

    #[test]
    fn stale_snapshot_does_not_lower() {
        let mut set = CounterSet::new();
        set.observe(
            "n1",
            &Counters {
                received: 10,
                ..Counters::default()
            },
        );
        set.observe(
            "n1",
            &Counters {
                received: 4,
                relayed: 2,
                ..Counters::default()
            },
        );
        assert_eq!(
            set.get("n1"),
            Some(&Counters {
                received: 10,
                relayed: 2,
                ..Counters::default()
            })
        );
    }

    #[test]
    fn serialises_as_a_node_map_and_reads_partial_entries() {
        let mut set = CounterSet::new();
        set.increment("n1", CounterKind::Bounced);
        let value = serde_json::to_value(&set).expect("serialise");
        assert_eq!(value["n1"]["bounced"], 1);
        let old: CounterSet =
            serde_json::from_str(r#"{"n9":{"received":5,"future":1}}"#).expect("partial");
        assert_eq!(
            old.get("n9").map(|c| (c.received, c.tempfailed)),
            Some((5, 0))
        );
    }
}
