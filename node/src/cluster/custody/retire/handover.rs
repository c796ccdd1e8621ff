//! A retire's hand-over of its quarantine in batches: the messages left are grouped by new
//! owner ([`plan`]: the first live holder of a copy, else the best candidate by rendezvous
//! hash), each group cut into calls of at most [`HANDOVER_BATCH_MAX`] messages and
//! [`HANDOVER_CALL_BYTES_MAX`] bytes. One call is one `adopt_batch` operation: the new owner
//! adopts the whole batch with one synced write and answers, then this node marks the batch
//! `moved` with one synced write (`Quarantine::hand_over_batch`).
//!
//! Nothing is lost and nothing is released twice: this node drops a message's bytes only
//! after the new owner answered, and refuses releases while it retires. A crash between the
//! two writes leaves the batch on both nodes; the retire asked again sends it again and the
//! new owner, already holding it, changes nothing (adoption is idempotent), and the new
//! owner's entries supersede this node's in every index meanwhile.

use std::collections::BTreeMap;

use mxmesh_crdt::qindex::IndexEntry;

use super::{ADOPT_ITEMS_MAX, HANDOVER_BATCH_MAX, HANDOVER_CALL_BYTES_MAX};
use crate::cluster::custody::{Custody, copies, decode_raw, encode_raw};
use crate::cluster::rpc::{self, AdoptItem, RpcError, RpcRequest};
use crate::mesh::Mesh;
use crate::quarantine::Entry;

/// Estimated payload per message beyond its bytes as base64 (the entry as JSON).
const ENTRY_BYTES_EST: usize = 4 * 1024;

/// One hand-over call: messages for one new owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The new owner.
    pub to: String,
    /// The messages' ids.
    pub ids: Vec<String>,
}

/// The node message `e` goes to: its first copy holder among `peers`, else the best of
/// `peers` by rendezvous hash.
fn destination(e: &IndexEntry, peers: &[String]) -> Option<String> {
    e.copies
        .iter()
        .find(|h| peers.contains(h))
        .cloned()
        .or_else(|| copies::rank(&e.id, peers, &[]).into_iter().next())
}

fn payload_est(e: &IndexEntry) -> usize {
    (e.size as usize).saturating_mul(4) / 3 + ENTRY_BYTES_EST
}

/// Cuts `left` into hand-over calls to `peers` (pure): grouped by [`destination`], in the
/// order given, each call bounded by count and estimated bytes.
pub fn plan(left: &[IndexEntry], peers: &[String]) -> Vec<Batch> {
    let mut open: BTreeMap<String, (Vec<String>, usize)> = BTreeMap::new();
    let mut out = Vec::new();
    for e in left {
        let Some(to) = destination(e, peers) else {
            continue;
        };
        let size = payload_est(e);
        let (ids, bytes) = open.entry(to.clone()).or_default();
        let full = ids.len() >= HANDOVER_BATCH_MAX || *bytes + size > HANDOVER_CALL_BYTES_MAX;
        if !ids.is_empty() && full {
            let ids = std::mem::take(ids);
            out.push(Batch {
                to: to.clone(),
                ids,
            });
            *bytes = 0;
        }
        ids.push(e.id.clone());
        *bytes += size;
    }
    out.extend(
        open.into_iter()
            .filter(|(_, (ids, _))| !ids.is_empty())
            .map(|(to, (ids, _))| Batch { to, ids }),
    );
    out
}

impl Custody {
    /// Hands `batch` over; answers the new owner and the ids moved, or how many were not
    /// moved and why.
    pub(super) async fn hand_over_batch(
        &self,
        batch: Batch,
    ) -> Result<(String, Vec<String>), (usize, String)> {
        let mesh = self.mesh();
        let to = batch.to.clone();
        let send = |items: Vec<(Entry, Vec<u8>)>| async move {
            send_adopt(mesh.as_deref(), &to, items).await
        };
        match self
            .quarantine()
            .hand_over_batch(&batch.ids, &batch.to, send)
            .await
        {
            Ok(moved) => Ok((batch.to, moved)),
            Err(e) => Err((batch.ids.len(), e.to_string())),
        }
    }
}

/// Sends one `adopt_batch` call; a node from before that operation (it answers 400: an
/// unknown operation) gets the messages one `adopt` at a time.
async fn send_adopt(
    mesh: Option<&Mesh>,
    to: &str,
    items: Vec<(Entry, Vec<u8>)>,
) -> Result<(), String> {
    let wire = |(entry, raw): (Entry, Vec<u8>)| AdoptItem {
        entry: Box::new(entry),
        raw: encode_raw(&raw),
    };
    let items: Vec<AdoptItem> = items.into_iter().map(wire).collect();
    let req = RpcRequest::AdoptBatch { items };
    let refused = match rpc::call(mesh, to, &req).await {
        Ok(_) => return Ok(()),
        Err(RpcError::Remote {
            status: 400,
            message,
        }) if message.contains("unknown variant") => message,
        Err(e) => return Err(e.to_string()),
    };
    let RpcRequest::AdoptBatch { items } = req else {
        return Err(refused);
    };
    for AdoptItem { entry, raw } in items {
        let one = RpcRequest::Adopt { entry, raw };
        rpc::call(mesh, to, &one).await.map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The new owner's side of `adopt_batch` from node `from`: only `from`'s own messages, at
/// most [`ADOPT_ITEMS_MAX`]; a node leaving the mesh takes none. Answered after one synced
/// write for the whole batch.
pub async fn serve_adopt_batch(
    custody: &Custody,
    from: &str,
    items: Vec<AdoptItem>,
) -> Result<(), (u16, String)> {
    if items.len() > ADOPT_ITEMS_MAX {
        let n = items.len();
        return Err((
            400,
            format!("adopt_batch: {n} messages (at most {ADOPT_ITEMS_MAX})"),
        ));
    }
    if let Some(item) = items.iter().find(|i| i.entry.meta.node != from) {
        let (id, owner) = (&item.entry.meta.id, &item.entry.meta.node);
        return Err((
            403,
            format!("message {id}: node {from} sent it but node {owner} owns it"),
        ));
    }
    if custody.departed() || custody.quarantine().retiring() {
        return Err((
            503,
            format!("node {} is leaving the mesh", custody.node_id()),
        ));
    }
    let mut decoded = Vec::with_capacity(items.len());
    for AdoptItem { entry, raw } in items {
        let raw = decode_raw(&raw).map_err(|e| (400, format!("message {}: {e}", entry.meta.id)))?;
        decoded.push((*entry, raw));
    }
    let q = custody.quarantine();
    match q.adopt_batch(&decoded, from).await {
        Ok(_) => Ok(()),
        Err(e @ crate::quarantine::QuarantineError::Gone { .. }) => Err((409, e.to_string())),
        Err(e) => Err((503, e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, size: u64, copies: &[&str]) -> IndexEntry {
        IndexEntry {
            id: id.into(),
            node: "mx2".into(),
            received_ms: 1,
            sender: "s@example.org".into(),
            recipients: vec!["u@example.com".into()],
            subject: "s".into(),
            size,
            reason: "test".into(),
            rule_id: None,
            score: None,
            symbols: Default::default(),
            status: mxmesh_crdt::qindex::EntryStatus::Quarantined,
            status_ms: 1,
            pending: None,
            seq: 0,
            copies: copies.iter().map(|c| c.to_string()).collect(),
            adopted_from: None,
            recipients_released: Vec::new(),
            recipients_deleted: Vec::new(),
        }
    }

    fn peers() -> Vec<String> {
        vec!["mx1".into(), "mx3".into()]
    }

    #[test]
    fn a_message_goes_to_a_live_copy_holder_first() {
        let left = [
            entry("01A", 10, &["mx9", "mx3"]),
            entry("01B", 10, &["mx1"]),
        ];
        let batches = plan(&left, &peers());
        let to_of = |id: &str| {
            batches
                .iter()
                .find(|b| b.ids.iter().any(|i| i == id))
                .unwrap()
                .to
                .clone()
        };
        assert_eq!((to_of("01A"), to_of("01B")), ("mx3".into(), "mx1".into()));
    }

    #[test]
    fn every_message_is_in_exactly_one_call_and_calls_are_bounded() {
        let n = 3 * HANDOVER_BATCH_MAX + 7;
        let left: Vec<IndexEntry> = (0..n)
            .map(|i| entry(&format!("{i:05}"), 4000, &[]))
            .collect();
        let batches = plan(&left, &peers());
        let mut all: Vec<&String> = batches.iter().flat_map(|b| &b.ids).collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "each message once");
        assert!(batches.iter().all(|b| b.ids.len() <= HANDOVER_BATCH_MAX));
        assert!(batches.iter().all(|b| peers().contains(&b.to)));
        // Rendezvous spreads them over both peers.
        assert!(batches.iter().any(|b| b.to == "mx1") && batches.iter().any(|b| b.to == "mx3"));
        assert!(batches.len() <= n / HANDOVER_BATCH_MAX + 1 + peers().len());
    }

    #[test]
    fn calls_are_bounded_in_bytes_and_a_big_message_goes_alone() {
        let big = HANDOVER_CALL_BYTES_MAX as u64;
        let left = [
            entry("01A", 3 * 1024 * 1024, &["mx1"]),
            entry("01B", 3 * 1024 * 1024, &["mx1"]),
            entry("01C", big, &["mx1"]),
            entry("01D", 10, &["mx1"]),
        ];
        let ids: Vec<Vec<String>> = plan(&left, &peers()).into_iter().map(|b| b.ids).collect();
        assert_eq!(
            ids,
            [
                vec!["01A".to_string()],
                vec!["01B".into()],
                vec!["01C".into()],
                vec!["01D".into()]
            ]
        );
    }

    #[test]
    fn with_no_peer_nothing_is_planned() {
        assert!(plan(&[entry("01A", 1, &[])], &[]).is_empty());
    }
}
