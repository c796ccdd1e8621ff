//! Persistence and restarts: what a node stores, how it rebuilds the corpus at start, and
//! how it takes its own log back after losing its store.

use super::error::{self, BayesError, Problem};
use super::model::{Changes, Record, Stored};
use super::{BayesCorpus, SEQ_MAX, SEQS_PER_MS};

/// What [`BayesCorpus::restore_own`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Records of this node re-issued.
    pub reissued: usize,
    /// The high-water mark: every seq of the node's past life is at most this.
    pub mark: u64,
    /// The node's last seq after re-issuing (its floor is `mark + 1`).
    pub high: u64,
    /// What to write to the store (the merged records, the re-issued ones, the new floor).
    pub changes: Changes,
}

impl BayesCorpus {
    /// Every record held, of every owner, in owner then seq order (what a store holds).
    pub fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.logs.iter().flat_map(|(node, log)| {
            let record = |digest| log.records[digest].to_record(node, *digest);
            log.by_seq.values().map(record)
        })
    }

    /// Every owner floor above zero (what a store holds beside the records).
    pub fn floors(&self) -> impl Iterator<Item = (&str, u64)> + '_ {
        let floors = self.logs.iter().filter(|(_, log)| log.floor > 0);
        floors.map(|(node, log)| (node.as_str(), log.floor))
    }

    /// Rebuilds a replica from what a node stored: owner floors and records (any order;
    /// of several records of one `(owner, digest)` the highest seq is kept, records below
    /// their owner's floor are dropped). Each owner's version becomes its highest seq held
    /// (or its floor − 1). Refused with [`BayesError::Invalid`] (`floors[n]` or
    /// `records[n]`) for a record that breaks a bound or two different records under one
    /// owner and seq.
    pub fn restore(
        floors: impl IntoIterator<Item = (String, u64)>,
        records: impl IntoIterator<Item = Record>,
    ) -> Result<BayesCorpus, BayesError> {
        let mut corpus = BayesCorpus::new();
        for (n, (node, floor)) in floors.into_iter().enumerate() {
            error::check_id(&format!("floors[{n}].node"), &node)?;
            error::check_max(|| format!("floors[{n}].floor"), floor, SEQ_MAX + 1)?;
            corpus.raise_floor(&node, floor);
        }
        for (n, record) in records.into_iter().enumerate() {
            let at = format!("records[{n}]");
            error::check_record(&at, &record)?;
            corpus.restore_record(&at, record)?;
        }
        for log in corpus.logs.values_mut() {
            log.version = log.high();
        }
        Ok(corpus)
    }

    fn restore_record(&mut self, at: &str, record: Record) -> Result<(), BayesError> {
        let log = self.log_mut(&record.owner);
        if record.seq < log.floor {
            return Ok(());
        }
        if let Some(digest) = log.by_seq.get(&record.seq) {
            let held = &log.records[digest];
            if *digest != record.digest || held.stamp_ms != record.stamp_ms || held.op != record.op
            {
                return Err(BayesError::at(at, Problem::SeqConflict(record.seq)));
            }
            return Ok(());
        }
        if log
            .records
            .get(&record.digest)
            .is_some_and(|held| held.seq > record.seq)
        {
            return Ok(());
        }
        let owner = record.owner.clone();
        self.set(&owner, record.digest, Some(Stored::from_record(record)));
        Ok(())
    }

    /// Takes back node `me`'s own log after a start on a wiped or old store (see the module
    /// documentation): merges `from_replicas` (what reachable peers hold, merged; may be
    /// empty), then re-issues every record of `me` above a high-water mark of at least
    /// `now_ms ×` [`SEQS_PER_MS`] and raises `me`'s floor to the first of them. Refused with
    /// nothing changed if `from_replicas` does not merge or the seqs would pass [`SEQ_MAX`].
    pub fn restore_own(
        &mut self,
        me: &str,
        from_replicas: &BayesCorpus,
        now_ms: u64,
    ) -> Result<RestoreReport, BayesError> {
        error::check_id("me", me)?;
        let mut staged = self.clone();
        let merged = staged.merge(from_replicas)?;
        let high = staged.logs.get(me).map_or(0, |log| log.high());
        let mark = high.max(now_ms.saturating_mul(SEQS_PER_MS));
        let own: Vec<Record> = staged
            .logs
            .get(me)
            .map(|log| {
                log.by_seq
                    .values()
                    .map(|d| log.records[d].to_record(me, *d))
                    .collect()
            })
            .unwrap_or_default();
        let last = mark.saturating_add(own.len() as u64);
        if last > SEQ_MAX {
            return Err(BayesError::SeqExhausted(me.to_string()));
        }
        let mut changes = merged.changes;
        for (record, seq) in own.into_iter().zip(mark + 1..) {
            let reissued = Record { seq, ..record };
            let digest = reissued.digest;
            staged.set(me, digest, Some(Stored::from_record(reissued.clone())));
            changes.put.push(reissued);
        }
        let reissued = (last - mark) as usize;
        let dropped = staged.raise_floor(me, mark + 1);
        changes.delete.extend(dropped);
        changes.floors.push((me.to_string(), mark + 1));
        staged.log_mut(me).version = last;
        *self = staged;
        Ok(RestoreReport {
            reissued,
            mark,
            high: last,
            changes,
        })
    }
}
