//! A bounded, expiring map in which every node is the only writer of its own entries:
//! the shape of the greylist triplets and the mesh-wide rate counters.
//!
//! The map holds, per owner node, a log of `key → item`. Only the owner writes its log
//! ([`OwnedMap::put_own`]); every change gets a **stamp** above every earlier stamp of
//! that owner (`max(last + 1, now_ms × STAMPS_PER_MS)`, so a node that lost its store
//! still stamps above its past life unless its clock went back). A log keeps one item per
//! key, the one with the highest stamp. Readers combine the owners' items of one key as
//! they see fit (the greylist takes the earliest first sighting, the rate limiter sums).
//!
//! # Sync
//!
//! Replicas exchange logs by version vector: per owner, the stamp up to which this replica
//! holds everything (`version_vector`). [`OwnedMap::delta_since`] answers with, per owner,
//! the items above the asker's version in stamp order, at most `items_max` in all, and the
//! range `(from, to]` it covers completely (a delta cut short covers only up to the last
//! item it carries). [`OwnedMap::apply`] keeps per key the higher stamp and raises the
//! owner's version to `to` only when `from` is at or below it, so any delta, partial,
//! duplicated, late or reordered, is safe: applying is commutative and idempotent.
//!
//! # Bounds and expiry
//!
//! Every item carries `expires_ms`; an expired item is dropped when seen (apply, put,
//! [`OwnedMap::expire`]) and never read. Each owner's log keeps at most
//! `per_owner_max` items: beyond that the lowest stamps are evicted (the owner's oldest
//! changes, on every replica alike). At most [`OWNERS_MAX`] owners are kept; a delta naming
//! more is refused as a whole. Malformed deltas are refused as a whole and change nothing.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// Schema version of [`OwnedDelta`] (field `v`).
pub const SCHEMA_VERSION: u32 = 1;
/// Owners one map keeps at most (nodes of one mesh).
pub const OWNERS_MAX: usize = 256;
/// Longest owner id, in bytes.
pub const OWNER_BYTES_MAX: usize = 128;
/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = 256;
/// Items one delta carries at most.
pub const DELTA_ITEMS_MAX: usize = 20_000;
/// Stamps reserved per millisecond of `now_ms`.
pub const STAMPS_PER_MS: u64 = 1000;
/// Largest stamp (exactly representable as a JSON/IEEE double).
pub const STAMP_MAX: u64 = (1 << 53) - 1;

/// Why a write or a delta was refused; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnedError {
    /// A delta of another schema version.
    #[error("owned map delta: schema version {0} is not {SCHEMA_VERSION}")]
    Version(u32),
    /// A part of a delta or a write breaks a bound or is inconsistent.
    #[error("owned map delta: {0}")]
    Invalid(String),
    /// The owner's stamps are exhausted (a clock far in the future).
    #[error("owned map: stamps of {0} exhausted")]
    Exhausted(String),
}

/// One item of an owner's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item<V> {
    /// The owner's stamp of this version.
    pub stamp: u64,
    /// Wall-clock time (ms) after which the item is gone.
    pub expires_ms: u64,
    /// What the owner recorded.
    pub value: V,
}

/// One owner's part of a delta: everything above `from` up to `to`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerDelta<V> {
    /// The owner node id.
    pub owner: String,
    /// The asker's version this part starts above.
    pub from: u64,
    /// The stamp up to which this part is complete.
    pub to: u64,
    /// `(key, item)` in stamp order, every stamp in `(from, to]`.
    pub items: Vec<(String, Item<V>)>,
}

/// What a replica lacks, as [`OwnedMap::delta_since`] answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnedDelta<V> {
    /// [`SCHEMA_VERSION`].
    pub v: u32,
    /// Per owner.
    pub owners: Vec<OwnerDelta<V>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Log<V> {
    items: HashMap<String, Item<V>>,
    /// stamp → key, for deltas in stamp order and eviction of the oldest.
    by_stamp: BTreeMap<u64, String>,
    /// Everything of this owner up to this stamp is held (or was expired/evicted).
    version: u64,
}

impl<V> Default for Log<V> {
    fn default() -> Self {
        Log {
            items: HashMap::new(),
            by_stamp: BTreeMap::new(),
            version: 0,
        }
    }
}

impl<V: Clone> Log<V> {
    /// Keeps `item` under `key` when it is newer than the held one.
    fn offer(&mut self, key: &str, item: Item<V>) -> bool {
        if let Some(held) = self.items.get(key) {
            if held.stamp >= item.stamp {
                return false;
            }
            self.by_stamp.remove(&held.stamp);
        }
        self.by_stamp.insert(item.stamp, key.to_string());
        self.items.insert(key.to_string(), item);
        true
    }

    fn remove_stamp(&mut self, stamp: u64) {
        if let Some(key) = self.by_stamp.remove(&stamp) {
            self.items.remove(&key);
        }
    }

    /// Drops the oldest stamps beyond `max` items.
    fn evict(&mut self, max: usize) {
        while self.items.len() > max {
            let Some((&stamp, _)) = self.by_stamp.iter().next() else {
                break;
            };
            self.remove_stamp(stamp);
        }
    }

    fn expire(&mut self, now_ms: u64) -> usize {
        let gone: Vec<u64> = self
            .items
            .values()
            .filter(|i| i.expires_ms <= now_ms)
            .map(|i| i.stamp)
            .collect();
        for stamp in &gone {
            self.remove_stamp(*stamp);
        }
        gone.len()
    }

    fn high(&self) -> u64 {
        self.version
    }
}

/// Every owner's entries, as far as this replica knows them. See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedMap<V> {
    logs: BTreeMap<String, Log<V>>,
    per_owner_max: usize,
}

impl<V: Clone> OwnedMap<V> {
    /// An empty map keeping at most `per_owner_max` items per owner.
    pub fn new(per_owner_max: usize) -> Self {
        OwnedMap {
            logs: BTreeMap::new(),
            per_owner_max: per_owner_max.max(1),
        }
    }

    /// Items per owner kept at most.
    pub fn per_owner_max(&self) -> usize {
        self.per_owner_max
    }

    /// Records `value` under `key` in `me`'s own log; returns the stored item (to persist).
    pub fn put_own(
        &mut self,
        me: &str,
        key: &str,
        value: V,
        expires_ms: u64,
        now_ms: u64,
    ) -> Result<Item<V>, OwnedError> {
        check_owner(me)?;
        check_key(key)?;
        let per_owner_max = self.per_owner_max;
        if !self.logs.contains_key(me) && self.logs.len() >= OWNERS_MAX {
            return Err(OwnedError::Invalid(format!(
                "more than {OWNERS_MAX} owners; {me} not added"
            )));
        }
        let log = self.logs.entry(me.to_string()).or_default();
        let stamp = log
            .high()
            .saturating_add(1)
            .max(now_ms.saturating_mul(STAMPS_PER_MS));
        if stamp > STAMP_MAX {
            return Err(OwnedError::Exhausted(me.to_string()));
        }
        let item = Item {
            stamp,
            expires_ms,
            value,
        };
        log.offer(key, item.clone());
        log.version = stamp;
        log.evict(per_owner_max);
        Ok(item)
    }

    /// Takes back an item of `owner` read from a store (at start); keeps the newer one.
    /// The owner's log counts as complete up to the item's stamp (a node stores all of
    /// its own live items).
    pub fn restore(&mut self, owner: &str, key: &str, item: Item<V>) -> Result<(), OwnedError> {
        check_owner(owner)?;
        check_key(key)?;
        if !self.logs.contains_key(owner) && self.logs.len() >= OWNERS_MAX {
            return Err(OwnedError::Invalid(format!(
                "more than {OWNERS_MAX} owners"
            )));
        }
        let per_owner_max = self.per_owner_max;
        let log = self.logs.entry(owner.to_string()).or_default();
        log.version = log.version.max(item.stamp);
        log.offer(key, item);
        log.evict(per_owner_max);
        Ok(())
    }

    /// The live item of `owner` under `key`.
    pub fn get(&self, owner: &str, key: &str, now_ms: u64) -> Option<&Item<V>> {
        self.logs
            .get(owner)?
            .items
            .get(key)
            .filter(|i| i.expires_ms > now_ms)
    }

    /// Every owner's live item under `key`.
    pub fn values<'a>(
        &'a self,
        key: &'a str,
        now_ms: u64,
    ) -> impl Iterator<Item = (&'a str, &'a Item<V>)> + 'a {
        self.logs.iter().filter_map(move |(owner, log)| {
            let item = log.items.get(key).filter(|i| i.expires_ms > now_ms)?;
            Some((owner.as_str(), item))
        })
    }

    /// Items held of `owner` (expired ones not yet dropped included).
    pub fn len_of(&self, owner: &str) -> usize {
        self.logs.get(owner).map_or(0, |l| l.items.len())
    }

    /// Items held of all owners.
    pub fn len(&self) -> usize {
        self.logs.values().map(|l| l.items.len()).sum()
    }

    /// Whether no item is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops every expired item, and the logs left empty (an owner's later items come
    /// again with stamps above its earlier ones); returns how many items.
    pub fn expire(&mut self, now_ms: u64) -> usize {
        let gone = self.logs.values_mut().map(|l| l.expire(now_ms)).sum();
        self.logs.retain(|_, log| !log.items.is_empty());
        gone
    }

    /// Per owner, the stamp up to which this replica holds everything.
    pub fn version_vector(&self) -> BTreeMap<String, u64> {
        self.logs
            .iter()
            .map(|(owner, log)| (owner.clone(), log.high()))
            .collect()
    }

    /// What a replica at `theirs` lacks, at most `items_max` items (live ones only).
    pub fn delta_since(
        &self,
        theirs: &BTreeMap<String, u64>,
        items_max: usize,
        now_ms: u64,
    ) -> OwnedDelta<V> {
        let mut budget = items_max.min(DELTA_ITEMS_MAX);
        let mut owners = Vec::new();
        for (owner, log) in &self.logs {
            let from = theirs.get(owner).copied().unwrap_or(0);
            let high = log.high();
            if high <= from {
                continue;
            }
            let mut items = Vec::new();
            let mut to = high;
            for (&stamp, key) in log.by_stamp.range(from.saturating_add(1)..) {
                if budget == 0 {
                    to = stamp - 1;
                    break;
                }
                let Some(item) = log.items.get(key) else {
                    continue;
                };
                if item.expires_ms <= now_ms {
                    continue;
                }
                items.push((key.clone(), item.clone()));
                budget -= 1;
            }
            if to > from {
                owners.push(OwnerDelta {
                    owner: owner.clone(),
                    from,
                    to,
                    items,
                });
            }
            if budget == 0 {
                break;
            }
        }
        OwnedDelta {
            v: SCHEMA_VERSION,
            owners,
        }
    }

    /// Applies a delta (see the module docs); returns whether anything changed. A
    /// malformed delta is refused as a whole.
    pub fn apply(&mut self, delta: OwnedDelta<V>, now_ms: u64) -> Result<bool, OwnedError> {
        check_delta(&delta)?;
        let new_owners = delta
            .owners
            .iter()
            .filter(|d| !self.logs.contains_key(&d.owner))
            .map(|d| d.owner.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if self.logs.len() + new_owners > OWNERS_MAX {
            return Err(OwnedError::Invalid(format!(
                "would hold more than {OWNERS_MAX} owners"
            )));
        }
        let per_owner_max = self.per_owner_max;
        let mut changed = false;
        for part in delta.owners {
            let log = self.logs.entry(part.owner).or_default();
            for (key, item) in part.items {
                if item.expires_ms > now_ms {
                    changed |= log.offer(&key, item);
                }
            }
            log.evict(per_owner_max);
            if part.from <= log.version && part.to > log.version {
                log.version = part.to;
                changed = true;
            }
        }
        Ok(changed)
    }

    /// Merges a whole replica into this one (as if every item were delivered).
    pub fn merge(&mut self, other: &OwnedMap<V>, now_ms: u64) -> Result<bool, OwnedError> {
        let delta = other.delta_since(&BTreeMap::new(), usize::MAX, now_ms);
        let mut changed = false;
        // A whole replica may exceed one delta's bound: apply it owner by owner.
        for part in delta.owners {
            changed |= self.apply(
                OwnedDelta {
                    v: SCHEMA_VERSION,
                    owners: vec![part],
                },
                now_ms,
            )?;
        }
        Ok(changed)
    }
}

fn check_owner(owner: &str) -> Result<(), OwnedError> {
    if owner.is_empty() || owner.len() > OWNER_BYTES_MAX {
        return Err(OwnedError::Invalid(format!(
            "owner id of {} bytes (1 to {OWNER_BYTES_MAX})",
            owner.len()
        )));
    }
    Ok(())
}

fn check_key(key: &str) -> Result<(), OwnedError> {
    if key.is_empty() || key.len() > KEY_BYTES_MAX {
        return Err(OwnedError::Invalid(format!(
            "key of {} bytes (1 to {KEY_BYTES_MAX})",
            key.len()
        )));
    }
    Ok(())
}

fn check_delta<V>(delta: &OwnedDelta<V>) -> Result<(), OwnedError> {
    if delta.v != SCHEMA_VERSION {
        return Err(OwnedError::Version(delta.v));
    }
    let items: usize = delta.owners.iter().map(|o| o.items.len()).sum();
    if items > DELTA_ITEMS_MAX {
        return Err(OwnedError::Invalid(format!(
            "{items} items (at most {DELTA_ITEMS_MAX})"
        )));
    }
    for part in &delta.owners {
        check_owner(&part.owner)?;
        if part.from > part.to || part.to > STAMP_MAX {
            return Err(OwnedError::Invalid(format!(
                "owner {}: range ({}, {}] is not a range",
                part.owner, part.from, part.to
            )));
        }
        for (key, item) in &part.items {
            check_key(key)?;
            if item.stamp <= part.from || item.stamp > part.to {
                return Err(OwnedError::Invalid(format!(
                    "owner {}: item {key} stamp {} outside ({}, {}]",
                    part.owner, item.stamp, part.from, part.to
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "owned_tests.rs"]
mod tests;
