//! Custody of a message: which node holds it and acts on it. An entry names the nodes
//! that hold a copy (`copies`); a node that takes a message over from another writes the
//! entry again in its own log with `adopted_from` naming the previous owner. That entry
//! supersedes the previous owner's entry of the same id everywhere: listings show one
//! entry per message, and lookups by id find the current owner.
//!
//! Who may adopt is decided by [`successor`], a pure function of the entry (its copy
//! holders, in the order the owner recorded them) and of the set of nodes that left the
//! mesh, which only grows. See ARCHITECTURE.md, "Invariants", for why at most one node
//! carries out a release.

use std::sync::Arc;

use super::QuarantineIndex;
use super::error::{self, IndexError};
use super::model::{EntryStatus, IndexEntry, ItemKind, PurgeMarker};
use super::store::EntryKey;
use super::store::Item;

/// The node that takes `entry` over when its owner has left the mesh: the first of its
/// copy holders that has not left (`departed` says which have). `None` when every holder
/// left too: no surviving copy is known, the message is lost.
pub fn successor(entry: &IndexEntry, departed: impl Fn(&str) -> bool) -> Option<&str> {
    entry
        .copies
        .iter()
        .map(String::as_str)
        .find(|holder| *holder != entry.node && !departed(holder))
}

impl QuarantineIndex {
    /// Whether another owner's entry of the same id took `entry` over (names its owner in
    /// `adopted_from`).
    /// Entries of one id share `received_ms` (an adopter keeps it), so they sit side by
    /// side in the search order and this is one short range walk.
    pub fn superseded(&self, entry: &IndexEntry) -> bool {
        let id: Arc<str> = Arc::from(entry.id.as_str());
        let from: EntryKey = (entry.received_ms, id, Arc::from(""));
        self.entries
            .range(from..)
            .take_while(|((ms, id, _), _)| *ms == entry.received_ms && **id == *entry.id)
            .any(|((_, _, owner), e)| {
                **owner != *entry.node && e.adopted_from.as_deref() == Some(entry.node.as_str())
            })
    }

    /// The current entry of message `id`: the one no other owner's entry supersedes (the
    /// first such by owner id if, by mistake, two owners claim one id).
    pub fn current(&self, id: &str) -> Option<&IndexEntry> {
        let mut first = None;
        for owner in self.logs.keys() {
            if let Some(e) = self.get_of(owner, id) {
                if !self.superseded(e) {
                    return Some(e);
                }
                first.get_or_insert(e);
            }
        }
        first
    }

    /// The entries of `owner` (tombstones included), in no particular order.
    pub fn entries_of<'a>(&'a self, owner: &str) -> impl Iterator<Item = &'a IndexEntry> + 'a {
        let log = self.logs.get(owner);
        log.into_iter().flat_map(move |log| {
            log.entries
                .keys()
                .filter_map(move |id| self.get_of(&log.node, id))
        })
    }

    /// Entries of `owner` still `quarantined` and not taken over by another node.
    pub fn live_unadopted_of<'a>(
        &'a self,
        owner: &str,
    ) -> impl Iterator<Item = &'a IndexEntry> + 'a {
        self.entries_of(owner)
            .filter(move |e| e.status == EntryStatus::Quarantined && !self.superseded(e))
    }

    /// Withdraws request `request_id` that `me` recorded and nobody answered, because its
    /// owner left the mesh for good and will never answer it: the request is purged from
    /// `me`'s log, so every replica drops it. An answered request is left as it is.
    pub fn withdraw_own(&mut self, me: &str, request_id: &str) -> Result<(), IndexError> {
        error::check_id("me", me)?;
        let intent = self
            .intents
            .get(request_id)
            .ok_or_else(|| IndexError::UnknownRequest(request_id.to_string()))?;
        if intent.requested_by != me {
            let (me, requested_by) = (me.to_string(), intent.requested_by.clone());
            return Err(IndexError::NotRequester { me, requested_by });
        }
        if intent.done.is_some() {
            return Ok(());
        }
        let marker = PurgeMarker {
            kind: ItemKind::Intent,
            id: request_id.to_string(),
            seq: 0,
        };
        self.write_own(me, Item::Purged(marker)).map(|_| ())
    }
}
