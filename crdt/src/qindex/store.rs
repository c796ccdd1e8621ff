//! How the index holds its items, and the primitives that change them while keeping the
//! derived views (the ordered entry map, live counts, the intent view, `pending`) in step.
//!
//! The primitives check nothing: callers (the owner operations, `apply`) decide first.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::QuarantineIndex;
use super::decisions::parse_target;
use super::error::IndexError;
use super::model::{
    DoneRecord, EntryStatus, IndexEntry, Intent, IntentDone, IntentRecord, ItemKind, PendingAction,
    PurgeMarker,
};
use super::ranges::Ranges;
use super::{SEQ_MAX, SEQS_PER_MS};

/// Key of the ordered entry map: `(received_ms, id, owner)`. Searching walks it backwards,
/// newest first; the owner only separates two owners claiming one id.
pub(super) type EntryKey = (u64, Arc<str>, Arc<str>);

/// Where a log's entry sits in the ordered map, and its seq.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct EntrySlot {
    /// The entry's receive time, in ms since the epoch (its key's first part).
    pub received_ms: u64,
    /// The owner's sequence number of the entry.
    pub seq: u64,
}

/// What a log holds under one seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SeqSlot {
    /// Whether an entry, intent or done record is held (or purged) there.
    pub kind: ItemKind,
    /// The item's id: the message id of an entry, the request id of the others.
    pub id: Arc<str>,
    /// A purge marker rather than the item itself.
    pub marker: bool,
}

/// One owner's log, as far as this replica knows it. Entries themselves live in
/// [`QuarantineIndex::entries`]; the log maps their ids there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NodeLog {
    /// The owner's node id.
    pub node: Arc<str>,
    /// Every item of this owner with a lower seq is gone.
    pub floor: u64,
    /// The seqs this replica holds completely.
    pub known: Ranges,
    /// The owner's entries, id → where each sits in the ordered map.
    pub entries: HashMap<Arc<str>, EntrySlot>,
    /// The owner's requests (intents), by request id.
    pub intents: HashMap<Arc<str>, IntentRecord>,
    /// The owner's answers to requests (done records), by request id.
    pub dones: HashMap<Arc<str>, DoneRecord>,
    /// Purge markers by [`ItemKind::index`], id → seq.
    pub purged: [HashMap<Arc<str>, u64>; 3],
    /// Every item and purge marker held, by seq.
    pub by_seq: BTreeMap<u64, SeqSlot>,
    /// Entries with status `quarantined`.
    pub live: usize,
}

impl NodeLog {
    fn new(node: &str) -> NodeLog {
        NodeLog {
            node: Arc::from(node),
            floor: 0,
            known: Ranges::default(),
            entries: HashMap::new(),
            intents: HashMap::new(),
            dones: HashMap::new(),
            purged: Default::default(),
            by_seq: BTreeMap::new(),
            live: 0,
        }
    }

    /// The highest seq this replica knows of the owner (items, ranges or floor).
    pub fn high(&self) -> u64 {
        self.known.max_end().max(self.floor.saturating_sub(1))
    }

    /// The seq of the current version of an item, and whether it is a purge marker.
    pub fn current(&self, kind: ItemKind, id: &str) -> Option<(u64, bool)> {
        let live = match kind {
            ItemKind::Entry => self.entries.get(id).map(|slot| slot.seq),
            ItemKind::Intent => self.intents.get(id).map(|record| record.seq),
            ItemKind::Done => self.dones.get(id).map(|record| record.seq),
        };
        let marker = || self.purged[kind.index()].get(id).map(|&seq| (seq, true));
        live.map(|seq| (seq, false)).or_else(marker)
    }

    /// The key of an entry of this log in the ordered map.
    pub fn entry_key(&self, id: &str) -> Option<EntryKey> {
        let (id, slot) = self.entries.get_key_value(id)?;
        Some((slot.received_ms, id.clone(), self.node.clone()))
    }
}

/// One item of a log, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Item {
    Entry(IndexEntry),
    Intent(IntentRecord),
    Done(DoneRecord),
    Purged(PurgeMarker),
}

impl Item {
    pub fn kind(&self) -> ItemKind {
        match self {
            Item::Entry(_) => ItemKind::Entry,
            Item::Intent(_) => ItemKind::Intent,
            Item::Done(_) => ItemKind::Done,
            Item::Purged(marker) => marker.kind,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Item::Entry(entry) => &entry.id,
            Item::Intent(record) => &record.request_id,
            Item::Done(record) => &record.request_id,
            Item::Purged(marker) => &marker.id,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            Item::Entry(entry) => entry.seq,
            Item::Intent(record) => record.seq,
            Item::Done(record) => record.seq,
            Item::Purged(marker) => marker.seq,
        }
    }

    pub fn set_seq(&mut self, seq: u64) {
        match self {
            Item::Entry(entry) => entry.seq = seq,
            Item::Intent(record) => record.seq = seq,
            Item::Done(record) => record.seq = seq,
            Item::Purged(marker) => marker.seq = seq,
        }
    }
}

impl QuarantineIndex {
    /// The log of `owner`, created empty if absent.
    pub(super) fn log_mut(&mut self, owner: &str) -> &mut NodeLog {
        if !self.logs.contains_key(owner) {
            self.logs.insert(owner.to_string(), NodeLog::new(owner));
        }
        self.logs.get_mut(owner).expect("inserted above")
    }

    /// The next seq of `owner`'s own log.
    pub(super) fn next_seq(&self, owner: &str) -> Result<u64, IndexError> {
        let high = self.logs.get(owner).map_or(0, NodeLog::high);
        match high.checked_add(1) {
            Some(seq) if seq <= SEQ_MAX => Ok(seq),
            _ => Err(IndexError::SeqExhausted(owner.to_string())),
        }
    }

    /// Writes a new item of the owner's own log: gives it the next seq, stores it and marks
    /// the seq known.
    pub(super) fn write_own(&mut self, me: &str, mut item: Item) -> Result<u64, IndexError> {
        let seq = self.next_seq(me)?;
        item.set_seq(seq);
        self.put(me, item);
        self.log_mut(me).known.insert(seq, seq);
        Ok(seq)
    }

    /// Stores `item` in `owner`'s log in place of whatever version (or marker) it held under
    /// the same key.
    pub(super) fn put(&mut self, owner: &str, item: Item) {
        let kind = item.kind();
        let id: Arc<str> = Arc::from(item.id());
        self.take(owner, kind, &id);
        let seq = item.seq();
        // A seq names one item; callers never reuse one, but keep the maps consistent if a
        // bug did: the item that held the seq goes.
        let holder = self
            .logs
            .get(owner)
            .and_then(|log| log.by_seq.get(&seq))
            .cloned();
        if let Some(holder) = holder {
            self.remove(owner, holder.kind, &holder.id);
        }
        let pending = match &item {
            Item::Entry(entry) => self.pending_of(owner, &entry.id),
            _ => None,
        };
        let log = self.log_mut(owner);
        let marker = matches!(item, Item::Purged(_));
        let slot = SeqSlot {
            kind,
            id: id.clone(),
            marker,
        };
        log.by_seq.insert(seq, slot);
        match item {
            Item::Entry(mut entry) => {
                entry.pending = pending;
                let received_ms = entry.received_ms;
                log.entries
                    .insert(id.clone(), EntrySlot { received_ms, seq });
                if entry.status == EntryStatus::Quarantined {
                    log.live += 1;
                }
                let key = (received_ms, id.clone(), log.node.clone());
                self.entries.insert(key, Box::new(entry));
            }
            Item::Intent(record) => {
                log.intents.insert(id.clone(), record);
            }
            Item::Done(record) => {
                log.dones.insert(id.clone(), record);
            }
            Item::Purged(marker) => {
                log.purged[kind.index()].insert(id.clone(), marker.seq);
            }
        }
        if kind != ItemKind::Entry {
            self.refresh_intent(&id);
        }
    }

    /// Removes the item or marker held under `(kind, id)` in `owner`'s log. Returns its seq
    /// and whether it was a marker. Does not refresh the intent view (callers do).
    fn take(&mut self, owner: &str, kind: ItemKind, id: &str) -> Option<(u64, bool)> {
        let log = self.logs.get_mut(owner)?;
        if let Some(seq) = log.purged[kind.index()].remove(id) {
            log.by_seq.remove(&seq);
            return Some((seq, true));
        }
        let seq = match kind {
            ItemKind::Entry => {
                let (id, slot) = log.entries.remove_entry(id)?;
                let key = (slot.received_ms, id, log.node.clone());
                if let Some(entry) = self.entries.remove(&key)
                    && entry.status == EntryStatus::Quarantined
                {
                    log.live -= 1;
                }
                slot.seq
            }
            ItemKind::Intent => log.intents.remove(id)?.seq,
            ItemKind::Done => log.dones.remove(id)?.seq,
        };
        log.by_seq.remove(&seq);
        Some((seq, false))
    }

    /// Removes an item or marker and refreshes the views.
    pub(super) fn remove(&mut self, owner: &str, kind: ItemKind, id: &str) {
        if self.take(owner, kind, id).is_some() && kind != ItemKind::Entry {
            self.refresh_intent(id);
        }
    }

    /// Raises `owner`'s floor: drops every item and marker below it and marks the seqs below
    /// it known. Returns how many items (not markers) were dropped.
    pub(super) fn raise_floor(&mut self, owner: &str, floor: u64) -> usize {
        let log = self.log_mut(owner);
        if floor <= log.floor {
            return 0;
        }
        log.floor = floor;
        log.known.insert(1, floor - 1);
        let below: Vec<SeqSlot> = log.by_seq.range(..floor).map(|(_, s)| s.clone()).collect();
        let mut dropped = 0;
        for slot in below {
            dropped += usize::from(!slot.marker);
            self.remove(owner, slot.kind, &slot.id);
        }
        dropped
    }

    /// Re-issues every item of `me`'s own log with fresh seqs above everything known of `me`
    /// and `now_ms × SEQS_PER_MS`, in their old order, and raises the floor to the first of
    /// them. Markers are dropped: the floor covers everything they stood for.
    pub(super) fn reissue_own(&mut self, me: &str, now_ms: u64) -> Result<(u64, u64), IndexError> {
        let log = self.log_mut(me);
        let mark = log.high().max(now_ms.saturating_mul(SEQS_PER_MS));
        let log = &self.logs[me];
        let items: Vec<Item> = log
            .by_seq
            .values()
            .filter(|slot| !slot.marker)
            .map(|slot| self.item(me, slot.kind, &slot.id))
            .collect::<Option<_>>()
            .expect("every seq slot points at an item");
        let last = mark.saturating_add(items.len() as u64);
        if last > SEQ_MAX {
            return Err(IndexError::SeqExhausted(me.to_string()));
        }
        let log = self.log_mut(me);
        log.known.insert(1, last);
        let mut seq = mark;
        for mut item in items {
            seq += 1;
            item.set_seq(seq);
            self.put(me, item);
        }
        self.raise_floor(me, mark + 1);
        Ok((mark, last))
    }

    /// A copy of the current version of an item (not a marker), `pending` cleared.
    pub(super) fn item(&self, owner: &str, kind: ItemKind, id: &str) -> Option<Item> {
        let log = self.logs.get(owner)?;
        match kind {
            ItemKind::Entry => {
                let entry = self.entries.get(&log.entry_key(id)?)?;
                Some(Item::Entry(IndexEntry {
                    pending: None,
                    ..IndexEntry::clone(entry)
                }))
            }
            ItemKind::Intent => log.intents.get(id).cloned().map(Item::Intent),
            ItemKind::Done => log.dones.get(id).cloned().map(Item::Done),
        }
    }

    /// The current version of an item or marker, as an [`Item`].
    pub(super) fn item_or_marker(&self, owner: &str, slot: &SeqSlot, seq: u64) -> Item {
        if slot.marker {
            return Item::Purged(PurgeMarker {
                kind: slot.kind,
                id: slot.id.to_string(),
                seq,
            });
        }
        self.item(owner, slot.kind, &slot.id)
            .expect("every seq slot points at an item")
    }

    /// The merged view of request `request_id`: the record of the smallest requester node id
    /// holding one (ids are unique, this only makes a collision deterministic), answered by
    /// the done record in the log of the owner it names.
    fn compute_intent(&self, request_id: &str) -> Option<Intent> {
        let record = self
            .logs
            .values()
            .find_map(|log| log.intents.get(request_id))?;
        let done = self
            .logs
            .get(&record.owner)
            .and_then(|log| log.dones.get(request_id))
            .map(|done| IntentDone {
                outcome: done.outcome,
                done_ms: done.done_ms,
            });
        let (entry_id, recipient) = parse_target(&record.entry_id);
        Some(Intent {
            request_id: record.request_id.clone(),
            entry_id: entry_id.to_string(),
            recipient,
            owner: record.owner.clone(),
            action: record.action,
            requested_by: record.requested_by.clone(),
            admin: record.admin.clone(),
            requested_ms: record.requested_ms,
            done,
        })
    }

    /// Recomputes the intent view of one request, the undone set and `pending` of the
    /// entries concerned.
    fn refresh_intent(&mut self, request_id: &str) {
        let fresh = self.compute_intent(request_id);
        if self.intents.get(request_id) == fresh.as_ref() {
            return;
        }
        let old = match fresh {
            Some(intent) => self.intents.insert(request_id.to_string(), intent),
            None => self.intents.remove(request_id),
        };
        if let Some(old) = &old
            && old.done.is_none()
            && let Some(by_entry) = self.undone.get_mut(&old.owner)
        {
            if let Some(set) = by_entry.get_mut(&old.entry_id) {
                set.remove(&(old.requested_ms, old.request_id.clone()));
                if set.is_empty() {
                    by_entry.remove(&old.entry_id);
                }
            }
            if by_entry.is_empty() {
                self.undone.remove(&old.owner);
            }
        }
        let new = self.intents.get(request_id).cloned();
        if let Some(new) = &new
            && new.done.is_none()
        {
            self.undone
                .entry(new.owner.clone())
                .or_default()
                .entry(new.entry_id.clone())
                .or_default()
                .insert((new.requested_ms, new.request_id.clone()));
        }
        for intent in old.iter().chain(new.iter()) {
            self.refresh_pending(&intent.owner, &intent.entry_id);
        }
    }

    /// The oldest undone request for an entry.
    fn pending_of(&self, owner: &str, entry_id: &str) -> Option<Box<PendingAction>> {
        let (_, request_id) = self.undone.get(owner)?.get(entry_id)?.first()?;
        let intent = self.intents.get(request_id)?;
        Some(Box::new(intent.pending_action()))
    }

    fn refresh_pending(&mut self, owner: &str, entry_id: &str) {
        let pending = self.pending_of(owner, entry_id);
        let Some(key) = self.logs.get(owner).and_then(|log| log.entry_key(entry_id)) else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(&key) {
            entry.pending = pending;
        }
    }
}
