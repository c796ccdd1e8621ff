//! Greylist decision cost: nanoseconds per decision of the pure part of a greylist check
//! at RCPT — the triplet key (network, sender, recipient hashed with SHA-256) and the step
//! over every node's sightings — on a 3-node view holding `SIGHTINGS_PER_NODE` sightings per
//! node. The store write of a first sighting is not included (it is one synced batch,
//! shared by group commit; see BENCHMARKS.md §1 for write costs).
//!
//! `cargo run --release -p mxmesh-node --example greylist_bench` prints one JSON line per case.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use mxmesh_crdt::owned::OwnedMap;
use mxmesh_node::edge::greylist::{GREYLIST_ENTRIES_MAX, Sighting, Step, step, triplet_key};

/// Nodes whose sightings the view holds.
const NODES: usize = 3;
/// Sightings each node holds (a busy node's day).
const SIGHTINGS_PER_NODE: usize = 100_000;
/// Decisions timed per case.
const DECISIONS: usize = 1_000_000;
/// The greylist delay (the default, 5 minutes).
const DELAY_MS: u64 = 300_000;
/// The clock of the run.
const NOW_MS: u64 = 1_800_000_000_000;
/// Sightings live this long (the default remember time, 36 days).
const REMEMBER_MS: u64 = 36 * 86_400_000;

fn client(i: usize) -> IpAddr {
    let [_, a, b, c] = (i as u32).to_be_bytes();
    IpAddr::V4(Ipv4Addr::new(10, a, b, c))
}

fn sender(i: usize) -> String {
    format!("sender{i}@remote{}.test", i % 997)
}

/// A view with `NODES` owners, each holding `SIGHTINGS_PER_NODE` sightings; node `n` saw
/// triplet `i` when `i % NODES == n`; even triplets have passed.
fn view() -> OwnedMap<Sighting> {
    let mut map = OwnedMap::new(GREYLIST_ENTRIES_MAX);
    for i in 0..NODES * SIGHTINGS_PER_NODE {
        let key = triplet_key(client(i), &sender(i), "user@example.com");
        let owner = format!("mx{}", i % NODES + 1);
        let seen = Sighting {
            first_ms: NOW_MS - 600_000,
            passed_ms: if i % 2 == 0 { NOW_MS - 1000 } else { 0 },
            passes: u32::from(i % 2 == 0),
        };
        map.put_own(&owner, &key, seen, NOW_MS + REMEMBER_MS, NOW_MS)
            .expect("a valid sighting");
    }
    map
}

/// Times `DECISIONS` decisions for triplets `pick(i)`; returns ns per decision.
fn time(map: &OwnedMap<Sighting>, pick: impl Fn(usize) -> usize) -> (f64, usize) {
    let mut new = 0;
    let start = Instant::now();
    for i in 0..DECISIONS {
        let t = pick(i);
        let key = triplet_key(client(t), &sender(t), "user@example.com");
        if black_box(step(map, &key, DELAY_MS, NOW_MS)) == Step::New {
            new += 1;
        }
    }
    let ns = start.elapsed().as_nanos() as f64 / DECISIONS as f64;
    (ns, new)
}

fn main() {
    let started = Instant::now();
    let map = view();
    let built_ms = started.elapsed().as_millis();
    let total = NODES * SIGHTINGS_PER_NODE;
    let known = |i: usize| (i * 7919) % total;
    let new = |i: usize| total + i;
    let cases: [(&str, &dyn Fn(usize) -> usize); 2] =
        [("known triplet", &known), ("new triplet", &new)];
    for (name, pick) in cases {
        let (ns, new) = time(&map, pick);
        println!(
            "{{\"case\":\"{name}\",\"nodes\":{NODES},\"sightings\":{total},\"decisions\":{DECISIONS},\"ns_per_decision\":{ns:.0},\"new\":{new},\"view_build_ms\":{built_ms}}}"
        );
    }
}
