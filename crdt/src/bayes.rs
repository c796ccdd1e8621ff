//! The learned corpus of the Bayesian spam classifier, replicated across the mesh: which
//! messages are learned as spam or ham, and the per-token counts derived from them.
//!
//! Every node learns and forgets through its own API; every replica ends with the same
//! counts, a message counts **once** mesh-wide however many nodes learned it, relearning a
//! message as the other class moves it, and forgetting it on any node removes it everywhere.
//! Nothing here does I/O, computes digests or tokens, or reads the clock: the caller gives
//! the message digest, its token hashes and the time.
//!
//! # Records and logs
//!
//! Each node is the **only writer** of its own log. A log holds at most one [`Record`] per
//! message [`Digest`]: the owner's latest word on it, `Learn { class, tokens }` or `Forget`
//! (a tombstone). Every record carries
//!
//! - `seq`: the owner's sequence number, one more than the highest it knows of itself; a new
//!   record of a digest replaces the owner's previous one (which is dropped: logs have gaps);
//! - `stamp_ms`: a hybrid-logical-clock time, `max(now_ms, highest stamp this replica holds
//!   + 1)`, so an operation is stamped later than every operation its node had seen.
//!
//! # The winner of a digest, and the counts
//!
//! Of the records of one digest (at most one per owner), the one with the greatest
//! `(stamp_ms, owner)` **wins** (owner ids compared as byte strings). The counts are a
//! function of the winners only: for every digest whose winner is `Learn { class, tokens }`,
//! one message of `class` and, for each of its tokens (distinct, as the record holds them
//! strictly increasing), one occurrence in `class`. So:
//!
//! - two nodes that learn the same message concurrently (say on both sides of a partition)
//!   hold two records, one wins, and the message counts once;
//! - a learn of a message already learned as that class writes nothing
//!   ([`LearnOutcome::AlreadyLearned`]);
//! - relearning it as the other class writes a record stamped later than the one it saw, which
//!   wins: the message moves;
//! - forgetting it writes a tombstone stamped later, which wins everywhere: the message counts
//!   nowhere until someone learns it again (later still);
//! - of operations that did not see each other, the later stamp wins, and equal stamps are
//!   decided by the owner id: every replica decides the same way.
//!
//! The counts are kept incrementally: replacing a record re-derives only its digest's winner,
//! subtracting the old winner's contribution and adding the new one's (O(tokens)); token
//! lookups ([`BayesCorpus::counts`]) are one hash-map read.
//!
//! # Merge
//!
//! A replica's state is, per owner, a floor, a version and the records held. Merging two
//! states takes per owner the maximum floor and the maximum version, and per `(owner,
//! digest)` the record with the greatest seq, dropping records below the floor. Each part is
//! a join (maximum) of a semilattice, so merging is commutative, associative and idempotent,
//! and the counts, a function of the merged records, are the same whatever the merge order:
//! equal to a recount from scratch of the winners ([`BayesCorpus::audit`]).
//!
//! # Deltas and versions
//!
//! An owner's **version** `v` held by a replica means: it holds, for every digest the owner
//! had written a record of with seq ≤ `v`, that record or a newer one. The
//! [version vector](BayesCorpus::version_vector) gives the version per owner. A peer answers
//! it with [`BayesCorpus::delta_since`]: per owner a section `(from, to]` with every record it
//! holds in that range, in seq order, and its floor; a delta cut short by the record or token
//! bound claims only up to the first record left out. Applying a section adds each record
//! that is newer than the one held for its key, then raises the version to `to`, but only if
//! the section starts at or below the version held (`from ≤ v`); a section that starts above
//! (a late or reordered delta after a restart lowered the version) is ignored and fetched
//! again. The owner's own version is its last seq. Deltas may be lost, duplicated, reordered
//! or cut anywhere: applying is still a join, and once the owner stops writing every replica
//! that catches up holds its latest records (a replica's version passes the seq of a latest
//! record only through a section from a replica that held it).
//!
//! Malformed deltas are refused as a whole with [`BayesError::Invalid`] naming the bad part:
//! bounds ([`DELTA_OWNERS_MAX`], [`DELTA_RECORDS_MAX`], [`DELTA_TOKENS_MAX`],
//! [`TOKENS_PER_RECORD_MAX`], [`SEQ_MAX`], [`STAMP_MS_MAX`]), a record in another owner's
//! section, seqs out of order, out of the claimed range or below the floor, a digest twice,
//! tokens not strictly increasing, or a record that differs from the one held under the same
//! owner and seq (a node reused a seq).
//!
//! # Bounds
//!
//! A learned record carries at most [`TOKENS_PER_RECORD_MAX`] tokens; a delta at most
//! [`DELTA_RECORDS_MAX`] records, [`DELTA_TOKENS_MAX`] tokens and [`DELTA_OWNERS_MAX`]
//! sections ([`BayesCorpus::delta_since`] stays within them, and a bound always admits one
//! record, so exchanges make progress). The corpus itself grows with the messages learned
//! (one record per node that learned or forgot a message; tombstones stay, so that a late
//! learn cannot resurrect a forgotten message), as a token database does.
//!
//! # Persistence
//!
//! Every operation returns the [`Changes`] to write: records keyed by `(owner, digest)` and
//! owner floors. [`BayesCorpus::restore`] rebuilds a replica from them; versions are derived
//! as the highest seq held per owner (or the floor − 1), never more than the replica had.
//! The changes of one operation must be written atomically. A node that must not show a
//! record before it is stored plans its operation ([`BayesCorpus::plan_learn`],
//! [`BayesCorpus::plan_forget`]: the changes, the corpus untouched), writes them, then
//! applies them with [`BayesCorpus::commit_own`], writing no other record of its own in
//! between (a plan overtaken by another own record is refused as stale).
//!
//! # Restarting on a wiped or old store
//!
//! A node whose store lost its own records must not reuse seqs peers hold. It syncs with the
//! peers it can reach, then calls [`BayesCorpus::restore_own`], which merges what they know,
//! takes as high-water mark the highest seq of the node known anywhere there and at least
//! `now_ms ×` [`SEQS_PER_MS`] (so seqs of its past life held only by unreachable peers are
//! below it too, given it never wrote more than that many records per ms on average),
//! re-issues its surviving records above the mark with their stamps and operations unchanged,
//! and raises its floor to the first of them. Replicas drop the node's records below the
//! floor: records of its past life that it did not adopt vanish everywhere instead of
//! lingering on one peer (their learns are lost, as in the quarantine index). A node that
//! restarts with its current store calls nothing.

mod delta;
mod error;
mod model;
mod persist;
mod store;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest as _, Sha256};

pub use delta::{ApplyReport, BayesDelta, OwnerDelta};
pub use error::{BayesError, Problem};
pub use model::{
    Changes, Class, ClassCounts, Contribution, DIGEST_BYTES, Digest, ForgetReport, LearnOutcome,
    LearnReport, Record, RecordKey, RecordOp,
};
pub use persist::RestoreReport;

use model::Stored;
use store::{Holder, OwnerLog};

/// Schema version of [`BayesDelta`] (field `v`).
pub const SCHEMA_VERSION: u32 = 1;
/// Most tokens in one learned record; the caller's tokenizer keeps at most this many.
pub const TOKENS_PER_RECORD_MAX: usize = 8192;
/// Most records in one delta.
pub const DELTA_RECORDS_MAX: usize = 4096;
/// Most tokens in all records of one delta (one full record always fits).
pub const DELTA_TOKENS_MAX: usize = 262_144;
/// Most owner sections in one delta.
pub const DELTA_OWNERS_MAX: usize = 4096;
/// Largest sequence number (exactly representable as a JSON/IEEE double).
pub const SEQ_MAX: u64 = crate::qindex::SEQ_MAX;
/// Largest stamp, in ms (exactly representable as a JSON/IEEE double).
pub const STAMP_MS_MAX: u64 = crate::qindex::SEQ_MAX;
/// Sequence numbers reserved per millisecond of `now_ms` by [`BayesCorpus::restore_own`].
pub const SEQS_PER_MS: u64 = crate::qindex::SEQS_PER_MS;

const _: () = assert!(TOKENS_PER_RECORD_MAX <= DELTA_TOKENS_MAX);

/// The learned corpus as this replica knows it: every owner's log and the counts derived
/// from the winning records. See the module documentation for the rules.
#[derive(Debug, Clone, Default)]
pub struct BayesCorpus {
    logs: BTreeMap<String, OwnerLog>,
    /// Per digest, who holds a record of it.
    holders: HashMap<Digest, Vec<Holder>>,
    /// Per token, occurrences in winning learns per class (tokens with zero counts absent).
    counts: HashMap<u64, ClassCounts>,
    /// Digests whose winner is a learn, per class.
    learned: ClassCounts,
    /// The highest stamp this replica has held (the hybrid clock).
    clock_ms: u64,
}

/// Replicas are equal when they hold the same records, floors and versions (and so the same
/// counts). The hybrid clock is not compared.
impl PartialEq for BayesCorpus {
    fn eq(&self, other: &BayesCorpus) -> bool {
        self.logs == other.logs && self.counts == other.counts && self.learned == other.learned
    }
}

impl Eq for BayesCorpus {}

impl BayesCorpus {
    /// An empty corpus.
    pub fn new() -> Self {
        BayesCorpus::default()
    }

    /// Learns message `digest` as `class` on node `me`, with its token hashes (any order,
    /// repeats allowed; at most [`TOKENS_PER_RECORD_MAX`] distinct). Writes a record unless
    /// the message is already learned as `class` here. `now_ms` is the node's clock.
    /// [`plan_learn`](Self::plan_learn) then [`commit_own`](Self::commit_own) in one step.
    pub fn learn(
        &mut self,
        me: &str,
        digest: Digest,
        class: Class,
        tokens: &[u64],
        now_ms: u64,
    ) -> Result<LearnReport, BayesError> {
        let report = self.plan_learn(me, digest, class, tokens, now_ms)?;
        self.commit_own(me, &report.changes)?;
        Ok(report)
    }

    /// What [`learn`](Self::learn) would write, without changing the corpus: the outcome and
    /// the record. A node that must store a record before the corpus shows it writes
    /// `changes`, then applies them with [`commit_own`](Self::commit_own); nothing else may
    /// write a record of `me` in between.
    pub fn plan_learn(
        &self,
        me: &str,
        digest: Digest,
        class: Class,
        tokens: &[u64],
        now_ms: u64,
    ) -> Result<LearnReport, BayesError> {
        error::check_id("me", me)?;
        let mut tokens = tokens.to_vec();
        tokens.sort_unstable();
        tokens.dedup();
        error::check_tokens("tokens", &tokens)?;
        let outcome = match self.class_of(&digest) {
            Some(had) if had == class => {
                return Ok(LearnReport {
                    outcome: LearnOutcome::AlreadyLearned,
                    changes: Changes::default(),
                });
            }
            Some(from) => LearnOutcome::Moved { from },
            None => LearnOutcome::Learned,
        };
        let record = self.plan_record(me, digest, RecordOp::Learn { class, tokens }, now_ms)?;
        Ok(LearnReport {
            outcome,
            changes: Changes {
                put: vec![record],
                ..Changes::default()
            },
        })
    }

    /// Forgets message `digest` on node `me`: writes a tombstone that wins over every record
    /// of it this replica holds, so it is forgotten everywhere. Also a digest unknown here
    /// (learned on a node not heard from yet) gets a tombstone; nothing is written when the
    /// winner is already a tombstone. [`plan_forget`](Self::plan_forget) then
    /// [`commit_own`](Self::commit_own) in one step.
    pub fn forget(
        &mut self,
        me: &str,
        digest: Digest,
        now_ms: u64,
    ) -> Result<ForgetReport, BayesError> {
        let report = self.plan_forget(me, digest, now_ms)?;
        self.commit_own(me, &report.changes)?;
        Ok(report)
    }

    /// What [`forget`](Self::forget) would write, without changing the corpus (see
    /// [`plan_learn`](Self::plan_learn)).
    pub fn plan_forget(
        &self,
        me: &str,
        digest: Digest,
        now_ms: u64,
    ) -> Result<ForgetReport, BayesError> {
        error::check_id("me", me)?;
        let was = self.class_of(&digest);
        if was.is_none() && self.winning(&digest).is_some() {
            return Ok(ForgetReport {
                was,
                changes: Changes::default(),
            });
        }
        let record = self.plan_record(me, digest, RecordOp::Forget, now_ms)?;
        Ok(ForgetReport {
            was,
            changes: Changes {
                put: vec![record],
                ..Changes::default()
            },
        })
    }

    /// The next record of `me`'s own log: the next seq and a hybrid-clock stamp.
    fn plan_record(
        &self,
        me: &str,
        digest: Digest,
        op: RecordOp,
        now_ms: u64,
    ) -> Result<Record, BayesError> {
        let seq = self.next_seq(me)?;
        let stamp_ms = now_ms.max(self.clock_ms.saturating_add(1));
        if stamp_ms > STAMP_MS_MAX {
            return Err(BayesError::ClockExhausted { max: STAMP_MS_MAX });
        }
        Ok(Stored { seq, stamp_ms, op }.to_record(me, digest))
    }

    /// Applies records of `me` planned by [`plan_learn`](Self::plan_learn) or
    /// [`plan_forget`](Self::plan_forget) (its `put`; a plan has no deletes or floors).
    /// Refused with [`BayesError::StalePlan`] and nothing changed when a record is not
    /// `me`'s or its seq is no longer the next one (another record of `me` came in since
    /// the plan).
    pub fn commit_own(&mut self, me: &str, changes: &Changes) -> Result<(), BayesError> {
        let first = self.next_seq(me)?;
        let stale = |seq| BayesError::StalePlan {
            me: me.to_string(),
            seq,
            next: first,
        };
        if !changes.delete.is_empty() || !changes.floors.is_empty() {
            return Err(stale(0));
        }
        for (record, seq) in changes.put.iter().zip(first..) {
            if record.owner != me || record.seq != seq {
                return Err(stale(record.seq));
            }
        }
        for record in &changes.put {
            self.set(me, record.digest, Some(Stored::from_record(record.clone())));
            let log = self.log_mut(me);
            log.version = log.version.max(record.seq);
        }
        Ok(())
    }

    /// The class message `digest` is learned as, `None` if unknown or forgotten.
    pub fn class_of(&self, digest: &Digest) -> Option<Class> {
        self.winning(digest)
            .and_then(|(_, stored)| stored.op.class())
    }

    /// The winning record of message `digest` (a learn or a tombstone), if any.
    pub fn winner_of(&self, digest: &Digest) -> Option<Record> {
        let (owner, stored) = self.winning(digest)?;
        Some(stored.to_record(owner, *digest))
    }

    /// Occurrences of `token` in learned messages, per class (zero if unknown).
    pub fn counts(&self, token: u64) -> ClassCounts {
        self.counts.get(&token).copied().unwrap_or_default()
    }

    /// Messages learned, per class.
    pub fn learned(&self) -> ClassCounts {
        self.learned
    }

    /// Distinct tokens with a non-zero count.
    pub fn tokens(&self) -> usize {
        self.counts.len()
    }

    /// Per owner known here, what it contributes: winning learns per class and records held.
    pub fn contributions(&self) -> BTreeMap<String, Contribution> {
        let of = |(node, log): (&String, &OwnerLog)| {
            let contribution = Contribution {
                winning: log.wins,
                records: log.records.len(),
            };
            (node.clone(), contribution)
        };
        self.logs.iter().map(of).collect()
    }

    /// Records held, of all owners.
    pub fn record_count(&self) -> usize {
        self.logs.values().map(|log| log.records.len()).sum()
    }

    /// The highest stamp held (the hybrid clock), in ms.
    pub fn clock_ms(&self) -> u64 {
        self.clock_ms
    }

    /// A SHA-256 fingerprint (hex) of the replica: every record held (owner, seq, digest),
    /// then every digest's winning record (owner, seq, class or tombstone), in digest order.
    /// Replicas with the same fingerprint hold the same records and classify alike; compare
    /// it to check convergence cheaply. The records that lose matter too: a record that
    /// loses to another owner's record of the same message changes no winner, yet a replica
    /// without it must still fetch it (it wins once the other is forgotten).
    pub fn fingerprint(&self) -> String {
        let mut digests: Vec<&Digest> = self.holders.keys().collect();
        digests.sort_unstable();
        let mut hash = Sha256::new();
        for (owner, log) in self.logs.iter().filter(|(_, log)| !log.by_seq.is_empty()) {
            hash.update(format!("{owner}\0"));
            for (seq, digest) in &log.by_seq {
                hash.update(seq.to_be_bytes());
                hash.update(digest.0);
            }
        }
        hash.update(b"\n");
        for digest in digests {
            let Some((owner, stored)) = self.winning(digest) else {
                continue;
            };
            let class = stored.op.class().map_or("forget", Class::as_str);
            hash.update(digest.0);
            hash.update(format!("{owner}\0{}\0{class}\0", stored.seq));
        }
        hex::encode(hash.finalize())
    }

    /// Recounts everything from the records and compares with the counts kept incrementally;
    /// [`BayesError::Audit`] names the first difference (which would be a bug). O(records ×
    /// tokens): for tests and the simulator.
    pub fn audit(&self) -> Result<(), BayesError> {
        let mut counts: HashMap<u64, ClassCounts> = HashMap::new();
        let mut learned = ClassCounts::default();
        let mut wins: BTreeMap<&str, ClassCounts> = BTreeMap::new();
        for digest in self.holders.keys() {
            let Some(best) = self.winner(digest) else {
                return Err(BayesError::Audit(format!("digest {digest} has no holder")));
            };
            let stored = &self.logs[&*best.owner].records[digest];
            if let RecordOp::Learn { class, tokens } = &stored.op {
                learned.step(*class, true);
                wins.entry(&*best.owner).or_default().step(*class, true);
                for token in tokens {
                    counts.entry(*token).or_default().step(*class, true);
                }
            }
        }
        if learned != self.learned {
            let kept = self.learned;
            return Err(BayesError::Audit(format!(
                "learned {kept:?}, recount {learned:?}"
            )));
        }
        if counts != self.counts {
            let token = counts
                .iter()
                .find(|(t, c)| self.counts.get(t) != Some(c))
                .map(|(t, _)| *t)
                .or_else(|| {
                    self.counts
                        .keys()
                        .find(|t| !counts.contains_key(t))
                        .copied()
                });
            return Err(BayesError::Audit(format!("token {token:?} differs")));
        }
        for (node, log) in &self.logs {
            let recount = wins.get(node.as_str()).copied().unwrap_or_default();
            if recount != log.wins {
                return Err(BayesError::Audit(format!("wins of {node:?} differ")));
            }
            if log.records.len() != log.by_seq.len() {
                return Err(BayesError::Audit(format!("seq index of {node:?} differs")));
            }
        }
        Ok(())
    }
}
