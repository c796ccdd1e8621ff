//! The `disk-loss` scenario: with `copies` = [`COPIES`], one node (seeded) owns quarantined
//! and queued mail while the downstream is down; its store is destroyed for good mid-run
//! and it is forgotten through a survivor; then the downstream comes back and every
//! quarantined message is released, twice, through two different survivors.
//!
//! Invariants, checked after the settle:
//! 1. no quarantined or queued message whose copy had completed (the owner had recorded a
//!    holder before its disk went) is lost: each reaches the downstream;
//! 2. none is released or relayed twice by two holders: each of the lost node's messages
//!    reaches the downstream at most once (it was down until after the forget, so the
//!    owner never delivered any), and each release once;
//! 3. every entry shown `lost` truly had no surviving copy: no completed one, and no
//!    survivor holds its bytes;
//! 4. once a lost node's queued message reached the downstream, no survivor keeps a shadow
//!    of it (the holder that relayed it has the later holders drop theirs).
//!
//! `--break copies` makes holders answer without storing: invariant 1 must then fail.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use mxmesh_crdt::qindex::{EntryStatus, IndexQuery, SEARCH_LIMIT_MAX};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;

use crate::run::{Outcome, Params};
use crate::scenario::{Event, Fault};
use crate::world::World;

/// The scenario's name.
pub const DISK_LOSS: &str = "disk-loss";
/// Copies asked: the owner and two holders, so two holders could both take a message over.
const COPIES: u32 = 3;
/// Nodes the scenario needs at least: the lost node and `COPIES` survivors.
pub const NODES_MIN: usize = 4;
/// Pause between two messages of the workload.
const MAIL_EVERY: Duration = Duration::from_millis(100);
/// Queue entries and index entries one look at a node reads at most.
const LOOK_MAX: usize = 10_000;
/// Pause between two looks while waiting for the mesh.
const POLL: Duration = Duration::from_millis(100);
/// Times a release answered 503 (its new owner is still taking the message over, as the
/// asked node's index shows it) is asked again, [`POLL`] apart.
const RELEASE_TRIES_MAX: usize = 100;

/// What the lost node held when its disk went, as counts (in the run's outcome).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    /// The node whose store was destroyed (0-based).
    pub node: usize,
    /// Messages it had accepted.
    pub accepted: usize,
    /// Its quarantined messages with a completed copy.
    pub quarantined_copied: usize,
    /// Its queued messages with a completed shadow.
    pub queued_shadowed: usize,
    /// Of its messages, those that reached the downstream afterwards.
    pub delivered_after: usize,
}

/// What the lost node held when its disk went, by token.
#[derive(Default)]
struct Snapshot {
    /// Quarantined there with at least one recorded copy holder.
    quarantined_copied: BTreeSet<String>,
    /// Queued there with at least one recorded shadow holder.
    queued_shadowed: BTreeSet<String>,
    /// Everything it accepted.
    accepted: BTreeSet<String>,
}

/// One run of the scenario.
pub async fn run(seed: u64, p: Params) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        p.nodes >= NODES_MIN,
        "{DISK_LOSS} needs at least {NODES_MIN} nodes (--nodes {})",
        p.nodes
    );
    let wall = std::time::Instant::now();
    let started = Instant::now();
    let draws_before = crate::entropy::draws();
    let mut rng = StdRng::seed_from_u64(seed);
    let victim = rng.random_range(0..p.nodes);
    let messages = (p.run_ms / MAIL_EVERY.as_millis() as u64).max(2) as usize;
    let crash_after = rng.random_range(messages / 2..messages);
    let mut world = World::start(p.nodes).await?;
    let mut violations = Vec::new();
    if !crate::run::formed(&world).await {
        violations.push("the mesh did not form".to_string());
    }
    setup(&world).await?;
    world.sink.hold(true);
    let t0 = Instant::now();
    let mut timeline = Vec::new();
    let mut acked: BTreeMap<String, (usize, bool)> = BTreeMap::new();
    let mut snapshot = Snapshot::default();
    for k in 0..messages {
        if k == crash_after {
            snapshot = look(&world, victim);
            snapshot.accepted = owned_by(&acked, victim);
            world.crash_node(victim).await;
            world.wipe_node(victim)?;
            timeline.push(at(t0, Fault::Crash { node: victim }));
        }
        send_one(&world, &mut rng, k, &mut acked).await;
        tokio::time::sleep(MAIL_EVERY).await;
    }
    forget(&world, victim, p.settle, &mut violations).await;
    world.sink.hold(false);
    timeline.push(at(t0, Fault::HealAll));
    let healed_at_ms = t0.elapsed().as_millis() as u64;
    wait_adopted(&world, &snapshot, p.settle).await;
    let released = release_all(&world, &mut rng).await;
    let counts = settle(&world, &acked, &snapshot, &released, p.settle).await;
    check(&world, &snapshot, &released, &counts, &mut violations).await;
    check_shadows_dropped(&world, victim, &counts, p.settle, &mut violations).await;
    let delivered_after = snapshot
        .accepted
        .iter()
        .filter(|t| counts.contains_key(*t))
        .count();
    let summary = Summary {
        node: victim,
        accepted: snapshot.accepted.len(),
        quarantined_copied: snapshot.quarantined_copied.len(),
        queued_shadowed: snapshot.queued_shadowed.len(),
        delivered_after,
    };
    let outcome = Outcome {
        scenario: DISK_LOSS.into(),
        seed,
        nodes: p.nodes,
        timeline,
        mail_acked: acked.len(),
        mail_quarantined: acked.values().filter(|(_, q)| *q).count(),
        releases: released.len(),
        rule_ops: 0,
        learning: Default::default(),
        edge: Default::default(),
        digest: Default::default(),
        convergence_ms: None,
        duplicates_delivered: counts.values().filter(|c| **c > 1).count(),
        lost_to_wipe: summary.accepted - delivered_after,
        violations,
        wall_clock_ms: wall.elapsed().as_millis() as u64,
        simulated_ms: started.elapsed().as_millis() as u64,
        entropy_draws: crate::entropy::draws() - draws_before,
        healed_at_ms,
        ops: Vec::new(),
        disk_loss: Some(summary),
    };
    world.shutdown().await;
    Ok(outcome)
}

fn at(t0: Instant, fault: Fault) -> Event {
    Event {
        at_ms: t0.elapsed().as_millis() as u64,
        fault,
    }
}

/// The quarantine rule and `copies`, on every node before the workload.
async fn setup(world: &World) -> anyhow::Result<()> {
    let rule = json!({"name": "sim quarantine", "priority": 1, "action": "quarantine",
        "when": {"field": "subject", "op": "contains", "value": "quarantine-me"}});
    let (s, body) = world.api(0, "POST", "/api/v1/rules", Some(rule)).await;
    anyhow::ensure!(s == 201, "quarantine rule: {s} {body}");
    let settings = json!({ "copies": COPIES });
    let (s, body) = world
        .api(0, "PUT", "/api/v1/settings/quarantine", Some(settings))
        .await;
    anyhow::ensure!(s == 200, "copies setting: {s} {body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let everywhere = world.up().iter().all(|i| {
            world.handle(*i).is_some_and(|h| {
                h.custody.book().quarantine.copies == COPIES && h.rules.list().len() == 1
            })
        });
        if everywhere {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
    anyhow::bail!("the rule and the copies setting did not reach every node")
}

/// Offers message `k` to a running node; quarantined or relayed, seeded.
async fn send_one(
    world: &World,
    rng: &mut StdRng,
    k: usize,
    acked: &mut BTreeMap<String, (usize, bool)>,
) {
    let up = world.up();
    let node = up[rng.random_range(0..up.len())];
    let token = format!("sim-{k:06}");
    let quarantine = rng.random_bool(0.5);
    if world.send_mail(node, &token, quarantine).await == 250 {
        acked.insert(token, (node, quarantine));
    }
}

fn owned_by(acked: &BTreeMap<String, (usize, bool)>, node: usize) -> BTreeSet<String> {
    acked
        .iter()
        .filter(|(_, (n, _))| *n == node)
        .map(|(t, _)| t.clone())
        .collect()
}

/// The token of a subject (`sim-000001 quarantine-me` or `sim-000001`).
fn token_of(subject: &str) -> String {
    subject
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// What node `i` holds with a completed copy, as its own records say.
fn look(world: &World, i: usize) -> Snapshot {
    let mut s = Snapshot::default();
    let Some(h) = world.handle(i) else {
        return s;
    };
    let q = IndexQuery {
        node: Some(world.nodes[i].id.clone()),
        status: Some(EntryStatus::Quarantined),
        limit: SEARCH_LIMIT_MAX,
        ..Default::default()
    };
    for e in h.quarantine.index().search(&q).0 {
        if !e.copies.is_empty() {
            s.quarantined_copied.insert(token_of(&e.subject));
        }
    }
    for e in h.custody.relay().list(LOOK_MAX).unwrap_or_default() {
        if !h.custody.shadow_holders(&e.id).is_empty() {
            s.queued_shadowed.insert(token_of(&e.subject));
        }
    }
    s
}

/// Waits until no survivor sees `victim` live, then forgets it through a survivor.
async fn forget(world: &World, victim: usize, settle: Duration, violations: &mut Vec<String>) {
    let id = &world.nodes[victim].id;
    let via = world.up()[0];
    let deadline = Instant::now() + settle;
    while Instant::now() < deadline {
        let path = format!("/api/v1/nodes/{id}/forget");
        let (s, _) = world.api(via, "POST", &path, None).await;
        if s == 200 {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
    violations.push(format!(
        "{id} could not be forgotten within the settle time"
    ));
}

/// Waits (bounded) until every completed quarantined message of the lost node is owned by
/// a survivor in the first survivor's index.
async fn wait_adopted(world: &World, snapshot: &Snapshot, settle: Duration) {
    let deadline = Instant::now() + settle;
    while Instant::now() < deadline {
        let owned = quarantined_on_survivors(world);
        if snapshot
            .quarantined_copied
            .iter()
            .all(|t| owned.contains_key(t))
        {
            return;
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Quarantined entries owned by running nodes, by token → id, as the first survivor's index
/// shows them.
fn quarantined_on_survivors(world: &World) -> BTreeMap<String, String> {
    let up = world.up();
    let ids: BTreeSet<&String> = up.iter().map(|i| &world.nodes[*i].id).collect();
    let Some(h) = up.first().and_then(|i| world.handle(*i)) else {
        return BTreeMap::new();
    };
    let q = IndexQuery {
        status: Some(EntryStatus::Quarantined),
        limit: SEARCH_LIMIT_MAX,
        ..Default::default()
    };
    h.quarantine
        .index()
        .search(&q)
        .0
        .into_iter()
        .filter(|e| ids.contains(&e.node))
        .map(|e| (token_of(&e.subject), e.id))
        .collect()
}

/// Releases every quarantined message twice, through two different survivors (seeded):
/// the tokens whose first release was taken.
async fn release_all(world: &World, rng: &mut StdRng) -> BTreeSet<String> {
    let up = world.up();
    let mut released = BTreeSet::new();
    for (token, id) in quarantined_on_survivors(world) {
        let first = up[rng.random_range(0..up.len())];
        let second = up[(up.iter().position(|n| *n == first).unwrap_or(0) + 1) % up.len()];
        let path = format!("/api/v1/quarantine/{id}/release");
        let mut a = 0;
        for _ in 0..RELEASE_TRIES_MAX {
            a = world.api(first, "POST", &path, None).await.0;
            if a != 503 {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        world.api(second, "POST", &path, None).await;
        if a / 100 == 2 {
            released.insert(token);
        }
    }
    released
}

/// Waits (bounded) until every message that must arrive did; answers deliveries by token.
async fn settle(
    world: &World,
    acked: &BTreeMap<String, (usize, bool)>,
    snapshot: &Snapshot,
    released: &BTreeSet<String>,
    settle: Duration,
) -> BTreeMap<String, usize> {
    let lost_node = |t: &String| snapshot.accepted.contains(t);
    let relayed = acked.iter().filter(|(t, (_, q))| !q && !lost_node(t));
    let mut want: Vec<&String> = relayed.map(|(t, _)| t).collect();
    want.extend(released.iter());
    want.extend(snapshot.queued_shadowed.iter());
    let deadline = Instant::now() + settle;
    let mut counts = crate::run::delivered(world);
    while Instant::now() < deadline && want.iter().any(|t| !counts.contains_key(*t)) {
        tokio::time::sleep(POLL * 2).await;
        counts = crate::run::delivered(world);
    }
    // Give a second delivery by another holder every chance to show.
    tokio::time::sleep(Duration::from_secs(5)).await;
    crate::run::delivered(world)
}

/// The three invariants (module doc).
async fn check(
    world: &World,
    snapshot: &Snapshot,
    released: &BTreeSet<String>,
    counts: &BTreeMap<String, usize>,
    violations: &mut Vec<String>,
) {
    let arrived = |t: &String| counts.get(t).copied().unwrap_or(0);
    for t in &snapshot.quarantined_copied {
        if !released.contains(t) || arrived(t) == 0 {
            violations.push(format!(
                "quarantined message {t} had its copy when its node's disk went, but was lost (released: {})",
                released.contains(t)
            ));
        }
    }
    for t in &snapshot.queued_shadowed {
        if arrived(t) == 0 {
            violations.push(format!(
                "queued message {t} had its shadow when its node's disk went, but never reached the downstream"
            ));
        }
    }
    for t in snapshot.accepted.iter().chain(released) {
        if arrived(t) > 1 {
            violations.push(format!(
                "message {t} reached the downstream {} times (two holders relayed or released it)",
                arrived(t)
            ));
        }
    }
    check_lost(world, snapshot, violations).await;
}

/// Invariant 3: an entry shown `lost` had no completed copy and no survivor holds one.
async fn check_lost(world: &World, snapshot: &Snapshot, violations: &mut Vec<String>) {
    for i in world.up() {
        let path = format!("/api/v1/quarantine?status=lost&limit={SEARCH_LIMIT_MAX}");
        let (_, page) = world.api(i, "GET", &path, None).await;
        for item in page["items"].as_array().into_iter().flatten() {
            let (Some(id), Some(subject)) = (item["id"].as_str(), item["subject"].as_str()) else {
                continue;
            };
            let token = token_of(subject);
            if snapshot.quarantined_copied.contains(&token) {
                violations.push(format!(
                    "{}: message {token} shown lost although its copy had completed",
                    world.nodes[i].id
                ));
            }
            for j in world.up() {
                let holds = world
                    .handle(j)
                    .is_some_and(|h| matches!(h.quarantine.copy_entry(id), Ok(Some(_))));
                if holds {
                    violations.push(format!(
                        "{}: message {token} shown lost while {} holds a copy",
                        world.nodes[i].id, world.nodes[j].id
                    ));
                }
            }
        }
    }
}

/// Shadows of `victim`'s queue entries that survivors still hold although the message
/// reached the downstream, as `(survivor, token)`.
fn stale_shadows(
    world: &World,
    victim: usize,
    counts: &BTreeMap<String, usize>,
) -> Vec<(usize, String)> {
    let owner = &world.nodes[victim].id;
    let mut stale = Vec::new();
    for i in world.up() {
        let Some(h) = world.handle(i) else {
            continue;
        };
        for s in h.custody.shadows_held_of(owner).unwrap_or_default() {
            let token = token_of(&s.entry.subject);
            if counts.contains_key(&token) {
                stale.push((i, token));
            }
        }
    }
    stale
}

/// Invariant 4 (module doc): waits (bounded) for the drops, then reports what is left.
async fn check_shadows_dropped(
    world: &World,
    victim: usize,
    counts: &BTreeMap<String, usize>,
    settle: Duration,
    violations: &mut Vec<String>,
) {
    let deadline = Instant::now() + settle;
    let mut stale = stale_shadows(world, victim, counts);
    while !stale.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(POLL).await;
        stale = stale_shadows(world, victim, counts);
    }
    for (i, token) in stale {
        violations.push(format!(
            "{} still holds a shadow of queued message {token} of the lost node after it reached the downstream",
            world.nodes[i].id
        ));
    }
}
