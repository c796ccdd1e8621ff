//! Wires the parts of one node together and stops them in order.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, auth::Tokens};
use crate::config::Config;
use crate::mesh::Mesh;
use crate::quarantine::Quarantine;
use crate::relay::Relay;
use crate::rules::Rules;
use crate::smtp::listener;
use crate::smtp::session::SessionContext;
use crate::smtp::state::{ProtocolConfig, SmtpLimits};
use crate::stats::Stats;
use crate::store::{Store, StoreKind};

/// How often counters are persisted.
const STATS_PERSIST_INTERVAL: Duration = Duration::from_secs(10);
/// How long a stopping node keeps gossiping `draining` before it leaves, so the other
/// nodes withdraw its DNS record while it still answers.
const DRAIN_ANNOUNCE: Duration = Duration::from_millis(1500);
/// How often retention runs.
const RETENTION_INTERVAL: Duration = Duration::from_secs(3600);
/// How often a failing store is probed with a tiny write, to notice its recovery.
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// The parts every request handler may use.
pub struct Shared {
    pub config: Arc<Config>,
    pub store: Store,
    pub stats: Arc<Stats>,
    pub rules: Rules,
    pub relay: Relay,
    pub quarantine: Quarantine,
    /// Taken out of new traffic (SIGTERM or the drain API).
    pub draining: AtomicBool,
    /// The addresses actually bound (the config may say port 0).
    pub smtp_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The mesh, when `[mesh]` is configured (set once, right after start).
    pub mesh: OnceLock<Arc<Mesh>>,
    /// What the DNS helper publishes, and how the external server took it.
    pub dns: crate::dns::DnsState,
    /// The facts phase (DNS, DNSBL, SPF/DKIM/DMARC, clamd) before each verdict.
    pub facts: crate::facts::Gatherer,
}
impl Shared {
    /// `ok`, `draining`, or `store_error` while store writes fail (mail gets 451 then, so
    /// the node also leaves the DNS set until writes work again).
    pub fn health(&self) -> &'static str {
        if self.draining.load(Ordering::Relaxed) {
            "draining"
        } else if self.store.write_error().is_some() {
            "store_error"
        } else {
            "ok"
        }
    }
}

/// A running node.
pub struct NodeHandle {
    pub shared: Arc<Shared>,
    pub smtp_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    /// The admin API the node serves on `admin_addr`, for in-process calls (the
    /// simulator); requests should carry a `ConnectInfo<SocketAddr>` extension for the
    /// rate limiter, as the listener adds.
    pub admin_router: axum::Router,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Binds a mesh transport for a node's inbound handler (see [`Mesh::start_over`]).
pub type MeshBind = Box<
    dyn FnOnce(
            Arc<dyn crate::mesh::transport::Handler>,
        ) -> anyhow::Result<(
            Arc<dyn crate::mesh::transport::Transport>,
            Option<JoinHandle<()>>,
        )> + Send,
>;

/// What the simulator swaps in at a node's seams; the default is the daemon's own.
#[derive(Default)]
pub struct Seams {
    /// The mesh runs over this transport instead of QUIC (the in-memory network).
    pub mesh_bind: Option<MeshBind>,
    /// Disk, or an in-memory RocksDB environment.
    pub store: StoreKind,
    /// Skip binding the SMTP and admin listeners (the simulator calls `inbound::handle`
    /// and the API in-process); the configured addresses are reported as bound.
    pub no_listeners: bool,
}

/// Opens the store, loads state and starts every listener and worker.
pub async fn start(config: Config) -> anyhow::Result<NodeHandle> {
    start_with(config, Seams::default()).await
}

/// Like [`start`], with the simulator's replacements at the seams ([`Seams`]).
pub async fn start_with(config: Config, seams: Seams) -> anyhow::Result<NodeHandle> {
    let Seams {
        mesh_bind,
        store: store_kind,
        no_listeners,
    } = seams;
    let config = Arc::new(config);
    let store = Store::open_kind(&config.node.data_dir, &store_kind)?;
    let stats = Arc::new(Stats::load(&store)?);
    let rules =
        Rules::load(store.clone(), config.node.id.clone()).context("loading the rule book")?;
    let relay = Relay::new(config.clone(), store.clone(), stats.clone());
    let queued = relay.load()?;
    let quarantine = Quarantine::new(store.clone(), config.node.id.clone(), config.clock.clone())?;
    let tokens = Tokens::load(&config.admin.tokens_file)
        .map_err(|e| anyhow::anyhow!("admin.tokens_file: {e}"))?;
    if tokens.is_empty() {
        tracing::warn!(file = %config.admin.tokens_file.display(), "no admin tokens: every /api request will get 401");
    }
    let tls = match (&config.smtp.tls_cert, &config.smtp.tls_key) {
        (Some(c), Some(k)) => Some(crate::smtp::tls::acceptor(c, k)?),
        _ => None,
    };
    let listeners = match no_listeners {
        true => None,
        false => Some(Listeners::bind(&config).await?),
    };
    let (smtp_addr, admin_addr) = match &listeners {
        Some(l) => (l.smtp.local_addr()?, l.admin.local_addr()?),
        None => (config.smtp.listen, config.admin.listen),
    };
    let facts = crate::facts::Gatherer::new(&config).map_err(anyhow::Error::msg)?;
    let shared = Arc::new(Shared {
        facts,
        config: config.clone(),
        store,
        stats,
        rules,
        relay: relay.clone(),
        quarantine,
        draining: AtomicBool::new(false),
        smtp_addr,
        admin_addr,
        mesh: OnceLock::new(),
        dns: Default::default(),
    });
    if let Some(mesh_cfg) = &config.mesh {
        let mesh = match mesh_bind {
            Some(bind) => {
                // Over another transport (the simulator's in-memory network) the node still
                // signs its identity claim when its certificate files load.
                let identity = crate::mesh::Identity::load_for(
                    &shared.config.node.id,
                    &mesh_cfg.ca_cert,
                    &mesh_cfg.cert,
                    &mesh_cfg.key,
                )
                .ok();
                Mesh::start_over(&shared, mesh_cfg, identity, bind).await?
            }
            None => Mesh::start(&shared, mesh_cfg).await?,
        };
        let _ = shared.mesh.set(mesh);
    }
    let (shutdown, rx) = watch::channel(false);
    let ctx = SessionContext {
        shared: shared.clone(),
        protocol: Arc::new(protocol_config(&config, tls.is_some())),
        tls,
        shutdown: rx.clone(),
    };
    let admin_router = admin::router(admin::Api {
        shared: shared.clone(),
        tokens: Arc::new(tokens),
        limiter: Default::default(),
    });
    let mut tasks = vec![
        tokio::spawn(relay.run(rx.clone())),
        tokio::spawn(housekeeping(shared.clone(), rx.clone())),
    ];
    if let Some(l) = listeners {
        tasks.push(tokio::spawn(listener::serve(
            l.smtp,
            ctx,
            config.smtp.max_connections,
        )));
        tasks.push(tokio::spawn(admin::serve(
            l.admin,
            admin_router.clone(),
            rx.clone(),
        )));
    }
    if let Some(dns) = &config.dns {
        let server = match dns.listen {
            Some(listen) => Some(
                crate::dns::server::DnsServer::start(listen, dns, &config.smtp.hostname).await?,
            ),
            None => None,
        };
        let publisher = dns
            .rfc2136
            .as_ref()
            .map(|r| crate::dns::rfc2136::Publisher::new(dns, r))
            .transpose()?;
        tasks.push(tokio::spawn(crate::dns::run(
            Arc::downgrade(&shared),
            server,
            publisher,
            rx.clone(),
        )));
    }
    tracing::info!(node = %config.node.id, %smtp_addr, %admin_addr, queued, "node started");
    Ok(NodeHandle {
        shared,
        smtp_addr,
        admin_addr,
        admin_router,
        shutdown,
        tasks,
    })
}

/// The SMTP and admin listening sockets.
struct Listeners {
    smtp: TcpListener,
    admin: TcpListener,
}

impl Listeners {
    async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let smtp = TcpListener::bind(config.smtp.listen)
            .await
            .with_context(|| format!("smtp.listen {}", config.smtp.listen))?;
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("admin.listen {}", config.admin.listen))?;
        Ok(Listeners { smtp, admin })
    }
}

/// The protocol settings from the config.
fn protocol_config(config: &Config, tls: bool) -> ProtocolConfig {
    ProtocolConfig {
        hostname: config.smtp.hostname.clone(),
        limits: SmtpLimits {
            message_size_max_bytes: config.smtp.max_message_size,
            recipients_max: config.smtp.max_recipients,
            ..SmtpLimits::default()
        },
        accepted_domains: config
            .domains
            .iter()
            .map(|d| d.name.trim_end_matches('.').to_ascii_lowercase())
            .collect(),
        accept_any_domain: false,
        starttls_available: tls,
    }
}

/// Persists counters and applies retention until shutdown.
async fn housekeeping(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut stats_tick = tokio::time::interval(STATS_PERSIST_INTERVAL);
    let mut retention_tick = tokio::time::interval(RETENTION_INTERVAL);
    let mut probe_tick = tokio::time::interval(STORE_PROBE_INTERVAL);
    loop {
        tokio::select! {
            _ = probe_tick.tick() => {
                if shared.store.write_error().is_some() {
                    let _ = shared.store.probe().await;
                }
            }
            _ = stats_tick.tick() => {
                if let Err(e) = shared.stats.persist(&shared.store).await {
                    tracing::warn!(error = %e, "counters not persisted");
                }
            }
            _ = retention_tick.tick() => retention(&shared).await,
            _ = shutdown.changed() => break,
        }
    }
}

async fn retention(shared: &Shared) {
    let keep_ms = shared.config.quarantine.retention_days * 86_400_000;
    let before = shared.config.clock.now_ms().saturating_sub(keep_ms);
    match shared.quarantine.expire(before).await {
        Ok(n) if n > 0 => tracing::info!(expired = n, "quarantine retention"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "quarantine retention failed"),
    }
    if let Err(e) = crate::trace::trim(&shared.store, before).await {
        tracing::warn!(error = %e, "trace retention failed");
    }
}

impl NodeHandle {
    /// Stops at once, as close to `kill -9` as a process can do to a part of itself: the
    /// mesh and every top-level task are aborted mid-flight; nothing is drained, flushed
    /// or persisted beyond what was already synced. Work those tasks spawned ends when it
    /// next yields and finds its shutdown signal or its peers gone. The simulator's crash.
    pub async fn abort(self) {
        if let Some(mesh) = self.shared.mesh.get() {
            mesh.stop().await;
        }
        let _ = self.shutdown.send(true);
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks {
            let _ = t.await;
        }
    }

    /// Graceful stop: drain (no new sessions), let sessions and deliveries finish, persist
    /// counters, sync the store.
    pub async fn stop(self) {
        self.shared.draining.store(true, Ordering::SeqCst);
        if let Some(mesh) = self.shared.mesh.get() {
            // Leave DNS first: let the mesh see `draining` and drop this node's record.
            if self.shared.config.dns.is_some() {
                tokio::time::sleep(DRAIN_ANNOUNCE).await;
            }
            mesh.stop().await;
        }
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.shared.stats.persist(&self.shared.store).await {
            tracing::warn!(error = %e, "counters not persisted at stop");
        }
        if let Err(e) = self.shared.store.flush() {
            tracing::warn!(error = %e, "store flush at stop failed");
        }
        tracing::info!(node = %self.shared.config.node.id, "node stopped");
    }
}
