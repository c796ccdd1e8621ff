//! `mxctl stats series` against a one-request HTTP responder on 127.0.0.1: the query it
//! sends and the table (or JSON) the operator sees.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::thread;

/// A series answer for two nodes over two minutes (2026-01-01 10:00 and 10:01 UTC).
const ANSWER: &str = r#"{"metric":"quarantined","step":60,"times":[1767261600000,1767261660000],
"nodes":{"mx1":[3,0],"mx2":[1,7]},"total":[4,7],"unreachable":["mx3"]}"#;

/// Answers one request with `body` (200, JSON); hands back its request line.
fn respond_once(body: &'static str) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut request_line = String::new();
        reader.read_line(&mut request_line).unwrap();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line.trim_end().is_empty() {
                break;
            }
        }
        sender.send(request_line.trim_end().to_string()).unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
    });
    (addr, receiver)
}

fn mxctl(addr: SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mxctl"))
        .env("MXMESH_URL", format!("http://{addr}"))
        .env("MXMESH_TOKEN", "s3cret")
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn stats_series_prints_a_row_per_step_with_every_node_and_the_total() {
    let (addr, seen) = respond_once(ANSWER);
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
    let out = mxctl(addr, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        seen.recv().unwrap(),
        "GET /api/v1/stats/series?metric=quarantined&since=2026-01-01T10%3A00%3A00Z&step=60 HTTP/1.1"
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
    let (addr, _seen) = respond_once(ANSWER);
    let out = mxctl(
        addr,
        &["stats", "series", "--metric", "quarantined", "--json"],
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
