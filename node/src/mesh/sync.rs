//! The sync engines behind [`super::app::Replica`]: the client side of one sync with one
//! peer, the server side of one exchange, and the loop that picks peers each round. The
//! engines hold each replicated type weakly (the application owns it); the per-peer
//! session state of session-style types lives in the mesh's [`SessionTable`]s (one for
//! the conversations this node starts, one for those peers start).

use std::any::Any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use super::app::{PullSync, Replicated, SessionSync, SyncSpec};
use super::fanout;
use super::members::Member;
use super::self_check;
use super::service::Mesh;
use super::transport::{BoxFuture, ErrorCode, MessageKind, Peer, RemoteError};

/// One replicated type as the mesh drives it (object-safe, over either style).
pub(crate) trait Engine: Send + Sync + 'static {
    /// What every engine holds the same way: the type, its spec and its byte counts.
    fn handle(&self) -> &dyn HandleView;

    /// The type's schedule and channel (read once, when the replica is handed over).
    fn spec(&self) -> SyncSpec {
        self.handle().spec()
    }

    /// False once the application dropped the type.
    fn live(&self) -> bool {
        self.handle().live()
    }

    /// This node's digest, when the type publishes one.
    fn digest(&self) -> Option<String> {
        self.handle().digest()
    }

    /// Key-values the type publishes besides its digest.
    fn published(&self) -> Vec<(&'static str, String)> {
        self.handle().published()
    }

    /// The bytes this type's exchanges have carried to and from this node.
    fn traffic(&self) -> TrafficTotals {
        self.handle().traffic()
    }

    /// Syncs with `peer` until there is nothing left to exchange (bounded).
    fn sync_with<'a>(
        &'a self,
        mesh: &'a Mesh,
        peer: &'a Member,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Answers one inbound exchange; `sessions` holds the conversations peers started.
    fn serve(
        self: Arc<Self>,
        from: Peer,
        body: Bytes,
        sessions: &SessionTable,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>>;
}

/// The style-independent part of an engine, seen without its type.
pub(crate) trait HandleView: Send + Sync {
    /// See [`Engine::spec`].
    fn spec(&self) -> SyncSpec;
    /// See [`Engine::live`].
    fn live(&self) -> bool;
    /// See [`Engine::digest`].
    fn digest(&self) -> Option<String>;
    /// See [`Engine::published`].
    fn published(&self) -> Vec<(&'static str, String)>;
    /// See [`Engine::traffic`].
    fn traffic(&self) -> TrafficTotals;
}

/// A replicated type held weakly (the application owns it), with its spec and byte counts.
pub(crate) struct Handle<R> {
    spec: SyncSpec,
    replica: Weak<R>,
    traffic: Arc<Traffic>,
}

impl<R: Replicated> Handle<R> {
    fn new(replica: &Arc<R>) -> Handle<R> {
        Handle {
            spec: replica.spec(),
            replica: Arc::downgrade(replica),
            traffic: Arc::default(),
        }
    }

    /// The client side's start of a sync with `peer`: its address and the type, or why not.
    fn target(&self, peer: &Member) -> anyhow::Result<(SocketAddr, Arc<R>)> {
        let addr: SocketAddr = peer.mesh_addr.parse()?;
        let replica = self
            .replica
            .upgrade()
            .ok_or_else(|| anyhow::anyhow!("{} sync: stopping", self.spec.name))?;
        Ok((addr, replica))
    }
}

impl<R: Replicated> HandleView for Handle<R> {
    fn spec(&self) -> SyncSpec {
        self.spec
    }

    fn live(&self) -> bool {
        self.replica.strong_count() > 0
    }

    fn digest(&self) -> Option<String> {
        self.replica.upgrade()?.digest()
    }

    fn published(&self) -> Vec<(&'static str, String)> {
        self.replica
            .upgrade()
            .map(|r| r.published())
            .unwrap_or_default()
    }

    fn traffic(&self) -> TrafficTotals {
        self.traffic.totals()
    }
}

/// Payload bytes of one replicated type's exchanges, counted on this node in both roles
/// (asker: its requests sent, the answers received; answerer: the requests received, its
/// answers sent), before framing and QUIC. Summed over every node, sent equals received
/// when every exchange completed (a lost or refused one counts only where its bytes went).
#[derive(Debug, Default)]
pub(crate) struct Traffic {
    sent: AtomicU64,
    received: AtomicU64,
}

impl Traffic {
    fn add(counter: &AtomicU64, bytes: usize) {
        counter.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn sent(&self, bytes: usize) {
        Traffic::add(&self.sent, bytes);
    }

    fn received(&self, bytes: usize) {
        Traffic::add(&self.received, bytes);
    }

    fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            sent: self.sent.load(Ordering::Relaxed),
            received: self.received.load(Ordering::Relaxed),
        }
    }
}

/// One replicated type's payload bytes on this node since it started, counted in both roles
/// (see `Mesh::sync_traffic`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrafficTotals {
    /// Bytes this node sent (requests as asker, answers as answerer).
    pub sent: u64,
    /// Bytes this node received (answers as asker, requests as answerer).
    pub received: u64,
}

/// One exchange as the asker: sends `body` over `kind` to `addr`, counting both ways.
async fn exchange(
    mesh: &Mesh,
    traffic: &Traffic,
    addr: SocketAddr,
    kind: MessageKind,
    body: Vec<u8>,
) -> Result<Bytes, super::transport::TransportError> {
    traffic.sent(body.len());
    let answer = mesh.request(addr, kind, Bytes::from(body)).await?;
    traffic.received(answer.len());
    Ok(answer)
}

/// One exchange as the answerer: counts the request (`received` bytes), runs `answer`,
/// counts what it sends.
fn answered(
    traffic: Arc<Traffic>,
    received: usize,
    answer: BoxFuture<'static, Result<Bytes, RemoteError>>,
) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
    traffic.received(received);
    Box::pin(async move {
        let answer = answer.await?;
        traffic.sent(answer.len());
        Ok(answer)
    })
}

/// One side's session state of one conversation, type-erased (each engine keeps its own
/// type under its own message kind).
type SessionSlot = Arc<tokio::sync::Mutex<Box<dyn Any + Send>>>;

/// The sessions of session-style types, by (type, peer).
pub(crate) struct SessionTable(Mutex<HashMap<(MessageKind, String), SessionSlot>>);

impl SessionTable {
    pub(crate) fn new() -> SessionTable {
        SessionTable(Mutex::new(HashMap::new()))
    }

    /// The session of type `T` for `kind` with `peer` (a new one the first time).
    fn get<T: Default + Send + 'static>(&self, kind: MessageKind, peer: &str) -> SessionSlot {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.entry((kind, peer.to_string()))
            .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(Box::new(T::default()))))
            .clone()
    }
}

/// The session of type `T` in `slot`, replacing whatever else it held by a new one.
fn session_of<T: Default + Send + 'static>(slot: &mut Box<dyn Any + Send>) -> &mut T {
    if !slot.is::<T>() {
        *slot = Box::new(T::default());
    }
    match slot.downcast_mut::<T>() {
        Some(session) => session,
        None => unreachable!("the slot was just given a session of this type"),
    }
}

fn stopping() -> RemoteError {
    RemoteError::new(ErrorCode::UNAVAILABLE, "node stopping")
}

/// Runs pull-style exchanges for a [`PullSync`].
pub(crate) struct PullEngine<P>(Handle<P>);

impl<P: PullSync> PullEngine<P> {
    pub(crate) fn new(replica: &Arc<P>) -> PullEngine<P> {
        PullEngine(Handle::new(replica))
    }
}

impl<P: PullSync> Engine for PullEngine<P> {
    fn handle(&self) -> &dyn HandleView {
        &self.0
    }

    fn sync_with<'a>(
        &'a self,
        mesh: &'a Mesh,
        peer: &'a Member,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let (addr, replica) = self.0.target(peer)?;
            let spec = self.0.spec;
            for _ in 0..spec.rounds_max {
                let ours = replica.request()?;
                let answer = exchange(mesh, &self.0.traffic, addr, spec.kind, ours).await?;
                if !replica.apply(&answer)? {
                    return Ok(());
                }
            }
            Ok(())
        })
    }

    fn serve(
        self: Arc<Self>,
        from: Peer,
        body: Bytes,
        _sessions: &SessionTable,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let replica = self.0.replica.upgrade();
        let received = body.len();
        let answer = Box::pin(async move {
            let replica = replica.ok_or_else(stopping)?;
            replica.serve(&from, &body).map(Bytes::from)
        });
        answered(self.0.traffic.clone(), received, answer)
    }
}

/// Runs session-style conversations for a [`SessionSync`].
pub(crate) struct SessionEngine<S: SessionSync>(Handle<S>);

impl<S: SessionSync> SessionEngine<S> {
    pub(crate) fn new(replica: &Arc<S>) -> SessionEngine<S> {
        SessionEngine(Handle::new(replica))
    }
}

impl<S: SessionSync> Engine for SessionEngine<S> {
    fn handle(&self) -> &dyn HandleView {
        &self.0
    }

    /// One client-side conversation with `peer` until neither side has anything to say.
    fn sync_with<'a>(
        &'a self,
        mesh: &'a Mesh,
        peer: &'a Member,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let (addr, replica) = self.0.target(peer)?;
            let spec = self.0.spec;
            let slot = mesh.client_sessions.get::<S::Session>(spec.kind, &peer.id);
            let mut slot = slot.lock().await;
            let session = session_of::<S::Session>(&mut slot);
            for _ in 0..spec.rounds_max {
                let ours = replica.generate(session).unwrap_or_default();
                let sent_nothing = ours.is_empty();
                let answer = match exchange(mesh, &self.0.traffic, addr, spec.kind, ours).await {
                    Ok(a) => a,
                    Err(e) => {
                        S::reset(session);
                        return Err(e.into());
                    }
                };
                if answer.is_empty() && sent_nothing {
                    return Ok(());
                }
                if !answer.is_empty()
                    && let Err(e) = replica.receive(session, &answer).await
                {
                    S::reset(session);
                    return Err(e);
                }
            }
            // A conversation that never quiets down is stuck (each side waiting for
            // something the other believes it sent): start over, on both sides.
            S::reset(session);
            anyhow::bail!(
                "{} sync with {}: no agreement in {} rounds; session reset",
                spec.name,
                peer.id,
                spec.rounds_max
            )
        })
    }

    /// One server-side step of the conversation `from` started.
    fn serve(
        self: Arc<Self>,
        from: Peer,
        body: Bytes,
        sessions: &SessionTable,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let replica = self.0.replica.upgrade();
        let slot = sessions.get::<S::Session>(self.0.spec.kind, &from.node_id);
        let name = self.0.spec.name;
        let received = body.len();
        let answer = Box::pin(async move {
            let replica = replica.ok_or_else(stopping)?;
            let mut slot = slot.lock().await;
            let session = session_of::<S::Session>(&mut slot);
            if !body.is_empty()
                && let Err(e) = replica.receive(session, &body).await
            {
                S::reset(session);
                tracing::warn!(peer = %from.node_id, error = %e, sync = name, "sync message refused; session reset");
                return Err(RemoteError::handler(format!("{name} sync refused: {e}")));
            }
            Ok(Bytes::from(replica.generate(session).unwrap_or_default()))
        });
        answered(self.0.traffic.clone(), received, answer)
    }
}

/// Whether `peer` publishes a digest other than `ours` under `key` (always, without a key).
fn digest_differs(peer: &Member, key: Option<&str>, ours: Option<&str>) -> bool {
    match key {
        Some(key) => peer.get(key).unwrap_or_default() != ours.unwrap_or_default(),
        None => true,
    }
}

/// Syncs one replicated type, every [`SyncSpec::interval`], with a bounded window of the
/// live peers (those whose published digest differs from ours, when it has one). Ends
/// when the mesh or the type is gone.
pub(crate) async fn sync_loop(engine: Arc<dyn Engine>, mesh: Weak<Mesh>) {
    let spec = engine.spec();
    let mut tick = tokio::time::interval(spec.interval);
    for round in 0u64.. {
        tick.tick().await;
        let Some(mesh) = mesh.upgrade() else {
            return;
        };
        if !engine.live() {
            return;
        }
        if self_check::sync_broken(spec.name) {
            continue;
        }
        let ours = engine.digest();
        let members = mesh.members_recent().await;
        let candidates: Vec<&Member> = members
            .iter()
            .filter(|m| {
                m.id != mesh.node_id
                    && m.live
                    && digest_differs(m, spec.digest_key, ours.as_deref())
            })
            .collect();
        for peer in fanout::window(&candidates, &mesh.node_id, round, spec.peers_max) {
            if spec.digest_key.is_some()
                && !digest_differs(peer, spec.digest_key, engine.digest().as_deref())
            {
                continue; // an earlier sync this round brought us to where it is
            }
            if let Err(e) = engine.sync_with(&mesh, peer).await {
                tracing::debug!(peer = %peer.id, error = %e, sync = spec.name, "sync failed; will retry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Answers a request with it twice.
    struct Doubler;

    impl Replicated for Doubler {
        fn spec(&self) -> SyncSpec {
            SyncSpec {
                name: "doubler",
                kind: MessageKind(60),
                interval: Duration::from_secs(1),
                peers_max: 1,
                rounds_max: 1,
                digest_key: None,
            }
        }
    }

    impl PullSync for Doubler {
        fn request(&self) -> anyhow::Result<Vec<u8>> {
            Ok(b"v".to_vec())
        }

        fn serve(&self, _from: &Peer, request: &[u8]) -> Result<Vec<u8>, RemoteError> {
            Ok([request, request].concat())
        }

        fn apply(&self, _answer: &[u8]) -> anyhow::Result<bool> {
            Ok(false)
        }
    }

    fn peer() -> Peer {
        Peer {
            node_id: "mx2".into(),
            addr: "127.0.0.2:7946".parse().unwrap(),
        }
    }

    #[tokio::test]
    async fn the_answerer_counts_requests_received_and_answers_sent() {
        let replica = Arc::new(Doubler);
        let engine = Arc::new(PullEngine::new(&replica));
        let sessions = SessionTable::new();
        assert_eq!(engine.traffic(), TrafficTotals::default());
        for body in [&b"abc"[..], b"de"] {
            let answer = engine
                .clone()
                .serve(peer(), Bytes::from_static(body), &sessions)
                .await
                .unwrap();
            assert_eq!(answer.len(), 2 * body.len());
        }
        let want = TrafficTotals {
            sent: 10,
            received: 5,
        };
        assert_eq!(engine.traffic(), want);
        // A request that gets no answer is counted as received only.
        drop(replica);
        let refused = engine
            .clone()
            .serve(peer(), Bytes::from_static(b"xyz"), &sessions)
            .await;
        assert!(refused.is_err());
        assert_eq!(engine.traffic().received, 8);
        assert_eq!(engine.traffic().sent, 10);
    }
}
