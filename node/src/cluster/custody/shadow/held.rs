//! The holder's side of queue shadows: shadows of other nodes' relay queue entries kept in
//! `Cf::Copies` (`qs/<owner>/<id>`: the entry and the holders before this one; `qb/<owner>/<id>`:
//! the message bytes), dropped when their owner says the entry left its queue, and relayed
//! by exactly one holder when the owner is forgotten ([`fate`]); the later holders drop theirs
//! when that holder says it relayed it ([`super::relayed`]).

use serde::{Deserialize, Serialize};

use std::sync::atomic::Ordering;

use super::super::settings::{CustodyBook, DepartureKind};
use super::super::{Custody, decode_raw};
use super::{ShadowItem, within_call_bound};
use crate::relay::queue::QueueEntry;
use crate::store::{Batch, Cf, Store, StoreError};

/// Shadows of one owner one sweep looks at at most (the next sweep continues).
pub const SWEEP_SHADOWS_MAX: usize = 10_000;

/// A shadow as stored by its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldShadow {
    /// The owner's queue entry as it was when the shadow was made.
    pub entry: QueueEntry,
    /// The holders that took a shadow of this entry before this one, in order.
    #[serde(default)]
    pub before: Vec<String>,
}

fn entry_key(owner: &str, id: &str) -> Vec<u8> {
    format!("qs/{owner}/{id}").into_bytes()
}

fn body_key(owner: &str, id: &str) -> Vec<u8> {
    format!("qb/{owner}/{id}").into_bytes()
}

/// Stages the deletion of `owner`'s shadow `id` in `batch`.
pub fn stage_drop(batch: &mut Batch, owner: &str, id: &str) {
    batch.delete(Cf::Copies, entry_key(owner, id));
    batch.delete(Cf::Copies, body_key(owner, id));
}

/// Stores shadows of `owner`'s entries, all in one synced batch (storing one again
/// replaces it).
pub async fn hold(
    store: &Store,
    owner: &str,
    shadows: &[(HeldShadow, Vec<u8>)],
) -> Result<(), StoreError> {
    let mut b = Batch::new();
    for (shadow, body) in shadows {
        let id = &shadow.entry.id;
        let encoded = serde_json::to_vec(shadow).unwrap_or_default();
        b.put(Cf::Copies, entry_key(owner, id), encoded);
        b.put(Cf::Copies, body_key(owner, id), body.as_slice());
    }
    store.commit(b).await
}

/// Drops shadows of `owner`'s entries `ids` (synced; unknown ids change nothing).
pub async fn drop_shadows(store: &Store, owner: &str, ids: &[String]) -> Result<(), StoreError> {
    let mut b = Batch::new();
    for id in ids {
        stage_drop(&mut b, owner, id);
    }
    store.commit(b).await
}

/// The shadows of `owner`'s entries held here, at most `max`.
pub fn held_of(store: &Store, owner: &str, max: usize) -> Result<Vec<HeldShadow>, StoreError> {
    let prefix = format!("qs/{owner}/").into_bytes();
    let mut out = Vec::new();
    store.scan(Cf::Copies, &prefix, |k, v| {
        if !k.starts_with(&prefix) {
            return false;
        }
        match serde_json::from_slice::<HeldShadow>(v) {
            Ok(s) => out.push(s),
            Err(e) => tracing::error!(key = %String::from_utf8_lossy(k), error = %e, "queue shadow unreadable; left in place"),
        }
        out.len() < max
    })?;
    Ok(out)
}

/// `owner`'s shadow `id` held here, if any.
pub fn held_one(store: &Store, owner: &str, id: &str) -> Result<Option<HeldShadow>, StoreError> {
    let Some(b) = store.get(Cf::Copies, &entry_key(owner, id))? else {
        return Ok(None);
    };
    Ok(serde_json::from_slice(&b).ok())
}

/// The bytes of `owner`'s shadow `id`.
pub fn body_of(store: &Store, owner: &str, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    store.get(Cf::Copies, &body_key(owner, id))
}

/// What a holder does with a shadow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowFate {
    /// Keep it: its owner is a member, or an earlier holder relays it.
    Keep,
    /// Drop it: its owner retired, handing its queue over first.
    Drop,
    /// Relay it: its owner was forgotten and every earlier holder left too.
    Relay,
}

/// Decides a shadow's fate (pure). Only the first holder (in the order the owner made
/// them) that has not left relays, so two holders never both relay one entry while the
/// departed set only grows and forget is refused for live members.
pub fn fate(owner: &str, before: &[String], book: &CustodyBook) -> ShadowFate {
    match book.departed.get(owner).map(|d| d.kind) {
        None => ShadowFate::Keep,
        Some(DepartureKind::Retired) => ShadowFate::Drop,
        Some(DepartureKind::Forgotten) if before.iter().all(|h| book.is_departed(h)) => {
            ShadowFate::Relay
        }
        Some(DepartureKind::Forgotten) => ShadowFate::Keep,
    }
}

/// Settles the shadows of every departed owner: dropped, kept, or relayed from here.
pub async fn sweep(custody: &Custody, book: &CustodyBook) {
    let store = &custody.inner.store;
    for owner in book.departed.keys() {
        let held = match held_of(store, owner, SWEEP_SHADOWS_MAX) {
            Ok(held) => held,
            Err(e) => return tracing::warn!(error = %e, "queue shadows: cannot list"),
        };
        for shadow in held {
            let id = &shadow.entry.id;
            let outcome = match fate(owner, &shadow.before, book) {
                ShadowFate::Keep => continue,
                ShadowFate::Drop => drop_shadows(store, owner, std::slice::from_ref(id))
                    .await
                    .map_err(|e| e.to_string()),
                ShadowFate::Relay => relay_shadow(custody, owner, shadow.clone()).await,
            };
            if let Err(e) = outcome {
                tracing::warn!(%id, %owner, error = %e, "queue shadow not settled; retried");
            }
        }
    }
}

/// Takes a forgotten owner's shadow into this node's relay queue, due now; the shadow
/// goes in the same synced batch, which also records where the entry came from, so the
/// later holders' shadows are dropped once it leaves the queue ([`super::relayed`]).
async fn relay_shadow(custody: &Custody, owner: &str, shadow: HeldShadow) -> Result<(), String> {
    let store = &custody.inner.store;
    let id = shadow.entry.id.clone();
    let body = body_of(store, owner, &id)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("queue shadow {id} of {owner} has no message bytes"))?;
    let mut entry = shadow.entry;
    entry.next_attempt_ms = custody.inner.clock.now_ms();
    let mut b = Batch::new();
    stage_drop(&mut b, owner, &id);
    super::relayed::stage_record(&mut b, &id, owner);
    custody
        .inner
        .relay
        .take_over(&entry, &body, b)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(%id, %owner, "relaying a queued message whose owner was forgotten");
    Ok(())
}

/// The holder's side of `hold_shadows`: only the entries' owner may send them; a node
/// leaving the mesh takes none. Answered after one synced write.
pub async fn serve_hold(
    custody: &Custody,
    from: &str,
    shadows: Vec<ShadowItem>,
) -> Result<(), (u16, String)> {
    within_call_bound("hold_shadows", shadows.len(), "shadows")?;
    if custody.departed() || custody.quarantine().retiring() {
        return Err((
            503,
            format!("node {} is leaving the mesh", custody.node_id()),
        ));
    }
    if from == custody.node_id() {
        return Err((400, "hold_shadows: a node's own queue entries".to_string()));
    }
    if super::super::BREAK_COPIES.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut decoded = Vec::with_capacity(shadows.len());
    for s in shadows {
        let body = decode_raw(&s.body).map_err(|e| (400, format!("shadow {}: {e}", s.entry.id)))?;
        let shadow = HeldShadow {
            entry: *s.entry,
            before: s.before,
        };
        decoded.push((shadow, body));
    }
    hold(&custody.inner.store, from, &decoded)
        .await
        .map_err(|e| (503, e.to_string()))
}

/// The holder's side of `drop_shadows`: drops the sender's shadows `ids`.
pub async fn serve_drop(
    custody: &Custody,
    from: &str,
    ids: &[String],
) -> Result<(), (u16, String)> {
    within_call_bound("drop_shadows", ids.len(), "ids")?;
    drop_shadows(&custody.inner.store, from, ids)
        .await
        .map_err(|e| (503, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::super::super::settings::Departure;
    use super::*;

    fn book(departed: &[(&str, DepartureKind)]) -> CustodyBook {
        let mut b = CustodyBook::default();
        for (node, kind) in departed {
            let d = Departure {
                kind: *kind,
                at_ms: 1,
                by: "mx1".into(),
            };
            b.departed.insert(node.to_string(), d);
        }
        b
    }

    #[test]
    fn a_shadow_stays_while_its_owner_is_a_member() {
        assert_eq!(fate("mx2", &[], &book(&[])), ShadowFate::Keep);
    }

    #[test]
    fn a_retired_owner_handed_its_queue_over_so_its_shadows_go() {
        let b = book(&[("mx2", DepartureKind::Retired)]);
        assert_eq!(fate("mx2", &[], &b), ShadowFate::Drop);
    }

    #[test]
    fn only_the_first_holder_not_departed_relays_for_a_forgotten_owner() {
        let b = book(&[("mx2", DepartureKind::Forgotten)]);
        let first = fate("mx2", &[], &b);
        let second = fate("mx2", &["mx3".to_string()], &b);
        assert_eq!((first, second), (ShadowFate::Relay, ShadowFate::Keep));
        let b = book(&[
            ("mx2", DepartureKind::Forgotten),
            ("mx3", DepartureKind::Forgotten),
        ]);
        assert_eq!(fate("mx2", &["mx3".to_string()], &b), ShadowFate::Relay);
    }
}
