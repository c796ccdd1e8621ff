//! Anti-entropy: version vectors, deltas, applying them, merging replicas, and the
//! serialised form of the whole index (a delta holding everything).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::error::{self, IndexError, Problem};
use super::model::{DoneRecord, IndexEntry, IntentRecord, ItemKind, PurgeMarker};
use super::ranges::Ranges;
use super::store::{Item, NodeLog};
use super::{
    DELTA_ITEMS_MAX, DELTA_RECORDS_MAX, KNOWN_RANGES_MAX, QuarantineIndex, SCHEMA_VERSION,
};

/// Items of one owner's log, complete for the seqs in `(from, to]`.
///
/// Every item of the sender with a seq in that range is present (each list sorted by seq);
/// `from == to` claims nothing. `floor` is the owner's floor as the sender knows it, or 0
/// when the sender does not vouch for it in this delta.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerDelta {
    /// The owner node.
    pub node: String,
    /// Start of the claimed range (exclusive).
    pub from: u64,
    /// End of the claimed range (inclusive).
    pub to: u64,
    /// The owner's floor (0: not stated).
    #[serde(default)]
    pub floor: u64,
    /// Entries of the owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<IndexEntry>,
    /// Requests recorded by the owner.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub intents: Vec<IntentRecord>,
    /// Answers of the owner to requests for its entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dones: Vec<DoneRecord>,
    /// Items the owner purged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub purged: Vec<PurgeMarker>,
}

impl OwnerDelta {
    fn new(node: &str, from: u64, to: u64, floor: u64) -> OwnerDelta {
        OwnerDelta {
            node: node.to_string(),
            from,
            to,
            floor,
            ..OwnerDelta::default()
        }
    }

    /// Number of items (entries, requests, answers, markers).
    pub fn item_count(&self) -> usize {
        self.entries.len() + self.intents.len() + self.dones.len() + self.purged.len()
    }

    fn push(&mut self, item: Item) {
        match item {
            Item::Entry(entry) => self.entries.push(entry),
            Item::Intent(record) => self.intents.push(record),
            Item::Done(record) => self.dones.push(record),
            Item::Purged(marker) => self.purged.push(marker),
        }
    }

    fn items(self) -> impl Iterator<Item = Item> {
        let entries = self.entries.into_iter().map(Item::Entry);
        let intents = self.intents.into_iter().map(Item::Intent);
        let dones = self.dones.into_iter().map(Item::Done);
        entries
            .chain(intents)
            .chain(dones)
            .chain(self.purged.into_iter().map(Item::Purged))
    }
}

/// A batch of changes for anti-entropy, from [`QuarantineIndex::delta_since`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDelta {
    /// Schema version ([`SCHEMA_VERSION`]).
    pub v: u32,
    /// Per-owner records; one owner may have several (one per range).
    pub owners: Vec<OwnerDelta>,
}

impl Default for IndexDelta {
    fn default() -> Self {
        IndexDelta {
            v: SCHEMA_VERSION,
            owners: Vec::new(),
        }
    }
}

impl IndexDelta {
    /// Number of items in all records.
    pub fn item_count(&self) -> usize {
        self.owners.iter().map(OwnerDelta::item_count).sum()
    }
}

/// What applying a delta did, counted in items.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Items (or markers) this replica did not hold at all.
    pub added: usize,
    /// Items that replaced an older version (a marker replacing an item counts here).
    pub updated: usize,
    /// Items dropped because they fell below a raised floor.
    pub dropped: usize,
    /// Items not newer than what this replica holds (duplicates, stale versions).
    pub ignored: usize,
}

impl ApplyReport {
    /// Whether the delta changed any item.
    pub fn changed(&self) -> bool {
        self.added + self.updated + self.dropped > 0
    }
}

impl QuarantineIndex {
    /// Per owner, the highest seq `n` such that this replica holds everything of the owner
    /// up to `n`. Send it to a peer, which answers with [`delta_since`](Self::delta_since).
    pub fn version_vector(&self) -> BTreeMap<String, u64> {
        let contiguous =
            |(node, log): (&String, &NodeLog)| (node.clone(), log.known.contiguous_end());
        self.logs.iter().map(contiguous).collect()
    }

    /// What a peer whose version vector is `theirs` lacks: per owner, the items above
    /// `theirs[owner]` in each range this replica holds completely, at most `max_entries`
    /// (and at most [`DELTA_ITEMS_MAX`]) items in all. When the bound cuts a range, the
    /// record claims only up to the first item left out. The owner's floor is sent only when
    /// the delta brings the peer everything this replica holds of that owner.
    pub fn delta_since(&self, theirs: &BTreeMap<String, u64>, max_entries: usize) -> IndexDelta {
        let mut budget = max_entries.min(DELTA_ITEMS_MAX);
        let mut delta = IndexDelta::default();
        for (node, log) in &self.logs {
            let theirs = theirs.get(node).copied().unwrap_or(0);
            let mut records = Vec::new();
            let mut cut = false;
            for (start, end) in log.known.iter().filter(|&(_, end)| end > theirs) {
                let from = theirs.max(start - 1);
                let mut record = OwnerDelta::new(node, from, end, 0);
                for (&seq, slot) in log.by_seq.range(from + 1..=end) {
                    if budget == 0 {
                        record.to = seq - 1;
                        cut = true;
                        break;
                    }
                    budget -= 1;
                    record.push(self.item_or_marker(node, slot, seq));
                }
                if record.to > record.from {
                    records.push(record);
                }
                if cut {
                    break;
                }
            }
            // The floor goes only with a record after which the peer holds everything this
            // replica holds of the owner: then it already has the versions that replace
            // what the floor drops.
            let mut above = log.known.iter().filter(|&(_, end)| end > theirs);
            let gapless =
                above.next().is_none_or(|(start, _)| start <= theirs + 1) && above.next().is_none();
            if !cut && gapless {
                match records.last_mut() {
                    Some(record) => record.floor = log.floor,
                    None if log.floor > 0 => records.push(OwnerDelta::new(node, 0, 0, log.floor)),
                    None => {}
                }
            }
            delta.owners.extend(records);
        }
        delta
    }

    /// Applies a delta from any replica (see the module documentation). Refused as a whole,
    /// with nothing changed, if it is malformed: wrong schema version, more than
    /// [`DELTA_ITEMS_MAX`] items or [`DELTA_RECORDS_MAX`] records, an item in the log of a
    /// node other than its writer, seqs out of order or out of the claimed range, an item
    /// below the stated floor, a broken size bound, two versions of one item, or an item that
    /// contradicts what this replica holds under the same seq.
    pub fn apply(&mut self, delta: IndexDelta) -> Result<ApplyReport, IndexError> {
        self.apply_checked(delta, true)
    }

    /// Merges everything `other` holds into this index, as [`apply`](Self::apply) would
    /// (without the item count bound).
    pub fn merge(&mut self, other: &QuarantineIndex) -> Result<ApplyReport, IndexError> {
        self.apply_checked(other.snapshot(), false)
    }

    /// Applies a delta after every check; `bounded` adds the item and record count bounds
    /// (not for whole replicas).
    pub(super) fn apply_checked(
        &mut self,
        delta: IndexDelta,
        bounded: bool,
    ) -> Result<ApplyReport, IndexError> {
        self.check_delta(&delta, bounded)?;
        let mut report = ApplyReport::default();
        for record in delta.owners {
            let node = record.node.clone();
            let (from, to, floor) = (record.from, record.to, record.floor);
            report.dropped += self.raise_floor(&node, floor);
            for item in record.items() {
                let log = self.log_mut(&node);
                if item.seq() < log.floor {
                    report.ignored += 1;
                    continue;
                }
                match log.current(item.kind(), item.id()) {
                    Some((seq, false)) if seq == item.seq() => match self.joined(&node, &item) {
                        Some(joined) => {
                            report.updated += 1;
                            self.put(&node, Item::Entry(joined));
                        }
                        None => report.ignored += 1,
                    },
                    Some((seq, _)) if seq >= item.seq() => report.ignored += 1,
                    Some(_) => {
                        report.updated += 1;
                        self.put(&node, item);
                    }
                    None => {
                        report.added += 1;
                        self.put(&node, item);
                    }
                }
            }
            self.log_mut(&node).known.insert(from + 1, to);
        }
        Ok(report)
    }

    /// The join of the entry `owner` holds under `item`'s seq with `item`, when `item` is
    /// an entry that adds what an older relay dropped ([`IndexEntry::joined_with`]).
    fn joined(&self, owner: &str, item: &Item) -> Option<IndexEntry> {
        let Item::Entry(got) = item else {
            return None;
        };
        self.get_of(owner, &got.id)?.joined_with(got)
    }

    /// Every check of [`apply`](Self::apply), without changing anything.
    fn check_delta(&self, delta: &IndexDelta, bounded: bool) -> Result<(), IndexError> {
        if delta.v != SCHEMA_VERSION {
            return Err(IndexError::UnsupportedVersion {
                found: delta.v,
                supported: SCHEMA_VERSION,
            });
        }
        if bounded {
            for (count, max) in [
                (delta.owners.len(), DELTA_RECORDS_MAX),
                (delta.item_count(), DELTA_ITEMS_MAX),
            ] {
                if count > max {
                    return Err(IndexError::at("owners", Problem::TooMany { max }));
                }
            }
        }
        let mut seen: HashMap<&str, OwnerSeen> = HashMap::new();
        for (n, record) in delta.owners.iter().enumerate() {
            let at = format!("owners[{n}]");
            check_record(&at, record)?;
            let log = self.logs.get(&record.node);
            let seen = seen.entry(&record.node).or_insert_with(|| OwnerSeen {
                ranges: log.map(|log| log.known.clone()).unwrap_or_default(),
                ..OwnerSeen::default()
            });
            let floor = record.floor.max(log.map_or(0, |log| log.floor));
            seen.ranges.insert(1, floor.saturating_sub(1));
            seen.ranges.insert(record.from + 1, record.to);
            if seen.ranges.len() > KNOWN_RANGES_MAX {
                let problem = Problem::TooFragmented {
                    max: KNOWN_RANGES_MAX,
                };
                return Err(IndexError::at(at, problem));
            }
            for (list, n, item) in record_items(record) {
                let path = || format!("{at}.{list}[{n}]");
                let (kind, id, seq) = (item.kind(), item.id(), item.seq());
                if !seen.seqs.insert(seq) {
                    return Err(IndexError::at(path(), Problem::DuplicateSeq(seq)));
                }
                if !seen.keys.insert((kind, id)) {
                    let problem = Problem::DuplicateKey(id.to_string());
                    return Err(IndexError::at(path(), problem));
                }
                if let Some(log) = log
                    && seq >= log.floor
                    && !self.agrees(log, &item)
                {
                    return Err(IndexError::at(path(), Problem::SeqConflict(seq)));
                }
            }
        }
        Ok(())
    }

    /// Whether an incoming item agrees with what `log` holds under its seq: nothing, or the
    /// same version of the same item.
    fn agrees(&self, log: &NodeLog, item: &ItemRef<'_>) -> bool {
        let seq = item.seq();
        let Some(slot) = log.by_seq.get(&seq) else {
            return true;
        };
        if slot.kind != item.kind()
            || *slot.id != *item.id()
            || slot.marker != matches!(item, ItemRef::Purged(_))
        {
            return false;
        }
        match (self.item_or_marker(&log.node, slot, seq), item) {
            (Item::Entry(held), ItemRef::Entry(got)) => held.agrees_with(got),
            (held, _) => held == item.to_item(),
        }
    }
}

/// What one delta holds of one owner, for the duplicate and fragmentation checks.
#[derive(Default)]
struct OwnerSeen<'d> {
    ranges: Ranges,
    seqs: HashSet<u64>,
    keys: HashSet<(ItemKind, &'d str)>,
}

/// An item of a delta, borrowed.
enum ItemRef<'d> {
    Entry(&'d IndexEntry),
    Intent(&'d IntentRecord),
    Done(&'d DoneRecord),
    Purged(&'d PurgeMarker),
}

impl<'d> ItemRef<'d> {
    fn kind(&self) -> ItemKind {
        match self {
            ItemRef::Entry(_) => ItemKind::Entry,
            ItemRef::Intent(_) => ItemKind::Intent,
            ItemRef::Done(_) => ItemKind::Done,
            ItemRef::Purged(marker) => marker.kind,
        }
    }

    fn id(&self) -> &'d str {
        match *self {
            ItemRef::Entry(entry) => &entry.id,
            ItemRef::Intent(record) => &record.request_id,
            ItemRef::Done(record) => &record.request_id,
            ItemRef::Purged(marker) => &marker.id,
        }
    }

    fn seq(&self) -> u64 {
        match self {
            ItemRef::Entry(entry) => entry.seq,
            ItemRef::Intent(record) => record.seq,
            ItemRef::Done(record) => record.seq,
            ItemRef::Purged(marker) => marker.seq,
        }
    }

    /// An owned copy, `pending` cleared.
    fn to_item(&self) -> Item {
        match self {
            ItemRef::Entry(entry) => Item::Entry(IndexEntry {
                pending: None,
                ..(*entry).clone()
            }),
            ItemRef::Intent(record) => Item::Intent((*record).clone()),
            ItemRef::Done(record) => Item::Done((*record).clone()),
            ItemRef::Purged(marker) => Item::Purged((*marker).clone()),
        }
    }
}

/// Every item of a record with the name of its list and its position there.
fn record_items(record: &OwnerDelta) -> impl Iterator<Item = (&'static str, usize, ItemRef<'_>)> {
    let entries = record.entries.iter().map(ItemRef::Entry).enumerate();
    let intents = record.intents.iter().map(ItemRef::Intent).enumerate();
    let dones = record.dones.iter().map(ItemRef::Done).enumerate();
    let purged = record.purged.iter().map(ItemRef::Purged).enumerate();
    let tag = |list: &'static str| move |(n, item)| (list, n, item);
    entries
        .map(tag("entries"))
        .chain(intents.map(tag("intents")))
        .chain(dones.map(tag("dones")))
        .chain(purged.map(tag("purged")))
}

/// The checks of one record that need nothing but the record.
fn check_record(at: &str, record: &OwnerDelta) -> Result<(), IndexError> {
    error::check_id(&format!("{at}.node"), &record.node)?;
    let (from, to, floor) = (record.from, record.to, record.floor);
    if from > to {
        return Err(IndexError::at(at, Problem::BadRange { from, to }));
    }
    for (field, seq) in [("to", to), ("floor", floor.saturating_sub(1))] {
        if let Some(problem) = error::seq_problem(seq) {
            return Err(IndexError::at(format!("{at}.{field}"), problem));
        }
    }
    let node = &record.node;
    for (n, entry) in record.entries.iter().enumerate() {
        let path = format!("{at}.entries[{n}]");
        error::check_entry(&path, entry)?;
        check_writer(&format!("{path}.node"), node, &entry.node)?;
    }
    for (n, intent) in record.intents.iter().enumerate() {
        let path = format!("{at}.intents[{n}]");
        error::check_intent(&path, intent)?;
        check_writer(&format!("{path}.requested_by"), node, &intent.requested_by)?;
    }
    for (n, done) in record.dones.iter().enumerate() {
        error::check_done(&format!("{at}.dones[{n}]"), done)?;
    }
    for (n, marker) in record.purged.iter().enumerate() {
        let path = format!("{at}.purged[{n}]");
        error::check_id(&format!("{path}.id"), &marker.id)?;
    }
    let lists: [(&str, Vec<u64>); 4] = [
        ("entries", record.entries.iter().map(|e| e.seq).collect()),
        ("intents", record.intents.iter().map(|r| r.seq).collect()),
        ("dones", record.dones.iter().map(|r| r.seq).collect()),
        ("purged", record.purged.iter().map(|m| m.seq).collect()),
    ];
    for (name, seqs) in lists {
        let mut prev = None;
        for (n, &seq) in seqs.iter().enumerate() {
            let path = || format!("{at}.{name}[{n}].seq");
            if let Some(prev) = prev
                && seq <= prev
            {
                return Err(IndexError::at(path(), Problem::NotIncreasing { prev, seq }));
            }
            if seq <= from || seq > to {
                return Err(IndexError::at(
                    path(),
                    Problem::OutOfRange { seq, from, to },
                ));
            }
            if seq < floor {
                return Err(IndexError::at(path(), Problem::BelowFloor { seq, floor }));
            }
            prev = Some(seq);
        }
    }
    Ok(())
}

fn check_writer(at: &str, log_owner: &str, writer: &str) -> Result<(), IndexError> {
    if log_owner != writer {
        let problem = Problem::WrongOwner {
            expected: log_owner.to_string(),
            found: writer.to_string(),
        };
        return Err(IndexError::at(at, problem));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::SEQ_MAX;
    use super::*;

    #[test]
    fn seq_bound_is_checked_on_ranges() {
        let record = OwnerDelta::new("n1", 0, SEQ_MAX + 1, 0);
        let err = check_record("owners[0]", &record).expect_err("too large");
        assert!(matches!(
            err,
            IndexError::Invalid {
                problem: Problem::SeqTooLarge { .. },
                ..
            }
        ));
    }
}
