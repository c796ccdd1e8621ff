//! DNS helper (README, "DNS"): publish the healthy nodes as the A/AAAA set of `[dns] name`.
//!
//! - [`set`]: which addresses to publish and which node pushes them to an external
//!   server — pure, with the safety rules (never empty, minority never withdraws, damped).
//! - [`server`]: the embedded authoritative server (hickory), behind [`guard`] (other
//!   classes and zone transfers refused).
//! - [`rfc2136`]: the TSIG-signed dynamic-update client for an external server.
//! - [`run`]: recomputes the set from the membership view and hands it to both.

pub mod guard;
pub mod rfc2136;
pub mod server;
pub mod set;

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use serde::Serialize;
use tokio::sync::watch;

use crate::clock::Clock;
use crate::cluster::view;
use crate::health::Health;
use crate::mesh::Mesh;
use rfc2136::Publisher;
use server::DnsServer;
use set::{Candidate, DnsSet, SetPolicy};

/// How often the published set is recomputed.
pub const DNS_UPDATE_INTERVAL: Duration = Duration::from_millis(250);
/// The publisher compares the external server's set with its own this often.
pub const RFC2136_CHECK: Duration = Duration::from_secs(5);
/// A node with mesh seeds does not publish externally until it has been up this long: at
/// first it may see only itself, or some members not yet live, and would push a partial set.
pub const RFC2136_JOIN_GRACE: Duration = Duration::from_secs(5);
/// First retry after a failed update; doubles up to [`RFC2136_RETRY_MAX`].
pub const RFC2136_RETRY_MIN: Duration = Duration::from_secs(1);
pub const RFC2136_RETRY_MAX: Duration = Duration::from_secs(30);

/// The simulator's self-check (`mxmesh-sim --break dns-withdraw`): the DNS set treats
/// every member as live, so a dead node is never withdrawn. The daemon never sets it.
pub static BREAK_DNS_WITHDRAW: AtomicBool = AtomicBool::new(false);

/// What the DNS helper works with.
#[derive(Clone)]
pub struct DnsContext {
    /// This node's id.
    pub node_id: String,
    /// The address this node publishes (`[dns] publish_address`).
    pub publish_address: IpAddr,
    /// Whether `[mesh] seeds` lists any (see [`RFC2136_JOIN_GRACE`]).
    pub has_seeds: bool,
    /// The node's wall clock, for the set computation.
    pub clock: Clock,
    /// This node's health, as the set computation sees it (`ok` = healthy).
    pub health: Health,
    /// The mesh, when `[mesh]` is configured.
    pub mesh: Option<Arc<Mesh>>,
    /// Where the helper reports what it does.
    pub state: Arc<DnsState>,
}

/// What the DNS helper is doing, for `/api/v1/cluster` and `/metrics`.
#[derive(Debug, Default, Clone, Serialize, PartialEq)]
pub struct DnsStatus {
    /// The addresses this node's set lists.
    pub published: Vec<IpAddr>,
    /// The node that pushes to the external server (none on a minority side).
    pub publisher: Option<String>,
    /// The external server, when `[dns] rfc2136` is set.
    pub rfc2136_server: Option<String>,
    /// Updates this node sent that the server confirmed.
    pub rfc2136_updates_ok: u64,
    /// Update attempts that failed (`rfc2136_last_error` says why).
    pub rfc2136_updates_failed: u64,
    /// The addresses the external server was last confirmed to hold (from this node).
    pub rfc2136_confirmed: Option<Vec<IpAddr>>,
    /// Why the last update failed; cleared by the next success.
    pub rfc2136_last_error: Option<String>,
}

/// The [`DnsStatus`], behind a lock.
#[derive(Debug, Default)]
pub struct DnsState(Mutex<DnsStatus>);

impl DnsState {
    pub fn get(&self) -> DnsStatus {
        self.0.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn with(&self, f: impl FnOnce(&mut DnsStatus)) {
        if let Ok(mut s) = self.0.lock() {
            f(&mut s);
        }
    }
}

/// The members as the set computation sees them (just this node without a mesh).
async fn candidates(ctx: &DnsContext) -> Vec<Candidate> {
    let me = &ctx.node_id;
    let own_addr = Some(ctx.publish_address);
    match &ctx.mesh {
        Some(mesh) => mesh
            .members_recent()
            .await
            .iter()
            .map(|m| Candidate {
                addr: if &m.id == me {
                    own_addr
                } else {
                    view::dns_addr(m).and_then(|a| a.parse().ok())
                },
                live: m.live || BREAK_DNS_WITHDRAW.load(Ordering::Relaxed),
                healthy: if &m.id == me {
                    ctx.health.get() == "ok"
                } else {
                    view::health(m) == "ok"
                },
                last_seen_ms: m.last_seen_ms,
                id: m.id.clone(),
            })
            .collect(),
        None => vec![Candidate {
            id: me.clone(),
            addr: own_addr,
            live: true,
            healthy: ctx.health.get() == "ok",
            last_seen_ms: 0,
        }],
    }
}

/// Keeps the embedded server's record set current and tells the publisher what to push,
/// until shutdown; then stops the server.
pub async fn run(
    ctx: DnsContext,
    server: Option<DnsServer>,
    publisher: Option<Publisher>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut set = DnsSet::default();
    let policy = SetPolicy::default();
    let (want_tx, want_rx) = watch::channel(None);
    let pusher = publisher.map(|p| {
        tokio::spawn(publish_loop(
            ctx.state.clone(),
            p,
            want_rx,
            shutdown.clone(),
        ))
    });
    let mut tick = tokio::time::interval(DNS_UPDATE_INTERVAL);
    let started = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let me = ctx.node_id.clone();
        let view = candidates(&ctx).await;
        if set.update(&me, &view, ctx.clock.now_ms(), &policy) {
            let ips = set.addresses();
            tracing::info!(?ips, "DNS set changed");
            if let Some(server) = &server {
                server.publish(&ips).await;
            }
        }
        let publisher = set::publisher(&view, &policy).map(str::to_string);
        let joined = !ctx.has_seeds || started.elapsed() >= RFC2136_JOIN_GRACE;
        let ours = joined && publisher.as_deref() == Some(me.as_str());
        want_tx.send_if_modified(|w| {
            let next = ours.then(|| set.addresses());
            let changed = *w != next;
            *w = next;
            changed
        });
        ctx.state.with(|s| {
            s.published = set.addresses();
            s.publisher = publisher;
        });
    }
    if let Some(server) = server {
        server.stop().await;
    }
    if let Some(pusher) = pusher {
        let _ = pusher.await;
    }
}

/// Keeps the external server's set equal to the wanted one while this node is the
/// publisher: checks at once when the wanted set changes or this node takes over, and
/// every [`RFC2136_CHECK`] otherwise (repairing edits made behind its back, or by a node
/// that briefly thought it was the publisher); backs off after failures.
async fn publish_loop(
    state: Arc<DnsState>,
    publisher: Publisher,
    mut want: watch::Receiver<Option<Vec<IpAddr>>>,
    mut shutdown: watch::Receiver<bool>,
) {
    state.with(|st| st.rfc2136_server = Some(publisher.server().to_string()));
    let mut checked: Option<(Vec<IpAddr>, Instant)> = None;
    let mut retry = RFC2136_RETRY_MIN;
    let mut not_before = Instant::now();
    loop {
        let target = want.borrow_and_update().clone();
        match target {
            // Not the publisher (any more): a later takeover checks at once.
            None => checked = None,
            Some(ips) => {
                let fresh = checked
                    .as_ref()
                    .is_some_and(|(c, at)| *c == ips && at.elapsed() < RFC2136_CHECK);
                if !fresh && Instant::now() >= not_before {
                    let result = publisher.sync(&ips).await;
                    match result {
                        Ok(sent) => {
                            if sent {
                                tracing::info!(
                                    server = publisher.server(),
                                    ?ips,
                                    "RFC 2136 update applied"
                                );
                            }
                            retry = RFC2136_RETRY_MIN;
                            state.with(|s| {
                                s.rfc2136_updates_ok += u64::from(sent);
                                s.rfc2136_confirmed = Some(ips.clone());
                                s.rfc2136_last_error = None;
                            });
                            checked = Some((ips, Instant::now()));
                        }
                        Err(e) => {
                            tracing::error!(error = %e, retry_in_s = retry.as_secs(), "RFC 2136 update failed");
                            not_before = Instant::now() + retry;
                            retry = (retry * 2).min(RFC2136_RETRY_MAX);
                            state.with(|s| {
                                s.rfc2136_updates_failed += 1;
                                s.rfc2136_last_error = Some(e.to_string());
                            });
                        }
                    }
                }
            }
        }
        tokio::select! {
            r = want.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(DNS_UPDATE_INTERVAL) => {}
            _ = shutdown.changed() => break,
        }
    }
}
