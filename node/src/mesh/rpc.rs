//! Admin operations forwarded to the node that can carry them out: the owner of a
//! quarantined message holds its bytes and is the only writer of its entry.
//!
//! Wire format: a JSON request (`{"op","id","admin"}`) in an `RPC` message; the answer is the
//! raw message for `raw` and the entry as JSON otherwise. Refusals travel as error frames
//! with code `APPLICATION_MIN + HTTP status`, so the asking node answers its client with
//! the owner's status and message.

use bytes::Bytes;
use mxmesh_crdt::qindex::IntentAction;
use serde::{Deserialize, Serialize};

use super::transport::{ErrorCode, MessageKind, Peer, RemoteError, TransportError};
use crate::node::Shared;
use crate::quarantine::QuarantineError;

/// One forwarded operation.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RpcRequest {
    pub op: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub admin: String,
    /// Trace filters, for `trace`.
    #[serde(default)]
    pub trace: Option<TraceArgs>,
}

/// The trace query, as forwarded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TraceArgs {
    pub sender: Option<String>,
    pub rcpt: Option<String>,
    pub since_ms: Option<u64>,
    pub message_id: Option<String>,
}

/// A node's relay queue, as forwarded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueueView {
    pub node: String,
    pub size: usize,
    pub entries: Vec<crate::relay::queue::QueueEntry>,
}

/// Queue entries a queue listing returns at most (oldest first); `size` gives the total.
pub const QUEUE_LIST_MAX: usize = 1000;

impl RpcRequest {
    pub fn raw(id: &str) -> RpcRequest {
        RpcRequest {
            id: id.into(),
            ..RpcRequest::op("raw")
        }
    }

    /// An operation without arguments (`queue`, `flush`, `drain`, `undrain`).
    pub fn op(op: &str) -> RpcRequest {
        RpcRequest {
            op: op.into(),
            id: String::new(),
            admin: String::new(),
            trace: None,
        }
    }

    pub fn trace(args: TraceArgs) -> RpcRequest {
        RpcRequest {
            trace: Some(args),
            ..RpcRequest::op("trace")
        }
    }

    pub fn act(action: IntentAction, id: &str, admin: &str) -> RpcRequest {
        let op = match action {
            IntentAction::Release => "release",
            IntentAction::Delete => "delete",
        };
        RpcRequest {
            id: id.into(),
            admin: admin.into(),
            ..RpcRequest::op(op)
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

/// Asks `node` to carry out `req`.
pub async fn call(shared: &Shared, node: &str, req: &RpcRequest) -> Result<Bytes, RpcError> {
    let mesh = shared.mesh.get().ok_or_else(|| {
        RpcError::Unreachable(format!(
            "node {node} is not this node and no [mesh] is configured"
        ))
    })?;
    let members = mesh.members().await;
    let member = members
        .iter()
        .find(|m| m.id == node && m.live)
        .ok_or_else(|| RpcError::Unreachable(format!("node {node} is not live")))?;
    let addr = member
        .mesh_addr
        .parse()
        .map_err(|_| RpcError::Unreachable(format!("node {node} has no mesh address")))?;
    let body = serde_json::to_vec(req).unwrap_or_default();
    match mesh
        .request(addr, MessageKind::RPC, Bytes::from(body))
        .await
    {
        Ok(answer) => Ok(answer),
        Err(TransportError::Remote { error, .. })
            if error.code.0 >= ErrorCode::APPLICATION_MIN.0 =>
        {
            Err(RpcError::Remote {
                status: error.code.0 - ErrorCode::APPLICATION_MIN.0,
                message: error.message,
            })
        }
        Err(e) => Err(RpcError::Unreachable(format!("node {node}: {e}"))),
    }
}

/// Carries out a forwarded operation on this node.
pub async fn serve(shared: &Shared, from: &Peer, body: &[u8]) -> Result<Bytes, RemoteError> {
    let req = decode_request(body)?;
    let admin = format!("{}@{}", req.admin, from.node_id);
    let q = &shared.quarantine;
    let entry = match req.op.as_str() {
        "raw" => return q.raw(&req.id).map(Bytes::from).map_err(q_refusal),
        "trace" => return json(&local_trace(shared, req.trace.unwrap_or_default()).await?),
        "queue" => return json(&local_queue(shared).await?),
        "flush" => {
            shared
                .relay
                .flush()
                .map_err(|e| refusal(503, e.to_string()))?;
            return json(&true);
        }
        "drain" | "undrain" => {
            shared
                .draining
                .store(req.op == "drain", std::sync::atomic::Ordering::SeqCst);
            return json(&shared.health());
        }
        "release" => q.release(&req.id, &shared.relay, &admin, None).await,
        "delete" => q.delete(&req.id, &admin, None).await,
        other => return Err(refusal(400, format!("rpc: unknown op {other:?}"))),
    }
    .map_err(q_refusal)?;
    let item = q
        .index()
        .get(&entry.id)
        .unwrap_or_else(|| crate::quarantine::index::index_entry(&entry));
    Ok(Bytes::from(
        serde_json::to_vec(&crate::admin::quarantine_item(&item)).unwrap_or_default(),
    ))
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
        QuarantineError::NotFound(_) => 404,
        QuarantineError::Gone { .. } | QuarantineError::Pending { .. } => 409,
        QuarantineError::Store(_) | QuarantineError::Index(_) => 503,
    };
    refusal(status, e.to_string())
}

fn json<T: Serialize>(v: &T) -> Result<Bytes, RemoteError> {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .map_err(|e| refusal(500, e.to_string()))
}

/// This node's trace events matching `args`.
pub async fn local_trace(
    shared: &Shared,
    args: TraceArgs,
) -> Result<Vec<crate::trace::TraceEvent>, RemoteError> {
    let q = crate::trace::TraceQuery {
        sender: args.sender,
        rcpt: args.rcpt,
        since_ms: args.since_ms,
        message_id: args.message_id,
    };
    let store = shared.store.clone();
    crate::rt::blocking(move || crate::trace::query(&store, &q))
        .await
        .map_err(|e| refusal(500, e.to_string()))?
        .map_err(|e| refusal(503, e.to_string()))
}

/// This node's relay queue.
pub async fn local_queue(shared: &Shared) -> Result<QueueView, RemoteError> {
    let relay = shared.relay.clone();
    let entries = crate::rt::blocking(move || relay.list(QUEUE_LIST_MAX))
        .await
        .map_err(|e| refusal(500, e.to_string()))?
        .map_err(|e| refusal(503, e.to_string()))?;
    Ok(QueueView {
        node: shared.config.node.id.clone(),
        size: shared.relay.scheduled(),
        entries,
    })
}
