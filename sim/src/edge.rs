//! The workload's SMTP-edge operations and their invariants: greylist triplets and
//! mesh-wide rate counters.
//!
//! Each tick, with probability [`EDGE_PER_TICK`], a random running node sees a greylist
//! triplet from a small pool (through the node's real `Greylist::check`, its store and its
//! replicated map) and counts a message for a rate key (`RateLimiter::admit`). The edge
//! draws from its own RNG (seeded from the run's seed), so the other workloads' draws are
//! unchanged.
//!
//! Invariants:
//!
//! - **continuous**: no running node's view of a rate counter (the mesh-wide count of one
//!   key in one minute) goes backwards. A restart starts a node's view afresh (counts live
//!   in memory; the peers' come back with the next sync).
//! - **after the heal**: a triplet that passed on any node passes on every running node
//!   (waited for up to the settle time). A pass recorded only on a node whose store was then
//!   wiped is forgotten by the book (it may have gone with the disk).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mxmesh_node::edge::greylist::{self, GreylistSettings, Verdict};
use mxmesh_node::edge::ratelimit::RateSettings;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use crate::scenario::Fault;
use crate::world::World;

/// Probability per tick of one greylist sighting and one counted message.
pub const EDGE_PER_TICK: f64 = 0.8;
/// Distinct triplets the workload draws from.
pub const TRIPLETS: u8 = 4;
/// Distinct rate-limited clients the workload draws from.
pub const RATE_CLIENTS: u8 = 3;
/// Mixed into the run's seed for the edge's own RNG.
const EDGE_SEED: u64 = 0x6564_6765;
/// Violations of one kind listed at most.
const SHOWN_MAX: usize = 3;

/// The greylist settings of the run: a delay short enough that retries pass during it.
pub fn settings() -> GreylistSettings {
    GreylistSettings {
        delay_secs: 2,
        skip_spf_pass: false,
        auto_allow_after: 0,
        ..GreylistSettings::default()
    }
}

/// What the edge workload did and saw.
#[derive(Debug, Default)]
pub struct Book {
    rng: Option<StdRng>,
    /// Triplet key → nodes (indices) it passed on.
    passed: BTreeMap<String, BTreeSet<usize>>,
    /// (node, window key) → the highest mesh-wide count that node showed.
    seen: BTreeMap<(usize, String), u64>,
    sightings: usize,
    counted: usize,
    violations: Vec<String>,
}

/// The edge's figures in the outcome.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Greylist checks made.
    pub sightings: usize,
    /// Distinct triplets that passed somewhere.
    pub passed: usize,
    /// Messages counted by the rate limiter.
    pub counted: usize,
}

impl Book {
    /// A book whose RNG derives from the run's `seed`.
    pub fn new(seed: u64) -> Book {
        Book {
            rng: Some(StdRng::seed_from_u64(seed ^ EDGE_SEED)),
            ..Book::default()
        }
    }

    /// Before a fault: a started node's rate view starts afresh; a wiped node's passes may
    /// be gone.
    pub fn note_fault(&mut self, fault: &Fault) {
        let Fault::Start { node, wipe } = fault else {
            return;
        };
        self.seen.retain(|(n, _), _| n != node);
        if *wipe {
            self.passed.retain(|_, nodes| {
                nodes.remove(node);
                !nodes.is_empty()
            });
        }
    }

    /// The violations of the continuous invariant, moved out.
    pub fn take_violations(&mut self) -> Vec<String> {
        std::mem::take(&mut self.violations)
    }

    /// The figures.
    pub fn summary(&self) -> Summary {
        Summary {
            sightings: self.sightings,
            passed: self.passed.len(),
            counted: self.counted,
        }
    }
}

/// One tick of the edge workload, then a sample of every node's rate view.
pub async fn step(world: &World, book: &mut Book) {
    let Some(rng) = book.rng.as_mut() else {
        return;
    };
    let up = world.up();
    if !up.is_empty() && rng.random_bool(EDGE_PER_TICK) {
        let node = up[rng.random_range(0..up.len())];
        let k = rng.random_range(0..TRIPLETS);
        let c = rng.random_range(0..RATE_CLIENTS);
        sighting(world, book, node, k).await;
        count(world, book, node, c);
    }
    sample(world, book);
}

fn triplet(k: u8) -> (IpAddr, String, String) {
    let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, k));
    (
        client,
        format!("s{k}@outside.test"),
        "user@example.com".into(),
    )
}

fn rate_client(c: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(203, 0, 113, c))
}

async fn sighting(world: &World, book: &mut Book, node: usize, k: u8) {
    let Some(handle) = world.handle(node) else {
        return;
    };
    let (client, sender, rcpt) = triplet(k);
    let greylist = &handle.inbound.edge.state().greylist;
    let verdict = greylist
        .check(&settings(), client, &sender, &rcpt, async { false })
        .await;
    book.sightings += 1;
    if let Ok(Verdict::Known | Verdict::Retried) = verdict {
        let key = greylist::triplet_key(client, &sender, &rcpt);
        book.passed.entry(key).or_default().insert(node);
    }
}

fn rate_settings() -> RateSettings {
    RateSettings {
        per_client_per_minute: 1_000_000,
        ..RateSettings::default()
    }
}

fn count(world: &World, book: &mut Book, node: usize, c: u8) {
    let Some(handle) = world.handle(node) else {
        return;
    };
    let rates = &handle.inbound.edge.state().rates;
    rates.admit(&rate_settings(), rate_client(c), "");
    book.counted += 1;
}

/// Every running node's view of every rate key: none may go below what it showed before.
fn sample(world: &World, book: &mut Book) {
    for node in world.up() {
        let Some(handle) = world.handle(node) else {
            continue;
        };
        let rates = &handle.inbound.edge.state().rates;
        let minute = world.nodes[node].clock.now_ms() / 60_000;
        for c in 0..RATE_CLIENTS {
            let group =
                mxmesh_node::edge::ratelimit::client_group(rate_client(c), &rate_settings());
            let key = format!("c:{group}");
            let now = rates.current(&key);
            let window = mxmesh_node::edge::ratelimit::window_key(&key, minute);
            let before = book.seen.entry((node, window.clone())).or_insert(0);
            if now < *before && book.violations.len() < SHOWN_MAX {
                book.violations.push(format!(
                    "rate counter {window} went backwards on {}: {before} then {now}",
                    world.nodes[node].id
                ));
            }
            *before = (*before).max(now);
        }
    }
}

/// After the heal: every triplet that passed somewhere passes on every running node,
/// within `settle`.
pub async fn check(world: &World, book: &Book, settle: Duration, violations: &mut Vec<String>) {
    let deadline = Instant::now() + settle;
    loop {
        let missing = missing(world, book);
        if missing.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            let shown: Vec<String> = missing.into_iter().take(SHOWN_MAX).collect();
            violations.push(format!(
                "greylist: a triplet that passed does not pass on every node {}s after the heal: {}",
                settle.as_secs(),
                shown.join("; ")
            ));
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `triplet (passed on …) not known on NODE` for every gap.
fn missing(world: &World, book: &Book) -> Vec<String> {
    let s = settings();
    let mut out = Vec::new();
    for (key, on) in &book.passed {
        for node in world.up() {
            let Some(handle) = world.handle(node) else {
                continue;
            };
            if !handle.inbound.edge.state().greylist.would_pass(&s, key) {
                let by: Vec<&str> = on.iter().map(|i| world.nodes[*i].id.as_str()).collect();
                out.push(format!(
                    "{key} (passed on {}) not on {}",
                    by.join(","),
                    world.nodes[node].id
                ));
            }
        }
    }
    out
}
