//! The simulated world: N real nodes (`node::start_with`) whose mesh runs over one
//! in-memory network, a downstream sink, and the operations the workload performs on them
//! through the same code paths the daemon uses (inbound for mail, the admin API's router
//! for rules and quarantine, called in-process). Each node's wall clock follows tokio's
//! (virtual) clock from [`SIM_EPOCH_MS`], plus a skew the timeline may step.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use mxmesh_node::clock::Clock;
use mxmesh_node::config::Config;
use mxmesh_node::inbound;
use mxmesh_node::mesh::memory::MemoryNetwork;
use mxmesh_node::mesh::transport::Transport;
use mxmesh_node::node::{self, MeshBind, NodeHandle, Seams};
use mxmesh_node::sink::{self, Sink};
use mxmesh_node::smtp::Client;
use mxmesh_node::smtp::state::Envelope;
use mxmesh_node::store::StoreKind;
use serde_json::Value;
use tower::ServiceExt;

use crate::wire::{self, WireLog};

/// The admin token every simulated node accepts.
const TOKEN: &str = "sim-token";
/// Seeds each node is configured with (the first few nodes).
const SEEDS_MAX: usize = 3;
/// Time a crashed node's leftover work may take to let go of its store.
const CRASH_RELEASE_TIMEOUT: Duration = Duration::from_secs(30);
/// Time allowed for one admin API call.
const API_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest admin API answer the workload reads.
const API_ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Where the workload's admin calls claim to come from (the rate limiter keys on it).
const ADMIN_CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000);
/// What every node's clock reads when the run starts (2026-01-01T00:00:00Z), before skew.
pub const SIM_EPOCH_MS: u64 = 1_767_225_600_000;
/// The certificates of a run: the same bytes in every run (Ed25519 keys from a fixed seed,
/// dated from the simulated epoch), so that gossip messages, whose size decides how many
/// states fit in one, are the same too. Their keys are no secret: the network is simulated.
const CERT_ORIGIN: mxmesh_node::ca::Origin = mxmesh_node::ca::Origin::Reproducible {
    seed: 0x6d78_6d65_7368,
    since_day: SIM_EPOCH_MS / 86_400_000,
};

/// One simulated node: its config and, while up, its running handle.
pub struct SimNode {
    /// The node id.
    pub id: String,
    /// Its virtual mesh address (a key in the simulated network, never bound).
    pub mesh_addr: SocketAddr,
    config: String,
    /// The node's wall clock: shared with the running node, so a skew set here steps it.
    pub clock: Clock,
    /// Its store's in-memory RocksDB environment: kept across restarts, replaced by a wipe.
    store: StoreKind,
    /// The running node; `None` while it is down.
    pub handle: Option<NodeHandle>,
}

/// How the world's nodes are set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorldOpts {
    /// Bind each node's SMTP and admin listeners on loopback. The simulator needs neither
    /// (mail enters through `inbound::handle`, admin calls go through the node's router
    /// in-process), so they are off unless asked for.
    pub listeners: bool,
}

/// Every node, the network between them, and the downstream sink.
pub struct World {
    /// Holds the tokens file and the sink's spool while the world lives.
    _dir: tempfile::TempDir,
    /// The in-memory network between the nodes (links can be cut, nodes isolated).
    pub net: MemoryNetwork,
    /// The nodes, by index.
    pub nodes: Vec<SimNode>,
    /// The downstream server every node relays to.
    pub sink: Sink,
    opts: WorldOpts,
    /// When set, every node's mesh handler records what it serves here (`wire.rs`).
    wire_log: Option<Arc<WireLog>>,
}

/// The virtual mesh address of node `i` (1-based); never bound, only a key in the network.
pub fn mesh_addr(i: usize) -> SocketAddr {
    let ip = Ipv4Addr::new(10, 77, (i / 256) as u8, (i % 256) as u8);
    SocketAddr::new(IpAddr::V4(ip), 7946)
}

impl World {
    /// Creates and starts `n` nodes, then waits until every node sees every other live.
    pub async fn start(n: usize) -> anyhow::Result<World> {
        World::start_opts(n, WorldOpts::default()).await
    }

    /// Like [`World::start`], set up as `opts` says.
    pub async fn start_opts(n: usize, opts: WorldOpts) -> anyhow::Result<World> {
        let mut world = World::create(n, opts).await?;
        for i in 0..n {
            world.start_node(i).await?;
        }
        Ok(world)
    }

    /// The world of `n` nodes, none started yet (the network can be shaped first).
    pub async fn create(n: usize, opts: WorldOpts) -> anyhow::Result<World> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("tokens"), format!("sim {TOKEN}\n"))?;
        let sink = sink::start("127.0.0.1:0".parse()?, dir.path().join("sink")).await?;
        let seeds: Vec<SocketAddr> = (1..=n.min(SEEDS_MAX)).map(mesh_addr).collect();
        let base_clock = Clock::runtime(SIM_EPOCH_MS);
        // A cluster CA and a certificate per node, so that nodes sign their identity claims
        // as the daemon's do (the in-memory network itself needs no TLS).
        let ca = mxmesh_node::ca::generate_ca_with(CERT_ORIGIN)?;
        std::fs::write(dir.path().join("ca.pem"), &ca.cert_pem)?;
        let nodes = (1..=n)
            .map(|i| -> anyhow::Result<SimNode> {
                let id = format!("mx{i}");
                let addr = mesh_addr(i);
                let seeds: Vec<String> = seeds
                    .iter()
                    .filter(|s| **s != addr)
                    .map(|s| format!("\"{s}\""))
                    .collect();
                let d = dir.path().display();
                let pem = mxmesh_node::ca::issue_pem_with(&ca, &id, CERT_ORIGIN)?;
                std::fs::write(dir.path().join(format!("{id}.pem")), &pem.chain_pem)?;
                std::fs::write(dir.path().join(format!("{id}.key")), &pem.key_pem)?;
                let config = format!(
                    "[node]\nid = \"{id}\"\ndata_dir = \"{d}/{id}\"\n\
                     [smtp]\nlisten = \"127.0.0.1:0\"\nhostname = \"{id}.sim.test\"\n\
                     [[domains]]\nname = \"example.com\"\nrelay_to = \"{}\"\n\
                     [admin]\nlisten = \"127.0.0.1:0\"\ntokens_file = \"{d}/tokens\"\n\
                     [relay]\nretry_initial_secs = 1\nretry_max_secs = 2\n\
                     [mesh]\nlisten = \"{addr}\"\nseeds = [{}]\ncluster_id = \"sim\"\n\
                     ca_cert = \"{d}/ca.pem\"\ncert = \"{d}/{id}.pem\"\nkey = \"{d}/{id}.key\"\n\
                     [dns]\nname = \"mx.sim.test.\"\npublish_address = \"{}\"\n",
                    sink.addr,
                    seeds.join(", "),
                    addr.ip()
                );
                Ok(SimNode {
                    id,
                    mesh_addr: addr,
                    config,
                    clock: base_clock.with_own_skew(0),
                    store: StoreKind::memory()?,
                    handle: None,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(World {
            _dir: dir,
            net: MemoryNetwork::new(),
            nodes,
            sink,
            opts,
            wire_log: None,
        })
    }

    /// Starts node `i` (0-based) on its data directory, joining the in-memory network.
    pub async fn start_node(&mut self, i: usize) -> anyhow::Result<()> {
        let node = &mut self.nodes[i];
        let mut config = Config::parse(&node.config, &node.id).context("simulated node config")?;
        config.clock = node.clock.clone();
        let (net, addr, id) = (self.net.clone(), node.mesh_addr, node.id.clone());
        let wire_log = self.wire_log.clone();
        let bind: MeshBind = Box::new(move |handler| {
            let handler = match wire_log {
                Some(log) => wire::recording(handler, id.clone(), log),
                None => handler,
            };
            let t = net.endpoint(addr, id, handler);
            Ok((Arc::new(t) as Arc<dyn Transport>, None))
        });
        let seams = Seams {
            mesh_bind: Some(bind),
            store: node.store.clone(),
            no_listeners: !self.opts.listeners,
        };
        node.handle = Some(node::start_with(config, seams).await?);
        Ok(())
    }

    /// Records every mesh message the nodes started from now on serve, into `log`.
    pub fn record_wire(&mut self, log: Arc<WireLog>) {
        self.wire_log = Some(log);
    }

    /// Gives stopped node `i` an empty store (a wiped disk) for its next start.
    pub fn wipe_node(&mut self, i: usize) -> anyhow::Result<()> {
        self.nodes[i].store = StoreKind::memory()?;
        Ok(())
    }

    /// Stops node `i` the way SIGTERM does.
    pub async fn stop_node(&mut self, i: usize) {
        if let Some(h) = self.nodes[i].handle.take() {
            h.stop().await;
        }
    }

    /// Crashes node `i`: everything aborted mid-flight, nothing drained; then waits (bounded)
    /// until the last reference to its store is gone so that a restart can reopen it.
    pub async fn crash_node(&mut self, i: usize) {
        let Some(h) = self.nodes[i].handle.take() else {
            return;
        };
        let store = h.store_watch();
        h.abort().await;
        let deadline = tokio::time::Instant::now() + CRASH_RELEASE_TIMEOUT;
        while !store.is_closed() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if !store.is_closed() {
            eprintln!("{}: still referenced after the crash", self.nodes[i].id);
        }
    }

    /// Whether node `i`'s own quarantine holds the message whose subject starts with
    /// `token`.
    pub fn quarantined_here(&self, i: usize, token: &str) -> bool {
        let Some(s) = self.handle(i) else {
            return false;
        };
        let q = mxmesh_crdt::qindex::IndexQuery {
            subject: Some(token.to_string()),
            node: Some(self.nodes[i].id.clone()),
            ..Default::default()
        };
        !s.quarantine.index().search(&q).0.is_empty()
    }

    /// Node `i`, when it runs.
    pub fn handle(&self, i: usize) -> Option<&NodeHandle> {
        self.nodes[i].handle.as_ref()
    }

    /// Indices of running nodes.
    pub fn up(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].handle.is_some())
            .collect()
    }

    /// Offers one message to node `i` through the daemon's inbound path; the reply code.
    pub async fn send_mail(&self, i: usize, token: &str, quarantine: bool) -> u16 {
        self.send_mail_to(i, token, quarantine, "user@example.com")
            .await
    }

    /// Like [`World::send_mail`], to recipient `rcpt`.
    pub async fn send_mail_to(&self, i: usize, token: &str, quarantine: bool, rcpt: &str) -> u16 {
        let Some(node) = self.handle(i) else {
            return 0;
        };
        let subject = if quarantine {
            format!("{token} quarantine-me")
        } else {
            token.to_string()
        };
        let env = Envelope {
            helo: "client.sim.test".into(),
            esmtp: true,
            mail_from: "sender@remote.test".into(),
            rcpt_to: vec![rcpt.into()],
            body: format!(
                "Subject: {subject}\r\nMessage-ID: <{token}@sim>\r\n\r\nbody {token}\r\n"
            )
            .into_bytes(),
            declared_size: None,
            smtputf8: false,
            body_8bitmime: false,
            tls: false,
            outbound: false,
            auth_user: None,
        };
        let client = Client {
            ip: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        };
        inbound::handle(&node.inbound, env, &client).await.code
    }

    /// An admin API call on node `i`, in-process through the router the node serves:
    /// (status, JSON body); status 0 when the node is down or the call did not finish.
    pub async fn api(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.call(i, method, path, body, "application/json").await
    }

    /// An admin API call on node `i` whose body is raw bytes (a message to learn); answered
    /// as [`World::api`] answers.
    pub async fn api_raw(&self, i: usize, method: &str, path: &str, body: Vec<u8>) -> (u16, Value) {
        self.call(i, method, path, Body::from(body), "message/rfc822")
            .await
    }

    async fn call(
        &self,
        i: usize,
        method: &str,
        path: &str,
        body: Body,
        content_type: &str,
    ) -> (u16, Value) {
        let Some(h) = self.nodes[i].handle.as_ref() else {
            return (0, Value::Null);
        };
        let Ok(mut req) = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(body)
        else {
            return (0, Value::Null);
        };
        req.extensions_mut().insert(ConnectInfo(ADMIN_CLIENT));
        let call = h.admin_router.clone().oneshot(req);
        let Ok(Ok(resp)) = tokio::time::timeout(API_TIMEOUT, call).await else {
            return (0, Value::Null);
        };
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), API_ANSWER_BYTES_MAX)
            .await
            .unwrap_or_default();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    /// Stops every node.
    /// Stops every node the way SIGTERM does, all at once: one node at a time would keep
    /// the rest of the mesh running (and detecting failures) for N drain periods.
    pub async fn shutdown(mut self) {
        let mut stopping = tokio::task::JoinSet::new();
        for node in &mut self.nodes {
            if let Some(h) = node.handle.take() {
                stopping.spawn(h.stop());
            }
        }
        while stopping.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// mx1 and mx4 can never exchange a message, yet mx1 lists mx4 as a live member: mx4's
    /// signed identity claim reached mx1 through the others' gossip.
    #[test]
    fn a_peer_never_talked_to_is_listed_through_its_signed_claim() {
        mxmesh_node::install_crypto_provider();
        mxmesh_node::rt::set_simulated(true);
        let rt = crate::sweep::paused_runtime().unwrap();
        rt.block_on(async {
            let mut world = World::create(4, WorldOpts::default()).await.unwrap();
            world.net.cut(mesh_addr(1), mesh_addr(4));
            for i in 0..4 {
                world.start_node(i).await.unwrap();
            }
            let mesh = world.handle(0).and_then(|h| h.mesh.clone()).unwrap();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            let listed = loop {
                let members = mesh.members().await;
                if members.iter().any(|m| m.id == "mx4" && m.live) {
                    break true;
                }
                if tokio::time::Instant::now() > deadline {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            };
            assert!(listed, "mx1 never listed mx4 live");
        });
    }
}
