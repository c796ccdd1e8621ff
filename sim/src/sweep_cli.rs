//! The `sweep` subcommand's arguments and output (the measuring is in `sweep.rs`).

use std::process::ExitCode;

use crate::sweep;

/// Rule changes timed per mesh size by default.
const TRIALS_DEFAULT: usize = 3;
/// The largest mesh the sweep accepts (memory: a few MiB per node).
pub const NODES_MAX: usize = 1000;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Convergence against mesh size: for each N, form the mesh on virtual time (a paused
    /// tokio clock), run a light mail load, time rule changes until every node has them,
    /// then partition in halves, change a rule on one side, heal, and time rule and
    /// membership convergence; printed beside the push-epidemic model (Serf's convergence
    /// simulator) with chitchat's fanout 3 and no loss.
    Sweep(SweepArgs),
    /// Writes what this version puts on the mesh wire (every frame kind, gossip key,
    /// quarantine-index delta and forwarded operation) as fixtures for the next version's
    /// compatibility test: `mxmesh-sim compat-fixtures --out tests/fixtures/compat/vX.Y.Z`.
    CompatFixtures(crate::compat::CompatArgs),
}

#[derive(clap::Args)]
pub struct SweepArgs {
    /// Mesh sizes, comma-separated (each 1..=1000).
    #[arg(long, value_delimiter = ',', default_values_t = [5usize, 10, 50, 100])]
    nodes: Vec<usize>,
    /// Seed for the choice of nodes, the partition and the mail load.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rule changes timed per size (outside the partition).
    #[arg(long, default_value_t = TRIALS_DEFAULT)]
    trials: usize,
    /// Skip the partition-and-heal measurement.
    #[arg(long)]
    no_partition: bool,
    /// One JSON object per size instead of the table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SweepArgs) -> ExitCode {
    if let Some(bad) = args.nodes.iter().find(|n| **n == 0 || **n > NODES_MAX) {
        eprintln!("--nodes {bad}: each size must be 1..={NODES_MAX}");
        return ExitCode::from(2);
    }
    let params = sweep::Params {
        sizes: args.nodes.clone(),
        seed: args.seed,
        trials: args.trials,
        no_partition: args.no_partition,
    };
    if !args.json {
        println!("{}", sweep::header());
    }
    let mut converged = true;
    for &n in &params.sizes {
        let row = match sweep::measure_size(n, &params) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("sweep --nodes {n}: {e:#}");
                return ExitCode::from(2);
            }
        };
        converged &= row.formed_ms.is_some()
            && row.rule.missing == 0
            && row.heal_rule.is_none_or(|h| h.missing == 0);
        if args.json {
            println!("{}", serde_json::to_string(&row).unwrap_or_default());
        } else {
            println!("{}", sweep::line(&row));
        }
    }
    if converged {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
