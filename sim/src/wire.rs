//! A recording of the mesh messages the nodes of a world exchange: every inbound message a
//! node's handler serves, with the answer it gave, as the current code wrote them. The
//! compatibility fixtures (`compat.rs`) are cut from it.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use mxmesh_node::mesh::{BoxFuture, Handler, MessageKind, Peer, RemoteError};

/// Exchanges a recording keeps at most; later ones are dropped (the fixtures need a few of
/// each kind, and a world of two nodes gossips a few times a second).
pub const WIRE_LOG_MAX: usize = 20_000;

/// One message a node served and what it answered.
#[derive(Clone)]
pub struct Exchange {
    /// The node that sent it.
    pub from: String,
    /// The node that served it.
    pub to: String,
    /// What it is about.
    pub kind: MessageKind,
    /// The body as sent.
    pub request: Bytes,
    /// The handler's answer, or the error it refused with.
    pub answer: Result<Bytes, RemoteError>,
}

/// The recording: shared by every node's handler.
#[derive(Default)]
pub struct WireLog {
    exchanges: Mutex<Vec<Exchange>>,
}

impl WireLog {
    /// Everything recorded so far, in the order the answers were given.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn push(&self, exchange: Exchange) {
        let mut log = self.exchanges.lock().unwrap_or_else(|e| e.into_inner());
        if log.len() < WIRE_LOG_MAX {
            log.push(exchange);
        }
    }
}

/// `handler` of node `to`, recording into `log` what it serves.
pub fn recording(handler: Arc<dyn Handler>, to: String, log: Arc<WireLog>) -> Arc<dyn Handler> {
    Arc::new(Recording { handler, to, log })
}

struct Recording {
    handler: Arc<dyn Handler>,
    to: String,
    log: Arc<WireLog>,
}

impl Handler for Recording {
    fn handle(
        &self,
        from: Peer,
        kind: MessageKind,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let served = self.handler.handle(from.clone(), kind, body.clone());
        let (to, log) = (self.to.clone(), self.log.clone());
        Box::pin(async move {
            let answer = served.await;
            log.push(Exchange {
                from: from.node_id,
                to,
                kind,
                request: body,
                answer: answer.clone(),
            });
            answer
        })
    }
}
