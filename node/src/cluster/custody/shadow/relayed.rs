//! Shadows of a forgotten owner's entry on the holders after the one that relayed it.
//!
//! When an owner is forgotten, the first of its shadow holders that has not left takes the
//! shadow into its own relay queue ([`super::held`]); the later holders keep theirs (they
//! must not relay too). Those later holders are not known to the relaying one — the owner
//! that knew them is gone — so once the entry leaves the relaying holder's queue (relayed,
//! bounced, or handed over by a retire) it tells every member of the mesh to drop the
//! forgotten owner's shadow of it (`drop_relayed_shadows`). A holder drops it only if the
//! sender is among the holders before it, i.e. the sender is the one that had to relay it.
//!
//! The relaying holder records `qr/<id>` (the forgotten owner) in `Cf::Copies` in the same
//! synced batch that queues the entry, and removes it once every member not departed
//! answered; the owner's rescan ([`super::rescan`]) sends again for records whose entry
//! left the queue, so a member down at the time drops its shadow when it is back.

use std::collections::BTreeMap;

use super::super::Custody;
use super::super::settings::CustodyBook;
use super::held::{self, HeldShadow};
use super::{SHADOWS_PER_CALL_MAX, within_call_bound};
use crate::cluster::rpc::{self, RpcRequest};
use crate::store::{Batch, Cf, Store};

fn record_key(id: &str) -> Vec<u8> {
    format!("qr/{id}").into_bytes()
}

/// Stages the record that queue entry `id` here came from forgotten `owner`'s shadow.
pub fn stage_record(batch: &mut Batch, id: &str, owner: &str) {
    batch.put(Cf::Copies, record_key(id), owner.as_bytes());
}

/// The forgotten owner whose shadow queue entry `id` here came from, if it did.
fn owner_of(store: &Store, id: &str) -> Option<String> {
    match store.get(Cf::Copies, &record_key(id)) {
        Ok(Some(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        _ => None,
    }
}

/// Relayed-shadow records whose entry left this node's queue, at most `max`.
pub(super) fn left_queue(store: &Store, max: usize) -> Vec<String> {
    let mut gone = Vec::new();
    let _ = store.scan(Cf::Copies, b"qr/", |k, _| {
        let Some(id) = k.strip_prefix(b"qr/") else {
            return false;
        };
        let id = String::from_utf8_lossy(id).into_owned();
        if matches!(store.get(Cf::Queue, id.as_bytes()), Ok(None)) {
            gone.push(id);
        }
        gone.len() < max
    });
    gone
}

/// For those of `ids` (entries that left this node's queue) that came from a forgotten
/// owner's shadow: tells every member not departed to drop that owner's shadows of them;
/// forgets a record once every such member answered.
pub(super) async fn drop_elsewhere(custody: &Custody, book: &CustodyBook, ids: &[String]) {
    let store = &custody.inner.store;
    let mut by_owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for id in ids {
        if let Some(owner) = owner_of(store, id) {
            by_owner.entry(owner).or_default().push(id.clone());
        }
    }
    let Some(mesh) = custody.mesh().filter(|_| !by_owner.is_empty()) else {
        return;
    };
    let me = custody.node_id();
    let members: Vec<String> = mesh
        .members_recent()
        .await
        .iter()
        .filter(|m| m.id != me && !book.is_departed(&m.id))
        .map(|m| m.id.clone())
        .collect();
    let mut b = Batch::new();
    for (owner, ids) in by_owner {
        if tell_all(custody, &members, &owner, &ids).await {
            for id in &ids {
                b.delete(Cf::Copies, record_key(id));
            }
        }
    }
    if !b.is_empty()
        && let Err(e) = store.commit_relaxed(b).await
    {
        tracing::warn!(error = %e, "relayed-shadow records not removed; sent again later");
    }
}

/// Sends `drop_relayed_shadows` of `owner`'s `ids` to every one of `members`; whether all
/// answered.
async fn tell_all(custody: &Custody, members: &[String], owner: &str, ids: &[String]) -> bool {
    let mesh = custody.mesh();
    let calls = members.iter().map(|m| {
        let mesh = mesh.clone();
        async move {
            let mut ok = true;
            for chunk in ids.chunks(SHADOWS_PER_CALL_MAX) {
                let req = RpcRequest::DropRelayedShadows {
                    owner: owner.to_string(),
                    ids: chunk.to_vec(),
                };
                if let Err(e) = rpc::call(mesh.as_deref(), m, &req).await {
                    tracing::debug!(member = %m, error = %e, "relayed shadows: drop not taken; sent again later");
                    ok = false;
                }
            }
            ok
        }
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .all(|ok| ok)
}

/// Which of `held` (shadows of one owner held here) node `relayer` relayed, by the rule
/// that only the first holder not departed relays: it is one of the holders before this
/// one. Pure.
pub fn relayed_by<'a>(relayer: &str, held: &'a [HeldShadow]) -> Vec<&'a str> {
    held.iter()
        .filter(|s| s.before.iter().any(|h| h == relayer))
        .map(|s| s.entry.id.as_str())
        .collect()
}

/// The holder's side of `drop_relayed_shadows` from node `from`: drops this node's shadows
/// of `owner`'s entries `ids` that `from` held before it (synced). Others are kept.
pub async fn serve_drop(
    custody: &Custody,
    from: &str,
    owner: &str,
    ids: &[String],
) -> Result<(), (u16, String)> {
    within_call_bound("drop_relayed_shadows", ids.len(), "ids")?;
    if owner.is_empty() || owner == from {
        let why = format!("drop_relayed_shadows: owner {owner:?} (sent by {from})");
        return Err((400, why));
    }
    let store = &custody.inner.store;
    let mut held = Vec::new();
    for id in ids {
        match held::held_one(store, owner, id) {
            Ok(Some(s)) => held.push(s),
            Ok(None) => {}
            Err(e) => return Err((503, e.to_string())),
        }
    }
    let drop: Vec<String> = relayed_by(from, &held)
        .into_iter()
        .map(String::from)
        .collect();
    if drop.is_empty() {
        return Ok(());
    }
    tracing::info!(%owner, relayer = %from, n = drop.len(), "dropping shadows another holder relayed");
    held::drop_shadows(store, owner, &drop)
        .await
        .map_err(|e| (503, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::relay::queue::{Origin, QueueEntry};

    fn shadow(id: &str, before: &[&str]) -> HeldShadow {
        let entry = QueueEntry {
            id: id.into(),
            sender: "s@example.org".into(),
            recipients: Vec::new(),
            subject: "s".into(),
            size: 1,
            created_ms: 1,
            attempts: 0,
            next_attempt_ms: 1,
            last_error: None,
            origin: Origin::Inbound,
        };
        HeldShadow {
            entry,
            before: before.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn only_shadows_the_sender_held_before_this_holder_are_dropped() {
        let held = [
            shadow("01A", &["mx3"]),
            shadow("01B", &["mx4", "mx3"]),
            shadow("01C", &[]),
            shadow("01D", &["mx4"]),
        ];
        assert_eq!(relayed_by("mx3", &held), ["01A", "01B"]);
        assert!(relayed_by("mx5", &held).is_empty());
    }
}
