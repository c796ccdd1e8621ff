//! `mxmesh-sim`: N real mxmesh nodes in one process over an in-memory network, a seeded
//! fault timeline, a workload of mail, rule edits, quarantine operations and Bayes learning,
//! and the invariants checked after the heal. Exit status 1 on any violation, with a replay line.
//!
//! # Determinism
//!
//! The same seed and binary give the same outcome (fault timeline, workload, verdict,
//! counts, convergence time), apart from `wall_clock_ms`. The seams:
//!
//! - **Runtime and time.** Each run gets a fresh current-thread tokio runtime with paused
//!   time on a fresh thread: one thread polls every task, and tokio's clock is virtual — it
//!   jumps to the next timer whenever every task waits, so simulated minutes take what the
//!   work takes, not wall minutes. The simulator and the nodes read only tokio's clock.
//! - **Wall clock.** Each node's `Config::clock` is `Clock::runtime(SIM_EPOCH_MS)` (tokio's
//!   clock from a fixed epoch) plus a per-node skew the `clock-skew` scenario steps.
//! - **Randomness.** `entropy.rs` defines `getrandom` for the whole process, seeded per run
//!   from the seed and scenario: std's hash-map keys (so tokio's scheduler seed and
//!   every `HashMap`/`HashSet` order), `rand::rng()` (chitchat's gossip peer choice,
//!   ULIDs), the `getrandom` crate. The simulator's own choices use `StdRng` from the seed.
//! - **No other threads on the decision path.** Every node's store is an in-memory RocksDB
//!   (`StoreKind::Memory`) whose commits run inline on the runtime's thread, and so does what the daemon hands to
//!   `spawn_blocking` (`rt::set_simulated`, `rt::blocking`).
//! - **No sockets on the decision path.** Mesh traffic goes over `MemoryNetwork`; admin
//!   calls go in-process through the node's axum router; mail enters through
//!   `inbound::handle`. The two loopback exchanges left (chitchat's envelope codec, the
//!   relay's SMTP session with the sink) hold the virtual clock while in flight
//!   (`rt::hold_for_real_io`), so kernel latency never decides which timer fires first.
//!
//! What remains outside the seed is listed in ARCHITECTURE.md (simulator section).
//!
//! `mxmesh-sim sweep` measures convergence against mesh size instead (`sweep.rs`).

mod compat;
mod digest;
mod disk_loss;
mod edge;
mod entropy;
mod html;
mod invariants;
mod learn;
mod learned;
mod model;
mod run;
mod scenario;
mod sweep;
mod sweep_cli;
mod wire;
mod world;

use std::process::ExitCode;
use std::sync::atomic::Ordering;

use clap::Parser;

/// mimalloc, as the daemon uses: a 1,000-node mesh allocates and frees every node's
/// chitchat state several times a second, and glibc's malloc spent ~10% of the CPU in
/// consolidation there (and kept more memory).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use mxmesh_node::mesh::service::{GOSSIP_INTERVAL, self_check};

#[derive(Parser)]
#[command(
    name = "mxmesh-sim",
    version,
    about = "Network-partition simulator for mxmesh",
    after_help = "Every node stores its data in an in-memory RocksDB environment (kept across \
a crash-restart, fresh after a wipe). `mxmesh-sim sweep --help`: convergence against mesh \
size on virtual time, beside the epidemic gossip model."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<sweep_cli::Command>,
    /// First seed; runs `--seeds` consecutive seeds from here.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// How many consecutive seeds to run.
    #[arg(long, default_value_t = 1)]
    seeds: u64,
    /// Nodes in the mesh.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// A scenario name, or `all` (every scenario but `disk-loss`, which needs at least
    /// four nodes and runs on its own).
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Length of the fault phase of each run, in seconds (`--duration` is the same option,
    /// as the README also allows).
    #[arg(long, visible_alias = "duration", default_value_t = 10)]
    seconds: u64,
    /// Time allowed after the final heal for convergence and delivery, in seconds.
    #[arg(long, default_value_t = 60)]
    settle_seconds: u64,
    /// Machine-readable output: one JSON object per run, then a summary object.
    #[arg(long)]
    json: bool,
    /// Also write a timeline picture of every run to this HTML file.
    #[arg(long, value_name = "FILE")]
    html: Option<std::path::PathBuf>,
    /// Self-check: switch off a mechanism (`rules-sync`, `index-sync`, `bayes-sync`,
    /// `greylist-sync`, `dns-withdraw`, `copies`: holders answer without storing, for
    /// `disk-loss`); the run must then report violations.
    #[arg(long, value_name = "NAME")]
    r#break: Option<String>,
}

fn main() -> ExitCode {
    entropy::install_seed(0);
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("MXMESH_SIM_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .init();
    mxmesh_node::install_crypto_provider();
    mxmesh_node::rt::set_simulated(true);
    match cli.command {
        Some(sweep_cli::Command::Sweep(args)) => return sweep_cli::run(args),
        Some(sweep_cli::Command::CompatFixtures(args)) => {
            return match compat::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("compat-fixtures: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
        None => {}
    }
    match cli.r#break.as_deref() {
        None => {}
        Some("rules-sync") => self_check::set_sync_broken("rules", true),
        Some("index-sync") => self_check::set_sync_broken("index", true),
        Some("bayes-sync") => self_check::set_sync_broken("bayes", true),
        Some("greylist-sync") => self_check::set_sync_broken("greylist", true),
        Some("dns-withdraw") => mxmesh_node::dns::BREAK_DNS_WITHDRAW.store(true, Ordering::Relaxed),
        Some("copies") => {
            mxmesh_node::cluster::custody::BREAK_COPIES.store(true, Ordering::Relaxed)
        }
        Some(other) => {
            eprintln!(
                "--break {other:?}: expected rules-sync, index-sync, bayes-sync, greylist-sync, dns-withdraw or copies"
            );
            return ExitCode::from(2);
        }
    }
    if cli.nodes == 0 || cli.nodes > sweep_cli::NODES_MAX {
        eprintln!(
            "--nodes {}: the mesh must have 1..={} nodes",
            cli.nodes,
            sweep_cli::NODES_MAX
        );
        return ExitCode::from(2);
    }
    let scenarios: Vec<String> = if cli.scenario == "all" {
        scenario::SCENARIOS.iter().map(|s| s.to_string()).collect()
    } else {
        vec![cli.scenario.clone()]
    };
    let mut failed = Vec::new();
    let mut convergence = Vec::new();
    let mut runs = 0;
    let mut outcomes = Vec::new();
    for seed in cli.seed..cli.seed + cli.seeds {
        for s in &scenarios {
            let params = run::Params {
                nodes: cli.nodes,
                run_ms: cli.seconds * 1000,
                settle: std::time::Duration::from_secs(cli.settle_seconds),
            };
            let outcome = match run_isolated(s, seed, params) {
                Ok(o) => o,
                Err(e) => {
                    eprintln!("{s} seed {seed}: {e:#}");
                    return ExitCode::from(2);
                }
            };
            runs += 1;
            print_outcome(&outcome, cli.json);
            convergence.extend(outcome.convergence_ms);
            if !outcome.violations.is_empty() {
                failed.push((s.clone(), seed));
            }
            outcomes.push(outcome);
        }
    }
    print_summary(runs, &failed, &mut convergence, &cli);
    if let Some(path) = &cli.html
        && let Err(e) = std::fs::write(path, html::page(&outcomes))
    {
        eprintln!("--html {}: {e}", path.display());
        return ExitCode::from(2);
    }
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// One run on a fresh thread with a fresh current-thread runtime on paused (virtual) time,
/// after reseeding the process's randomness from `seed` and `scenario`: the run draws the
/// same randomness whatever ran before it in this process (std caches hash-map keys per
/// thread, tokio seeds its scheduler when the runtime is built).
fn run_isolated(scenario: &str, seed: u64, params: run::Params) -> anyhow::Result<run::Outcome> {
    entropy::install_seed(run_key(scenario, seed));
    let scenario = scenario.to_string();
    std::thread::Builder::new()
        .name(format!("sim-{scenario}-{seed}"))
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()?;
            rt.block_on(run::run(&scenario, seed, params))
        })?
        .join()
        .map_err(|_| anyhow::anyhow!("the run's thread panicked"))?
}

/// The randomness seed of one run: the seed mixed with the scenario's name (FNV-1a).
fn run_key(scenario: &str, seed: u64) -> u64 {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0100_0000_01b3;
    scenario.bytes().fold(FNV_OFFSET ^ seed, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

fn print_outcome(o: &run::Outcome, json: bool) {
    if json {
        println!("{}", serde_json::to_string(o).unwrap_or_default());
        return;
    }
    println!(
        "{:<17} seed {:<5} nodes {}  mail {} acked ({} quarantined, {} released, {} lost with a wiped store)  rule ops {}  learn ops {} ({} spam, {} ham learned)  converged {}  {}",
        o.scenario,
        o.seed,
        o.nodes,
        o.mail_acked,
        o.mail_quarantined,
        o.releases,
        o.lost_to_wipe,
        o.rule_ops,
        o.learning.ops,
        o.learning.spam,
        o.learning.ham,
        o.convergence_ms
            .map_or("never".into(), |ms| format!("{ms} ms after heal")),
        if o.violations.is_empty() {
            "OK".to_string()
        } else {
            format!("{} VIOLATIONS", o.violations.len())
        }
    );
    if let Some(d) = &o.disk_loss {
        println!(
            "    disk of node {} lost: it had accepted {}, {} quarantined with a completed copy, {} queued with a completed shadow; {} of its messages reached the downstream afterwards",
            d.node, d.accepted, d.quarantined_copied, d.queued_shadowed, d.delivered_after
        );
    }
    for e in &o.timeline {
        println!("    t={:>6} ms  {}", e.at_ms, describe(&e.fault));
    }
    for v in o.violations.iter().take(20) {
        println!("    violation: {v}");
    }
}

fn print_summary(runs: usize, failed: &[(String, u64)], conv: &mut [u64], cli: &Cli) {
    conv.sort_unstable();
    let pct = |p: usize| {
        conv.get((conv.len() * p).div_ceil(100).saturating_sub(1))
            .copied()
    };
    let interval = GOSSIP_INTERVAL.as_millis() as u64;
    let fmt = |v: Option<u64>| {
        v.map_or("-".into(), |ms| {
            format!(
                "{ms} ms ({:.1} gossip intervals)",
                ms as f64 / interval as f64
            )
        })
    };
    if cli.json {
        println!(
            "{}",
            serde_json::json!({"runs": runs, "violations": failed.len(),
                "convergence_ms": {"p50": pct(50), "p95": pct(95), "p99": pct(99)},
                "gossip_interval_ms": interval})
        );
    } else {
        println!(
            "{runs} runs, {} with violations; convergence after heal p50 {}  p95 {}  p99 {}",
            failed.len(),
            fmt(pct(50)),
            fmt(pct(95)),
            fmt(pct(99))
        );
    }
    for (s, seed) in failed {
        println!(
            "replay: mxmesh-sim --scenario {s} --seed {seed} --nodes {} --seconds {}{}",
            cli.nodes,
            cli.seconds,
            cli.r#break
                .as_ref()
                .map(|b| format!(" --break {b}"))
                .unwrap_or_default()
        );
    }
}

/// Links of one cut the readable summary lists; `--json` always has them all.
const CUT_LINKS_SHOWN: usize = 8;

/// One fault for the readable summary: its JSON, with a long cut shortened.
fn describe(fault: &scenario::Fault) -> String {
    match fault {
        scenario::Fault::Cut { links } if links.len() > CUT_LINKS_SHOWN => {
            let shown: Vec<String> = links[..CUT_LINKS_SHOWN]
                .iter()
                .map(|(a, b)| format!("[{a},{b}]"))
                .collect();
            format!(
                "{{\"fault\":\"cut\",\"links\":[{},…]}} ({} links; --json lists all)",
                shown.join(","),
                links.len()
            )
        }
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}
