//! This node's copy of the mesh-wide quarantine index (`mxmesh_crdt::qindex`).
//!
//! The node's own entries come from its store: at start the index is rebuilt from it and
//! re-issued with sequence numbers above anything peers can hold (`restore_own` with the
//! clock as the floor), and every later change to an own entry is mirrored here right after
//! its synced commit. Other nodes' entries arrive by anti-entropy (`cluster::index`). The
//! index is held in memory only: after a restart the other owners' entries come back from
//! the peers within a sync round.
//!
//! A store restored from a backup is older than what peers know of this node's log: what
//! was released or deleted after the backup is terminal in their copies only. Such a node
//! starts with [`MeshIndex::restoring`]: it holds none of its own entries and issues
//! nothing, adopts what peers send of its own log, and queues the entries it quarantines
//! meanwhile; [`MeshIndex::settle_restored`] then merges, re-issues and reconciles
//! (`quarantine::restore`).
//!
//! The clock as the floor assumes the node's clock did not step back across the restart.
//! When it did (found by the simulator's `clock-skew` scenario), peers hold seqs of this
//! node's past life above its new ones and would never fetch them: [`MeshIndex::apply`]
//! notices such seqs in a peer's delta and re-issues this node's log above them.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use mxmesh_crdt::qindex::{
    ApplyReport, EntryStatus, IndexDelta, IndexEntry, IndexError, IndexQuery, Intent,
    IntentOutcome, IntentStep, PendingAction, QuarantineIndex, SEQS_PER_MS,
};

use super::{Entry, Status};

/// The index, guarded; every method locks briefly and never across I/O.
pub struct MeshIndex {
    me: String,
    inner: Mutex<QuarantineIndex>,
    /// `Some` while a restored store's own log is not settled: the own entries committed
    /// meanwhile, indexed when it settles. Lock order: this, then `inner`.
    restoring: Mutex<Option<Vec<IndexEntry>>>,
}

/// Own entries committed while restoring that one settle indexes at most (more are
/// indexed at the node's next start, from the store).
pub const RESTORING_QUEUE_MAX: usize = 100_000;

/// What [`MeshIndex::settle_restored`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Stored entries still `quarantined` that the mesh knows as terminal (released,
    /// deleted or expired after the backup): the store must follow.
    pub close: Vec<(String, Status)>,
    /// Own entries the mesh knew as quarantined that the store lacks (quarantined after
    /// the backup: their bytes were lost with the disk); now `deleted` in the index.
    pub lost: Vec<String>,
    /// Own entries (tombstones included) in the index afterwards.
    pub entries: usize,
    /// Stored entries, all of them and with every decision known, for which the mesh knew
    /// per-recipient decisions the store lacks (made after the backup): the store must take
    /// them, so no recipient is released to twice.
    pub decided: Vec<IndexEntry>,
}

/// A stored entry's index form: its metadata, cut to the index's bounds.
pub fn index_entry(e: &Entry) -> IndexEntry {
    let mut entry = IndexEntry {
        pending: None,
        seq: 0,
        ..e.meta.clone()
    };
    entry.fit_to_bounds();
    entry
}

impl MeshIndex {
    /// A fresh index holding this node's stored entries, re-issued above `now_ms`.
    pub fn rebuild(me: &str, own: &[Entry], now_ms: u64) -> Result<MeshIndex, IndexError> {
        let mut idx = QuarantineIndex::new();
        idx.restore_own(me, &QuarantineIndex::new(), now_ms)?;
        for e in own {
            idx.upsert_own(me, index_entry(e))?;
        }
        Ok(MeshIndex {
            me: me.to_string(),
            inner: Mutex::new(idx),
            restoring: Mutex::new(None),
        })
    }

    /// An index for a store restored from a backup: none of this node's entries and no
    /// own writes until [`MeshIndex::settle_restored`] (module documentation).
    pub fn restoring(me: &str) -> MeshIndex {
        MeshIndex {
            me: me.to_string(),
            inner: Mutex::new(QuarantineIndex::new()),
            restoring: Mutex::new(Some(Vec::new())),
        }
    }

    fn restoring_lock(&self) -> MutexGuard<'_, Option<Vec<IndexEntry>>> {
        self.restoring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True until a restored store's own log is settled.
    pub fn is_restoring(&self) -> bool {
        self.restoring_lock().is_some()
    }

    /// Settles a restored store's own log: `merged` peers' knowledge is in the index
    /// already (adopted by [`MeshIndex::apply`]); re-issues the own log above every seq of
    /// its past life and `now_ms` (`restore_own`), then reconciles with `stored` (every
    /// stored own entry): an entry the index shows terminal stays terminal and is returned
    /// in [`Settled::close`] for the store to follow; one the index lacks or shows
    /// quarantined is written from the store; an own entry shown quarantined that the store
    /// lacks becomes `deleted` ([`Settled::lost`]); entries committed while restoring are
    /// added. Does nothing when not restoring. On an error nothing is settled.
    pub fn settle_restored(&self, stored: &[Entry], now_ms: u64) -> Result<Settled, IndexError> {
        let mut restoring = self.restoring_lock();
        let Some(queued) = restoring.as_ref() else {
            return Ok(Settled::default());
        };
        let mut idx = self.lock();
        let me = self.me.as_str();
        idx.restore_own(me, &QuarantineIndex::new(), now_ms)?;
        let mut settled = Settled::default();
        let mut known: HashSet<&str> = HashSet::new();
        for e in stored {
            known.insert(&e.meta.id);
            let shown = idx.get_of(me, &e.meta.id).cloned();
            let mut merged = e.meta.clone();
            if let Some(shown) = &shown
                && merged.absorb_decisions(shown)
            {
                settled.decided.push(merged.clone());
            }
            match shown.map(|i| i.status) {
                Some(status) if status.is_terminal() => {
                    if e.meta.status == Status::Quarantined {
                        settled.close.push((e.meta.id.clone(), status));
                    }
                }
                _ => {
                    let entry = Entry {
                        meta: merged,
                        prepend: String::new(),
                    };
                    upsert_logged(&mut idx, me, index_entry(&entry))
                }
            }
        }
        for entry in queued {
            known.insert(&entry.id);
            upsert_logged(&mut idx, me, entry.clone());
        }
        for id in idx.entry_ids_of(me) {
            let shown = idx.get_of(me, &id).map(|e| e.status);
            if !known.contains(id.as_str()) && shown == Some(Status::Quarantined) {
                match idx.set_status_own(me, &id, Status::Deleted, now_ms) {
                    Ok(_) => settled.lost.push(id),
                    Err(err) => {
                        tracing::warn!(id, error = %err, "quarantine index: lost entry not marked deleted")
                    }
                }
            }
        }
        settled.entries = idx.entry_ids_of(me).len();
        drop(known);
        drop(idx);
        *restoring = None;
        Ok(settled)
    }

    fn lock(&self) -> MutexGuard<'_, QuarantineIndex> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Mirrors a committed own entry (queued while restoring).
    pub fn own_upsert(&self, e: &Entry) {
        let mut restoring = self.restoring_lock();
        if let Some(queued) = restoring.as_mut() {
            if queued.len() < RESTORING_QUEUE_MAX {
                queued.push(index_entry(e));
            }
            return;
        }
        if let Err(err) = self.lock().upsert_own(&self.me, index_entry(e)) {
            tracing::error!(id = %e.meta.id, error = %err, "quarantine index: own entry not indexed");
        }
    }

    /// Mirrors a committed status change of an own entry.
    pub fn own_status(&self, id: &str, status: Status, now_ms: u64) {
        if self.is_restoring() {
            return;
        }
        if let Err(err) = self.lock().set_status_own(&self.me, id, status, now_ms) {
            tracing::warn!(id, error = %err, "quarantine index: status change not indexed");
        }
    }

    /// Marks an own entry expired (retention removed it from the store).
    pub fn own_expired(&self, id: &str, now_ms: u64) {
        if self.is_restoring() {
            return;
        }
        if let Err(err) = self
            .lock()
            .set_status_own(&self.me, id, EntryStatus::Expired, now_ms)
        {
            tracing::warn!(id, error = %err, "quarantine index: expiry not indexed");
        }
    }

    /// Drops own tombstones older than `before_ms` mesh-wide.
    pub fn own_purge(&self, before_ms: u64) {
        if self.is_restoring() {
            return;
        }
        if let Err(err) = self.lock().purge_expired_own(&self.me, before_ms) {
            tracing::warn!(error = %err, "quarantine index: purge failed");
        }
    }

    pub fn search(&self, q: &IndexQuery) -> (Vec<IndexEntry>, Option<String>) {
        let idx = self.lock();
        let (items, next) = idx.search(q);
        (
            items.into_iter().cloned().collect(),
            next.map(|c| c.to_string()),
        )
    }

    pub fn get(&self, id: &str) -> Option<IndexEntry> {
        self.lock().get(id).cloned()
    }

    /// Every entry of every owner this copy holds (tombstones included).
    pub fn total_entries(&self) -> usize {
        self.lock().total_entries()
    }

    pub fn live_entries(&self, owner: &str) -> usize {
        self.lock().live_entries(owner)
    }

    /// This node's position (highest own sequence number), published in gossip.
    pub fn own_high_water(&self) -> u64 {
        self.lock().high_water(&self.me)
    }

    pub fn version_vector(&self) -> BTreeMap<String, u64> {
        self.lock().version_vector()
    }

    pub fn delta_since(&self, theirs: &BTreeMap<String, u64>, max_entries: usize) -> IndexDelta {
        self.lock().delta_since(theirs, max_entries)
    }

    /// Applies a peer's delta. Records of this node's own log above everything it issued
    /// in this life mean that its past life (before a restart on a wiped or old store) went
    /// further than the clock-based mark of [`MeshIndex::rebuild`] — its clock stepped back.
    /// Those records are not adopted (this node is its log's only writer); it re-issues its
    /// log above them instead, so peers fetch its current items and drop the past life's.
    /// While restoring, records of the own log are adopted as they are.
    pub fn apply(&self, mut delta: IndexDelta, now_ms: u64) -> Result<ApplyReport, IndexError> {
        let restoring = self.restoring_lock();
        let mut idx = self.lock();
        if restoring.is_some() {
            return idx.apply(delta);
        }
        drop(restoring);
        let issued = idx.high_water(&self.me);
        let past = delta
            .owners
            .iter()
            .filter(|r| r.node == self.me)
            .map(|r| r.to.max(r.floor.saturating_sub(1)))
            .max()
            .unwrap_or(0);
        if past <= issued {
            return idx.apply(delta);
        }
        delta.owners.retain(|r| r.node != self.me);
        let report = idx.apply(delta)?;
        let mark_ms = now_ms.max(past.div_ceil(SEQS_PER_MS));
        let restored = idx.restore_own(&self.me, &QuarantineIndex::new(), mark_ms)?;
        tracing::warn!(
            issued,
            past,
            reissued_from = restored.mark + 1,
            "peers hold newer seqs of this node's past life (its clock stepped back): own index log re-issued above them"
        );
        Ok(report)
    }

    /// Records a release/delete request for an entry another node owns.
    pub fn request(&self, entry_id: &str, pending: PendingAction) -> Result<Intent, IndexError> {
        self.lock().request(&self.me, entry_id, pending).cloned()
    }

    /// Requests waiting for this node to carry them out: (request id, who asked).
    /// None while restoring (the own log is not settled).
    pub fn pending_for_me(&self) -> Vec<(String, String)> {
        if self.is_restoring() {
            return Vec::new();
        }
        self.lock()
            .pending_for(&self.me)
            .into_iter()
            .map(|i| {
                (
                    i.request_id.clone(),
                    format!("{}@{}", i.admin, i.requested_by),
                )
            })
            .collect()
    }

    /// Undone requests waiting for this node, oldest first, in full.
    pub fn pending_intents_for_me(&self) -> Vec<Intent> {
        self.lock()
            .pending_for(&self.me)
            .into_iter()
            .cloned()
            .collect()
    }

    /// Undone requests this node recorded for owners `gone` names, oldest first.
    pub fn my_requests_to(&self, gone: &dyn Fn(&str) -> bool) -> Vec<Intent> {
        let idx = self.lock();
        let mut out: Vec<Intent> = idx
            .intents()
            .filter(|i| i.requested_by == self.me && i.done.is_none() && gone(&i.owner))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.requested_ms, &a.request_id).cmp(&(b.requested_ms, &b.request_id)));
        out
    }

    /// Withdraws an undone request of this node (its owner left the mesh).
    pub fn withdraw(&self, request_id: &str) -> Result<(), IndexError> {
        self.lock().withdraw_own(&self.me, request_id)
    }

    /// This node's own entry `id` (even when another node's entry superseded it).
    pub fn own(&self, id: &str) -> Option<IndexEntry> {
        self.lock().get_of(&self.me, id).cloned()
    }

    pub fn begin_intent(&self, request_id: &str, now_ms: u64) -> Result<IntentStep, IndexError> {
        self.lock().begin_intent_own(&self.me, request_id, now_ms)
    }

    pub fn finish_intent(
        &self,
        request_id: &str,
        now_ms: u64,
    ) -> Result<IntentOutcome, IndexError> {
        self.lock().finish_intent_own(&self.me, request_id, now_ms)
    }

    /// Own entries still quarantined with fewer than `copies` holders in all (the owner
    /// counted), at most `max` of them.
    /// Holders `departed` names are not counted.
    pub fn under_copied(
        &self,
        copies: usize,
        departed: &dyn Fn(&str) -> bool,
        max: usize,
    ) -> Vec<IndexEntry> {
        let idx = self.lock();
        idx.entries_of(&self.me)
            .filter(|e| e.status == EntryStatus::Quarantined && holders(e, departed) < copies)
            .take(max)
            .cloned()
            .collect()
    }

    /// How many own entries are still quarantined with fewer than `copies` holders.
    pub fn under_copied_count(&self, copies: usize, departed: &dyn Fn(&str) -> bool) -> usize {
        let idx = self.lock();
        idx.entries_of(&self.me)
            .filter(|e| e.status == EntryStatus::Quarantined && holders(e, departed) < copies)
            .count()
    }

    /// Entries of `owner` still quarantined that no other node took over.
    pub fn live_unadopted_of(&self, owner: &str) -> Vec<IndexEntry> {
        self.lock().live_unadopted_of(owner).cloned().collect()
    }

    /// Whether another node's entry took `entry` over.
    pub fn superseded(&self, entry: &IndexEntry) -> bool {
        self.lock().superseded(entry)
    }
}

/// The nodes holding `e` (its owner and the copy holders `departed` does not name).
fn holders(e: &IndexEntry, departed: &dyn Fn(&str) -> bool) -> usize {
    1 + e.copies.iter().filter(|h| !departed(h)).count()
}

/// Writes an own entry, logging a refusal (a bound, a purged id).
fn upsert_logged(idx: &mut QuarantineIndex, me: &str, entry: IndexEntry) {
    let id = entry.id.clone();
    if let Err(err) = idx.upsert_own(me, entry) {
        tracing::warn!(id, error = %err, "quarantine index: restored entry not indexed");
    }
}
