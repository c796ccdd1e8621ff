//! One simulated run: start the world, play the fault timeline while the workload runs,
//! heal, wait for convergence, check the invariants. Every time here is tokio's (virtual,
//! on the simulator's paused runtime) except [`Outcome::wall_clock_ms`].

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;

use mxmesh_node::mesh::memory::LinkFaults;

use crate::invariants::{Expect, Watch};
use crate::learn;
use crate::scenario::{self, Event, Fault};
use crate::world::World;

mod checks;
use checks::{check_mail, check_rules, divergence};
pub(crate) use checks::{converge, delivered};

/// How often the workload acts and the continuous invariants are sampled.
const TICK: Duration = Duration::from_millis(200);
/// Time allowed for the mesh to form at the start, at least (see `FORM_TIMEOUT_PER_NODE`).
const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// Probability per tick of a Bayes learn or forget, beside the tick's other operation.
const LEARN_PER_TICK: f64 = 0.5;
/// Extra formation time per node: every node must hear of every other (through gossip, its
/// signed identity claim, `mesh::claim`) before its membership view is complete.
const FORM_TIMEOUT_PER_NODE: Duration = Duration::from_secs(1);

/// What one run found.
#[derive(Debug, Serialize)]
pub struct Outcome {
    /// The scenario's name.
    pub scenario: String,
    /// The seed the run was made from.
    pub seed: u64,
    /// Nodes in the simulated mesh.
    pub nodes: usize,
    /// The faults, in the order they were applied.
    pub timeline: Vec<Event>,
    /// Messages a node accepted (250 after DATA).
    pub mail_acked: usize,
    /// Of those, the ones quarantined.
    pub mail_quarantined: usize,
    /// Quarantined messages the workload released.
    pub releases: usize,
    /// Rule creates, updates and deletes the workload made.
    pub rule_ops: usize,
    /// The Bayes learns and forgets, and the learned set after the heal.
    pub learning: learn::Summary,
    /// The greylist sightings and rate counts of the SMTP edge.
    pub edge: crate::edge::Summary,
    /// The digest workload: held mail, runs, digests delivered.
    pub digest: crate::digest::Summary,
    /// Time from the final heal until every node had the same rules, index and Bayes
    /// corpus.
    pub convergence_ms: Option<u64>,
    /// Messages delivered downstream more than once.
    pub duplicates_delivered: usize,
    /// Acked messages whose node's store the timeline wiped before they left it.
    pub lost_to_wipe: usize,
    /// What broke an invariant, in words; empty when the run passed.
    pub violations: Vec<String>,
    /// Real (wall-clock) time the run took: the one field that differs between repeats of
    /// a seed. Every other time in the outcome is simulated time.
    pub wall_clock_ms: u64,
    /// Simulated time the run covered, start to shutdown.
    pub simulated_ms: u64,
    /// Draws from the seeded "OS" randomness during the run (a determinism check).
    pub entropy_draws: u64,
    /// Time of the final heal, ms from the start of the fault phase.
    pub healed_at_ms: u64,
    /// What the workload did and when (for the timeline picture).
    pub ops: Vec<Op>,
    /// `disk-loss` only: what the lost node held and how much of it had its copy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_loss: Option<crate::disk_loss::Summary>,
}

/// One workload operation: when, on which node, what.
#[derive(Debug, Clone, Serialize)]
pub struct Op {
    /// When, in ms of simulated time from the start of the fault phase.
    pub at_ms: u64,
    /// The node's index in the world.
    pub node: usize,
    /// What it was: `mail`, `rule`, `quarantine`, `learn` or `forget`.
    pub kind: &'static str,
}

/// What the workload did, to check against.
#[derive(Default)]
struct Ledger {
    /// token → quarantined?
    acked: BTreeMap<String, bool>,
    /// token → the node that accepted it.
    accepted_by: BTreeMap<String, usize>,
    /// Tokens whose only copy was on a store the timeline wiped: lost by design (a wiped
    /// disk), reported but not a violation.
    wiped: BTreeSet<String>,
    /// Tokens whose owner's store was wiped after it took them: their index entries went
    /// with that disk even when the message itself had been delivered.
    owner_wiped: BTreeSet<String>,
    released: BTreeSet<String>,
    /// token → (node asked, HTTP status) of its release.
    released_via: BTreeMap<String, (usize, u16)>,
    deleted_msgs: BTreeSet<String>,
    rules: Vec<String>,
    deleted_rules: BTreeSet<String>,
    /// rule id → the node its delete was made on. A delete that had not left that node when
    /// the timeline wiped its store went with the disk (by design, like mail on a wiped
    /// disk): from the wipe on the rule is no longer counted as deleted, and may stay.
    deleted_via: BTreeMap<String, usize>,
    rule_ops: usize,
    ops: Vec<Op>,
}

/// Knobs of one run.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    /// Nodes in the simulated mesh.
    pub nodes: usize,
    /// Length of the fault phase.
    pub run_ms: u64,
    /// Time allowed after the final heal for rules and index to converge and mail to drain.
    pub settle: Duration,
}

pub async fn run(scenario: &str, seed: u64, p: Params) -> anyhow::Result<Outcome> {
    if scenario == crate::disk_loss::DISK_LOSS {
        return crate::disk_loss::run(seed, p).await;
    }
    let (n, run_ms) = (p.nodes, p.run_ms);
    let wall_started = std::time::Instant::now();
    let started = Instant::now();
    let draws_before = crate::entropy::draws();
    let mut rng = StdRng::seed_from_u64(seed);
    let timeline = scenario::schedule(scenario, n, run_ms, &mut rng)?;
    let mut world = World::start(n).await?;
    progress(n, "nodes started", started, wall_started);
    let mut violations = Vec::new();
    if !formed(&world).await {
        violations.push("the mesh did not form before the faults".into());
    }
    progress(n, "formed", started, wall_started);
    let mut ledger = Ledger::default();
    create_quarantine_rule(&world, &mut ledger).await;
    crate::digest::setup(&world).await;
    let mut digest_book = crate::digest::Book::new(seed);
    let t0 = Instant::now();
    let mut next = 0;
    let mut token_seq = 0u64;
    let mut watch = Watch::default();
    let mut book = learn::Book::default();
    let mut edge_book = crate::edge::Book::new(seed);
    while t0.elapsed() < Duration::from_millis(run_ms) {
        let now_ms = t0.elapsed().as_millis() as u64;
        while next < timeline.len() && timeline[next].at_ms <= now_ms {
            note_wipe(&world, &timeline[next].fault, &mut ledger, &mut book);
            edge_book.note_fault(&timeline[next].fault);
            digest_book.note_fault(&timeline[next].fault);
            apply(&mut world, &timeline[next].fault).await;
            next += 1;
        }
        crate::edge::step(&world, &mut edge_book).await;
        crate::digest::step(&world, &mut digest_book).await;
        if let Some((node, kind)) =
            workload_step(&world, &mut rng, &mut ledger, &mut token_seq).await
        {
            ledger.ops.push(Op {
                at_ms: now_ms,
                node,
                kind,
            });
        }
        if rng.random_bool(LEARN_PER_TICK)
            && let Some((node, kind)) = learn::step(&world, &mut rng, &mut book).await
        {
            ledger.ops.push(Op {
                at_ms: now_ms,
                node,
                kind,
            });
        }
        watch_tick(&mut watch, &world, &ledger, now_ms);
        tokio::time::sleep(TICK).await;
    }
    while next < timeline.len() {
        edge_book.note_fault(&timeline[next].fault);
        digest_book.note_fault(&timeline[next].fault);
        apply(&mut world, &timeline[next].fault).await;
        next += 1;
    }
    violations.append(&mut watch.violations);
    violations.append(&mut edge_book.take_violations());
    progress(n, "faults over, healed", started, wall_started);
    let healed = Instant::now();
    let healed_at_ms = t0.elapsed().as_millis() as u64;
    let convergence_ms = converge(&world, p.settle)
        .await
        .map(|()| healed.elapsed().as_millis() as u64);
    if convergence_ms.is_none() {
        violations.push(format!(
            "rules, quarantine index or Bayes corpus not identical on every node {}s after the heal: {}",
            p.settle.as_secs(),
            divergence(&world)
        ));
    }
    progress(n, "converged (or gave up)", started, wall_started);
    let duplicates = check_mail(&world, &ledger, p.settle, &mut violations).await;
    check_rules(&world, &ledger, &mut violations);
    let learning = learn::check(&world, &book, &mut violations);
    crate::edge::check(&world, &edge_book, p.settle, &mut violations).await;
    let digest = crate::digest::check(&world, &digest_book, p.settle, &mut violations).await;
    progress(n, "mail and rules checked", started, wall_started);
    let outcome = Outcome {
        scenario: scenario.into(),
        seed,
        nodes: n,
        timeline,
        mail_acked: ledger.acked.len(),
        mail_quarantined: ledger.acked.values().filter(|q| **q).count(),
        releases: ledger.released.len(),
        rule_ops: ledger.rule_ops,
        learning,
        edge: edge_book.summary(),
        digest,
        convergence_ms,
        duplicates_delivered: duplicates,
        lost_to_wipe: ledger.wiped.len(),
        violations,
        wall_clock_ms: wall_started.elapsed().as_millis() as u64,
        simulated_ms: started.elapsed().as_millis() as u64,
        entropy_draws: crate::entropy::draws() - draws_before,
        healed_at_ms,
        ops: std::mem::take(&mut ledger.ops),
        disk_loss: None,
    };
    world.shutdown().await;
    progress(n, "shut down", started, wall_started);
    Ok(outcome)
}

/// From this many nodes on, a run reports its progress on stderr (it takes minutes).
const PROGRESS_NODES_MIN: usize = 100;

/// One progress line on stderr for a large run: virtual and wall time so far.
fn progress(n: usize, what: &str, started: Instant, wall: std::time::Instant) {
    if n >= PROGRESS_NODES_MIN {
        eprintln!(
            "{n} nodes: {what} at {:.1} s virtual, {:.0} s wall",
            started.elapsed().as_secs_f64(),
            wall.elapsed().as_secs_f64()
        );
    }
}

pub(crate) async fn formed(world: &World) -> bool {
    let n = world.nodes.len();
    let deadline = Instant::now() + FORM_TIMEOUT.max(FORM_TIMEOUT_PER_NODE * n as u32);
    while Instant::now() < deadline {
        let mut all = true;
        for i in world.up() {
            let Some(mesh) = world.handle(i).and_then(|s| s.mesh.as_ref()) else {
                return false;
            };
            // Stop at the first node still missing someone: each look is O(N).
            all = mesh.members().await.iter().filter(|m| m.live).count() == n;
            if !all {
                break;
            }
        }
        if all {
            return true;
        }
        tokio::time::sleep(TICK).await;
    }
    false
}

async fn create_quarantine_rule(world: &World, ledger: &mut Ledger) {
    let rule = json!({"name": "sim quarantine", "priority": 1, "action": "quarantine",
        "when": {"field": "subject", "op": "contains", "value": "quarantine-me"}});
    let (status, body) = world.api(0, "POST", "/api/v1/rules", Some(rule)).await;
    if status == 201
        && let Some(id) = body["id"].as_str()
    {
        ledger.rules.push(id.to_string());
    }
}

/// Before a wipe: what that node accepted and had not delivered is lost with its disk, and
/// the rule deletes and Bayes words made on it may be.
fn note_wipe(world: &World, fault: &Fault, ledger: &mut Ledger, book: &mut learn::Book) {
    let Fault::Start { node, wipe: true } = fault else {
        return;
    };
    book.model.wiped(&world.nodes[*node].id);
    for (id, via) in &ledger.deleted_via {
        if via == node {
            ledger.deleted_rules.remove(id);
        }
    }
    let done = delivered(world);
    for (token, by) in &ledger.accepted_by {
        if by == node {
            ledger.owner_wiped.insert(token.clone());
            if !done.contains_key(token) {
                ledger.wiped.insert(token.clone());
            }
        }
    }
}

async fn apply(world: &mut World, fault: &Fault) {
    match fault {
        Fault::Cut { links } => {
            for (a, b) in links {
                world
                    .net
                    .cut(world.nodes[*a].mesh_addr, world.nodes[*b].mesh_addr);
            }
        }
        Fault::HealAll => world.net.heal_all(),
        Fault::Flaky {
            loss_pct,
            duplicate_pct,
            delay_max_ms,
            seed,
        } => world.net.set_faults(
            LinkFaults {
                loss: f64::from(*loss_pct) / 100.0,
                duplicate: f64::from(*duplicate_pct) / 100.0,
                delay_max_ms: *delay_max_ms,
            },
            *seed,
        ),
        Fault::Skew { node, skew_ms } => world.nodes[*node].clock.set_skew(*skew_ms),
        Fault::Stop { node } => world.stop_node(*node).await,
        Fault::Crash { node } => world.crash_node(*node).await,
        Fault::Start { node, wipe } => {
            if *wipe && let Err(e) = world.wipe_node(*node) {
                eprintln!("wipe of node {node} failed: {e:#}");
            }
            if let Err(e) = world.start_node(*node).await {
                eprintln!("restart of node {node} failed: {e:#}");
            }
        }
    }
}

/// One random operation on one random running node: (node, what) when it happened.
async fn workload_step(
    world: &World,
    rng: &mut StdRng,
    ledger: &mut Ledger,
    seq: &mut u64,
) -> Option<(usize, &'static str)> {
    let up = world.up();
    if up.is_empty() {
        return None;
    }
    let node = up[rng.random_range(0..up.len())];
    let roll = rng.random_range(0..100);
    if roll < 55 {
        *seq += 1;
        let token = format!("sim-{seq:06}");
        let quarantine = rng.random_bool(0.4);
        if world.send_mail(node, &token, quarantine).await == 250 {
            // What the node did with it: a node that has not got the quarantine rule yet
            // (e.g. restarted on a wiped store) relays it, which is right then.
            let held = world.quarantined_here(node, &token);
            ledger.accepted_by.insert(token.clone(), node);
            ledger.acked.insert(token, held);
        }
        Some((node, "mail"))
    } else if roll < 75 {
        rule_op(world, node, rng, ledger).await;
        Some((node, "rule"))
    } else {
        quarantine_op(world, node, rng, ledger).await;
        Some((node, "quarantine"))
    }
}

async fn rule_op(world: &World, node: usize, rng: &mut StdRng, ledger: &mut Ledger) {
    ledger.rule_ops += 1;
    let live: Vec<&String> = ledger
        .rules
        .iter()
        .skip(1)
        .filter(|r| !ledger.deleted_rules.contains(*r))
        .collect();
    let choice = rng.random_range(0..3);
    if choice == 0 || live.is_empty() {
        let n = ledger.rules.len();
        let rule = json!({"name": format!("sim rule {n}"), "priority": 10 + n, "action": "tag",
            "when": {"field": "subject", "op": "contains", "value": format!("tag-{n}")}});
        let (status, body) = world.api(node, "POST", "/api/v1/rules", Some(rule)).await;
        if status == 201
            && let Some(id) = body["id"].as_str()
        {
            ledger.rules.push(id.to_string());
        }
    } else {
        let id = live[rng.random_range(0..live.len())].clone();
        let path = format!("/api/v1/rules/{id}");
        if choice == 1 {
            let (_, mut rule) = world.api(node, "GET", &path, None).await;
            if rule.is_object() {
                rule["priority"] = json!(rng.random_range(10..1000));
                world.api(node, "PUT", &path, Some(rule)).await;
            }
        } else if world.api(node, "DELETE", &path, None).await.0 / 100 == 2 {
            ledger.deleted_via.insert(id.clone(), node);
            ledger.deleted_rules.insert(id);
        }
    }
}

async fn quarantine_op(world: &World, node: usize, rng: &mut StdRng, ledger: &mut Ledger) {
    let (_, list) = world
        .api(
            node,
            "GET",
            "/api/v1/quarantine?status=quarantined&limit=50",
            None,
        )
        .await;
    let Some(items) = list["items"].as_array().filter(|a| !a.is_empty()) else {
        return;
    };
    let item = &items[rng.random_range(0..items.len())];
    let (Some(id), Some(subject)) = (item["id"].as_str(), item["subject"].as_str()) else {
        return;
    };
    let token = subject
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string();
    if rng.random_bool(0.7) {
        // Every other message (by its id, so the seeded stream of choices stays as it was)
        // is released the way a digest link does it: for its recipient, through the
        // per-recipient path (`release_for`, per-recipient requests while the owner is
        // away). The invariant "delivered once" then says that recipient got it once.
        let path = match (per_recipient(id), item["recipients"][0].as_str()) {
            (true, Some(rcpt)) => format!("/api/v1/quarantine/{id}/release?rcpt={rcpt}"),
            _ => format!("/api/v1/quarantine/{id}/release"),
        };
        let (status, _) = world.api(node, "POST", &path, None).await;
        if status / 100 == 2 {
            ledger.released_via.insert(token.clone(), (node, status));
            ledger.released.insert(token);
        }
    } else {
        let (status, _) = world
            .api(node, "DELETE", &format!("/api/v1/quarantine/{id}"), None)
            .await;
        if status / 100 == 2 {
            ledger.deleted_msgs.insert(token);
        }
    }
}

/// Whether the workload releases message `id` for its recipient rather than as a whole.
fn per_recipient(id: &str) -> bool {
    id.bytes().last().is_some_and(|b| b % 2 == 0)
}

/// The continuous invariants ([`crate::invariants`]) at one tick.
fn watch_tick(watch: &mut Watch, world: &World, ledger: &Ledger, now_ms: u64) {
    let delivered = delivered(world);
    let quarantined = ledger
        .acked
        .iter()
        .filter(|(t, q)| **q && !ledger.owner_wiped.contains(*t))
        .filter_map(|(t, _)| Some((t.as_str(), *ledger.accepted_by.get(t)?)))
        .collect();
    let expect = Expect {
        deleted_rules: &ledger.deleted_rules,
        released: &ledger.released,
        quarantined,
        delivered: &delivered,
    };
    watch.tick(world, &expect, now_ms);
}
