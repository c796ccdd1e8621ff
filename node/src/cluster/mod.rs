//! This node's application on the mesh ([`crate::mesh::MeshApp`]): what it publishes in
//! gossip ([`keys`]), its replicated types — the rule book ([`rules`], session-style) and
//! the quarantine index ([`index`], pull-style), the learned Bayes corpus
//! ([`bayes`], pull-style) — the release/delete requests recorded
//! for it while it was away ([`requests`]), and the operations other nodes forward to it
//! ([`rpc`]).
//!
//! A new replicated type is one [`crate::mesh::PullSync`] or [`crate::mesh::SessionSync`]
//! implementation here (plus its CRDT in `mxmesh-crdt`), listed in
//! [`Cluster::replicas`]; `mesh/` does not change.

pub mod bayes;
pub mod custody;
pub mod index;
pub mod keys;
pub mod owned;
pub mod requests;
pub mod rpc;
pub mod rules;
pub mod view;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Clock;
use crate::health::Health;
use crate::mesh::{BoxFuture, Job, MeshApp, Peer, RemoteError, Replica};
use crate::quarantine::Quarantine;
use crate::relay::Relay;
use crate::rules::Rules;
use crate::stats::Stats;
use crate::store::Store;

/// The greylist triplets as a replicated type ([`owned::OwnedSync`]).
pub const GREYLIST_SYNC: owned::OwnedSpec = owned::OwnedSpec {
    name: "greylist",
    kind: crate::mesh::MessageKind(6),
    interval: std::time::Duration::from_millis(500),
};
/// The callout answers as a replicated type.
pub const CALLOUT_SYNC: owned::OwnedSpec = owned::OwnedSpec {
    name: "callout",
    kind: crate::mesh::MessageKind(7),
    interval: std::time::Duration::from_millis(500),
};
/// The rate counters as a replicated type: synced often, since the overshoot of a
/// distributed burst grows with the staleness of the counts (`edge::ratelimit`).
pub const RATE_SYNC: owned::OwnedSpec = owned::OwnedSpec {
    name: "ratelimit",
    kind: crate::mesh::MessageKind(8),
    interval: std::time::Duration::from_millis(100),
};
/// The digest ledger (watermarks, run requests) as a replicated type (`crate::digest`).
pub const DIGEST_SYNC: owned::OwnedSpec = owned::OwnedSpec {
    name: "digest",
    kind: crate::mesh::MessageKind(9),
    interval: std::time::Duration::from_millis(500),
};
/// The job that drops expired greylist triplets (memory and store), callout answers and
/// rate windows.
pub const EDGE_PURGE_JOB: &str = "edge-purge";
/// How often it runs.
pub const EDGE_PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(120);

/// What this node is, as the mesh shows it.
#[derive(Debug, Clone)]
pub struct NodeAddrs {
    /// The SMTP address actually bound.
    pub smtp: SocketAddr,
    /// The admin API address actually bound.
    pub admin: SocketAddr,
    /// The address it publishes in DNS, when `[dns]` is configured.
    pub dns: Option<IpAddr>,
}

/// The parts of the node the cluster application works with.
pub struct ClusterParts {
    /// This node's id.
    pub node_id: String,
    /// The node's clock, for the syncs and the requests of other nodes.
    pub clock: Clock,
    /// The addresses it publishes.
    pub addrs: NodeAddrs,
    /// Its health, published and changed by `drain`/`undrain`.
    pub health: Health,
    /// Its mail counters, published.
    pub stats: Arc<Stats>,
    /// The node's store (for the requests of other nodes).
    pub store: Store,
    /// The rule book, kept in sync with the other nodes.
    pub rules: Arc<Rules>,
    /// The relay queue, listed and flushed for other nodes.
    pub relay: Relay,
    /// The quarantine: its index is synced, its messages fetched and released for others.
    pub quarantine: Quarantine,
    /// The learned Bayes corpus, kept in sync with the other nodes.
    pub bayes: bayes::Bayes,
    /// Custody of quarantined messages (copies on other nodes, retire, take-over).
    pub custody: custody::Custody,
    /// The replicated parts of the SMTP edge: greylist triplets, callout answers, rate
    /// counters (this node writes its own entries of each).
    pub edge: crate::edge::EdgeState,
    /// The digest ledger (this node writes its own watermarks).
    pub digest: crate::digest::ledger::Ledger,
}

/// This node's application on the mesh.
pub struct Cluster {
    node_id: String,
    addrs: NodeAddrs,
    health: Health,
    stats: Arc<Stats>,
    quarantine: Quarantine,
    rules: Arc<rules::RulesSync>,
    index: Arc<index::IndexSync>,
    bayes: Arc<bayes::Bayes>,
    edge: crate::edge::EdgeState,
    greylist_sync: Arc<owned::OwnedSync<crate::edge::greylist::Sighting>>,
    callout_sync: Arc<owned::OwnedSync<crate::edge::callout::Answer>>,
    rate_sync: Arc<owned::OwnedSync<u64>>,
    digest_sync: Arc<owned::OwnedSync<u64>>,
    digest: crate::digest::ledger::Ledger,
    requests: requests::Requests,
    ops: rpc::Ops,
    custody: custody::Custody,
}

impl Cluster {
    /// The application over `parts`.
    pub fn new(parts: ClusterParts) -> Cluster {
        let ClusterParts {
            node_id,
            clock,
            addrs,
            health,
            stats,
            store,
            rules,
            relay,
            quarantine,
            bayes,
            custody,
            edge,
            digest,
        } = parts;
        Cluster {
            greylist_sync: Arc::new(owned::OwnedSync::new(
                edge.greylist.map(),
                GREYLIST_SYNC,
                clock.clone(),
            )),
            callout_sync: Arc::new(owned::OwnedSync::new(
                edge.callout.map(),
                CALLOUT_SYNC,
                clock.clone(),
            )),
            rate_sync: Arc::new(owned::OwnedSync::new(
                edge.rates.map(),
                RATE_SYNC,
                clock.clone(),
            )),
            digest_sync: Arc::new(owned::OwnedSync::new(
                digest.map(),
                DIGEST_SYNC,
                clock.clone(),
            )),
            digest,
            edge,
            rules: Arc::new(rules::RulesSync::new(rules)),
            index: Arc::new(index::IndexSync::new(quarantine.clone(), clock.clone())),
            bayes: Arc::new(bayes),
            requests: requests::Requests::new(
                quarantine.clone(),
                relay.clone(),
                clock,
                custody.clone(),
            ),
            ops: rpc::Ops {
                node_id: node_id.clone(),
                custody: custody.clone(),
                health: health.clone(),
                store,
                relay,
                quarantine: quarantine.clone(),
            },
            node_id,
            addrs,
            health,
            stats,
            quarantine,
            custody,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node_id
    }
}

impl MeshApp for Cluster {
    fn published(&self) -> Vec<(String, String)> {
        let mut kv = vec![
            (keys::HEALTH.to_string(), self.health.get().to_string()),
            (keys::SMTP_ADDR.to_string(), self.addrs.smtp.to_string()),
            (keys::ADMIN_ADDR.to_string(), self.addrs.admin.to_string()),
            (keys::FEATURES.to_string(), keys::RCPT_DECISIONS.to_string()),
            (
                keys::QUARANTINE_ENTRIES.to_string(),
                self.quarantine.live_entries().to_string(),
            ),
            (
                keys::COUNTERS.to_string(),
                serde_json::to_string(&self.stats.snapshot()).unwrap_or_default(),
            ),
        ];
        if let Some(dns) = self.addrs.dns {
            kv.push((keys::DNS_ADDR.to_string(), dns.to_string()));
        }
        kv
    }

    fn replicas(&self) -> Vec<Replica> {
        vec![
            Replica::session(&self.rules),
            Replica::pull(&self.index),
            Replica::pull(&self.bayes),
            Replica::pull(&self.greylist_sync),
            Replica::pull(&self.callout_sync),
            Replica::pull(&self.rate_sync),
            Replica::pull(&self.digest_sync),
        ]
    }

    fn rpc(
        self: Arc<Self>,
        from: Peer,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        Box::pin(async move { self.ops.serve(&from, &body).await })
    }

    fn jobs(&self) -> Vec<Job> {
        vec![
            Job {
                name: requests::JOB,
                interval: requests::REQUESTS_INTERVAL,
            },
            Job {
                name: custody::JOB,
                interval: custody::CUSTODY_INTERVAL,
            },
            Job {
                name: EDGE_PURGE_JOB,
                interval: EDGE_PURGE_INTERVAL,
            },
        ]
    }

    fn run_job(&self, name: &'static str) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match name {
                requests::JOB => self.requests.carry_out().await,
                custody::JOB => custody::copies::pass(&self.custody).await,
                _ => {}
            }
            if name == EDGE_PURGE_JOB {
                self.edge.callout.purge();
                self.edge.rates.purge();
                self.digest.purge();
                if let Err(e) = self.edge.greylist.purge().await {
                    tracing::warn!(error = %e, "greylist purge failed");
                }
            }
        })
    }
}
