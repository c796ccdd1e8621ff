//! `mxmesh-sim sweep`: for each mesh size, form the mesh on a paused-clock runtime (virtual
//! time), run a light mail load, make rule changes on seeded random nodes and time how
//! long every node takes to have them, then partition the mesh in halves, change a rule on
//! one side, heal, and time rule and membership convergence. Printed beside the epidemic
//! model (`model.rs`) with chitchat's fanout.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::time::Instant;

use mxmesh_node::mesh::service::GOSSIP_INTERVAL;

use crate::model::Gossip;
use crate::world::{World, WorldOpts};

/// chitchat's gossip fanout (`GOSSIP_COUNT` in chitchat 0.13): peers per gossip round.
pub const CHITCHAT_FANOUT: u32 = 3;
/// How often the sweep looks at every node's state, in virtual time.
const POLL: Duration = Duration::from_millis(50);
/// How often formation and membership are checked (each check costs O(N) per node).
const MEMBERS_POLL: Duration = Duration::from_millis(250);
/// Virtual time allowed for the mesh to form, per node (at least `FORM_TIMEOUT_MIN`).
const FORM_TIMEOUT_PER_NODE: Duration = Duration::from_secs(2);
const FORM_TIMEOUT_MIN: Duration = Duration::from_secs(60);
/// Virtual time allowed for one rule change to reach every node.
const SPREAD_TIMEOUT: Duration = Duration::from_secs(120);
/// Length of the steady phase with mail, whose wall time gives wall time per simulated minute.
const STEADY: Duration = Duration::from_secs(10);
/// Messages per second of virtual time offered to the whole mesh in the steady phase.
const MAIL_PER_SEC: u64 = 10;
/// How long the halves stay apart: long enough for the failure detector to mark the
/// other half dead.
const PARTITION_HOLD: Duration = Duration::from_secs(20);

/// What to sweep.
#[derive(Debug, Clone)]
pub struct Params {
    /// Mesh sizes to measure, in nodes.
    pub sizes: Vec<usize>,
    /// The seed of the workload's randomness.
    pub seed: u64,
    /// Rule changes timed per size (outside the partition).
    pub trials: usize,
    /// Skip the partition-and-heal measurement.
    pub no_partition: bool,
}

/// Percentiles of one set of latencies, in ms of virtual time.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Spread {
    /// Median latency; `None` when no node got there.
    pub p50_ms: Option<u64>,
    /// 99th percentile latency; `None` when no node got there.
    pub p99_ms: Option<u64>,
    /// The slowest node's latency; `None` when no node got there.
    pub max_ms: Option<u64>,
    /// Nodes that never got there within the timeout.
    pub missing: usize,
}

/// The epidemic model's intervals for this size.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ModelRounds {
    /// Gossip intervals until half the nodes are expected informed.
    pub p50: Option<u32>,
    /// Gossip intervals until 99 % of the nodes are expected informed.
    pub p99: Option<u32>,
    /// Gossip intervals until every node is expected informed.
    pub all: Option<u32>,
}

/// One mesh size's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// Nodes in the mesh.
    pub nodes: usize,
    /// The gossip interval the nodes ran with, in ms.
    pub gossip_interval_ms: u64,
    /// Virtual time until every node's gossip layer held every other live.
    pub formed_ms: Option<u64>,
    /// Per node, time from a rule change until that node had it (all trials).
    pub rule: Spread,
    /// Per node of the other half, time from the heal until it had the rule changed
    /// during the partition.
    pub heal_rule: Option<Spread>,
    /// Time from the heal until every node's gossip layer held every other live again.
    pub heal_members_ms: Option<u64>,
    /// What the epidemic model predicts for this size.
    pub model: ModelRounds,
    /// Messages accepted (250) during the steady phase.
    pub mail_acked: usize,
    /// Wall-clock ms per simulated minute during the steady phase.
    pub wall_ms_per_sim_minute: u64,
    /// Wall-clock ms the whole measurement of this size took.
    pub wall_ms: u64,
}

/// A current-thread runtime whose clock is paused: it jumps to the next timer whenever
/// every task waits, so simulated time costs only the CPU the nodes use.
pub fn paused_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
}

/// Measures one mesh size on its own paused runtime.
pub fn measure_size(n: usize, p: &Params) -> anyhow::Result<Row> {
    let wall = std::time::Instant::now();
    let rt = paused_runtime()?;
    let mut row = rt.block_on(measure(n, p))?;
    row.wall_ms = wall.elapsed().as_millis() as u64;
    Ok(row)
}

async fn measure(n: usize, p: &Params) -> anyhow::Result<Row> {
    let mut rng = StdRng::seed_from_u64(p.seed ^ n as u64);
    let started = Instant::now();
    let world = World::start_opts(n, WorldOpts { listeners: false }).await?;
    progress(n, "started", started);
    let formed_ms = members_converge(&world, form_timeout(n))
        .await
        .map(|()| ms(started.elapsed()));
    progress(n, "formed", started);
    let steady_wall = std::time::Instant::now();
    let mail_acked = mail_load(&world, &mut rng).await;
    let wall_ms_per_sim_minute =
        (steady_wall.elapsed().as_secs_f64() * 60.0 / STEADY.as_secs_f64() * 1000.0) as u64;
    progress(n, "mail load done", started);
    let mut rule = Vec::new();
    for _ in 0..p.trials {
        let origin = rng.random_range(0..n);
        rule.extend(rule_spread(&world, origin, &(0..n).collect::<Vec<_>>()).await?);
    }
    let (heal_rule, heal_members_ms) = match p.no_partition || n < 2 {
        true => (None, None),
        false => {
            let (r, m) = partition_and_heal(&world, &mut rng).await?;
            (Some(r), m)
        }
    };
    progress(n, "measured", started);
    // No graceful stop (each announces its drain for 1.5 s, one after another): the
    // runtime is dropped after this, which ends every node's tasks at once.
    drop(world);
    Ok(Row {
        nodes: n,
        gossip_interval_ms: GOSSIP_INTERVAL.as_millis() as u64,
        formed_ms,
        rule: spread(rule),
        heal_rule,
        heal_members_ms,
        model: model_rounds(n),
        mail_acked,
        wall_ms_per_sim_minute,
        wall_ms: 0,
    })
}

/// A progress line on stderr: virtual time since `started`, and the wall clock.
fn progress(n: usize, what: &str, started: Instant) {
    eprintln!(
        "sweep {n} nodes: {what} at {:.1} s virtual ({:?} wall clock)",
        started.elapsed().as_secs_f64(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    );
}

fn form_timeout(n: usize) -> Duration {
    (FORM_TIMEOUT_PER_NODE * n as u32).max(FORM_TIMEOUT_MIN)
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// The model's intervals to 50 %, 99 % and every node, with chitchat's fanout, no loss.
pub fn model_rounds(n: usize) -> ModelRounds {
    let m = Gossip {
        nodes: n,
        fanout: CHITCHAT_FANOUT,
        loss: 0.0,
    };
    ModelRounds {
        p50: m.rounds_to(0.5),
        p99: m.rounds_to(0.99),
        all: m.rounds_to(1.0),
    }
}

/// Waits until every node's gossip layer (chitchat's failure detector) holds every node
/// live (the gossip layer's view, cheaper to poll than every node's membership view).
async fn members_converge(world: &World, timeout: Duration) -> Option<()> {
    let deadline = Instant::now() + timeout;
    let n = world.nodes.len();
    // Nodes already seen converged are not asked again (a partition heal only adds).
    let mut done = vec![false; n];
    while Instant::now() < deadline {
        for (i, d) in done.iter_mut().enumerate() {
            if *d {
                continue;
            }
            let mesh = world.handle(i).and_then(|s| s.mesh.as_ref())?;
            *d = mesh.gossip_live_count().await == n;
            if !*d {
                break;
            }
        }
        if done.iter().all(|d| *d) {
            return Some(());
        }
        tokio::time::sleep(MEMBERS_POLL).await;
    }
    None
}

/// Offers mail at `MAIL_PER_SEC` to random nodes for `STEADY`; the number acked.
async fn mail_load(world: &World, rng: &mut StdRng) -> usize {
    let gap = Duration::from_millis(1000 / MAIL_PER_SEC);
    let end = Instant::now() + STEADY;
    let mut acked = 0;
    let mut seq = 0u64;
    while Instant::now() < end {
        seq += 1;
        let node = rng.random_range(0..world.nodes.len());
        let token = format!("sim-{seq:06}");
        if world.send_mail(node, &token, rng.random_bool(0.2)).await == 250 {
            acked += 1;
        }
        tokio::time::sleep(gap).await;
    }
    acked
}

/// Creates a rule on `origin` (in-process, as the admin API would) and returns, for each
/// node in `watch`, the ms until its rule book had it (`None`: not within the timeout).
async fn rule_spread(
    world: &World,
    origin: usize,
    watch: &[usize],
) -> anyhow::Result<Vec<Option<u64>>> {
    let target = change_rule(world, origin).await?;
    let t0 = Instant::now();
    let mut got: Vec<Option<u64>> = vec![None; watch.len()];
    while t0.elapsed() < SPREAD_TIMEOUT {
        for (slot, &i) in got.iter_mut().zip(watch) {
            if slot.is_none() && world.handle(i).is_some_and(|s| s.rules.digest() == target) {
                *slot = Some(ms(t0.elapsed()));
            }
        }
        if got.iter().all(Option::is_some) {
            break;
        }
        tokio::time::sleep(POLL).await;
    }
    Ok(got)
}

/// Adds a rule on node `i`; its rule book digest afterwards.
async fn change_rule(world: &World, i: usize) -> anyhow::Result<String> {
    let node = world
        .handle(i)
        .ok_or_else(|| anyhow::anyhow!("sweep: node {i} is not running"))?;
    let n = node.rules.list().len();
    let rule = mxmesh_crdt::rule::Rule::from_json(&json!({
        "name": format!("sweep rule {n}"), "priority": 10 + n, "action": "tag",
        "when": {"field": "subject", "op": "contains", "value": format!("sweep-{n}")}}))
    .map_err(|e| anyhow::anyhow!("sweep rule: {e}"))?;
    let now = world.nodes[i].clock.now_ms();
    node.rules
        .create(rule, "sweep", now)
        .await
        .map_err(|e| anyhow::anyhow!("sweep: rule change on {}: {e}", world.nodes[i].id))?;
    Ok(node.rules.digest())
}

/// Cuts the mesh into two seeded halves, changes a rule on the first, waits
/// `PARTITION_HOLD`, heals; then (rule spread over the second half, membership
/// convergence), both timed from the heal.
async fn partition_and_heal(
    world: &World,
    rng: &mut StdRng,
) -> anyhow::Result<(Spread, Option<u64>)> {
    let n = world.nodes.len();
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.random_range(0..=i));
    }
    let (a, b) = order.split_at(n / 2);
    for &x in a {
        for &y in b {
            world
                .net
                .cut(world.nodes[x].mesh_addr, world.nodes[y].mesh_addr);
        }
    }
    let target = change_rule(world, a[0]).await?;
    tokio::time::sleep(PARTITION_HOLD).await;
    world.net.heal_all();
    let healed = Instant::now();
    let mut got: Vec<Option<u64>> = vec![None; b.len()];
    while healed.elapsed() < SPREAD_TIMEOUT && got.iter().any(Option::is_none) {
        for (slot, &i) in got.iter_mut().zip(b) {
            if slot.is_none() && world.handle(i).is_some_and(|s| s.rules.digest() == target) {
                *slot = Some(ms(healed.elapsed()));
            }
        }
        tokio::time::sleep(POLL).await;
    }
    let members = members_converge(world, SPREAD_TIMEOUT)
        .await
        .map(|()| ms(healed.elapsed()));
    Ok((spread(got), members))
}

/// p50, p99 and max of per-node latencies; nodes that never got there count as missing.
pub fn spread(latencies: Vec<Option<u64>>) -> Spread {
    let missing = latencies.iter().filter(|l| l.is_none()).count();
    let mut got: Vec<u64> = latencies.into_iter().flatten().collect();
    got.sort_unstable();
    let pct = |p: usize| {
        got.get((got.len() * p).div_ceil(100).saturating_sub(1))
            .copied()
    };
    Spread {
        p50_ms: pct(50),
        p99_ms: pct(99),
        max_ms: got.last().copied(),
        missing,
    }
}

/// Gossip intervals in `ms`, one decimal.
pub fn intervals(ms: Option<u64>) -> String {
    let interval = GOSSIP_INTERVAL.as_millis() as f64;
    ms.map_or("-".into(), |v| format!("{:.1}", v as f64 / interval))
}

/// The table header, with the model's parameters.
pub fn header() -> String {
    format!(
        "gossip interval {} ms; model: push epidemic, fanout {CHITCHAT_FANOUT} (chitchat GOSSIP_COUNT), loss 0; \
         times in gossip intervals (seconds of virtual time)\n\
         {:>5} {:>8} | {:>13} {:>13} {:>13} | {:>5} {:>5} {:>5} | {:>13} {:>13} | {:>10} | {:>6} {:>10}",
        GOSSIP_INTERVAL.as_millis(),
        "nodes",
        "formed",
        "rule p50",
        "rule p99",
        "rule all",
        "m p50",
        "m p99",
        "m all",
        "heal p99",
        "heal all",
        "heal memb",
        "mail",
        "wall/min"
    )
}

/// One table line.
pub fn line(r: &Row) -> String {
    let both = |ms: Option<u64>| {
        ms.map_or("-".into(), |v| {
            format!("{} ({:.2}s)", intervals(Some(v)), v as f64 / 1000.0)
        })
    };
    let rounds = |r: Option<u32>| r.map_or("-".into(), |v| v.to_string());
    let heal = r.heal_rule.unwrap_or_default();
    let missing = r.rule.missing + heal.missing;
    format!(
        "{:>5} {:>7}s | {:>13} {:>13} {:>13} | {:>5} {:>5} {:>5} | {:>13} {:>13} | {:>10} | {:>6} {:>9}s{}",
        r.nodes,
        r.formed_ms
            .map_or("-".into(), |v| format!("{:.1}", v as f64 / 1000.0)),
        both(r.rule.p50_ms),
        both(r.rule.p99_ms),
        both(r.rule.max_ms),
        rounds(r.model.p50),
        rounds(r.model.p99),
        rounds(r.model.all),
        both(heal.p99_ms),
        both(heal.max_ms),
        intervals(r.heal_members_ms),
        r.mail_acked,
        format!("{:.1}", r.wall_ms_per_sim_minute as f64 / 1000.0),
        if missing > 0 {
            format!("  ({missing} nodes never converged)")
        } else {
            String::new()
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_counts_missing_and_takes_percentiles() {
        let s = spread(vec![Some(30), None, Some(10), Some(20)]);
        assert_eq!(s.missing, 1);
        assert_eq!(
            (s.p50_ms, s.p99_ms, s.max_ms),
            (Some(20), Some(30), Some(30))
        );
        assert_eq!(spread(vec![None]).p99_ms, None);
    }

    #[test]
    fn model_rounds_grow_with_size() {
        let small = model_rounds(5).all.unwrap();
        let big = model_rounds(1000).all.unwrap();
        assert!(small < big, "{small} {big}");
    }
}
