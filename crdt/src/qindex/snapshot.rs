//! The whole index as one delta: what [`QuarantineIndex::merge`] applies and what the
//! index serialises as.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::delta::{IndexDelta, OwnerDelta};
use super::model::{DoneRecord, IndexEntry, IntentRecord, ItemKind, PurgeMarker};
use super::{QuarantineIndex, SCHEMA_VERSION};

impl QuarantineIndex {
    /// Everything this replica holds, as one delta: per owner one record per known range,
    /// with the floor.
    pub(super) fn snapshot(&self) -> IndexDelta {
        let owners = self.snapshot_ref().owners.into_iter().map(|r| OwnerDelta {
            node: r.node.to_string(),
            from: r.from,
            to: r.to,
            floor: r.floor,
            entries: r
                .entries
                .into_iter()
                .map(|e| IndexEntry {
                    pending: None,
                    ..e.clone()
                })
                .collect(),
            intents: r.intents.into_iter().cloned().collect(),
            dones: r.dones.into_iter().cloned().collect(),
            purged: r.purged,
        });
        IndexDelta {
            v: SCHEMA_VERSION,
            owners: owners.collect(),
        }
    }

    /// [`snapshot`](Self::snapshot), borrowing the items.
    fn snapshot_ref(&self) -> SnapshotRef<'_> {
        let mut owners = Vec::new();
        for (node, log) in &self.logs {
            let first = owners.len();
            for (start, end) in log.known.iter() {
                let mut record = RecordRef::new(node, start - 1, end, log.floor);
                for (&seq, slot) in log.by_seq.range(start..=end) {
                    let id = &*slot.id;
                    match (slot.kind, slot.marker) {
                        (kind, true) => record.purged.push(PurgeMarker {
                            kind,
                            id: id.to_string(),
                            seq,
                        }),
                        (ItemKind::Entry, false) => {
                            let key = log.entry_key(id).expect("slot points at an entry");
                            record.entries.push(&self.entries[&key]);
                        }
                        (ItemKind::Intent, false) => record.intents.push(&log.intents[id]),
                        (ItemKind::Done, false) => record.dones.push(&log.dones[id]),
                    }
                }
                owners.push(record);
            }
            if owners.len() == first {
                owners.push(RecordRef::new(node, 0, 0, log.floor));
            }
        }
        SnapshotRef {
            v: SCHEMA_VERSION,
            owners,
        }
    }
}

/// The serialised form of [`OwnerDelta`], borrowing the items.
#[derive(Serialize)]
struct RecordRef<'a> {
    node: &'a str,
    from: u64,
    to: u64,
    floor: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    entries: Vec<&'a IndexEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    intents: Vec<&'a IntentRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    dones: Vec<&'a DoneRecord>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    purged: Vec<PurgeMarker>,
}

impl<'a> RecordRef<'a> {
    fn new(node: &'a str, from: u64, to: u64, floor: u64) -> RecordRef<'a> {
        RecordRef {
            node,
            from,
            to,
            floor,
            entries: Vec::new(),
            intents: Vec::new(),
            dones: Vec::new(),
            purged: Vec::new(),
        }
    }
}

/// The serialised form of [`IndexDelta`], borrowing the items.
#[derive(Serialize)]
struct SnapshotRef<'a> {
    v: u32,
    owners: Vec<RecordRef<'a>>,
}

impl Serialize for QuarantineIndex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.snapshot_ref().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for QuarantineIndex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let delta = IndexDelta::deserialize(deserializer)?;
        let mut index = QuarantineIndex::new();
        index
            .apply_checked(delta, false)
            .map_err(serde::de::Error::custom)?;
        Ok(index)
    }
}
