//! The replicated quarantine index: every node's view of every node's quarantine.
//!
//! Each node keeps its quarantined mail on its own disk and is the **only writer** of the
//! index items that describe it. The index is a map from owner node id to that owner's log,
//! and replicas exchange logs by version vector (anti-entropy). Nothing here does I/O or
//! reads the clock: time is always a parameter.
//!
//! # Logs and sequence numbers
//!
//! Every change a node makes to its own log gets the next sequence number (`seq`) of that
//! node: adding or rewriting an entry, changing its status, recording a request, answering
//! one, purging an item. Each item ([`IndexEntry`], [`IntentRecord`], [`DoneRecord`],
//! [`PurgeMarker`]) carries the seq of its last change and a log keeps only the newest
//! version of each item, so a seq names one item of one log. Replicas merge item by item: the
//! higher seq wins.
//!
//! A replica also records, per owner, the seq ranges it holds completely. The
//! [version vector](QuarantineIndex::version_vector) gives, per owner, the end of the range
//! that starts at 1. [`QuarantineIndex::delta_since`] sends, per owner, the items above the
//! peer's version and states the range `(from, to]` for which it is complete; a delta cut
//! short by `max_entries` claims only up to the first item it leaves out. Applying a delta
//! takes the union of ranges, the per-item maximum by seq and the maximum floor (below), so
//! any delta, partial, duplicated, late or reordered, is safe to apply, and applying is
//! commutative, associative and idempotent ([`QuarantineIndex::merge`] applies a whole
//! replica the same way). Malformed input is refused as a whole ([`IndexError::Invalid`]
//! names the bad part) and leaves the index unchanged.
//!
//! # Status, tombstones, purges and the floor
//!
//! An entry's status only moves forward: `quarantined` becomes `released`, `deleted` or
//! `expired`, and a terminal status never changes again (the owner refuses anything else).
//! A terminal entry stays as a tombstone until its owner purges it after retention
//! ([`QuarantineIndex::purge_expired_own`]). A purge is a change like any other: the item is
//! replaced by a [`PurgeMarker`] with a new seq, so a replica holding an older version drops
//! it when the marker arrives, and a stale delta carrying an old version loses to the marker.
//!
//! So that markers do not pile up, each log has a **floor**: after a purge the owner raises
//! it to the lowest seq among its surviving items (entries, requests, done records), or past
//! its last seq when none survive. Nothing of the owner below the floor exists any more, so
//! replicas drop every item and marker of that owner below it (a stale version below it has
//! a newer version above it, or was purged) and count the seqs below it as known. A marker
//! thus lives only while an older item of its owner survives; since retention expires every
//! entry, that is bounded. A delta carries the floor only if it brought everything the
//! sender holds of that owner above the peer's version, so a replica does not drop a stale
//! version before it holds the newer one.
//!
//! # Restarting with an empty or old store
//!
//! A node whose own log is lost or old must not reuse seqs that peers hold (they would never
//! fetch the new items, or would hold two items under one seq) and must not forget which
//! entries were released. When it starts without its current log it gathers what the peers
//! it can reach know, then calls [`QuarantineIndex::restore_own`], which
//!
//! 1. merges `from_replicas` into the index (its own log included);
//! 2. takes as high-water mark the largest seq of it known anywhere in the merged index
//!    (items, ranges, floor) and at least `now_ms × SEQS_PER_MS`, so that changes of its past
//!    life that reached only peers it cannot reach now are below the mark too (given it never
//!    made more than [`SEQS_PER_MS`] changes per millisecond on average);
//! 3. re-issues every surviving item of its own log (entries and tombstones, its requests,
//!    its done records) with fresh seqs above the mark, in their old order, and raises its
//!    floor to the first of them.
//!
//! Every replica then drops all older items of the node (below the floor) and fetches the
//! re-issued ones: tombstones the node adopted survive, items of its past life that it did
//! not adopt vanish everywhere instead of lingering. The node then reconciles with its store:
//! an entry the index shows terminal is terminal (the store follows; never release it
//! again), an entry shown quarantined whose message is gone becomes `deleted`, and messages
//! the index lacks are added with [`QuarantineIndex::upsert_own`]. Knowledge held only by
//! peers unreachable at restore time is lost when they return (it is below the new floor), so
//! a node restores after syncing with as many peers as it can reach. A node restarting with
//! its current log calls nothing.
//!
//! # Release and delete requests (intents)
//!
//! Any node may ask the owner of an entry to release or delete it. Only the owner writes its
//! entries, so the request is an [`IntentRecord`] in the *requester's* log
//! ([`QuarantineIndex::request`]) and the owner answers with a [`DoneRecord`] in *its* log.
//! The merged [`Intent`] is the union by request id with `done` taken from the owner, so done
//! wins over not done. An owner looks at [`QuarantineIndex::pending_for`] after it starts and
//! after every sync, and calls [`QuarantineIndex::begin_intent_own`] for each: if the entry is
//! still quarantined it is told to execute, and once it has, calls
//! [`QuarantineIndex::finish_intent_own`], which sets the entry's status and marks the intent
//! done in one step; if the entry is already released, deleted, expired or unknown, the intent
//! is marked done (`already released`, …) and nothing runs. The entry's status is the proof:
//! an intent seen again (a restart lost the done record) finds the entry terminal and is never
//! executed twice. A listing shows `pending` on an entry while an undone intent for it exists.
//! Requesters purge their answered requests after retention; owners purge a done record after
//! retention once the request itself is gone from their view.
//!
//! # Decisions per recipient
//!
//! A request may name one recipient ([`PendingAction::recipient`], its position in the
//! entry's `recipients`; a digest link or the portal acts for one recipient). The owner
//! carries it out for that recipient only ([`IndexEntry::decide`]) and records it on the
//! entry (`recipients_released`, `recipients_deleted`); a request for a recipient already
//! decided is answered `already …` and nothing runs, so each recipient is decided once. The
//! entry stays `quarantined` while anyone is undecided and becomes terminal with the last
//! decision: `released` if it went to anyone, else `deleted`. A whole-message request acts
//! for the undecided recipients only; on an entry without decisions it only sets the status,
//! as before decisions existed.
//!
//! The merge rule stays the one above: the lists are part of the entry, which only its owner
//! writes, so the highest seq wins and decisions replicate with it. The owner never drops a
//! decision ([`QuarantineIndex::upsert_own`] keeps those of the stored version). One
//! addition: a node of a release that predates the lists drops them when it relays the entry
//! (unknown fields), so two versions may meet under one seq; they
//! [agree](IndexEntry::agrees_with) (no conflict), and [`QuarantineIndex::apply`] keeps
//! their join ([`IndexEntry::joined_with`]: each part an older relay may drop — the
//! decisions, the score — taken from whichever version has it). The join is commutative,
//! associative and idempotent, so any merge order converges (`proptests.rs` relays through
//! such lossy nodes). Version vectors never send a held seq again, so a replica that got
//! only the lossy copy shows the recipient undecided until the owner next rewrites the
//! entry; the owner decides from its own store, so nothing runs twice.
//!
//! On the wire a per-recipient request is an ordinary [`IntentRecord`] whose `entry_id` is
//! `{id}#rcpt{position}` ([`request_target`]): a node of an older release keeps and relays
//! it unchanged, and an older owner finds no entry of that id and answers `not found`, so
//! it can never carry it out as a whole-message request. Record such requests only for
//! owners that read them (the node checks what the owner advertises).
//!
//! # Search
//!
//! Entries are also kept in one map ordered by `(received_ms, id)`, walked newest first;
//! [`QuarantineIndex::search`] filters on the way and pages with cursors `RECEIVED_MS:ID` that
//! stay valid while entries come and go.

mod custody;
mod decisions;
mod delta;
pub(crate) mod error;
mod intents;
mod model;
mod ranges;
mod search;
mod snapshot;
mod store;

#[cfg(test)]
mod custody_tests;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod rcpt_tests;
#[cfg(test)]
mod score_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

pub use custody::successor;
pub use decisions::{Decided, RECIPIENT_MARK, parse_target, request_target};
pub use delta::{ApplyReport, IndexDelta, OwnerDelta};
pub use error::{IndexError, Problem};
pub use intents::IntentStep;
pub use model::{
    DoneRecord, EntryStatus, IndexEntry, Intent, IntentAction, IntentDone, IntentOutcome,
    IntentRecord, ItemKind, PendingAction, PurgeMarker, SymbolWeight, Symbols,
};
pub use search::{Cursor, IndexQuery, SEARCH_LIMIT_DEFAULT, SEARCH_LIMIT_MAX, SEARCH_SCAN_MAX};

use error::check_entry;
use store::{EntryKey, Item, NodeLog};

/// Schema version of [`IndexDelta`] and of the serialised index (field `v`).
pub const SCHEMA_VERSION: u32 = 1;
/// Longest node id, message id, request id or rule id, in bytes.
pub const ID_BYTES_MAX: usize = 128;
/// Longest sender or recipient address, in bytes.
pub const ADDRESS_BYTES_MAX: usize = 512;
/// Most recipients on one entry.
pub const RECIPIENTS_MAX: usize = 1000;
/// Longest subject, in bytes.
pub const SUBJECT_BYTES_MAX: usize = 2048;
/// Longest quarantine reason, in bytes.
pub const REASON_BYTES_MAX: usize = 1024;
/// Most spam symbols kept on one entry (the heaviest; a message rarely fires more).
pub const ENTRY_SYMBOLS_MAX: usize = 32;
/// Longest spam symbol name on an entry, in bytes.
pub const SYMBOL_NAME_BYTES_MAX: usize = 64;
/// Longest admin name on a request, in bytes.
pub const ADMIN_BYTES_MAX: usize = 256;
/// Most copy holders named on one entry.
pub const COPIES_MAX: usize = 8;
/// Most items (entries, requests, answers, markers) in one delta.
pub const DELTA_ITEMS_MAX: usize = 10_000;
/// Most per-owner records in one delta.
pub const DELTA_RECORDS_MAX: usize = 4096;
/// Most disjoint known ranges per owner; a delta that would split them further is refused.
pub const KNOWN_RANGES_MAX: usize = 64;
/// Largest sequence number (exactly representable as a JSON/IEEE double).
pub const SEQ_MAX: u64 = (1 << 53) - 1;
/// Sequence numbers reserved per millisecond of `now_ms` by [`QuarantineIndex::restore_own`].
pub const SEQS_PER_MS: u64 = 1000;

/// Every node's quarantine entries, release/delete requests and their answers, as far as this
/// replica knows them. See the module documentation for the design.
///
/// Serialises (serde) as an [`IndexDelta`] holding everything: `{"v":1,"owners":[…]}`;
/// deserialising checks it like a delta (without the item count bound).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuarantineIndex {
    logs: BTreeMap<String, NodeLog>,
    /// Every entry, ordered for search (boxed: B-tree nodes stay small and half-empty
    /// nodes waste little).
    entries: BTreeMap<EntryKey, Box<IndexEntry>>,
    intents: BTreeMap<String, Intent>,
    /// Undone intents: owner → entry id → (requested_ms, request id).
    undone: BTreeMap<String, BTreeMap<String, BTreeSet<(u64, String)>>>,
}

/// What [`QuarantineIndex::purge_expired_own`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Tombstones purged.
    pub entries: usize,
    /// Answered requests of this node purged.
    pub intents: usize,
    /// Done records purged.
    pub dones: usize,
    /// The node's floor afterwards.
    pub floor: u64,
}

/// What [`QuarantineIndex::restore_own`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Entries of this node now in the index (tombstones included), all re-issued.
    pub entries: usize,
    /// Requests and done records of this node re-issued.
    pub intents: usize,
    /// The high-water mark: every seq of the node's past life is at most this.
    pub mark: u64,
    /// The node's last seq after re-issuing (its floor is `mark + 1`).
    pub high: u64,
}

impl QuarantineIndex {
    /// An empty index.
    pub fn new() -> Self {
        QuarantineIndex::default()
    }

    /// The entry with message id `id`, whoever owns it: the current one when another node
    /// adopted it (see [`QuarantineIndex::current`]).
    pub fn get(&self, id: &str) -> Option<&IndexEntry> {
        self.current(id)
    }

    /// The entry `id` of `owner`.
    pub fn get_of(&self, owner: &str, id: &str) -> Option<&IndexEntry> {
        let key = self.logs.get(owner)?.entry_key(id)?;
        self.entries.get(&key).map(|e| &**e)
    }

    /// The ids of `owner`'s entries (tombstones included), in no particular order.
    pub fn entry_ids_of(&self, owner: &str) -> Vec<String> {
        self.logs.get(owner).map_or_else(Vec::new, |log| {
            log.entries.keys().map(|id| id.to_string()).collect()
        })
    }

    /// Entries of `owner` with status `quarantined`.
    pub fn live_entries(&self, owner: &str) -> usize {
        self.logs.get(owner).map_or(0, |log| log.live)
    }

    /// All entries of all owners, tombstones included.
    pub fn total_entries(&self) -> usize {
        self.entries.len()
    }

    /// The owners this replica knows of, in id order.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }

    /// The highest seq this replica knows of `owner`.
    pub fn high_water(&self, owner: &str) -> u64 {
        self.logs.get(owner).map_or(0, NodeLog::high)
    }

    /// `owner`'s floor as known here: none of its items below it exist.
    pub fn floor(&self, owner: &str) -> u64 {
        self.logs.get(owner).map_or(0, |log| log.floor)
    }

    /// Adds or rewrites an entry of this node (`me`). The entry gets the next seq; its
    /// `seq` and `pending` are ignored. Refused if `entry.node` is not `me`, if a bound is
    /// broken (see [`IndexEntry::fit_to_bounds`]), if the id was purged, or if it would move
    /// a terminal status. Per-recipient decisions only grow: those of the stored version are
    /// kept ([`IndexEntry::absorb_decisions`]). Writing an entry identical to the stored one
    /// changes nothing.
    pub fn upsert_own(
        &mut self,
        me: &str,
        mut entry: IndexEntry,
    ) -> Result<&IndexEntry, IndexError> {
        error::check_id("me", me)?;
        if entry.node != me {
            let (me, owner, id) = (me.to_string(), entry.node, entry.id);
            return Err(IndexError::NotOwner { me, owner, id });
        }
        check_entry("entry", &entry)?;
        if let Some(log) = self.logs.get(me) {
            if let Some((_, true)) = log.current(ItemKind::Entry, &entry.id) {
                return Err(IndexError::Purged(entry.id));
            }
            if let Some(old) = self.get_of(me, &entry.id) {
                // Decisions only grow: a rewrite keeps those the stored version has.
                entry.absorb_decisions(old);
                if old.status.is_terminal() && old.status != entry.status {
                    let (id, from, to) = (entry.id, old.status, entry.status);
                    return Err(IndexError::StatusRegression { id, from, to });
                }
                let probe = IndexEntry {
                    seq: old.seq,
                    pending: None,
                    ..entry.clone()
                };
                if old.same_content(&probe) {
                    return Ok(self.get_of(me, &probe.id).expect("present"));
                }
            }
        }
        let id = entry.id.clone();
        self.write_own(me, Item::Entry(entry))?;
        Ok(self.get_of(me, &id).expect("just written"))
    }

    /// Changes the status of entry `id` of this node at `now_ms`. Setting the status it
    /// already has changes nothing; a terminal status cannot change.
    pub fn set_status_own(
        &mut self,
        me: &str,
        id: &str,
        status: EntryStatus,
        now_ms: u64,
    ) -> Result<&IndexEntry, IndexError> {
        let Some(old) = self.get_of(me, id) else {
            return Err(
                match self
                    .logs
                    .get(me)
                    .and_then(|l| l.current(ItemKind::Entry, id))
                {
                    Some((_, true)) => IndexError::Purged(id.to_string()),
                    _ => IndexError::NotFound(id.to_string()),
                },
            );
        };
        if old.status == status {
            return Ok(self.get_of(me, id).expect("present"));
        }
        if old.status.is_terminal() {
            let (id, from, to) = (id.to_string(), old.status, status);
            return Err(IndexError::StatusRegression { id, from, to });
        }
        let entry = IndexEntry {
            status,
            status_ms: now_ms,
            pending: None,
            ..old.clone()
        };
        self.write_own(me, Item::Entry(entry))?;
        Ok(self.get_of(me, id).expect("just written"))
    }

    /// Purges from this node's log the tombstones whose status changed before `before_ms`,
    /// its own requests answered before `before_ms`, and its done records written before
    /// `before_ms` whose request is gone from this replica; then raises its floor (see the
    /// module documentation). Quarantined entries are never purged: expire them first.
    pub fn purge_expired_own(
        &mut self,
        me: &str,
        before_ms: u64,
    ) -> Result<PurgeReport, IndexError> {
        error::check_id("me", me)?;
        let Some(log) = self.logs.get(me) else {
            return Ok(PurgeReport::default());
        };
        let mut doomed: Vec<(ItemKind, String)> = Vec::new();
        let mut report = PurgeReport::default();
        for slot in log.by_seq.values().filter(|slot| !slot.marker) {
            let id = &slot.id;
            let expired = match slot.kind {
                ItemKind::Entry => self
                    .get_of(me, id)
                    .is_some_and(|e| e.status.is_terminal() && e.status_ms < before_ms),
                ItemKind::Intent => self
                    .intents
                    .get(&**id)
                    .filter(|intent| intent.requested_by == me)
                    .and_then(|intent| intent.done)
                    .is_some_and(|done| done.done_ms < before_ms),
                ItemKind::Done => {
                    let gone = self.intents.get(&**id).is_none_or(|i| i.owner != me);
                    gone && log.dones[id].done_ms < before_ms
                }
            };
            if expired {
                doomed.push((slot.kind, id.to_string()));
            }
        }
        let first_seq = self.next_seq(me)?;
        if first_seq.saturating_add(doomed.len() as u64) > SEQ_MAX {
            return Err(IndexError::SeqExhausted(me.to_string()));
        }
        for (kind, id) in doomed {
            match kind {
                ItemKind::Entry => report.entries += 1,
                ItemKind::Intent => report.intents += 1,
                ItemKind::Done => report.dones += 1,
            }
            let marker = PurgeMarker { kind, id, seq: 0 };
            self.write_own(me, Item::Purged(marker))?;
        }
        let log = &self.logs[me];
        let oldest_item = log.by_seq.iter().find(|(_, slot)| !slot.marker);
        let floor = oldest_item.map_or(log.high() + 1, |(&seq, _)| seq);
        self.raise_floor(me, floor);
        report.floor = self.floor(me);
        Ok(report)
    }

    /// Restores this node's own log after a start with an empty or old store: merges
    /// `from_replicas` (what the peers know, merged; may be empty if already merged into
    /// this index), then re-issues every surviving item of `me` above a high-water mark and
    /// raises `me`'s floor. The module documentation explains why and what the node must do
    /// next. Refused with nothing changed if `from_replicas` does not merge; if the node's
    /// sequence numbers are exhausted ([`SEQ_MAX`]) the merge stays and nothing is re-issued.
    pub fn restore_own(
        &mut self,
        me: &str,
        from_replicas: &QuarantineIndex,
        now_ms: u64,
    ) -> Result<RestoreReport, IndexError> {
        error::check_id("me", me)?;
        self.merge(from_replicas)?;
        let (mark, high) = self.reissue_own(me, now_ms)?;
        let log = &self.logs[me];
        Ok(RestoreReport {
            entries: log.entries.len(),
            intents: log.intents.len() + log.dones.len(),
            mark,
            high,
        })
    }
}
