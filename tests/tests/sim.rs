//! The partition simulator as CI runs it: one seed over every scenario with no violation,
//! the self-check (a switched-off mechanism must be caught), and the same seed giving the
//! same outcome twice (everything but the wall-clock time).

use std::process::Command;

use mxmesh_tests::bin;
use serde_json::Value;

fn sim(args: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let out = Command::new(bin("mxmesh-sim"))
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let lines = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (
        out.status.code(),
        lines,
        stdout + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn every_scenario_holds_its_invariants_for_a_seed() {
    let (code, runs, text) = sim(&[
        "--scenario",
        "all",
        "--seed",
        "11",
        "--seconds",
        "6",
        "--nodes",
        "5",
    ]);
    assert_eq!(code, Some(0), "{text}");
    let names: Vec<&str> = runs.iter().filter_map(|r| r["scenario"].as_str()).collect();
    assert_eq!(
        names,
        [
            "partition-halves",
            "isolate-one",
            "bridge",
            "majorities-ring",
            "flaky",
            "crash-restart",
            "clock-skew",
            "mixed"
        ]
    );
    for r in &runs[..8] {
        assert_eq!(r["violations"], serde_json::json!([]), "{r}");
        assert!(r["mail_acked"].as_u64().unwrap() > 0, "{r}");
        assert!(r["learning"]["ops"].as_u64().unwrap() > 0, "{r}");
        assert!(r["convergence_ms"].is_u64(), "{r}");
    }
    let across_cut: u64 = runs[..8]
        .iter()
        .map(|r| r["learning"]["ops_across_cut"].as_u64().unwrap())
        .sum();
    assert!(across_cut > 0, "no learn or forget across a cut: {text}");
    assert_eq!(runs[8]["violations"], 0, "{text}");
}

/// Each switched-off sync, and the violation that must name it.
const BROKEN_SYNCS: [(&str, &str); 4] = [
    (
        "rules-sync",
        "rules, quarantine index or Bayes corpus not identical",
    ),
    (
        "index-sync",
        "rules, quarantine index or Bayes corpus not identical",
    ),
    ("bayes-sync", "the Bayes corpus differs from"),
    (
        "greylist-sync",
        "greylist: a triplet that passed does not pass on every node",
    ),
];

#[test]
fn self_check_a_broken_mechanism_is_reported() {
    for (mechanism, named) in BROKEN_SYNCS {
        let (code, runs, text) = sim(&[
            "--scenario",
            "partition-halves",
            "--seed",
            "3",
            "--seconds",
            "5",
            "--settle-seconds",
            "5",
            "--break",
            mechanism,
        ]);
        assert_eq!(code, Some(1), "{mechanism}: {text}");
        let violations = runs[0]["violations"].as_array().unwrap();
        assert!(
            violations
                .iter()
                .any(|v| v.as_str().is_some_and(|s| s.contains(named))),
            "{mechanism}: no violation says {named:?}: {text}"
        );
        assert!(
            text.contains("replay: mxmesh-sim --scenario partition-halves --seed 3"),
            "{text}"
        );
    }
}

/// The continuous DNS invariant: with withdrawal switched off, a node crashed for longer
/// than the target stays in the set and the run fails; the same run with the mechanism on
/// passes, so the check is what tells them apart.
#[test]
fn self_check_a_dead_node_left_in_dns_is_reported_while_it_is_down() {
    let args = [
        "--scenario",
        "crash-restart",
        "--seed",
        "3",
        "--seconds",
        "30",
    ];
    let (code, runs, text) = sim(&args);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(runs[0]["violations"], serde_json::json!([]), "{text}");
    let broken: Vec<&str> = args
        .iter()
        .copied()
        .chain(["--break", "dns-withdraw"])
        .collect();
    let (code, runs, text) = sim(&broken);
    assert_eq!(code, Some(1), "{text}");
    let v = runs[0]["violations"].as_array().unwrap();
    assert!(
        v.iter().any(|v| v
            .as_str()
            .is_some_and(|s| s.contains("the DNS set still listed"))),
        "{text}"
    );
}

/// Fields of a run's JSON that measure real time, the only ones allowed to differ.
const WALL_TIME_FIELDS: [&str; 1] = ["wall_clock_ms"];

fn without_wall_time(mut runs: Vec<Value>) -> Vec<Value> {
    for r in &mut runs {
        if let Some(o) = r.as_object_mut() {
            for f in WALL_TIME_FIELDS {
                o.remove(f);
            }
        }
    }
    runs
}

/// Seed 2 of crash-restart once left the restarted node on an old rule book for good: a
/// peer kept its sync session across the restart and believed the lost changes delivered.
#[test]
fn a_restarted_node_catches_up_with_the_rules_it_lost() {
    let (code, runs, text) = sim(&[
        "--scenario",
        "crash-restart",
        "--seed",
        "2",
        "--seconds",
        "10",
        "--nodes",
        "5",
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(runs[0]["violations"], serde_json::json!([]), "{text}");
    assert!(runs[0]["rule_ops"].as_u64().unwrap_or(0) > 0, "{text}");
}

#[test]
fn same_seed_same_outcome() {
    let args = ["--scenario", "mixed", "--seed", "5", "--seconds", "5"];
    let (a_code, a, a_text) = sim(&args);
    // The second run spells the option `--duration`, the README's alias.
    let (b_code, b, _) = sim(&["--scenario", "mixed", "--seed", "5", "--duration", "5"]);
    assert_eq!(a_code, b_code);
    assert!(
        a[0]["timeline"].as_array().is_some_and(|t| !t.is_empty()),
        "{a_text}"
    );
    assert!(
        a[0]["ops"].as_array().is_some_and(|o| !o.is_empty()),
        "{a_text}"
    );
    assert!(a[0]["wall_clock_ms"].is_u64(), "{a_text}");
    let (a, b) = (without_wall_time(a), without_wall_time(b));
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "the same seed gave different outcomes");
    }
}

#[test]
fn sweep_converges_within_ten_gossip_intervals_beside_the_model() {
    /// The convergence target: every node has a rule change within this many intervals.
    const TARGET_INTERVALS: u64 = 10;
    let (code, rows, text) = sim(&["sweep", "--nodes", "5,20", "--trials", "2", "--seed", "7"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(rows.len(), 2, "{text}");
    for (row, n) in rows.iter().zip([5, 20]) {
        let interval_ms = row["gossip_interval_ms"].as_u64().unwrap();
        assert_eq!(row["nodes"], n, "{row}");
        assert!(row["formed_ms"].is_u64(), "{row}");
        assert!(row["mail_acked"].as_u64().unwrap() > 0, "{row}");
        for spread in [&row["rule"], &row["heal_rule"]] {
            assert_eq!(spread["missing"], 0, "{row}");
            let max = spread["max_ms"].as_u64().unwrap();
            assert!(max <= TARGET_INTERVALS * interval_ms, "{row}");
        }
        assert!(row["heal_members_ms"].is_u64(), "{row}");
        let model = &row["model"];
        assert!(
            model["p50"].as_u64().unwrap() <= model["all"].as_u64().unwrap(),
            "{row}"
        );
    }
    assert!(
        rows[0]["model"]["all"].as_u64() < rows[1]["model"]["all"].as_u64(),
        "{text}"
    );
}

/// `disk-loss`: a node's store destroyed for good and forgotten loses nothing that had its
/// copy, and no message arrives twice; with holders that only pretend to store
/// (`--break copies`) the same seed must fail the check.
#[test]
fn disk_loss_loses_nothing_that_had_its_copy_and_the_check_can_fail() {
    let args = [
        "--scenario",
        "disk-loss",
        "--seed",
        "2",
        "--nodes",
        "5",
        "--seconds",
        "4",
        "--settle-seconds",
        "30",
    ];
    let (code, runs, text) = sim(&args);
    assert_eq!(code, Some(0), "{text}");
    let d = &runs[0]["disk_loss"];
    assert_eq!(runs[0]["violations"], serde_json::json!([]), "{text}");
    let copied = d["quarantined_copied"].as_u64().unwrap();
    let shadowed = d["queued_shadowed"].as_u64().unwrap();
    assert!(
        copied > 0 && shadowed > 0,
        "the lost node held both kinds: {d}"
    );
    assert!(
        d["delivered_after"].as_u64().unwrap() >= copied + shadowed,
        "{d}"
    );

    let broken: Vec<&str> = args.iter().copied().chain(["--break", "copies"]).collect();
    let (code, runs, text) = sim(&broken);
    assert_eq!(code, Some(1), "{text}");
    let violations = runs[0]["violations"].as_array().unwrap();
    assert!(
        violations
            .iter()
            .any(|v| v.as_str().is_some_and(|s| s.contains("had its"))),
        "{text}"
    );
}
