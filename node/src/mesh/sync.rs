//! The sync engines behind [`super::app::Replica`]: the client side of one sync with one
//! peer, the server side of one exchange, and the loop that picks peers each round. The
//! engines hold each replicated type weakly (the application owns it) and keep the
//! per-peer session state of session-style types.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use super::app::{PullSync, SessionSync, SyncSpec};
use super::fanout;
use super::members::Member;
use super::self_check;
use super::service::Mesh;
use super::transport::{BoxFuture, ErrorCode, Peer, RemoteError};

/// One replicated type as the mesh drives it (object-safe, over either style).
pub(crate) trait Engine: Send + Sync + 'static {
    /// The type's schedule and channel (read once, when the replica is handed over).
    fn spec(&self) -> SyncSpec;

    /// False once the application dropped the type.
    fn live(&self) -> bool;

    /// This node's digest, when the type publishes one.
    fn digest(&self) -> Option<String>;

    /// Key-values the type publishes besides its digest.
    fn published(&self) -> Vec<(&'static str, String)>;

    /// Syncs with `peer` until there is nothing left to exchange (bounded).
    fn sync_with<'a>(
        &'a self,
        mesh: &'a Mesh,
        peer: &'a Member,
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Answers one inbound exchange.
    fn serve(
        self: Arc<Self>,
        from: Peer,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>>;
}

fn stopping() -> RemoteError {
    RemoteError::new(ErrorCode::UNAVAILABLE, "node stopping")
}

/// Runs pull-style exchanges for a [`PullSync`].
pub(crate) struct PullEngine<P> {
    spec: SyncSpec,
    replica: Weak<P>,
}

impl<P: PullSync> PullEngine<P> {
    pub(crate) fn new(replica: &Arc<P>) -> PullEngine<P> {
        PullEngine {
            spec: replica.spec(),
            replica: Arc::downgrade(replica),
        }
    }
}

impl<P: PullSync> Engine for PullEngine<P> {
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

    fn sync_with<'a>(
        &'a self,
        mesh: &'a Mesh,
        peer: &'a Member,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let addr: SocketAddr = peer.mesh_addr.parse()?;
            let replica = self
                .replica
                .upgrade()
                .ok_or_else(|| anyhow::anyhow!("{} sync: stopping", self.spec.name))?;
            for _ in 0..self.spec.rounds_max {
                let ours = replica.request()?;
                let answer = mesh
                    .request(addr, self.spec.kind, Bytes::from(ours))
                    .await?;
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
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let replica = self.replica.upgrade();
        Box::pin(async move {
            let replica = replica.ok_or_else(stopping)?;
            replica.serve(&from, &body).map(Bytes::from)
        })
    }
}

/// Sessions of one side, one per peer.
struct Sessions<T>(Mutex<HashMap<String, Arc<tokio::sync::Mutex<T>>>>);

impl<T: Default> Sessions<T> {
    fn new() -> Sessions<T> {
        Sessions(Mutex::new(HashMap::new()))
    }

    fn get(&self, peer: &str) -> Arc<tokio::sync::Mutex<T>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(peer.to_string()).or_default().clone()
    }
}

/// Runs session-style conversations for a [`SessionSync`], keeping the sessions.
pub(crate) struct SessionEngine<S: SessionSync> {
    spec: SyncSpec,
    replica: Weak<S>,
    /// The conversations this node started, by peer.
    client: Sessions<S::Session>,
    /// The conversations peers started with this node, by peer.
    server: Sessions<S::Session>,
}

impl<S: SessionSync> SessionEngine<S> {
    pub(crate) fn new(replica: &Arc<S>) -> SessionEngine<S> {
        SessionEngine {
            spec: replica.spec(),
            replica: Arc::downgrade(replica),
            client: Sessions::new(),
            server: Sessions::new(),
        }
    }
}

impl<S: SessionSync> Engine for SessionEngine<S> {
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

    /// One client-side conversation with `peer` until neither side has anything to say.
    fn sync_with<'a>(
        &'a self,
        mesh: &'a Mesh,
        peer: &'a Member,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let addr: SocketAddr = peer.mesh_addr.parse()?;
            let replica = self
                .replica
                .upgrade()
                .ok_or_else(|| anyhow::anyhow!("{} sync: stopping", self.spec.name))?;
            let session = self.client.get(&peer.id);
            let mut session = session.lock().await;
            for _ in 0..self.spec.rounds_max {
                let ours = replica.generate(&mut session).unwrap_or_default();
                let sent_nothing = ours.is_empty();
                let answer = match mesh.request(addr, self.spec.kind, Bytes::from(ours)).await {
                    Ok(a) => a,
                    Err(e) => {
                        S::reset(&mut session);
                        return Err(e.into());
                    }
                };
                if answer.is_empty() && sent_nothing {
                    return Ok(());
                }
                if !answer.is_empty()
                    && let Err(e) = replica.receive(&mut session, &answer).await
                {
                    S::reset(&mut session);
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    /// One server-side step of the conversation `from` started.
    fn serve(
        self: Arc<Self>,
        from: Peer,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let replica = self.replica.upgrade();
        let session = self.server.get(&from.node_id);
        let name = self.spec.name;
        Box::pin(async move {
            let replica = replica.ok_or_else(stopping)?;
            let mut session = session.lock().await;
            if !body.is_empty()
                && let Err(e) = replica.receive(&mut session, &body).await
            {
                S::reset(&mut session);
                tracing::warn!(peer = %from.node_id, error = %e, sync = name, "sync message refused; session reset");
                return Err(RemoteError::handler(format!("{name} sync refused: {e}")));
            }
            Ok(Bytes::from(
                replica.generate(&mut session).unwrap_or_default(),
            ))
        })
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
