//! How the learned Bayes corpus ([`mxmesh_crdt::bayes`]) lies in [`Cf::Bayes`]: one key per
//! record, `r` + owner + `0x00` + the 32 digest bytes → the record as JSON, and one key per
//! owner floor, `f` + owner → the floor as 8 big-endian bytes. An operation's
//! [`Changes`] become one [`Batch`] (written atomically); [`load`] reads everything back
//! for [`BayesCorpus::restore`](mxmesh_crdt::bayes::BayesCorpus::restore).

use mxmesh_crdt::bayes::{Changes, DIGEST_BYTES, Digest, Record};

use super::{Batch, Cf, Store, StoreError};

/// First byte of a record key.
const RECORD_PREFIX: u8 = b'r';
/// First byte of a floor key.
const FLOOR_PREFIX: u8 = b'f';

/// The key of `owner`'s record of `digest`.
pub fn record_key(owner: &str, digest: &Digest) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + owner.len() + DIGEST_BYTES);
    key.push(RECORD_PREFIX);
    key.extend_from_slice(owner.as_bytes());
    key.push(0);
    key.extend_from_slice(&digest.0);
    key
}

/// The key of `owner`'s floor.
pub fn floor_key(owner: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + owner.len());
    key.push(FLOOR_PREFIX);
    key.extend_from_slice(owner.as_bytes());
    key
}

/// The writes of `changes`, in the order [`Changes`] prescribes, as one batch.
pub fn batch(changes: &Changes) -> Result<Batch, StoreError> {
    let mut batch = Batch::new();
    for key in &changes.delete {
        batch.delete(Cf::Bayes, record_key(&key.owner, &key.digest));
    }
    for record in &changes.put {
        let value = serde_json::to_vec(record)
            .map_err(|e| StoreError::Write(format!("bayes record: {e}")))?;
        batch.put(Cf::Bayes, record_key(&record.owner, &record.digest), value);
    }
    for (owner, floor) in &changes.floors {
        batch.put(Cf::Bayes, floor_key(owner), floor.to_be_bytes());
    }
    Ok(batch)
}

/// What [`load`] reads back.
#[derive(Debug, Default)]
pub struct Stored {
    /// The owner floors.
    pub floors: Vec<(String, u64)>,
    /// The records, in key order.
    pub records: Vec<Record>,
}

/// Everything stored. A value that does not decode is an error naming its key (the store
/// is this node's own; nothing else writes there).
pub fn load(store: &Store) -> Result<Stored, StoreError> {
    let (mut floors, mut records) = (Vec::new(), Vec::new());
    let mut bad = None;
    store.scan(Cf::Bayes, b"", |key, value| {
        match decode(key, value) {
            Ok(Entry::Floor(owner, floor)) => floors.push((owner, floor)),
            Ok(Entry::Record(record)) => records.push(*record),
            Err(e) => bad = Some(e),
        }
        bad.is_none()
    })?;
    match bad {
        Some(e) => Err(e),
        None => Ok(Stored { floors, records }),
    }
}

/// One stored entry.
enum Entry {
    Floor(String, u64),
    Record(Box<Record>),
}

fn decode(key: &[u8], value: &[u8]) -> Result<Entry, StoreError> {
    let bad = |what: &str| {
        StoreError::Read(format!(
            "bayes key {}: {what}",
            String::from_utf8_lossy(key).escape_debug()
        ))
    };
    match key.first() {
        Some(&FLOOR_PREFIX) => {
            let owner = std::str::from_utf8(&key[1..]).map_err(|_| bad("owner not UTF-8"))?;
            let bytes: [u8; 8] = value.try_into().map_err(|_| bad("floor not 8 bytes"))?;
            Ok(Entry::Floor(owner.to_string(), u64::from_be_bytes(bytes)))
        }
        Some(&RECORD_PREFIX) => {
            let record: Record =
                serde_json::from_slice(value).map_err(|e| bad(&format!("record: {e}")))?;
            if record_key(&record.owner, &record.digest) != key {
                return Err(bad("record does not match its key"));
            }
            Ok(Entry::Record(Box::new(record)))
        }
        _ => Err(bad("unknown prefix")),
    }
}
