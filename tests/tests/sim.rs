//! The partition simulator as CI runs it: one seed over every scenario with no violation,
//! the self-check (a switched-off mechanism must be caught), and the same seed giving the
//! same fault timeline and verdict twice.

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
            "mixed"
        ]
    );
    for r in &runs[..7] {
        assert_eq!(r["violations"], serde_json::json!([]), "{r}");
        assert!(r["mail_acked"].as_u64().unwrap() > 0, "{r}");
        assert!(r["convergence_ms"].is_u64(), "{r}");
    }
    assert_eq!(runs[7]["violations"], 0, "{text}");
}

#[test]
fn self_check_a_broken_mechanism_is_reported() {
    for mechanism in ["rules-sync", "index-sync"] {
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
        assert!(
            !runs[0]["violations"].as_array().unwrap().is_empty(),
            "{text}"
        );
        assert!(
            text.contains("replay: mxmesh-sim --scenario partition-halves --seed 3"),
            "{text}"
        );
    }
}

#[test]
fn same_seed_same_timeline_and_verdict() {
    let args = ["--scenario", "mixed", "--seed", "5", "--seconds", "5"];
    let (a_code, a, _) = sim(&args);
    let (b_code, b, _) = sim(&args);
    assert_eq!(a_code, b_code);
    assert_eq!(a[0]["timeline"], b[0]["timeline"]);
    assert_eq!(a[0]["violations"], b[0]["violations"]);
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
