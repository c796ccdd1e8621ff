//! The mesh of one node: the transport, chitchat over it, the state this node publishes,
//! the membership view, and the loops that drive the application's replicated types
//! ([`super::app`]) and jobs.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use chitchat::{
    ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion,
    spawn_chitchat,
};

use super::app::{Job, MeshApp};
use super::claim::Claims;
use super::gossip::{self, GossipInbox, MeshGossipTransport, Verified};
use super::members::{self, Member, ViewCache, keys};
use super::quic::QuicTransport;
use super::sync::{self, Engine, SessionTable, TrafficTotals};
use super::tls::Identity;
use super::transport::{
    BoxFuture, ErrorCode, Handler, MessageKind, Peer, RemoteError, Transport, TransportError,
};
use crate::clock::Clock;
use crate::config::MeshSection;

/// How often gossip rounds run (and node state is republished).
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(250);
/// Heartbeat intervals the failure detector keeps per peer (≈ 25–100 s of history at one
/// heartbeat seen per 1–4 gossip intervals). chitchat's default, 1,000, costs 8 KB per
/// peer on every node: 8 GB across a 1,000-node mesh.
pub const FAILURE_DETECTOR_SAMPLES: usize = 100;
/// How old a membership view the background loops may use ([`Mesh::members_recent`]).
pub const MEMBERS_VIEW_MAX_AGE: Duration = GOSSIP_INTERVAL;
/// Time allowed for one mesh request.
pub const MESH_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Version of the mesh messages this build speaks (published; see `keys::PROTOCOL`).
pub const MESH_PROTOCOL_VERSION: u32 = 1;

/// A running mesh.
pub struct Mesh {
    /// This node's id.
    pub node_id: String,
    transport: Arc<dyn Transport>,
    chitchat: ChitchatHandle,
    verified: Arc<Verified>,
    /// Signed identity claims (none without a certificate, e.g. in-memory test meshes).
    claims: Option<Claims>,
    view_cache: Mutex<ViewCache>,
    /// The last view built for the anti-entropy loops and DNS, and when.
    recent_view: Mutex<Option<(tokio::time::Instant, Arc<Vec<Member>>)>>,
    /// Sessions of the conversations this node starts (session-style types).
    pub(crate) client_sessions: SessionTable,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    gossip_bytes_sent: Arc<AtomicU64>,
    /// The application's replicated types, in the order it gave them.
    engines: Arc<[Arc<dyn Engine>]>,
}

/// Answers inbound mesh messages for this node.
struct MeshHandler {
    app: Weak<dyn MeshApp>,
    inbox: GossipInbox,
    /// Sessions of the conversations peers start with this node.
    server_sessions: SessionTable,
    engines: Arc<[Arc<dyn Engine>]>,
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
            MessageKind::RPC => match self.app.upgrade() {
                Some(app) => app.rpc(from, body),
                None => Box::pin(async { Err(stopping()) }),
            },
            other => match self.engines.iter().find(|e| e.spec().kind == other) {
                Some(engine) => engine.clone().serve(from, body, &self.server_sessions),
                None => Box::pin(async move {
                    Err(RemoteError::new(
                        ErrorCode::UNKNOWN_KIND,
                        format!("{other} is not served by this node"),
                    ))
                }),
            },
        }
    }
}

fn stopping() -> RemoteError {
    RemoteError::new(ErrorCode::UNAVAILABLE, "node stopping")
}

impl Mesh {
    /// Binds the QUIC transport, joins the mesh through the seeds, starts the background
    /// tasks for `app` (held weakly: see [`MeshApp`]).
    pub async fn start(
        node_id: &str,
        clock: &Clock,
        cfg: &MeshSection,
        app: &Arc<dyn MeshApp>,
    ) -> anyhow::Result<Arc<Mesh>> {
        let identity = Identity::load_for(node_id, &cfg.ca_cert, &cfg.cert, &cfg.key)?;
        let listen = cfg.listen;
        let claim_identity = identity.clone();
        Mesh::start_over(
            node_id,
            clock,
            cfg,
            app,
            Some(claim_identity),
            move |handler| {
                let (transport, task) = QuicTransport::bind(listen, &identity, handler)
                    .map_err(|e| anyhow::anyhow!("mesh.listen {listen}: {e}"))?;
                Ok((Arc::new(transport) as Arc<dyn Transport>, Some(task)))
            },
        )
        .await
    }

    /// Like [`Mesh::start`] over any transport: `bind` gets this node's handler for inbound
    /// messages and returns the transport (and its task, if it runs one). The simulator
    /// runs the real mesh over the in-memory network this way.
    pub async fn start_over(
        node_id: &str,
        clock: &Clock,
        cfg: &MeshSection,
        app: &Arc<dyn MeshApp>,
        identity: Option<Identity>,
        bind: impl FnOnce(
            Arc<dyn Handler>,
        )
            -> anyhow::Result<(Arc<dyn Transport>, Option<tokio::task::JoinHandle<()>>)>,
    ) -> anyhow::Result<Arc<Mesh>> {
        let node_id = node_id.to_string();
        let engines: Arc<[Arc<dyn Engine>]> = app.replicas().into_iter().map(|r| r.0).collect();
        let verified = Arc::new(Verified::default());
        let (inbox, receiver) = gossip::gossip_channel(verified.clone());
        let handler = Arc::new(MeshHandler {
            app: Arc::downgrade(app),
            inbox,
            server_sessions: SessionTable::new(),
            engines: engines.clone(),
        });
        let (transport, transport_task) = bind(handler)?;
        let advertise = cfg.advertise.unwrap_or_else(|| transport.local_addr());
        let chitchat_config = ChitchatConfig {
            chitchat_id: ChitchatId::new(node_id.clone(), clock.now_ms(), advertise),
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
        let mut initial = published_state(app.as_ref(), &engines);
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
            client_sessions: SessionTable::new(),
            tasks: Mutex::new(transport_task.into_iter().collect()),
            gossip_bytes_sent,
            engines: engines.clone(),
        });
        let mut loops = vec![tokio::spawn(publish_loop(
            Arc::downgrade(app),
            Arc::downgrade(&mesh),
        ))];
        for engine in engines.iter() {
            loops.push(tokio::spawn(sync::sync_loop(
                engine.clone(),
                Arc::downgrade(&mesh),
            )));
        }
        for job in app.jobs() {
            loops.push(tokio::spawn(job_loop(Arc::downgrade(app), job)));
        }
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

    /// Per replicated type (in the application's order), the payload bytes its exchanges
    /// carried to and from this node since start.
    pub fn sync_traffic(&self) -> Vec<SyncTraffic> {
        let traffic = |e: &Arc<dyn Engine>| SyncTraffic {
            name: e.spec().name,
            bytes: e.traffic(),
        };
        self.engines.iter().map(traffic).collect()
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

    /// Asks live member `node` (by id) over `kind`: the answer, or why it could not be
    /// asked.
    pub async fn request_member(
        &self,
        node: &str,
        kind: MessageKind,
        body: Bytes,
    ) -> Result<Bytes, MemberRequestError> {
        let members = self.members().await;
        let member = members
            .iter()
            .find(|m| m.id == node && m.live)
            .ok_or(MemberRequestError::NotLive)?;
        let addr = member
            .mesh_addr
            .parse()
            .map_err(|_| MemberRequestError::NoAddress)?;
        self.request(addr, kind, body)
            .await
            .map_err(MemberRequestError::Transport)
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
}

/// One replicated type's traffic on this node ([`Mesh::sync_traffic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTraffic {
    /// Its [`super::SyncSpec::name`].
    pub name: &'static str,
    /// Payload bytes sent and received in its exchanges (see [`TrafficTotals`]).
    pub bytes: TrafficTotals,
}

/// Why [`Mesh::request_member`] got no answer.
#[derive(Debug, thiserror::Error)]
pub enum MemberRequestError {
    /// The node is not a live member.
    #[error("not live")]
    NotLive,
    /// The member publishes no usable mesh address.
    #[error("no mesh address")]
    NoAddress,
    /// The request failed on the way or was refused (see [`TransportError::Remote`]).
    #[error(transparent)]
    Transport(TransportError),
}

/// The key-values this node publishes: the mesh's own, the application's, then each
/// replicated type's digest and its other keys.
fn published_state(app: &dyn MeshApp, engines: &[Arc<dyn Engine>]) -> Vec<(String, String)> {
    let mut kv = vec![
        (
            keys::VERSION.to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
        (
            keys::PROTOCOL.to_string(),
            MESH_PROTOCOL_VERSION.to_string(),
        ),
    ];
    kv.extend(app.published());
    for engine in engines {
        if let (Some(key), Some(digest)) = (engine.spec().digest_key, engine.digest()) {
            kv.push((key.to_string(), digest));
        }
        kv.extend(
            engine
                .published()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v)),
        );
    }
    kv
}

/// Republishes this node's state every gossip interval (chitchat sends only changes).
async fn publish_loop(app: Weak<dyn MeshApp>, mesh: Weak<Mesh>) {
    let mut tick = tokio::time::interval(GOSSIP_INTERVAL);
    loop {
        tick.tick().await;
        let (Some(app), Some(mesh)) = (app.upgrade(), mesh.upgrade()) else {
            return;
        };
        let kv = published_state(app.as_ref(), &mesh.engines);
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

/// Runs one of the application's jobs every interval until the application is gone.
async fn job_loop(app: Weak<dyn MeshApp>, job: Job) {
    let mut tick = tokio::time::interval(job.interval);
    loop {
        tick.tick().await;
        let Some(app) = app.upgrade() else {
            return;
        };
        app.run_job(job.name).await;
    }
}

/// Mechanisms the simulator's self-check (`mxmesh-sim --break NAME`) can switch off, to
/// prove its invariants can fail. Process-wide; the daemon never sets them.
pub mod self_check {
    use std::collections::BTreeSet;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Names of the replicated types whose sync is switched off.
    static BROKEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    /// Whether any is (so that the loops need not lock).
    static ANY: AtomicBool = AtomicBool::new(false);

    /// Switches the sync of the replicated type named `name` (its `SyncSpec::name`) off
    /// or back on.
    pub fn set_sync_broken(name: &str, broken: bool) {
        let mut set = BROKEN.lock().unwrap_or_else(|e| e.into_inner());
        if broken {
            set.insert(name.to_string());
        } else {
            set.remove(name);
        }
        ANY.store(!set.is_empty(), Ordering::Relaxed);
    }

    /// Whether the sync of `name` is switched off.
    pub fn sync_broken(name: &str) -> bool {
        ANY.load(Ordering::Relaxed)
            && BROKEN
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .contains(name)
    }
}
