//! The mesh of one node: the QUIC transport, chitchat over it, the state this node
//! publishes, the membership view, and rule-book synchronisation with peers whose
//! published rules digest differs from ours.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion,
    spawn_chitchat,
};
use mxmesh_crdt::qindex::{IntentAction, IntentStep};
use mxmesh_crdt::rulebook::SyncSession;

use super::claim::Claims;
use super::fanout;
use super::gossip::{self, GossipInbox, MeshGossipTransport, Verified};
use super::members::{self, Member, ViewCache, keys};
use super::quic::QuicTransport;
use super::tls::Identity;
use super::transport::{
    BoxFuture, ErrorCode, Handler, MessageKind, Peer, RemoteError, Transport, TransportError,
};
use crate::config::MeshSection;
use crate::node::Shared;

/// How often gossip rounds run (and node state is republished).
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(250);
/// Heartbeat intervals the failure detector keeps per peer (≈ 25–100 s of history at one
/// heartbeat seen per 1–4 gossip intervals). chitchat's default, 1,000, costs 8 KB per
/// peer on every node: 8 GB across a 1,000-node mesh.
pub const FAILURE_DETECTOR_SAMPLES: usize = 100;
/// How old a membership view the background loops may use ([`Mesh::members_recent`]).
pub const MEMBERS_VIEW_MAX_AGE: Duration = GOSSIP_INTERVAL;
/// How often the quarantine index is reconciled with each live peer.
pub const INDEX_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Index entries one anti-entropy answer carries at most.
pub const INDEX_DELTA_ITEMS_MAX: usize = 10_000;
/// Anti-entropy rounds with one peer per interval.
pub const INDEX_SYNC_ROUNDS_MAX: usize = 200;
/// How often this node looks for release/delete requests recorded while it was away.
pub const REQUESTS_INTERVAL: Duration = Duration::from_millis(500);

/// How often peers' rule digests are compared with ours.
pub const RULES_SYNC_INTERVAL: Duration = Duration::from_millis(200);
/// Peers one rule-sync round talks to at most (those whose digest differs).
pub const RULES_SYNC_PEERS_MAX: usize = 4;
/// Peers one index-sync round reconciles with at most.
pub const INDEX_SYNC_PEERS_MAX: usize = 4;
/// Request/response rounds one rule sync may take.
pub const RULES_SYNC_ROUNDS_MAX: usize = 64;
/// Time allowed for one mesh request.
pub const MESH_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Version of the mesh messages this build speaks (published; see `keys::PROTOCOL`).
pub const MESH_PROTOCOL_VERSION: u32 = 1;

/// Mechanisms the simulator's self-check (`mxmesh-sim --break NAME`) can switch off, to
/// prove its invariants can fail. Process-wide; the daemon never sets them.
pub mod self_check {
    use std::sync::atomic::AtomicBool;

    /// Stops rule-book sync with peers.
    pub static BREAK_RULES_SYNC: AtomicBool = AtomicBool::new(false);
    /// Stops quarantine-index anti-entropy with peers.
    pub static BREAK_INDEX_SYNC: AtomicBool = AtomicBool::new(false);
    /// The DNS set treats every member as live, so a dead node is never withdrawn.
    pub static BREAK_DNS_WITHDRAW: AtomicBool = AtomicBool::new(false);
}

/// A running mesh.
pub struct Mesh {
    pub node_id: String,
    transport: Arc<dyn Transport>,
    chitchat: ChitchatHandle,
    verified: Arc<Verified>,
    /// Signed identity claims (none without a certificate, e.g. in-memory test meshes).
    claims: Option<Claims>,
    view_cache: Mutex<ViewCache>,
    /// The last view built for the anti-entropy loops and DNS, and when.
    recent_view: Mutex<Option<(tokio::time::Instant, Arc<Vec<Member>>)>>,
    client_sessions: Sessions,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    gossip_bytes_sent: Arc<AtomicU64>,
}

/// Automerge sync sessions, one per peer and direction.
#[derive(Default)]
struct Sessions(Mutex<HashMap<String, Arc<tokio::sync::Mutex<SyncSession>>>>);

impl Sessions {
    fn get(&self, peer: &str) -> Arc<tokio::sync::Mutex<SyncSession>> {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(peer.to_string()).or_default().clone()
    }
}

/// Answers inbound mesh messages for this node.
struct MeshHandler {
    shared: Weak<Shared>,
    inbox: GossipInbox,
    server_sessions: Sessions,
}

impl Handler for MeshHandler {
    fn handle(
        &self,
        from: Peer,
        kind: MessageKind,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        match kind {
            MessageKind::GOSSIP => {
                let r = self
                    .inbox
                    .deliver(from, body)
                    .map(|_| Bytes::new())
                    .map_err(RemoteError::handler);
                Box::pin(async move { r })
            }
            MessageKind::RULES_SYNC => {
                let shared = self.shared.upgrade();
                let session = self.server_sessions.get(&from.node_id);
                Box::pin(async move {
                    let shared = shared
                        .ok_or_else(|| RemoteError::new(ErrorCode::UNAVAILABLE, "node stopping"))?;
                    serve_rules_sync(&shared, &session, &from, &body).await
                })
            }
            MessageKind::RPC | MessageKind::INDEX_SYNC => {
                let shared = self.shared.upgrade();
                Box::pin(async move {
                    let shared = shared
                        .ok_or_else(|| RemoteError::new(ErrorCode::UNAVAILABLE, "node stopping"))?;
                    if kind == MessageKind::RPC {
                        super::rpc::serve(&shared, &from, &body).await
                    } else {
                        serve_index_sync(&shared, &body)
                    }
                })
            }
            other => Box::pin(async move {
                Err(RemoteError::new(
                    ErrorCode::UNKNOWN_KIND,
                    format!("{other} is not served by this node"),
                ))
            }),
        }
    }
}

/// Index anti-entropy, server side: the asker's version vector in, what it lacks out.
fn serve_index_sync(shared: &Shared, body: &[u8]) -> Result<Bytes, RemoteError> {
    let theirs = decode_version_vector(body)?;
    let delta = shared
        .quarantine
        .index()
        .delta_since(&theirs, INDEX_DELTA_ITEMS_MAX);
    serde_json::to_vec(&delta)
        .map(Bytes::from)
        .map_err(|e| RemoteError::handler(format!("index sync: {e}")))
}

/// Reads the asker's version vector from an `INDEX_SYNC` request body.
pub fn decode_version_vector(body: &[u8]) -> Result<BTreeMap<String, u64>, RemoteError> {
    serde_json::from_slice(body)
        .map_err(|e| RemoteError::handler(format!("index sync: bad version vector: {e}")))
}

/// One server-side step of the automerge sync protocol.
async fn serve_rules_sync(
    shared: &Shared,
    session: &tokio::sync::Mutex<SyncSession>,
    from: &Peer,
    body: &[u8],
) -> Result<Bytes, RemoteError> {
    let mut session = session.lock().await;
    if !body.is_empty()
        && let Err(e) = shared.rules.sync_receive(&mut session, body).await
    {
        session.reset();
        tracing::warn!(peer = %from.node_id, error = %e, "rules sync message refused; session reset");
        return Err(RemoteError::handler(format!("rules sync refused: {e}")));
    }
    Ok(Bytes::from(
        shared.rules.sync_generate(&mut session).unwrap_or_default(),
    ))
}

impl Mesh {
    /// Binds the QUIC transport, joins the mesh through the seeds, starts the background
    /// tasks.
    pub async fn start(shared: &Arc<Shared>, cfg: &MeshSection) -> anyhow::Result<Arc<Mesh>> {
        let identity =
            Identity::load_for(&shared.config.node.id, &cfg.ca_cert, &cfg.cert, &cfg.key)?;
        let listen = cfg.listen;
        let claim_identity = identity.clone();
        Mesh::start_over(shared, cfg, Some(claim_identity), move |handler| {
            let (transport, task) = QuicTransport::bind(listen, &identity, handler)
                .map_err(|e| anyhow::anyhow!("mesh.listen {listen}: {e}"))?;
            Ok((Arc::new(transport) as Arc<dyn Transport>, Some(task)))
        })
        .await
    }

    /// Like [`Mesh::start`] over any transport: `bind` gets this node's handler for inbound
    /// messages and returns the transport (and its task, if it runs one). The simulator
    /// runs the real mesh over the in-memory network this way.
    pub async fn start_over(
        shared: &Arc<Shared>,
        cfg: &MeshSection,
        identity: Option<Identity>,
        bind: impl FnOnce(
            Arc<dyn Handler>,
        )
            -> anyhow::Result<(Arc<dyn Transport>, Option<tokio::task::JoinHandle<()>>)>,
    ) -> anyhow::Result<Arc<Mesh>> {
        let node_id = shared.config.node.id.clone();
        let verified = Arc::new(Verified::default());
        let (inbox, receiver) = gossip::gossip_channel(verified.clone());
        let handler = Arc::new(MeshHandler {
            shared: Arc::downgrade(shared),
            inbox,
            server_sessions: Sessions::default(),
        });
        let (transport, transport_task) = bind(handler)?;
        let advertise = cfg.advertise.unwrap_or_else(|| transport.local_addr());
        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(node_id.clone(), shared.config.clock.now_ms(), advertise),
            cluster_id: cfg.cluster_id.clone(),
            gossip_interval: GOSSIP_INTERVAL,
            listen_addr: transport.local_addr(),
            seed_nodes: cfg.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: 8.0,
                sampling_window_size: FAILURE_DETECTOR_SAMPLES,
                max_interval: Duration::from_secs(10),
                initial_interval: GOSSIP_INTERVAL,
                dead_node_grace_period: Duration::from_secs(24 * 3600),
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let claims = identity
            .map(|i| Claims::new(i, &cfg.cluster_id))
            .transpose()?;
        let mut initial = published_state(shared);
        if let Some(claims) = &claims {
            let claim = claims.own(&chitchat_config.chitchat_id)?;
            initial.push((keys::IDENTITY.to_string(), claim));
        }
        let gossip_bytes_sent = Arc::new(AtomicU64::new(0));
        let gossip_transport =
            MeshGossipTransport::new(transport.clone(), receiver, gossip_bytes_sent.clone());
        let chitchat = spawn_chitchat(chitchat_config, initial, &gossip_transport).await?;
        let mesh = Arc::new(Mesh {
            node_id,
            transport,
            chitchat,
            verified,
            claims,
            view_cache: Mutex::new(ViewCache::default()),
            recent_view: Mutex::new(None),
            client_sessions: Sessions::default(),
            tasks: Mutex::new(transport_task.into_iter().collect()),
            gossip_bytes_sent,
        });
        let loops = [
            tokio::spawn(publish_loop(Arc::downgrade(shared), Arc::downgrade(&mesh))),
            tokio::spawn(rules_sync_loop(
                Arc::downgrade(shared),
                Arc::downgrade(&mesh),
            )),
            tokio::spawn(index_sync_loop(
                Arc::downgrade(shared),
                Arc::downgrade(&mesh),
            )),
            tokio::spawn(requests_loop(Arc::downgrade(shared))),
        ];
        mesh.tasks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(loops);
        tracing::info!(node = %mesh.node_id, mesh = %mesh.transport.local_addr(), "mesh started");
        Ok(mesh)
    }

    /// The current members (this node first).
    pub async fn members(&self) -> Vec<Member> {
        let chitchat = self.chitchat.chitchat();
        let chitchat = chitchat.lock().await;
        if let Some(claims) = &self.claims {
            claims.verify_published(&chitchat, &self.verified);
        }
        let mut cache = self.view_cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.observe(&chitchat);
        members::view(&chitchat, &self.verified, &mut cache)
    }

    /// The members as of at most [`MEMBERS_VIEW_MAX_AGE`] ago: for the background loops
    /// (rule and index sync, DNS), which would otherwise each rebuild the O(N) view
    /// several times a second. Gossip changes it no faster than once per interval.
    pub async fn members_recent(&self) -> Arc<Vec<Member>> {
        let now = tokio::time::Instant::now();
        if let Some((at, view)) = &*self.recent_view.lock().unwrap_or_else(|e| e.into_inner())
            && now.duration_since(*at) < MEMBERS_VIEW_MAX_AGE
        {
            return view.clone();
        }
        let view = Arc::new(self.members().await);
        *self.recent_view.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, view.clone()));
        view
    }

    /// How many nodes chitchat's failure detector holds live, this one included, whether
    /// or not a direct exchange has verified them yet: the gossip layer's view, O(N)
    /// without building [`Mesh::members`].
    pub async fn gossip_live_count(&self) -> usize {
        let chitchat = self.chitchat.chitchat();
        let chitchat = chitchat.lock().await;
        chitchat.live_nodes().count()
    }

    /// Gossip payload bytes this node has sent since start.
    pub fn gossip_bytes_sent(&self) -> u64 {
        self.gossip_bytes_sent.load(Ordering::Relaxed)
    }

    /// The mesh address this node listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.transport.local_addr()
    }

    /// A request to another node over the mesh.
    pub async fn request(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        body: Bytes,
    ) -> Result<Bytes, TransportError> {
        let (_, answer) = self
            .transport
            .request(to, kind, body, MESH_REQUEST_TIMEOUT)
            .await?;
        Ok(answer)
    }

    /// Pulls what `peer` has and we lack of the quarantine index, until nothing changes.
    async fn sync_index_with(&self, shared: &Shared, peer: &Member) -> anyhow::Result<()> {
        let addr: SocketAddr = peer.mesh_addr.parse()?;
        for _ in 0..INDEX_SYNC_ROUNDS_MAX {
            let ours = serde_json::to_vec(&shared.quarantine.index().version_vector())?;
            let answer = self
                .request(addr, MessageKind::INDEX_SYNC, Bytes::from(ours))
                .await?;
            let delta = serde_json::from_slice(&answer)?;
            let index = shared.quarantine.index();
            let report = index.apply(delta, shared.config.clock.now_ms())?;
            if !report.changed() {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Leaves the mesh: stops gossip and sync, closes connections.
    pub async fn stop(&self) {
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in &tasks {
            t.abort();
        }
        let _ = self.chitchat.initiate_shutdown();
        self.transport.close().await;
    }

    /// One client-side sync with `peer` until neither side has anything to say.
    async fn sync_rules_with(&self, shared: &Shared, peer: &Member) -> anyhow::Result<()> {
        let addr: SocketAddr = peer.mesh_addr.parse()?;
        let session = self.client_sessions.get(&peer.id);
        let mut session = session.lock().await;
        for _ in 0..RULES_SYNC_ROUNDS_MAX {
            let ours = shared.rules.sync_generate(&mut session).unwrap_or_default();
            let sent_nothing = ours.is_empty();
            let answer = match self
                .request(addr, MessageKind::RULES_SYNC, Bytes::from(ours))
                .await
            {
                Ok(a) => a,
                Err(e) => {
                    session.reset();
                    return Err(e.into());
                }
            };
            if answer.is_empty() && sent_nothing {
                return Ok(());
            }
            if !answer.is_empty()
                && let Err(e) = shared.rules.sync_receive(&mut session, &answer).await
            {
                session.reset();
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// The key-values this node publishes, from its current state.
fn published_state(shared: &Shared) -> Vec<(String, String)> {
    let mut kv = vec![
        (
            keys::VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            keys::PROTOCOL.to_string(),
            MESH_PROTOCOL_VERSION.to_string(),
        ),
        (keys::HEALTH.to_string(), shared.health().to_string()),
        (keys::SMTP_ADDR.to_string(), shared.smtp_addr.to_string()),
        (keys::ADMIN_ADDR.to_string(), shared.admin_addr.to_string()),
        (keys::RULES_DIGEST.to_string(), shared.rules.digest()),
        (
            keys::QUARANTINE_ENTRIES.to_string(),
            shared.quarantine.live_entries().to_string(),
        ),
        (
            keys::QINDEX_SEQ.to_string(),
            shared.quarantine.index().own_high_water().to_string(),
        ),
        (
            keys::COUNTERS.to_string(),
            serde_json::to_string(&shared.stats.snapshot()).unwrap_or_default(),
        ),
    ];
    if let Some(dns) = &shared.config.dns {
        kv.push((keys::DNS_ADDR.to_string(), dns.publish_address.to_string()));
    }
    kv
}

/// Republishes this node's state every gossip interval (chitchat sends only changes).
async fn publish_loop(shared: Weak<Shared>, mesh: Weak<Mesh>) {
    let mut tick = tokio::time::interval(GOSSIP_INTERVAL);
    loop {
        tick.tick().await;
        let (Some(shared), Some(mesh)) = (shared.upgrade(), mesh.upgrade()) else {
            return;
        };
        let kv = published_state(&shared);
        let chitchat = mesh.chitchat.chitchat();
        let mut chitchat = chitchat.lock().await;
        let me = chitchat.self_node_state();
        for (k, v) in kv {
            if me.get(&k) != Some(v.as_str()) {
                me.set(k, v);
            }
        }
    }
}

/// Syncs the rule book with every live member whose published digest differs.
async fn rules_sync_loop(shared: Weak<Shared>, mesh: Weak<Mesh>) {
    let mut tick = tokio::time::interval(RULES_SYNC_INTERVAL);
    for round in 0u64.. {
        tick.tick().await;
        let (Some(shared), Some(mesh)) = (shared.upgrade(), mesh.upgrade()) else {
            return;
        };
        if self_check::BREAK_RULES_SYNC.load(Ordering::Relaxed) {
            continue;
        }
        let ours = shared.rules.digest();
        let members = mesh.members_recent().await;
        let differ: Vec<&Member> = members
            .iter()
            .filter(|m| m.id != mesh.node_id && m.live && m.rules_digest != ours)
            .collect();
        for peer in fanout::window(&differ, &mesh.node_id, round, RULES_SYNC_PEERS_MAX) {
            if shared.rules.digest() == peer.rules_digest {
                continue; // an earlier sync this round brought us to where it is
            }
            if let Err(e) = mesh.sync_rules_with(&shared, peer).await {
                tracing::debug!(peer = %peer.id, error = %e, "rules sync failed; will retry");
            }
        }
    }
}

/// Reconciles the quarantine index with every live peer.
async fn index_sync_loop(shared: Weak<Shared>, mesh: Weak<Mesh>) {
    let mut tick = tokio::time::interval(INDEX_SYNC_INTERVAL);
    for round in 0u64.. {
        tick.tick().await;
        let (Some(shared), Some(mesh)) = (shared.upgrade(), mesh.upgrade()) else {
            return;
        };
        if self_check::BREAK_INDEX_SYNC.load(Ordering::Relaxed) {
            continue;
        }
        let members = mesh.members_recent().await;
        let peers: Vec<&Member> = members
            .iter()
            .filter(|m| m.id != mesh.node_id && m.live)
            .collect();
        for peer in fanout::window(&peers, &mesh.node_id, round, INDEX_SYNC_PEERS_MAX) {
            if let Err(e) = mesh.sync_index_with(&shared, peer).await {
                tracing::debug!(peer = %peer.id, error = %e, "index sync failed; will retry");
            }
        }
    }
}

/// Carries out, once each, the release/delete requests other nodes recorded for this
/// node's messages (while it was down or unreachable).
async fn requests_loop(shared: Weak<Shared>) {
    let mut tick = tokio::time::interval(REQUESTS_INTERVAL);
    loop {
        tick.tick().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let index = shared.quarantine.index();
        for (request_id, admin) in index.pending_for_me() {
            let step = match index.begin_intent(&request_id, shared.config.clock.now_ms()) {
                Ok(step) => step,
                Err(e) => {
                    tracing::warn!(request = %request_id, error = %e, "request not started");
                    continue;
                }
            };
            let IntentStep::Execute { entry_id, action } = step else {
                continue;
            };
            let q = &shared.quarantine;
            let done = match action {
                IntentAction::Release => {
                    q.release(&entry_id, &shared.relay, &admin, Some(&request_id))
                        .await
                }
                IntentAction::Delete => q.delete(&entry_id, &admin, Some(&request_id)).await,
            };
            match done {
                Ok(_) => {
                    tracing::info!(request = %request_id, id = %entry_id, ?action, "deferred request carried out")
                }
                Err(e) => {
                    tracing::warn!(request = %request_id, id = %entry_id, error = %e, "deferred request failed; will retry")
                }
            }
        }
    }
}
