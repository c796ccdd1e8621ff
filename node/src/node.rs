//! Wires the parts of one node together and stops them in order. Each layer gets the
//! handles it uses (nothing imports this module back): the SMTP sessions a
//! [`MessageSink`](crate::smtp::session::MessageSink) (the [`Inbound`] stage), the mesh
//! the [`Cluster`] application, the admin API and the DNS helper their own contexts.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::admin::{self, auth::Tokens};
use crate::cluster::{Cluster, ClusterParts, NodeAddrs};
use crate::config::Config;
use crate::dns::{DnsContext, DnsState};
use crate::health::Health;
use crate::inbound::Inbound;
use crate::mesh::{Mesh, MeshApp};
use crate::quarantine::Quarantine;
use crate::relay::Relay;
use crate::rules::Rules;
use crate::smtp::listener;
use crate::smtp::session::{SessionContext, Timeouts};
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

/// A running node. The public parts are for in-process use (the simulator, the demo).
pub struct NodeHandle {
    /// The configuration it runs with.
    pub config: Arc<Config>,
    /// The SMTP listener's address as bound (the config may say port 0).
    pub smtp_addr: SocketAddr,
    /// The admin API's address as bound.
    pub admin_addr: SocketAddr,
    /// The embedded DNS server's address as bound (UDP and TCP), when `[dns] listen` is set.
    pub dns_addr: Option<SocketAddr>,
    /// The `[submission]` listeners' addresses as bound.
    pub submission: crate::outbound::listen::SubmissionAddrs,
    /// The admin API the node serves on `admin_addr`, for in-process calls (the
    /// simulator); requests should carry a `ConnectInfo<SocketAddr>` extension for the
    /// rate limiter, as the listener adds.
    pub admin_router: axum::Router,
    /// The inbound stage, which the SMTP sessions hand messages to.
    pub inbound: Arc<Inbound>,
    /// The rule book.
    pub rules: Arc<Rules>,
    /// The quarantine.
    pub quarantine: Quarantine,
    /// The learned Bayes corpus.
    pub bayes: crate::cluster::bayes::Bayes,
    /// Custody: copies of quarantined mail, shadows of the relay queue, retire.
    pub custody: crate::cluster::custody::Custody,
    /// The mesh, when `[mesh]` is configured.
    pub mesh: Option<Arc<Mesh>>,
    /// What the DNS helper publishes.
    pub dns: Arc<DnsState>,
    health: Health,
    stats: Arc<Stats>,
    store: Store,
    /// The application the mesh serves (held here: the mesh holds it weakly).
    _cluster: Arc<Cluster>,
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
    /// Skip binding the SMTP and admin listeners (the simulator calls the inbound stage
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
    let rules = Arc::new(
        Rules::load(store.clone(), config.node.id.clone()).context("loading the rule book")?,
    );
    let relay = Relay::new(config.clone(), store.clone(), stats.clone());
    let queued = relay.load()?;
    let quarantine = Quarantine::new(store.clone(), config.node.id.clone(), config.clock.clone())?;
    quarantine.begin_restore(config.mesh.is_some());
    let peers = match config.mesh {
        Some(_) => crate::cluster::bayes::Peers::Mesh,
        None => crate::cluster::bayes::Peers::None,
    };
    let bayes = crate::cluster::bayes::Bayes::open(
        store.clone(),
        config.node.id.clone(),
        config.clock.clone(),
        peers,
    )
    .context("loading the bayes corpus")?;
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
    let submission_addrs = listeners
        .as_ref()
        .and_then(|l| l.submission.as_ref())
        .map(|s| s.addrs())
        .unwrap_or_default();
    let signer = Arc::new(crate::dkim::Signer::from_config(&config)?);
    let trusted = Arc::new(
        crate::outbound::TrustedNetworks::parse(&config.relay.trusted_networks)
            .map_err(|e| anyhow::anyhow!("relay.trusted_networks: {e}"))?,
    );
    let facts = Arc::new(crate::facts::Gatherer::new(&config).map_err(anyhow::Error::msg)?);
    let health = Health::load(store.clone()).context("reading the drain switch")?;
    let greylist =
        crate::edge::Greylist::load(config.node.id.clone(), store.clone(), config.clock.clone())
            .context("loading the greylist")?;
    let edge_state = crate::edge::EdgeState {
        greylist,
        callout: crate::edge::CalloutCache::new(config.node.id.clone(), config.clock.clone()),
        rates: crate::edge::RateLimiter::new(config.node.id.clone(), config.clock.clone()),
    };
    let edge = Arc::new(crate::edge::Edge::new(
        &config,
        edge_state.clone(),
        rules.clone(),
        facts.clone(),
    )?);
    let custody = crate::cluster::custody::Custody::new(
        store.clone(),
        quarantine.clone(),
        relay.clone(),
        rules.clone(),
        health.clone(),
        config.clock.clone(),
    );
    let inbound = Arc::new(Inbound {
        node_id: config.node.id.clone(),
        clock: config.clock.clone(),
        hostname: config.smtp.hostname.clone(),
        store: store.clone(),
        stats: stats.clone(),
        rules: rules.clone(),
        facts,
        relay: relay.clone(),
        quarantine: quarantine.clone(),
        bayes: bayes.clone(),
        edge: edge.clone(),
        signer,
        custody: custody.clone(),
    });
    let ledger = crate::digest::ledger::Ledger::load(
        config.node.id.clone(),
        store.clone(),
        config.clock.clone(),
    )
    .context("loading the digest ledger")?;
    let cluster = Arc::new(Cluster::new(ClusterParts {
        node_id: config.node.id.clone(),
        clock: config.clock.clone(),
        addrs: NodeAddrs {
            smtp: smtp_addr,
            admin: admin_addr,
            dns: config.dns.as_ref().map(|d| d.publish_address),
        },
        health: health.clone(),
        stats: stats.clone(),
        store: store.clone(),
        rules: rules.clone(),
        relay: relay.clone(),
        quarantine: quarantine.clone(),
        bayes: bayes.clone(),
        custody: custody.clone(),
        edge: edge_state,
        digest: ledger.clone(),
    }));
    let mesh = match &config.mesh {
        Some(mesh_cfg) => Some(start_mesh(&config, mesh_cfg, &cluster, mesh_bind).await?),
        None => None,
    };
    if let Some(mesh) = &mesh {
        custody.attach(mesh);
    }
    let digest = crate::digest::Digest::new(crate::digest::DigestParts {
        node_id: config.node.id.clone(),
        hostname: config.smtp.hostname.clone(),
        clock: config.clock.clone(),
        rules: rules.clone(),
        quarantine: quarantine.clone(),
        relay: relay.clone(),
        ledger,
        custody: custody.clone(),
        health: health.clone(),
        mesh: mesh.clone(),
        domains: config.domains.iter().map(|d| d.name.clone()).collect(),
    });
    let dns = Arc::new(DnsState::default());
    let (shutdown, rx) = watch::channel(false);
    let ctx = SessionContext {
        sink: inbound.clone(),
        protocol: Arc::new(protocol_config(&config, tls.is_some())),
        timeouts: Timeouts {
            session_secs: config.smtp.session_timeout_secs,
            greet_pause_ms: config.smtp.greet_pause_ms,
            command_secs: config.smtp.command_timeout_secs,
        },
        health: health.clone(),
        tls,
        shutdown: rx.clone(),
        implicit_tls: false,
        trusted,
    };
    let admin_router = admin::router(admin::Api {
        config: config.clone(),
        smtp_addr,
        admin_addr,
        health: health.clone(),
        stats: stats.clone(),
        store: store.clone(),
        rules: rules.clone(),
        relay: relay.clone(),
        quarantine: quarantine.clone(),
        bayes: bayes.clone(),
        custody: custody.clone(),
        digest: digest.clone(),
        mesh: mesh.clone(),
        dns: dns.clone(),
        inbound: inbound.clone(),
        tokens: Arc::new(tokens),
        sessions: Arc::new(crate::ui::session::Sessions::new()),
        limiter: Arc::new(admin::limit::RateLimiter::new(
            config.admin.rate_per_sec,
            f64::from(config.admin.rate_burst),
        )),
    });
    let mut tasks = vec![
        tokio::spawn(relay.run(rx.clone())),
        tokio::spawn(digest.run(rx.clone())),
        tokio::spawn(crate::cluster::custody::shadow::run(
            custody.clone(),
            rx.clone(),
        )),
        tokio::spawn(housekeeping(
            Housekeeping {
                config: config.clone(),
                store: store.clone(),
                stats: stats.clone(),
                quarantine: quarantine.clone(),
            },
            rx.clone(),
        )),
    ];
    if let Some(l) = listeners {
        if let (Some(sub), Some(section)) = (l.submission, &config.submission) {
            let max = config.smtp.max_connections;
            tasks.extend(sub.serve(section, inbound.clone(), &ctx, max)?);
        }
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
    let mut dns_addr = None;
    if let Some(dns_cfg) = &config.dns {
        let server = match dns_cfg.listen {
            Some(listen) => Some(
                crate::dns::server::DnsServer::start(listen, dns_cfg, &config.smtp.hostname)
                    .await?,
            ),
            None => None,
        };
        dns_addr = server.as_ref().map(|s| s.local_addr());
        let publisher = dns_cfg
            .rfc2136
            .as_ref()
            .map(|r| crate::dns::rfc2136::Publisher::new(dns_cfg, r))
            .transpose()?;
        let dns_ctx = DnsContext {
            node_id: config.node.id.clone(),
            publish_address: dns_cfg.publish_address,
            has_seeds: config.mesh.as_ref().is_some_and(|m| !m.seeds.is_empty()),
            clock: config.clock.clone(),
            health: health.clone(),
            mesh: mesh.clone(),
            state: dns.clone(),
        };
        tasks.push(tokio::spawn(crate::dns::run(
            dns_ctx,
            server,
            publisher,
            rx.clone(),
        )));
    }
    tracing::info!(node = %config.node.id, %smtp_addr, %admin_addr, queued, "node started");
    Ok(NodeHandle {
        config,
        smtp_addr,
        admin_addr,
        dns_addr,
        submission: submission_addrs,
        admin_router,
        inbound,
        rules,
        quarantine,
        bayes,
        custody,
        mesh,
        dns,
        health,
        stats,
        store,
        _cluster: cluster,
        shutdown,
        tasks,
    })
}

/// Starts the mesh for `cluster`: over QUIC, or over the transport `bind` makes.
async fn start_mesh(
    config: &Config,
    mesh_cfg: &crate::config::MeshSection,
    cluster: &Arc<Cluster>,
    bind: Option<MeshBind>,
) -> anyhow::Result<Arc<Mesh>> {
    let app: Arc<dyn MeshApp> = cluster.clone();
    let (id, clock) = (&config.node.id, &config.clock);
    match bind {
        Some(bind) => {
            // Over another transport (the simulator's in-memory network) the node still
            // signs its identity claim when its certificate files load.
            let identity = crate::mesh::Identity::load_for(
                id,
                &mesh_cfg.ca_cert,
                &mesh_cfg.cert,
                &mesh_cfg.key,
            )
            .ok();
            Mesh::start_over(id, clock, mesh_cfg, &app, identity, bind).await
        }
        None => Mesh::start(id, clock, mesh_cfg, &app).await,
    }
}

/// The SMTP, submission and admin listening sockets.
struct Listeners {
    smtp: TcpListener,
    admin: TcpListener,
    submission: Option<crate::outbound::listen::SubmissionListeners>,
}

impl Listeners {
    async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let smtp = TcpListener::bind(config.smtp.listen)
            .await
            .with_context(|| format!("smtp.listen {}", config.smtp.listen))?;
        let admin = TcpListener::bind(config.admin.listen)
            .await
            .with_context(|| format!("admin.listen {}", config.admin.listen))?;
        let submission = match &config.submission {
            Some(s) => Some(crate::outbound::listen::SubmissionListeners::bind(s).await?),
            None => None,
        };
        Ok(Listeners {
            smtp,
            admin,
            submission,
        })
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
        check_recipients: true,
        submission: false,
    }
}

/// What housekeeping works with.
struct Housekeeping {
    config: Arc<Config>,
    store: Store,
    stats: Arc<Stats>,
    quarantine: Quarantine,
}

/// Persists counters, records their per-minute history and applies retention until
/// shutdown.
async fn housekeeping(hk: Housekeeping, mut shutdown: watch::Receiver<bool>) {
    let mut stats_tick = tokio::time::interval(STATS_PERSIST_INTERVAL);
    let mut retention_tick = tokio::time::interval(RETENTION_INTERVAL);
    let mut probe_tick = tokio::time::interval(STORE_PROBE_INTERVAL);
    let mut series_tick = tokio::time::interval(crate::stats::series::RECORD_INTERVAL);
    let mut series = crate::stats::series::Recorder::new(hk.stats.snapshot());
    loop {
        tokio::select! {
            _ = series_tick.tick() => {
                let now_ms = hk.config.clock.now_ms();
                if let Err(e) = series.record(&hk.store, hk.stats.snapshot(), now_ms).await {
                    tracing::warn!(error = %e, "counter history not recorded");
                }
            }
            _ = probe_tick.tick() => {
                if hk.store.write_error().is_some() {
                    let _ = hk.store.probe().await;
                }
            }
            _ = stats_tick.tick() => {
                if let Err(e) = hk.stats.persist(&hk.store).await {
                    tracing::warn!(error = %e, "counters not persisted");
                }
            }
            _ = retention_tick.tick() => retention(&hk).await,
            _ = shutdown.changed() => break,
        }
    }
}

async fn retention(hk: &Housekeeping) {
    let keep_ms = hk.config.quarantine.retention_days * 86_400_000;
    let before = hk.config.clock.now_ms().saturating_sub(keep_ms);
    match hk.quarantine.expire(before).await {
        Ok(n) if n > 0 => tracing::info!(expired = n, "quarantine retention"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "quarantine retention failed"),
    }
    if let Err(e) = crate::trace::trim(&hk.store, before).await {
        tracing::warn!(error = %e, "trace retention failed");
    }
}

impl NodeHandle {
    /// The addresses this node bound, for its ready file ([`crate::ready`]).
    pub fn bound(&self) -> crate::ready::Bound {
        crate::ready::Bound {
            node: self.config.node.id.clone(),
            pid: std::process::id(),
            smtp: self.smtp_addr,
            admin: self.admin_addr,
            mesh: self.mesh.as_ref().map(|m| m.local_addr()),
            dns: self.dns_addr,
            submission: self.submission.listen,
            submission_tls: self.submission.implicit,
        }
    }

    /// A watch that tells when this node's store is closed (every part let go of it).
    pub fn store_watch(&self) -> crate::store::StoreWatch {
        self.store.watch()
    }

    /// Stops at once, as close to `kill -9` as a process can do to a part of itself: the
    /// mesh and every top-level task are aborted mid-flight; nothing is drained, flushed
    /// or persisted beyond what was already synced. Work those tasks spawned ends when it
    /// next yields and finds its shutdown signal or its peers gone. The simulator's crash.
    pub async fn abort(self) {
        if let Some(mesh) = &self.mesh {
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
        self.health.set_stopping();
        if let Some(mesh) = &self.mesh {
            // Leave DNS first: let the mesh see `draining` and drop this node's record.
            if self.config.dns.is_some() {
                tokio::time::sleep(DRAIN_ANNOUNCE).await;
            }
            mesh.stop().await;
        }
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        if let Err(e) = self.stats.persist(&self.store).await {
            tracing::warn!(error = %e, "counters not persisted at stop");
        }
        if let Err(e) = self.store.flush() {
            tracing::warn!(error = %e, "store flush at stop failed");
        }
        tracing::info!(node = %self.config.node.id, "node stopped");
    }
}
