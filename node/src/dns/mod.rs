//! DNS helper (PRODUCT.md §8): publish the healthy nodes as the A/AAAA set of `[dns] name`.
//!
//! - [`set`]: which addresses to publish — pure, with the safety rules (never empty,
//!   minority never withdraws, damped).
//! - [`server`]: the embedded authoritative server (hickory).
//! - [`run`]: recomputes the set from the membership view and republishes it.
//!
//! The RFC 2136 publisher to an external server comes with the rest of issue 4.

pub mod server;
pub mod set;

use std::sync::Weak;
use std::time::Duration;

use tokio::sync::watch;

use crate::clock::now_ms;
use crate::node::Shared;
use server::DnsServer;
use set::{Candidate, DnsSet, SetPolicy};

/// How often the published set is recomputed.
pub const DNS_UPDATE_INTERVAL: Duration = Duration::from_millis(250);

/// The members as the set computation sees them (just this node without a mesh).
async fn candidates(shared: &Shared) -> Vec<Candidate> {
    let me = &shared.config.node.id;
    let own_addr = shared.config.dns.as_ref().map(|d| d.publish_address);
    match shared.mesh.get() {
        Some(mesh) => mesh
            .members()
            .await
            .into_iter()
            .map(|m| Candidate {
                addr: if &m.id == me {
                    own_addr
                } else {
                    m.dns_addr.as_deref().and_then(|a| a.parse().ok())
                },
                live: m.live,
                healthy: if &m.id == me {
                    shared.health() == "ok"
                } else {
                    m.health == "ok"
                },
                last_seen_ms: m.last_seen_ms,
                id: m.id,
            })
            .collect(),
        None => vec![Candidate {
            id: me.clone(),
            addr: own_addr,
            live: true,
            healthy: shared.health() == "ok",
            last_seen_ms: 0,
        }],
    }
}

/// Keeps the server's record set current until shutdown, then stops the server.
pub async fn run(shared: Weak<Shared>, server: DnsServer, mut shutdown: watch::Receiver<bool>) {
    let mut set = DnsSet::default();
    let policy = SetPolicy::default();
    let mut tick = tokio::time::interval(DNS_UPDATE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let Some(shared) = shared.upgrade() else {
            break;
        };
        let me = shared.config.node.id.clone();
        let view = candidates(&shared).await;
        if set.update(&me, &view, now_ms(), &policy) {
            let ips = set.addresses();
            tracing::info!(?ips, "DNS set changed");
            server.publish(&ips).await;
        }
    }
    server.stop().await;
}
