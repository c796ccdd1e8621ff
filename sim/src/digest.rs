//! The digest workload and its invariants: held mail for a few recipients, and digest runs
//! (`POST /api/v1/digest/run` on a random running node) during the faults, through the
//! nodes' real digest loops, ledger sync and relay to the sink.
//!
//! Each tick, with probability [`MAIL_PER_TICK`], a random running node takes a message
//! to one of [`RECIPIENTS`] recipients that the run's quarantine rule holds; with
//! probability [`RUN_PER_TICK`] a run is requested. After the heal (and the mesh's
//! convergence) one more run is requested and the digests are counted in the sink by
//! recipient and period (the digest's `X-Mxmesh-Digest-Period` header).
//!
//! Invariants:
//!
//! - **never two**: no recipient gets two digests for one period — unless a node stopped
//!   or crashed in the run (a sender that stops after queueing a digest but before its
//!   watermark left it has its recipients sent again: at least once over at most once);
//! - **nobody missed**: after the final run, every recipient with mail still held that was
//!   received before the final period has a digest whose period covers its newest such
//!   message.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use crate::scenario::Fault;
use crate::world::World;

/// Probability per tick of one held message for a digest recipient.
pub const MAIL_PER_TICK: f64 = 0.3;
/// Probability per tick of a digest run request.
pub const RUN_PER_TICK: f64 = 0.05;
/// Distinct digest recipients.
pub const RECIPIENTS: usize = 6;
/// Mixed into the run's seed for the digest workload's own RNG.
const DIGEST_SEED: u64 = 0x6469_6765_7374;
/// How often the after-heal check looks again.
const POLL: Duration = Duration::from_millis(500);
/// Violations of one kind listed at most.
const SHOWN_MAX: usize = 3;
/// The header a digest names its period in.
const PERIOD_HEADER: &str = "X-Mxmesh-Digest-Period: ";

/// What the digest workload did.
#[derive(Debug)]
pub struct Book {
    rng: StdRng,
    held: usize,
    runs: usize,
    stopped: bool,
}

/// The digest figures in the outcome.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    /// Messages held for digest recipients.
    pub held: usize,
    /// Runs requested (the final one included).
    pub runs: usize,
    /// Digests that reached the sink.
    pub digests: usize,
    /// Distinct periods the digests name.
    pub periods: usize,
}

impl Book {
    /// A book whose RNG derives from the run's `seed`.
    pub fn new(seed: u64) -> Book {
        Book {
            rng: StdRng::seed_from_u64(seed ^ DIGEST_SEED),
            held: 0,
            runs: 0,
            stopped: false,
        }
    }

    /// A stop or crash allows a repeated digest (see the module docs).
    pub fn note_fault(&mut self, fault: &Fault) {
        if matches!(fault, Fault::Stop { .. } | Fault::Crash { .. }) {
            self.stopped = true;
        }
    }
}

/// The digest settings, written on node 0 (which also makes the link key).
pub async fn setup(world: &World) {
    let settings = json!({"public_url": "https://mx.sim.test", "sender": "digest@example.com"});
    let (status, body) = world
        .api(0, "PUT", "/api/v1/settings/digest", Some(settings))
        .await;
    if status != 200 {
        eprintln!("sim: digest settings not written: {status} {body}");
    }
}

/// One tick of the workload.
pub async fn step(world: &World, book: &mut Book) {
    let up = world.up();
    if up.is_empty() {
        return;
    }
    if book.rng.random_bool(MAIL_PER_TICK) {
        let node = up[book.rng.random_range(0..up.len())];
        let rcpt = format!("d{}@example.com", book.rng.random_range(0..RECIPIENTS));
        let token = format!("dg-{}", book.held);
        if world.send_mail_to(node, &token, true, &rcpt).await == 250 {
            book.held += 1;
        }
    }
    if book.rng.random_bool(RUN_PER_TICK) {
        let node = up[book.rng.random_range(0..up.len())];
        if world.api(node, "POST", "/api/v1/digest/run", None).await.0 == 202 {
            book.runs += 1;
        }
    }
}

/// The after-heal run and both invariants.
pub async fn check(
    world: &World,
    book: &Book,
    settle: Duration,
    violations: &mut Vec<String>,
) -> Summary {
    let mut summary = Summary {
        held: book.held,
        runs: book.runs,
        digests: 0,
        periods: 0,
    };
    let Some(&first) = world.up().first() else {
        return summary;
    };
    let (status, run) = world.api(first, "POST", "/api/v1/digest/run", None).await;
    let Some(period) = run["period_ms"].as_u64().filter(|_| status == 202) else {
        violations.push(format!(
            "digest: the final run was refused ({status} {run})"
        ));
        return summary;
    };
    summary.runs += 1;
    if !settled(world, period, settle).await {
        violations.push(format!(
            "digest: the final run was not complete (queues drained) on every node {}s after it",
            settle.as_secs()
        ));
    }
    let sent = digests(world);
    summary.digests = sent.values().sum();
    let periods: std::collections::BTreeSet<u64> = sent.keys().map(|(_, p)| *p).collect();
    summary.periods = periods.len();
    if !book.stopped {
        let twice: Vec<String> = sent
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|((rcpt, p), n)| format!("{rcpt} got {n} digests for period {p}"))
            .collect();
        violations.extend(twice.into_iter().take(SHOWN_MAX));
    }
    let missed: Vec<String> = (0..RECIPIENTS)
        .map(|k| format!("d{k}@example.com"))
        .filter_map(|rcpt| {
            let newest = newest_held(world, first, &rcpt, period)?;
            let covered = sent.keys().any(|(r, p)| *r == rcpt && *p >= newest);
            (!covered).then(|| format!("{rcpt}: no digest covers its mail held at {newest}"))
        })
        .collect();
    violations.extend(missed.into_iter().take(SHOWN_MAX));
    summary
}

/// Waits until every running node completed `period` and its relay queue is empty.
async fn settled(world: &World, period: u64, settle: Duration) -> bool {
    let deadline = Instant::now() + settle;
    while Instant::now() < deadline {
        let mut all = true;
        for i in world.up() {
            let (_, d) = world.api(i, "GET", "/api/v1/digest", None).await;
            let (_, q) = world.api(i, "GET", "/api/v1/queue", None).await;
            let done = d["period_ms"] == period && d["complete"] == true && q["size"] == 0;
            if !done {
                all = false;
                break;
            }
        }
        if all {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    false
}

/// The newest `received_ms` (at most `period`) of `rcpt`'s mail still held, as node `i`
/// sees it.
fn newest_held(world: &World, i: usize, rcpt: &str, period: u64) -> Option<u64> {
    let node = world.handle(i)?;
    let q = mxmesh_crdt::qindex::IndexQuery {
        rcpt: Some(rcpt.to_string()),
        status: Some(mxmesh_crdt::qindex::EntryStatus::Quarantined),
        limit: mxmesh_crdt::qindex::SEARCH_LIMIT_MAX,
        ..Default::default()
    };
    let (items, _) = node.quarantine.index().search(&q);
    items
        .iter()
        .filter(|e| e.recipients.iter().any(|r| r == rcpt))
        .map(|e| e.received_ms)
        .filter(|ms| *ms <= period)
        .max()
}

/// Digests in the sink by (recipient, period).
fn digests(world: &World) -> BTreeMap<(String, u64), usize> {
    let mut counts = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(&world.sink.dir) else {
        return counts;
    };
    for e in dir.flatten() {
        let Ok(text) = std::fs::read_to_string(e.path()) else {
            continue;
        };
        let header = |name: &str| {
            text.lines()
                .take_while(|l| !l.is_empty())
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        let period = header(PERIOD_HEADER).and_then(|p| p.parse::<u64>().ok());
        let to = header("To: <").map(|t| t.trim_end_matches('>').to_string());
        if let (Some(period), Some(to)) = (period, to) {
            *counts.entry((to, period)).or_insert(0) += 1;
        }
    }
    counts
}
