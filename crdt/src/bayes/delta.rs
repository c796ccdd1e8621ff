//! Anti-entropy: version vectors, deltas, and applying them (see the module documentation of
//! [`bayes`](super) for the rules).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use super::error::{self, BayesError, Problem};
use super::model::{Changes, Record, Stored};
use super::store::OwnerLog;
use super::{
    BayesCorpus, DELTA_OWNERS_MAX, DELTA_RECORDS_MAX, DELTA_TOKENS_MAX, SCHEMA_VERSION, SEQ_MAX,
};

/// What one replica sends another: per owner, the records of a seq range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BayesDelta {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// One section per owner (an owner appears at most once).
    pub owners: Vec<OwnerDelta>,
}

impl Default for BayesDelta {
    fn default() -> Self {
        BayesDelta {
            v: SCHEMA_VERSION,
            owners: Vec::new(),
        }
    }
}

impl BayesDelta {
    /// Records in all sections.
    pub fn record_count(&self) -> usize {
        self.owners.iter().map(|o| o.records.len()).sum()
    }

    /// Tokens in all records.
    pub fn token_count(&self) -> usize {
        let records = self.owners.iter().flat_map(|o| &o.records);
        records.map(|r| r.op.token_count()).sum()
    }
}

/// The records of one owner in the seq range `(from, to]`: every record the sender holds
/// there, in seq order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerDelta {
    /// The owner (writer of every record in this section).
    pub node: String,
    /// Start of the range (exclusive): the receiver's version when the delta was made.
    pub from: u64,
    /// End of the range (inclusive): the receiver may take it as its version.
    pub to: u64,
    /// The owner's floor as known to the sender: none of its records below it exist.
    #[serde(default)]
    pub floor: u64,
    /// The records, seq strictly increasing, each in `(from, to]` and at or above `floor`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<Record>,
}

/// What applying a delta (or merging a replica) did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Records for a key this replica held no record of.
    pub added: usize,
    /// Records that replaced an older record of their key.
    pub replaced: usize,
    /// Records dropped because they fell below a raised floor.
    pub dropped: usize,
    /// Records not applied: not newer than the one held, below the floor, or in a section
    /// that starts above the version held.
    pub ignored: usize,
    /// Owners whose version rose.
    pub advanced: usize,
    /// What to write to the store.
    pub changes: Changes,
}

impl ApplyReport {
    /// Whether the delta changed anything (records, floors or versions).
    pub fn changed(&self) -> bool {
        self.added + self.replaced + self.dropped + self.advanced > 0
    }
}

impl BayesCorpus {
    /// The version held of `owner`'s log (0 when nothing is known of it).
    pub fn version(&self, owner: &str) -> u64 {
        self.logs.get(owner).map_or(0, |log| log.version)
    }

    /// Per owner, the version this replica holds (see the module documentation). Send it to
    /// a peer, which answers with [`delta_since`](Self::delta_since).
    pub fn version_vector(&self) -> BTreeMap<String, u64> {
        let version = |(node, log): (&String, &OwnerLog)| (node.clone(), log.version);
        self.logs.iter().map(version).collect()
    }

    /// What a peer whose version vector is `theirs` lacks: per owner, the records above
    /// `theirs[owner]`, at most `max_records` (and at most [`DELTA_RECORDS_MAX`] records,
    /// [`DELTA_TOKENS_MAX`] tokens and [`DELTA_OWNERS_MAX`] sections). When a bound cuts an
    /// owner's records, its section claims only up to the first record left out.
    pub fn delta_since(&self, theirs: &BTreeMap<String, u64>, max_records: usize) -> BayesDelta {
        let mut records_left = max_records.min(DELTA_RECORDS_MAX);
        let mut tokens_left = DELTA_TOKENS_MAX;
        let mut delta = BayesDelta::default();
        for (node, log) in &self.logs {
            if delta.owners.len() == DELTA_OWNERS_MAX {
                break;
            }
            let from = theirs.get(node).copied().unwrap_or(0);
            if log.version <= from {
                continue;
            }
            let mut section = OwnerDelta {
                node: node.clone(),
                from,
                to: log.version,
                floor: log.floor,
                records: Vec::new(),
            };
            let mut cut = false;
            for (&seq, digest) in log.by_seq.range(from + 1..=log.version) {
                let stored = &log.records[digest];
                let tokens = stored.op.token_count();
                if records_left == 0 || tokens > tokens_left {
                    section.to = seq - 1;
                    cut = true;
                    break;
                }
                records_left -= 1;
                tokens_left -= tokens;
                section.records.push(stored.to_record(node, *digest));
            }
            if section.to > section.from {
                delta.owners.push(section);
            }
            if cut {
                break;
            }
        }
        delta
    }

    /// Applies a delta from any replica (see the module documentation). Refused as a whole,
    /// with nothing changed, if it is malformed ([`BayesError::Invalid`] names the fault) or
    /// of another schema version.
    pub fn apply(&mut self, delta: BayesDelta) -> Result<ApplyReport, BayesError> {
        self.apply_checked(delta, true)
    }

    /// Merges everything `other` holds into this replica, as [`apply`](Self::apply) would
    /// (without the delta size bounds).
    pub fn merge(&mut self, other: &BayesCorpus) -> Result<ApplyReport, BayesError> {
        self.apply_checked(other.snapshot(), false)
    }

    /// Everything this replica holds, as one delta: per owner one section `(0, version]`.
    pub(super) fn snapshot(&self) -> BayesDelta {
        let section = |(node, log): (&String, &OwnerLog)| OwnerDelta {
            node: node.clone(),
            from: 0,
            to: log.version,
            floor: log.floor,
            records: log
                .by_seq
                .values()
                .map(|digest| log.records[digest].to_record(node, *digest))
                .collect(),
        };
        BayesDelta {
            v: SCHEMA_VERSION,
            owners: self.logs.iter().map(section).collect(),
        }
    }

    /// Applies a delta after every check; `bounded` adds the size bounds (not for whole
    /// replicas).
    pub(super) fn apply_checked(
        &mut self,
        delta: BayesDelta,
        bounded: bool,
    ) -> Result<ApplyReport, BayesError> {
        self.check_delta(&delta, bounded)?;
        let mut report = ApplyReport::default();
        for section in delta.owners {
            self.apply_section(section, &mut report);
        }
        Ok(report)
    }

    fn apply_section(&mut self, section: OwnerDelta, report: &mut ApplyReport) {
        let node = section.node;
        let log = self.logs.get(&node);
        let (floor, version) = log.map_or((0, 0), |log| (log.floor, log.version));
        let mut version_now = version;
        if section.floor > floor {
            let dropped = self.raise_floor(&node, section.floor);
            report.dropped += dropped.len();
            report.changes.delete.extend(dropped);
            report.changes.floors.push((node.clone(), section.floor));
            version_now = self.logs[&node].version;
        }
        if section.from > version_now {
            report.ignored += section.records.len();
            report.advanced += usize::from(version_now > version);
            return;
        }
        let floor = floor.max(section.floor);
        for record in section.records {
            let held = self
                .logs
                .get(&node)
                .and_then(|l| l.records.get(&record.digest));
            match held {
                _ if record.seq < floor => report.ignored += 1,
                Some(held) if held.seq >= record.seq => report.ignored += 1,
                Some(_) => report.replaced += 1,
                None => report.added += 1,
            }
            if record.seq >= floor && held.is_none_or(|held| held.seq < record.seq) {
                self.set(
                    &node,
                    record.digest,
                    Some(Stored::from_record(record.clone())),
                );
                report.changes.put.push(record);
            }
        }
        if section.to > version_now {
            self.log_mut(&node).version = section.to;
            version_now = section.to;
        }
        report.advanced += usize::from(version_now > version);
    }

    /// Every check of [`apply`](Self::apply), without changing anything.
    fn check_delta(&self, delta: &BayesDelta, bounded: bool) -> Result<(), BayesError> {
        if delta.v != SCHEMA_VERSION {
            return Err(BayesError::UnsupportedVersion {
                found: delta.v,
                supported: SCHEMA_VERSION,
            });
        }
        if bounded {
            for (count, max) in [
                (delta.owners.len(), DELTA_OWNERS_MAX),
                (delta.record_count(), DELTA_RECORDS_MAX),
                (delta.token_count(), DELTA_TOKENS_MAX),
            ] {
                if count > max {
                    return Err(BayesError::at("owners", Problem::TooMany { max }));
                }
            }
        }
        let mut owners = HashSet::with_capacity(delta.owners.len());
        for (n, section) in delta.owners.iter().enumerate() {
            let at = format!("owners[{n}]");
            self.check_section(&at, section)?;
            if !owners.insert(section.node.as_str()) {
                let problem = Problem::DuplicateOwner(section.node.clone());
                return Err(BayesError::at(format!("{at}.node"), problem));
            }
        }
        Ok(())
    }

    fn check_section(&self, at: &str, section: &OwnerDelta) -> Result<(), BayesError> {
        error::check_id(&format!("{at}.node"), &section.node)?;
        let (from, to, floor) = (section.from, section.to, section.floor);
        if from > to {
            return Err(BayesError::at(at, Problem::BadRange { from, to }));
        }
        error::check_max(|| format!("{at}.to"), to, SEQ_MAX)?;
        if floor > to.saturating_add(1) {
            let problem = Problem::FloorAboveRange { floor, to };
            return Err(BayesError::at(format!("{at}.floor"), problem));
        }
        error::check_section_records(at, &section.node, (from, to, floor), &section.records)?;
        let Some(log) = self.logs.get(&section.node) else {
            return Ok(());
        };
        let floor = floor.max(log.floor);
        for (n, record) in section.records.iter().enumerate() {
            let seq = record.seq;
            let Some(digest) = log.by_seq.get(&seq).filter(|_| seq >= floor) else {
                continue;
            };
            let held = &log.records[digest];
            let same = *digest == record.digest
                && held.stamp_ms == record.stamp_ms
                && held.op == record.op;
            if !same {
                let at = format!("{at}.records[{n}]");
                return Err(BayesError::at(at, Problem::SeqConflict(seq)));
            }
        }
        Ok(())
    }
}
