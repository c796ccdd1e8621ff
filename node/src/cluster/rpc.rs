//! Admin operations forwarded to the node that can carry them out: the owner of a
//! quarantined message holds its bytes and is the only writer of its entry; a node's
//! relay queue, trace log and draining switch are its own.
//!
//! Wire format: a JSON [`RpcRequest`] (`{"op": …}`) in an `RPC` message. The answer is the
//! raw message for `raw`, the entry as the owner's index holds it (`IndexEntry`) for
//! `release`/`delete`, the events for `trace`, a [`QueueView`] for `queue`, `true` for
//! `flush`, and the node's health for `drain`/`undrain` — encodings between nodes, which
//! the admin API maps to its own shapes. Refusals travel as error frames with code
//! `APPLICATION_MIN + HTTP status`, so the asking node answers its client with the owner's
//! status and message.

use bytes::Bytes;
use mxmesh_crdt::qindex::IntentAction;
use serde::{Deserialize, Serialize};

use crate::health::Health;
use crate::mesh::{
    ErrorCode, MemberRequestError, Mesh, MessageKind, Peer, RemoteError, TransportError,
};
use crate::quarantine::{Quarantine, QuarantineError};
use crate::relay::Relay;
use crate::relay::queue::QueueEntry;
use crate::stats::series::{SeriesArgs, SeriesQuery};
use crate::store::Store;
use crate::trace::{TraceEvent, TraceQuery};

/// One forwarded operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum RpcRequest {
    /// The raw bytes of a quarantined message.
    Raw {
        #[serde(default)]
        id: String,
    },
    /// Release a quarantined message (by `admin`, as named on the asking node).
    Release {
        #[serde(default)]
        id: String,
        #[serde(default)]
        admin: String,
    },
    /// Delete a quarantined message.
    Delete {
        #[serde(default)]
        id: String,
        #[serde(default)]
        admin: String,
    },
    /// The node's trace events matching the filters.
    Trace {
        #[serde(default)]
        trace: Option<TraceArgs>,
    },
    /// The node's relay queue.
    Queue,
    /// Retry the node's relay queue now.
    Flush,
    /// Take the node out of new traffic, until `Undrain` (kept across restarts).
    Drain,
    /// Put the node back into traffic.
    Undrain,
    /// The node's per-minute counter history, in the asking node's buckets.
    Series {
        #[serde(default)]
        series: SeriesArgs,
    },
    /// Keep a durable copy of the sender's quarantined message (answered after a synced
    /// write).
    HoldCopy {
        entry: Box<crate::quarantine::Entry>,
        /// The message bytes, base64.
        raw: String,
    },
    /// Take the sender's quarantined message over as this node's own (retire hand-over;
    /// answered after a synced write).
    Adopt {
        entry: Box<crate::quarantine::Entry>,
        /// The message bytes, base64.
        raw: String,
    },
    /// Take several of the sender's quarantined messages over as this node's own (a
    /// retire's hand-over, at most `custody::retire::ADOPT_ITEMS_MAX`; answered after one
    /// synced write for all).
    AdoptBatch { items: Vec<AdoptItem> },
    /// Take over a queue entry of the sender (retire hand-over; answered after a synced
    /// write).
    TakeQueued {
        entry: Box<QueueEntry>,
        /// The message bytes, base64.
        body: String,
    },
    /// Keep durable shadows of the sender's relay queue entries (answered after one synced
    /// write).
    HoldShadows {
        shadows: Vec<super::custody::shadow::ShadowItem>,
    },
    /// Drop the shadows of the sender's queue entries `ids` (they left its queue).
    DropShadows {
        #[serde(default)]
        ids: Vec<String>,
    },
    /// Drop the shadows of `owner`'s queue entries `ids`: the sender, an earlier holder of
    /// each, relayed them after `owner` was forgotten.
    DropRelayedShadows {
        #[serde(default)]
        owner: String,
        #[serde(default)]
        ids: Vec<String>,
    },
    /// The bytes of a copy this node holds of another node's message.
    CopyRaw {
        #[serde(default)]
        id: String,
    },
    /// Start retiring this node (or report how far it got): a `Progress`.
    Retire {
        #[serde(default)]
        admin: String,
    },
    /// Release a quarantined message to one of its recipients only. A variant of its own,
    /// not a field of `release`: a node of an older release refuses it as an unknown
    /// operation (400) instead of reading it as a release to everyone.
    ReleaseFor {
        id: String,
        admin: String,
        /// The recipient, as the message's entry spells it.
        rcpt: String,
    },
    /// Delete a quarantined message for one of its recipients only (as `release_for`).
    DeleteFor {
        id: String,
        admin: String,
        /// The recipient, as the message's entry spells it.
        rcpt: String,
    },
}

/// One message of an `adopt_batch`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptItem {
    /// The owner's entry.
    pub entry: Box<crate::quarantine::Entry>,
    /// The message bytes, base64.
    pub raw: String,
}

/// The trace query, as forwarded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TraceArgs {
    /// `sender=`: only events of messages from this sender (`None`: any).
    pub sender: Option<String>,
    /// `rcpt=`: only events of messages to this recipient (`None`: any).
    pub rcpt: Option<String>,
    /// `since=`: only events at or after this time, ms since the epoch (`None`: all kept).
    pub since_ms: Option<u64>,
    /// `id=`: only events of the message with this id (`None`: any).
    pub message_id: Option<String>,
}

/// A node's relay queue, as forwarded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueView {
    /// The node whose queue it is.
    pub node: String,
    /// Entries waiting in all.
    pub size: usize,
    /// The oldest [`QUEUE_LIST_MAX`] of them.
    pub entries: Vec<QueueEntry>,
}

/// Queue entries a queue listing returns at most (oldest first); `size` gives the total.
pub const QUEUE_LIST_MAX: usize = 1000;

impl RpcRequest {
    /// `raw` of message `id`.
    pub fn raw(id: &str) -> RpcRequest {
        RpcRequest::Raw { id: id.into() }
    }

    /// `trace` with `args`.
    pub fn trace(args: TraceArgs) -> RpcRequest {
        RpcRequest::Trace { trace: Some(args) }
    }

    /// `release` or `delete` of message `id` by `admin`, for recipient `rcpt` only
    /// (`release_for`, `delete_for`) or for every recipient still undecided.
    pub fn act(action: IntentAction, id: &str, admin: &str, rcpt: Option<&str>) -> RpcRequest {
        let (id, admin) = (id.to_string(), admin.to_string());
        match (action, rcpt.map(str::to_string)) {
            (IntentAction::Release, None) => RpcRequest::Release { id, admin },
            (IntentAction::Delete, None) => RpcRequest::Delete { id, admin },
            (IntentAction::Release, Some(rcpt)) => RpcRequest::ReleaseFor { id, admin, rcpt },
            (IntentAction::Delete, Some(rcpt)) => RpcRequest::DeleteFor { id, admin, rcpt },
        }
    }
}

/// Why a forwarded operation did not succeed.
#[derive(Debug)]
pub enum RpcError {
    /// The owner answered with a refusal (HTTP status and message).
    Remote { status: u16, message: String },
    /// The owner could not be asked (not live, no mesh, transport failure).
    Unreachable(String),
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RpcError::Remote { status, message } => write!(f, "refused ({status}): {message}"),
            RpcError::Unreachable(why) => f.write_str(why),
        }
    }
}

/// Asks `node` to carry out `req` over `mesh` (`None` without `[mesh]`).
pub async fn call(mesh: Option<&Mesh>, node: &str, req: &RpcRequest) -> Result<Bytes, RpcError> {
    let mesh = mesh.ok_or_else(|| {
        RpcError::Unreachable(format!(
            "node {node} is not this node and no [mesh] is configured"
        ))
    })?;
    let body = serde_json::to_vec(req).unwrap_or_default();
    match mesh
        .request_member(node, MessageKind::RPC, Bytes::from(body))
        .await
    {
        Ok(answer) => Ok(answer),
        Err(MemberRequestError::NotLive) => {
            Err(RpcError::Unreachable(format!("node {node} is not live")))
        }
        Err(MemberRequestError::NoAddress) => Err(RpcError::Unreachable(format!(
            "node {node} has no mesh address"
        ))),
        Err(MemberRequestError::Transport(TransportError::Remote { error, .. }))
            if error.code.0 >= ErrorCode::APPLICATION_MIN.0 =>
        {
            Err(RpcError::Remote {
                status: error.code.0 - ErrorCode::APPLICATION_MIN.0,
                message: error.message,
            })
        }
        Err(MemberRequestError::Transport(e)) => {
            Err(RpcError::Unreachable(format!("node {node}: {e}")))
        }
    }
}

/// What forwarded operations act on.
pub struct Ops {
    /// This node's id (an operation for another owner is refused).
    pub node_id: String,
    /// Copies, shadows, adoption and retire: what custody operations act on.
    pub custody: super::custody::Custody,
    /// This node's health, for `drain`/`undrain`.
    pub health: Health,
    /// This node's store (trace events, the counters' per-minute history).
    pub store: Store,
    /// This node's relay queue (queue listing, flush, releases).
    pub relay: Relay,
    /// This node's quarantine (show, raw, release, delete).
    pub quarantine: Quarantine,
}

impl Ops {
    /// Carries out a forwarded operation on this node.
    pub async fn serve(&self, from: &Peer, body: &[u8]) -> Result<Bytes, RemoteError> {
        let q = &self.quarantine;
        let entry = match decode_request(body)? {
            RpcRequest::Raw { id } => return q.raw(&id).map(Bytes::from).map_err(q_refusal),
            RpcRequest::Trace { trace } => {
                return json(&local_trace(&self.store, trace.unwrap_or_default()).await?);
            }
            RpcRequest::Queue => return json(&local_queue(&self.node_id, &self.relay).await?),
            RpcRequest::Flush => {
                self.relay
                    .flush()
                    .map_err(|e| refusal(503, e.to_string()))?;
                return json(&true);
            }
            RpcRequest::Series { series } => {
                let q = SeriesQuery::from_args(&series).map_err(|e| refusal(400, e.to_string()))?;
                let points = q
                    .read(&self.store)
                    .map_err(|e| refusal(503, e.to_string()))?;
                return json(&points);
            }
            RpcRequest::HoldCopy { entry, raw } => {
                return self.custody_op(from, &entry, &raw, false).await;
            }
            RpcRequest::Adopt { entry, raw } => {
                return self.custody_op(from, &entry, &raw, true).await;
            }
            RpcRequest::AdoptBatch { items } => {
                super::custody::retire::serve_adopt_batch(&self.custody, &from.node_id, items)
                    .await
                    .map_err(|(status, why)| refusal(status, why))?;
                return json(&true);
            }
            RpcRequest::TakeQueued { entry, body } => {
                if self.custody.departed() || self.quarantine.retiring() {
                    let why = format!("node {} is leaving the mesh", self.node_id);
                    return Err(refusal(503, why));
                }
                let body = super::custody::decode_raw(&body).map_err(|e| refusal(400, e))?;
                let mut shadow = crate::store::Batch::new();
                super::custody::shadow::held::stage_drop(&mut shadow, &from.node_id, &entry.id);
                self.relay
                    .take_over(&entry, &body, shadow)
                    .await
                    .map_err(|e| refusal(503, e.to_string()))?;
                return json(&true);
            }
            RpcRequest::HoldShadows { shadows } => {
                super::custody::shadow::held::serve_hold(&self.custody, &from.node_id, shadows)
                    .await
                    .map_err(|(status, why)| refusal(status, why))?;
                return json(&true);
            }
            RpcRequest::DropShadows { ids } => {
                super::custody::shadow::held::serve_drop(&self.custody, &from.node_id, &ids)
                    .await
                    .map_err(|(status, why)| refusal(status, why))?;
                return json(&true);
            }
            RpcRequest::DropRelayedShadows { owner, ids } => {
                let custody = &self.custody;
                super::custody::shadow::relayed::serve_drop(custody, &from.node_id, &owner, &ids)
                    .await
                    .map_err(|(status, why)| refusal(status, why))?;
                return json(&true);
            }
            RpcRequest::CopyRaw { id } => {
                return match q.copy_raw(&id) {
                    Ok(Some(raw)) => Ok(Bytes::from(raw)),
                    Ok(None) => Err(refusal(404, format!("no copy of message {id} here"))),
                    Err(e) => Err(refusal(503, e.to_string())),
                };
            }
            RpcRequest::Retire { admin } => {
                let admin = format!("{admin}@{}", from.node_id);
                return json(&self.custody.retire(&admin));
            }
            RpcRequest::Drain => return self.set_drained(true).await,
            RpcRequest::Undrain => return self.set_drained(false).await,
            RpcRequest::Release { id, admin } => {
                let admin = format!("{admin}@{}", from.node_id);
                q.release(&id, &self.relay, &admin, None).await
            }
            RpcRequest::Delete { id, admin } => {
                let admin = format!("{admin}@{}", from.node_id);
                q.delete(&id, &admin, None).await
            }
            RpcRequest::ReleaseFor { id, admin, rcpt } => {
                let admin = format!("{admin}@{}", from.node_id);
                q.release_for(&id, Some(&rcpt), &self.relay, &admin, None)
                    .await
            }
            RpcRequest::DeleteFor { id, admin, rcpt } => {
                let admin = format!("{admin}@{}", from.node_id);
                q.delete_for(&id, Some(&rcpt), &admin, None).await
            }
        }
        .map_err(q_refusal)?;
        let item = q
            .index()
            .get(&entry.meta.id)
            .unwrap_or_else(|| crate::quarantine::index::index_entry(&entry));
        json(&item)
    }
}

impl Ops {
    /// Holds a copy of (`adopt` false) or adopts (`adopt` true) the sender's message.
    /// Only the message's owner may send it; a departed or retiring node takes nothing.
    async fn custody_op(
        &self,
        from: &Peer,
        entry: &crate::quarantine::Entry,
        raw: &str,
        adopt: bool,
    ) -> Result<Bytes, RemoteError> {
        if entry.meta.node != from.node_id {
            return Err(refusal(
                403,
                format!(
                    "message {}: node {} sent it but node {} owns it",
                    entry.meta.id, from.node_id, entry.meta.node
                ),
            ));
        }
        if self.custody.departed() || self.quarantine.retiring() {
            return Err(refusal(
                503,
                format!("node {} is leaving the mesh", self.node_id),
            ));
        }
        let raw = super::custody::decode_raw(raw).map_err(|e| refusal(400, e))?;
        let q = &self.quarantine;
        match adopt {
            true => q.adopt(entry, &raw, &from.node_id).await.map(|_| ()),
            false if super::custody::BREAK_COPIES.load(std::sync::atomic::Ordering::Relaxed) => {
                Ok(())
            }
            false => q.hold_copy(entry, &raw).await,
        }
        .map_err(q_refusal)?;
        json(&true)
    }

    /// Drains or undrains this node (persisted); answers the health that results.
    async fn set_drained(&self, on: bool) -> Result<Bytes, RemoteError> {
        self.health
            .set_drained(on)
            .await
            .map_err(|e| refusal(503, e.to_string()))?;
        json(&self.health.get())
    }
}

/// Reads a forwarded operation from an `RPC` message body; malformed input is a 400 refusal.
pub fn decode_request(body: &[u8]) -> Result<RpcRequest, RemoteError> {
    serde_json::from_slice(body).map_err(|e| refusal(400, format!("rpc: invalid request: {e}")))
}

fn refusal(status: u16, message: String) -> RemoteError {
    RemoteError::new(ErrorCode(ErrorCode::APPLICATION_MIN.0 + status), message)
}

fn q_refusal(e: QuarantineError) -> RemoteError {
    let status = match e {
        QuarantineError::NotFound(_) | QuarantineError::NotRecipient { .. } => 404,
        QuarantineError::Gone { .. }
        | QuarantineError::RecipientGone { .. }
        | QuarantineError::Pending { .. } => 409,
        QuarantineError::Store(_)
        | QuarantineError::Index(_)
        | QuarantineError::Retiring { .. }
        | QuarantineError::HandOver { .. } => 503,
    };
    refusal(status, e.to_string())
}

fn json<T: Serialize>(v: &T) -> Result<Bytes, RemoteError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| refusal(500, e.to_string()))
}

/// This node's trace events matching `args`.
pub async fn local_trace(store: &Store, args: TraceArgs) -> Result<Vec<TraceEvent>, RemoteError> {
    let q = TraceQuery {
        sender: args.sender,
        rcpt: args.rcpt,
        since_ms: args.since_ms,
        message_id: args.message_id,
    };
    let store = store.clone();
    crate::rt::blocking(move || crate::trace::query(&store, &q))
        .await
        .map_err(|e| refusal(500, e.to_string()))?
        .map_err(|e| refusal(503, e.to_string()))
}

/// This node's relay queue.
pub async fn local_queue(node_id: &str, relay: &Relay) -> Result<QueueView, RemoteError> {
    let listing = relay.clone();
    let entries = crate::rt::blocking(move || listing.list(QUEUE_LIST_MAX))
        .await
        .map_err(|e| refusal(500, e.to_string()))?
        .map_err(|e| refusal(503, e.to_string()))?;
    Ok(QueueView {
        node: node_id.to_string(),
        size: relay.scheduled(),
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_read_the_wire_form_of_every_version() {
        // As nodes before the typed operations wrote them: every field, always.
        let old = |op: &str| {
            format!(r#"{{"op":"{op}","id":"01A","admin":"ops","trace":null}}"#).into_bytes()
        };
        assert_eq!(decode_request(&old("queue")).unwrap(), RpcRequest::Queue);
        assert_eq!(
            decode_request(&old("undrain")).unwrap(),
            RpcRequest::Undrain
        );
        assert_eq!(
            decode_request(&old("release")).unwrap(),
            RpcRequest::act(IntentAction::Release, "01A", "ops", None)
        );
        assert_eq!(
            decode_request(&old("trace")).unwrap(),
            RpcRequest::Trace { trace: None }
        );
        for req in [
            RpcRequest::raw("01A"),
            RpcRequest::trace(TraceArgs::default()),
            RpcRequest::act(IntentAction::Delete, "01B", "ops", None),
            RpcRequest::act(IntentAction::Release, "01B", "ops", Some("a@example.com")),
            RpcRequest::act(IntentAction::Delete, "01B", "ops", Some("a@example.com")),
            RpcRequest::Flush,
        ] {
            let wire = serde_json::to_vec(&req).unwrap();
            assert_eq!(decode_request(&wire).unwrap(), req);
        }
    }

    /// The release and delete operations as a node before per-recipient decisions decodes
    /// them (the same tag, unknown fields ignored).
    #[derive(Debug, Deserialize)]
    #[serde(tag = "op", rename_all = "snake_case")]
    #[allow(dead_code)]
    enum OlderRpc {
        Release { id: String, admin: String },
        Delete { id: String, admin: String },
    }

    #[test]
    fn an_older_node_refuses_a_per_recipient_operation_instead_of_acting_for_everyone() {
        for action in [IntentAction::Release, IntentAction::Delete] {
            let req = RpcRequest::act(action, "01A", "ops", Some("alice@example.com"));
            let wire = serde_json::to_vec(&req).unwrap();
            let err = serde_json::from_slice::<OlderRpc>(&wire).unwrap_err();
            assert!(err.to_string().contains("unknown variant"), "{err}");
        }
    }

    #[test]
    fn an_unknown_or_malformed_operation_is_a_400_refusal() {
        for body in [&br#"{"op":"reboot"}"#[..], b"{}", b"not json"] {
            let err = decode_request(body).unwrap_err();
            assert_eq!(err.code.0, ErrorCode::APPLICATION_MIN.0 + 400, "{err}");
        }
    }
}
