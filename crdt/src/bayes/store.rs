//! How the corpus holds its records, and the primitives that change them while keeping the
//! derived state (winners, token counts, learned counts, per-owner wins) in step.
//!
//! The primitives check nothing: callers (the owner operations, `apply`, `restore`) decide
//! first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::error::BayesError;
use super::model::{ClassCounts, Digest, RecordKey, RecordOp, Stored};
use super::{BayesCorpus, SEQ_MAX};

/// One owner's log, as far as this replica knows it: the owner's latest record per digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OwnerLog {
    /// The owner's node id.
    pub node: Arc<str>,
    /// Every record of this owner with a lower seq is gone.
    pub floor: u64,
    /// The version: this replica holds the latest record of every digest the owner had
    /// written up to this seq (or a newer one).
    pub version: u64,
    /// The owner's latest record per digest.
    pub records: HashMap<Digest, Stored>,
    /// The digest of each record held, by the record's seq.
    pub by_seq: BTreeMap<u64, Digest>,
    /// Digests whose winning record is a learn of this owner, per class.
    pub wins: ClassCounts,
}

impl OwnerLog {
    fn new(node: &str) -> OwnerLog {
        OwnerLog {
            node: Arc::from(node),
            floor: 0,
            version: 0,
            records: HashMap::new(),
            by_seq: BTreeMap::new(),
            wins: ClassCounts::default(),
        }
    }

    /// The highest seq this replica knows of the owner.
    pub fn high(&self) -> u64 {
        let last = self.by_seq.last_key_value().map_or(0, |(&seq, _)| seq);
        self.version.max(last).max(self.floor.saturating_sub(1))
    }
}

/// A record of a digest as seen from the digest: who holds one, with which stamp and seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Holder {
    /// Hybrid-logical-clock time of the record, in ms.
    pub stamp_ms: u64,
    /// The node whose record it is.
    pub owner: Arc<str>,
    /// The owner's sequence number of the record.
    pub seq: u64,
}

impl Holder {
    /// The order of the records of one digest: greater `(stamp_ms, owner)` wins.
    fn rank(&self) -> (u64, &str) {
        (self.stamp_ms, &self.owner)
    }
}

impl BayesCorpus {
    /// The log of `owner`, created empty if absent.
    pub(super) fn log_mut(&mut self, owner: &str) -> &mut OwnerLog {
        if !self.logs.contains_key(owner) {
            self.logs.insert(owner.to_string(), OwnerLog::new(owner));
        }
        self.logs.get_mut(owner).expect("inserted above")
    }

    /// The winning holder of a digest.
    pub(super) fn winner(&self, digest: &Digest) -> Option<&Holder> {
        self.holders
            .get(digest)?
            .iter()
            .max_by(|a, b| a.rank().cmp(&b.rank()))
    }

    /// The winning record of a digest, with its owner.
    pub(super) fn winning(&self, digest: &Digest) -> Option<(&str, &Stored)> {
        let holder = self.winner(digest)?;
        let stored = self.logs.get(&*holder.owner)?.records.get(digest)?;
        Some((&holder.owner, stored))
    }

    /// The next seq of `owner`'s own log.
    pub(super) fn next_seq(&self, owner: &str) -> Result<u64, BayesError> {
        let high = self.logs.get(owner).map_or(0, OwnerLog::high);
        match high.checked_add(1) {
            Some(seq) if seq <= SEQ_MAX => Ok(seq),
            _ => Err(BayesError::SeqExhausted(owner.to_string())),
        }
    }

    /// Replaces the record of `(owner, digest)` with `new` (or removes it), keeping the
    /// derived state in step. Returns the record it held.
    pub(super) fn set(
        &mut self,
        owner: &str,
        digest: Digest,
        new: Option<Stored>,
    ) -> Option<Stored> {
        let before = self.winner(&digest).cloned();
        let log = self.log_mut(owner);
        let node = log.node.clone();
        let old = log.records.remove(&digest);
        if let Some(old) = &old {
            log.by_seq.remove(&old.seq);
        }
        let holders = self.holders.entry(digest).or_default();
        holders.retain(|h| *h.owner != *owner);
        if let Some(new) = new {
            self.clock_ms = self.clock_ms.max(new.stamp_ms);
            holders.push(Holder {
                stamp_ms: new.stamp_ms,
                owner: node,
                seq: new.seq,
            });
            let log = self.log_mut(owner);
            log.by_seq.insert(new.seq, digest);
            log.records.insert(digest, new);
        } else if holders.is_empty() {
            self.holders.remove(&digest);
        }
        let after = self.winner(&digest).cloned();
        if before != after {
            if let Some(holder) = before {
                let op = match &old {
                    Some(old) if *holder.owner == *owner => &old.op,
                    _ => &self.logs[&*holder.owner].records[&digest].op,
                };
                let class = tally(&mut self.counts, &mut self.learned, op, false);
                if let Some(class) = class {
                    self.log_mut(&holder.owner).wins.step(class, false);
                }
            }
            if let Some(holder) = after {
                let op = &self.logs[&*holder.owner].records[&digest].op;
                let class = tally(&mut self.counts, &mut self.learned, op, true);
                if let Some(class) = class {
                    self.log_mut(&holder.owner).wins.step(class, true);
                }
            }
        }
        old
    }

    /// Raises `owner`'s floor: drops every record below it and counts the seqs below it as
    /// known. Returns the keys of the records dropped.
    pub(super) fn raise_floor(&mut self, owner: &str, floor: u64) -> Vec<RecordKey> {
        let log = self.log_mut(owner);
        if floor <= log.floor {
            return Vec::new();
        }
        log.floor = floor;
        log.version = log.version.max(floor - 1);
        let below: Vec<Digest> = log.by_seq.range(..floor).map(|(_, &d)| d).collect();
        for digest in &below {
            self.set(owner, *digest, None);
        }
        let key = |digest| RecordKey {
            owner: owner.to_string(),
            digest,
        };
        below.into_iter().map(key).collect()
    }
}

/// Adds (`up`) or takes away the contribution of one winning record: one message of its
/// class and one per token. Returns the class, `None` for a tombstone (no contribution).
fn tally(
    counts: &mut HashMap<u64, ClassCounts>,
    learned: &mut ClassCounts,
    op: &RecordOp,
    up: bool,
) -> Option<super::model::Class> {
    let RecordOp::Learn { class, tokens } = op else {
        return None;
    };
    learned.step(*class, up);
    for token in tokens {
        let count = counts.entry(*token).or_default();
        count.step(*class, up);
        if count.is_zero() {
            counts.remove(token);
        }
    }
    Some(*class)
}
