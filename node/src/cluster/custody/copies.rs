//! Copies of quarantined messages on other nodes, and what a copy holder does with them.
//!
//! **Push** (the owner): a message quarantined here is answered `250` once it is on this
//! node's disk; on the next custody pass (every [`super::CUSTODY_INTERVAL`]) the owner sends
//! it to the live peers it picks (rendezvous hash of message id and node id) until `copies`
//! nodes hold it, and records each holder on its entry once that holder answered after a
//! synced write. Until then the message has one copy: that window is one custody pass plus
//! one synced write on the holder (BENCHMARKS.md), shown by `mxmesh_quarantine_under_copied`.
//!
//! **Sweep** (the holder): a copy whose message left quarantine is dropped; a copy whose
//! owner left the mesh is adopted by the entry's [`successor`] — the first of its recorded
//! holders that has not left — and by no other node.

use mxmesh_crdt::qindex::{EntryStatus, IndexEntry, successor};
use xxhash_rust::xxh3::xxh3_64;

use super::settings::CustodyBook;
use super::{Custody, encode_raw};
use crate::cluster::rpc::{self, RpcRequest};
use crate::cluster::view;

/// Own messages one custody pass sends copies of at most (the next pass continues).
pub const COPY_BATCH_MAX: usize = 256;

/// Nodes that may take a copy or a hand-over of message `id`: live, healthy members other
/// than this node and `exclude`, not departed, best first by rendezvous hash (so the choice
/// spreads evenly and does not move when unrelated nodes come and go).
pub async fn candidates(custody: &Custody, id: &str, exclude: &[String]) -> Vec<String> {
    rank(id, &peers(custody).await, exclude)
}

/// The nodes that may take copies or hand-overs at all: live, healthy members other than
/// this node, not departed.
pub async fn peers(custody: &Custody) -> Vec<String> {
    let Some(mesh) = custody.mesh() else {
        return Vec::new();
    };
    let book = custody.book();
    let me = custody.node_id();
    mesh.members_recent()
        .await
        .iter()
        .filter(|m| m.live && m.id != me && view::health(m) == "ok")
        .filter(|m| !book.is_departed(&m.id))
        .map(|m| m.id.clone())
        .collect()
}

/// `peers` other than `exclude`, best first for message `id` by rendezvous hash (pure).
pub fn rank(id: &str, peers: &[String], exclude: &[String]) -> Vec<String> {
    let mut nodes: Vec<(u64, &String)> = peers
        .iter()
        .filter(|p| !exclude.contains(p))
        .map(|p| (xxh3_64(format!("{id}/{p}").as_bytes()), p))
        .collect();
    nodes.sort_by(|a, b| b.cmp(a));
    nodes.into_iter().map(|(_, p)| p.clone()).collect()
}

/// One custody pass: push missing copies of own messages, then sweep held copies.
pub async fn pass(custody: &Custody) {
    let _one = custody.inner.pass.lock().await;
    if custody.departed() {
        stay_drained(custody).await;
        return;
    }
    if custody.mesh().is_none() {
        return;
    }
    let book = custody.book();
    if book.quarantine.copies > 1 && !custody.quarantine().retiring() {
        push(custody, &book).await;
    }
    sweep(custody, &book).await;
}

/// A node the rule book records as departed (retired, or forgotten and started again)
/// takes no more mail: it drains itself, for good (give a rebuilt machine a new id).
async fn stay_drained(custody: &Custody) {
    let health = &custody.inner.health;
    if health.is_draining() {
        return;
    }
    tracing::warn!(node = %custody.node_id(), "this node left the mesh (retired or forgotten): drained for good");
    if let Err(e) = health.set_drained(true).await {
        tracing::warn!(error = %e, "departed node: drain not stored");
    }
}

/// Sends copies of own messages that have fewer holders than asked.
async fn push(custody: &Custody, book: &CustodyBook) {
    let q = custody.quarantine();
    let wanted = book.quarantine.copies as usize;
    let departed = |n: &str| book.is_departed(n);
    for e in q.index().under_copied(wanted, &departed, COPY_BATCH_MAX) {
        let live_holders = e.copies.iter().filter(|h| !departed(h)).count();
        let missing = wanted.saturating_sub(1 + live_holders);
        let targets = candidates(custody, &e.id, &e.copies).await;
        for holder in targets.into_iter().take(missing) {
            if let Err(why) = copy_to(custody, &e.id, &holder).await {
                tracing::warn!(id = %e.id, %holder, error = %why, "quarantine copy not taken; retried on the next pass");
            }
        }
    }
}

/// Sends own message `id` to `holder` and records the holder once it answered.
async fn copy_to(custody: &Custody, id: &str, holder: &str) -> Result<(), String> {
    let q = custody.quarantine();
    let entry = q
        .get(id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("message {id} is not in this node's store"))?;
    let raw = q.raw(id).map_err(|e| e.to_string())?;
    let req = RpcRequest::HoldCopy {
        entry: Box::new(entry),
        raw: encode_raw(&raw),
    };
    let bytes = serde_json::to_vec(&req).map_or(0, |b| b.len() as u64);
    let mesh = custody.mesh();
    rpc::call(mesh.as_deref(), holder, &req)
        .await
        .map_err(|e| e.to_string())?;
    custody
        .inner
        .copy_bytes_sent
        .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    q.record_copy(id, holder).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// What a holder does with one held copy, given the message's current entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyFate {
    /// Keep holding it.
    Keep,
    /// Drop it: the message left quarantine, or this node owns it now.
    Drop,
    /// Take it over from its departed owner (named).
    Adopt(String),
}

/// Decides a held copy's fate (pure): `current` is the entry the index shows for the
/// message (`None` while the index does not know it yet).
pub fn fate(me: &str, current: Option<&IndexEntry>, departed: impl Fn(&str) -> bool) -> CopyFate {
    let Some(cur) = current else {
        return CopyFate::Keep;
    };
    // Handed over (retire), and the new owner's entry (which lists this holder) has not
    // reached this node's index yet: the copy is the new owner's now.
    if cur.status == EntryStatus::Moved {
        return CopyFate::Keep;
    }
    if cur.status != EntryStatus::Quarantined || cur.node == me {
        return CopyFate::Drop;
    }
    if departed(&cur.node) && successor(cur, &departed) == Some(me) {
        return CopyFate::Adopt(cur.node.clone());
    }
    CopyFate::Keep
}

/// [`fate`] of a copy held here of `owner`'s message, given `before`: the holders the owner
/// had recorded when it sent this copy (its entry's `copies`). A holder the owner never
/// recorded (its disk went between the holder's answer and the record) adopts when the owner
/// left, no recorded holder survives and every holder before it left too — so such a
/// message is not shown `lost` while its bytes survive. So does a holder whose index never
/// got the entry at all (the owner's disk went before the entry travelled): the copy's own
/// entry stands in for it. Two holders both adopt only if the owner sent a copy to
/// a second one after failing to record the first (a failed write on the owner), then lost
/// its disk before recording either.
pub fn fate_held(
    me: &str,
    owner: &str,
    current: Option<&IndexEntry>,
    before: &[String],
    departed: impl Fn(&str) -> bool,
) -> CopyFate {
    let earlier_gone = before.iter().all(|h| departed(h));
    if current.is_none() && departed(owner) && earlier_gone {
        return CopyFate::Adopt(owner.to_string());
    }
    let decided = fate(me, current, &departed);
    let Some(cur) = current.filter(|_| decided == CopyFate::Keep) else {
        return decided;
    };
    let unrecorded = !cur.copies.iter().any(|h| h == me);
    let orphan = departed(&cur.node) && successor(cur, &departed).is_none();
    if cur.status == EntryStatus::Quarantined && unrecorded && orphan && earlier_gone {
        return CopyFate::Adopt(cur.node.clone());
    }
    decided
}

/// Drops held copies of messages that left quarantine; adopts those this node succeeds to.
pub async fn sweep(custody: &Custody, book: &CustodyBook) {
    let q = custody.quarantine();
    let held = match q.held_copies() {
        Ok(held) => held,
        Err(e) => {
            tracing::warn!(error = %e, "quarantine copies: cannot list held copies");
            return;
        }
    };
    let me = custody.node_id();
    for copy in held {
        let id = &copy.meta.id;
        let current = q.index().get(id);
        let (owner, before) = (&copy.meta.node, &copy.meta.copies);
        match fate_held(me, owner, current.as_ref(), before, |n| book.is_departed(n)) {
            CopyFate::Keep => {}
            CopyFate::Drop => {
                if let Err(e) = q.drop_copy(id).await {
                    tracing::warn!(%id, error = %e, "quarantine copy not dropped");
                }
            }
            CopyFate::Adopt(from) => adopt_copy(custody, &copy, &from).await,
        }
    }
}

async fn adopt_copy(custody: &Custody, copy: &crate::quarantine::Entry, from: &str) {
    let q = custody.quarantine();
    let id = &copy.meta.id;
    let raw = match q.copy_raw(id) {
        Ok(Some(raw)) => raw,
        Ok(None) => return tracing::error!(%id, "held copy has no bytes; not adopted"),
        Err(e) => return tracing::warn!(%id, error = %e, "held copy unreadable"),
    };
    let mut entry = copy.clone();
    if let Some(cur) = q.index().get(id) {
        entry.meta.copies = cur.copies.clone();
        // Recipients the owner released or deleted for after it sent this copy.
        entry.meta.absorb_decisions(&cur);
    }
    match q.adopt(&entry, &raw, from).await {
        Ok(_) => {
            tracing::info!(%id, %from, "took a quarantined message over from a departed owner")
        }
        Err(e) => {
            tracing::warn!(%id, %from, error = %e, "adoption failed; retried on the next pass")
        }
    }
}

#[cfg(test)]
mod tests;
