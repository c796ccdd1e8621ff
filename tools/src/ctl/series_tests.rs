//! Unit tests of `mxctl stats series`: the call it makes and the table it prints.

use super::*;
use crate::ctl::commands::{Cli, Output, Plan};
use clap::Parser as _;
use serde_json::json;

/// 2026-01-01 10:00 UTC.
const JAN_1_10H: u64 = 1_767_261_600_000;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("mxctl").chain(args.iter().copied()))
}

fn series_args(args: &[&str]) -> SeriesArgs {
    let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    match cli.command {
        crate::ctl::commands::Command::Stats(StatsArgs {
            command: Some(StatsCommand::Series(s)),
            ..
        }) => s,
        other => panic!("not stats series: {other:?}"),
    }
}

fn query(call: &Call) -> Vec<(String, String)> {
    call.endpoint
        .query
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn series_maps_to_the_endpoint_with_its_query() {
    let call = series_args(&["stats", "series", "--metric", "received"]).into_call(JAN_1_10H);
    assert_eq!(call.method, Method::Get);
    assert_eq!(call.endpoint.segments.join("/"), "api/v1/stats/series");
    assert_eq!(query(&call), pairs(&[("metric", "received")]));
    assert_eq!(
        call.output,
        Output::Table {
            view: View::Series,
            json: false
        }
    );
    let call = series_args(&[
        "stats", "series", "--metric", "relayed", "--since", "2h", "--step", "5m", "--json",
    ])
    .into_call(JAN_1_10H);
    let two_hours_ago = (JAN_1_10H - 2 * 3600 * 1000).to_string();
    assert_eq!(
        query(&call),
        pairs(&[
            ("metric", "relayed"),
            ("since", &two_hours_ago),
            ("step", "300"),
        ])
    );
    assert_eq!(
        call.output,
        Output::Table {
            view: View::Series,
            json: true
        }
    );
    let at = series_args(&[
        "stats",
        "series",
        "--metric",
        "quarantined",
        "--since",
        "2026-01-01T08:00:00Z",
        "--step",
        "3600",
    ])
    .into_call(JAN_1_10H);
    assert_eq!(
        query(&at)[1].1,
        "2026-01-01T08:00:00Z",
        "an absolute time as written"
    );
    assert_eq!(query(&at)[2].1, "3600");
}

#[test]
fn plain_stats_still_prints_the_totals() {
    let cli = parse(&["stats"]).unwrap();
    let Plan::Call(call) = cli.into_plan().unwrap() else {
        panic!("one call");
    };
    assert_eq!(call.endpoint.segments.join("/"), "api/v1/stats");
    assert!(call.endpoint.query.is_empty());
}

#[test]
fn bad_options_are_refused_before_anything_is_sent() {
    for args in [
        &["stats", "series"][..],
        &["stats", "series", "--metric", "nope"],
        &["stats", "series", "--metric", "received", "--step", "90"],
        &["stats", "series", "--metric", "received", "--step", "0"],
        &["stats", "series", "--metric", "received", "--step", "1x"],
        &[
            "stats", "series", "--metric", "received", "--since", "99999d",
        ],
        &["stats", "series", "--metric", "received", "--since", ""],
    ] {
        let e = parse(args).expect_err(&format!("{args:?} must be refused"));
        assert!(!e.to_string().is_empty());
    }
}

fn answer() -> Value {
    json!({
        "metric": "received",
        "step": 60,
        "times": [JAN_1_10H, JAN_1_10H + 60_000, JAN_1_10H + 120_000],
        "nodes": {"mx2": [0, 12, 3], "mx1": [1, 2, 3]},
        "total": [1, 14, 6],
        "unreachable": [],
    })
}

#[test]
fn the_table_has_a_row_per_step_and_a_column_per_node_and_the_total() {
    let text = table(&answer()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "received per 1 min");
    assert_eq!(lines[1], "TIME (UTC)        mx1  mx2  TOTAL");
    assert_eq!(lines[2], "2026-01-01 10:00    1    0      1");
    assert_eq!(lines[3], "2026-01-01 10:01    2   12     14");
    assert_eq!(lines[4], "2026-01-01 10:02    3    3      6");
    assert_eq!(lines.len(), 5, "{text}");
}

#[test]
fn nodes_that_did_not_answer_are_named_and_missing_points_are_dashes() {
    let mut a = answer();
    a["unreachable"] = json!(["mx3"]);
    a["nodes"]["mx2"] = json!([5]);
    let text = table(&a).unwrap();
    assert!(
        text.ends_with("not answering (not in TOTAL): mx3\n"),
        "{text}"
    );
    let row = text.lines().nth(3).unwrap();
    assert!(row.contains(" - "), "a missing point: {row}");
    assert!(table(&json!({"error": "x"})).is_none(), "another shape");
}

#[test]
fn utc_minutes_are_calendar_dates() {
    let cases = [
        (0, "1970-01-01 00:00"),
        (951_868_740_000, "2000-02-29 23:59"),
        (1_735_689_540_000, "2024-12-31 23:59"),
        (JAN_1_10H, "2026-01-01 10:00"),
        (4_107_542_400_000, "2100-03-01 00:00"),
    ];
    for (ms, text) in cases {
        assert_eq!(utc_minute(ms), text, "{ms}");
    }
}
