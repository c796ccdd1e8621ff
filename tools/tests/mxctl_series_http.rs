//! `mxctl stats series` against a one-request HTTP responder on 127.0.0.1: the query it
//! sends and the table (or JSON) the operator sees.

mod support;

use std::net::TcpListener;

use support::*;

/// A series answer for two nodes over two minutes (2026-01-01 10:00 and 10:01 UTC).
const ANSWER: &str = r#"{"metric":"quarantined","step":60,"times":[1767261600000,1767261660000],
"nodes":{"mx1":[3,0],"mx2":[1,7]},"total":[4,7],"unreachable":["mx3"]}"#;

#[test]
fn stats_series_prints_a_row_per_step_with_every_node_and_the_total() {
    let (addr, seen) = respond_once(json_answer(200, ANSWER));
    let args = [
        "stats",
        "series",
        "--metric",
        "quarantined",
        "--since",
        "2026-01-01T10:00:00Z",
        "--step",
        "1m",
    ];
    let out = mxctl(addr, &args, b"");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = seen.recv().unwrap();
    assert_eq!(
        (seen.method.as_str(), seen.target.as_str()),
        (
            "GET",
            "/api/v1/stats/series?metric=quarantined&since=2026-01-01T10%3A00%3A00Z&step=60"
        )
    );
    assert_eq!(
        stdout,
        "quarantined per 1 min\n\
         TIME (UTC)        mx1  mx2  TOTAL\n\
         2026-01-01 10:00    3    1      4\n\
         2026-01-01 10:01    0    7      7\n\
         not answering (not in TOTAL): mx3\n"
    );
}

#[test]
fn stats_series_json_prints_the_answer_compact() {
    let (addr, _seen) = respond_once(json_answer(200, ANSWER));
    let out = mxctl(
        addr,
        &["stats", "series", "--metric", "quarantined", "--json"],
        b"",
    );
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["total"], serde_json::json!([4, 7]));
}

#[test]
fn a_bad_step_is_refused_before_anything_is_sent() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let out = mxctl(
        addr,
        &["stats", "series", "--metric", "received", "--step", "90"],
        b"",
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--step") && stderr.contains("minutes"),
        "{stderr}"
    );
    listener.set_nonblocking(true).unwrap();
    assert!(listener.accept().is_err(), "nothing was sent");
}
