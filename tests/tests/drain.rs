//! Drain that lasts: a node drained through the admin API answers `421` to every new SMTP
//! session (Python's smtplib and swaks, real clients), stays drained across a graceful
//! restart and a SIGKILL restart, and takes mail again (`220`, delivered) once undrained —
//! also after the next restart. A drain forwarded from another node of a mesh lasts too.
//! A SIGTERM stop drains only while the node stops: it comes back taking mail.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use mxmesh_tests::{Cluster, Node, NodeOpts, Sink, SinkMode, message, send_python, wait_for};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// The greeting of a drained node (RFC 5321 §3.8: 421 and close).
const DRAINED_GREETING: &str = "4.3.2 Service not available: this node is drained";

/// One smtplib send; the outcome JSON of `fixtures/send.py`.
fn smtplib(node: &Node, subject: &str) -> Value {
    send_python(
        node.smtp,
        "alice@example.org",
        &["user@example.com"],
        &message(subject, "drain test\r\n"),
        false,
    )
}

/// Asserts smtplib is refused at the greeting with the drained 421.
fn assert_smtplib_refused(node: &Node, when: &str) {
    let r = smtplib(node, when);
    assert_eq!(r["ok"], false, "{when}: {r}");
    assert_eq!(r["code"], 421, "{when}: {r}");
    assert!(
        r["reply"]
            .as_str()
            .unwrap_or_default()
            .contains(DRAINED_GREETING),
        "{when}: {r}"
    );
}

/// swaks against `smtp`: (exit success, transcript).
fn swaks(smtp: SocketAddr, subject: &str) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", &smtp.to_string()])
        .args(["--from", "bob@example.org", "--to", "user@example.com"])
        .args(["--header", &format!("Subject: {subject}"), "--body", "hi"])
        .args(["--timeout", "20"])
        .output()
        .expect("swaks installed by the test command");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

/// Asserts swaks gets the drained 421 as the greeting and fails.
fn assert_swaks_refused(node: &Node, when: &str) {
    let (ok, text) = swaks(node.smtp, when);
    assert!(
        !ok,
        "{when}: swaks succeeded against a drained node:\n{text}"
    );
    assert!(
        text.contains(&format!("<** 421 {DRAINED_GREETING}")),
        "{when}: swaks transcript:\n{text}"
    );
}

/// `/healthz` status code and body.
fn healthz(node: &Node) -> (u16, Value) {
    let r = reqwest::blocking::get(node.url("/healthz")).unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

fn assert_drained(node: &Node, when: &str) {
    let (status, body) = healthz(node);
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("draining")),
        "{when}"
    );
    assert_smtplib_refused(node, when);
    assert_swaks_refused(node, when);
}

#[test]
fn a_drained_node_stays_drained_across_restarts_until_undrained() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut node = Node::start(&dir.path().join("mx1"), &NodeOpts::new(sink.addr));

    // Before: mail flows, healthy.
    assert_eq!(smtplib(&node, "before drain")["ok"], true);
    assert_eq!(healthz(&node).0, 200);

    // Drained: every new session gets 421 at the greeting.
    let (s, body) = node.api("POST", "/api/v1/nodes/mx1/drain", None);
    assert_eq!(
        (s, body["health"].as_str()),
        (200, Some("draining")),
        "{body}"
    );
    assert_drained(&node, "drained");

    // A graceful restart keeps it drained.
    assert_eq!(node.terminate(), Some(0), "{}", node.log());
    node.spawn();
    assert_drained(&node, "after SIGTERM and restart");
    assert!(
        node.log().contains("stays drained"),
        "the restarted node says why it refuses mail:\n{}",
        node.log()
    );
    // So does a crash: the drain switch was synced before the API answered.
    node.kill9();
    node.spawn();
    assert_drained(&node, "after SIGKILL and restart");
    let (_, metrics) = node.api_bytes("/metrics");
    assert!(
        String::from_utf8_lossy(&metrics).contains("mxmesh_draining{node=\"mx1\"} 1"),
        "{}",
        String::from_utf8_lossy(&metrics)
    );

    // Undrained: 220 again, and mail is delivered, by both clients.
    let (s, body) = node.api("POST", "/api/v1/nodes/mx1/undrain", None);
    assert_eq!((s, body["health"].as_str()), (200, Some("ok")), "{body}");
    assert_eq!(healthz(&node).0, 200);
    let r = smtplib(&node, "after undrain");
    assert_eq!(
        (r["ok"].as_bool(), r["code"].as_u64()),
        (Some(true), Some(250)),
        "{r}"
    );
    let (ok, text) = swaks(node.smtp, "swaks after undrain");
    assert!(ok, "{text}");
    assert!(text.contains("<-  220 "), "{text}");
    // And it stays undrained across the next restart.
    assert_eq!(node.terminate(), Some(0));
    node.spawn();
    assert_eq!(healthz(&node).0, 200);
    assert_eq!(smtplib(&node, "after undrain and restart")["ok"], true);

    let got = sink.wait_count(4, WAIT);
    let subjects: Vec<String> = got
        .iter()
        .filter_map(|(_, m)| {
            String::from_utf8_lossy(m)
                .lines()
                .find_map(|l| l.strip_prefix("Subject: ").map(str::to_string))
        })
        .collect();
    for s in [
        "before drain",
        "after undrain",
        "swaks after undrain",
        "after undrain and restart",
    ] {
        assert!(subjects.iter().any(|x| x == s), "{s} in {subjects:?}");
    }
    assert_eq!(
        got.len(),
        4,
        "nothing got through while drained: {subjects:?}"
    );
}

#[test]
fn a_sigterm_stop_is_not_remembered_as_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut node = Node::start(&dir.path().join("mx1"), &NodeOpts::new(sink.addr));
    assert_eq!(node.terminate(), Some(0), "{}", node.log());
    node.spawn();
    assert_eq!(healthz(&node).0, 200);
    assert_eq!(smtplib(&node, "after a plain restart")["ok"], true);
    sink.wait_count(1, WAIT);
}

#[test]
fn a_drain_forwarded_through_another_node_outlasts_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut cluster = Cluster::start(2, sink.addr);
    cluster.wait_members(&["mx1", "mx2"], WAIT);
    // mx2 drained through mx1's API (a mesh RPC to mx2).
    let (s, body) = cluster.nodes[0].api("POST", "/api/v1/nodes/mx2/drain", None);
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["health"], "draining", "{body}");
    let mx2_on_mx1 = |n: &Node| {
        let (_, c) = n.api("GET", "/api/v1/cluster", None);
        let m = c["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == "mx2")?
            .clone();
        Some((m["live"] == true, m["health"].as_str()?.to_string()))
    };
    // Killed, seen dead by mx1 (so what mx1 sees next is the new incarnation), restarted.
    cluster.nodes[1].kill9();
    let dead = wait_for(WAIT, || (!mx2_on_mx1(&cluster.nodes[0])?.0).then_some(()));
    assert!(dead.is_some(), "mx1 sees mx2 dead after SIGKILL");
    cluster.nodes[1].spawn();
    assert_drained(&cluster.nodes[1], "mx2 after restart");
    // The mesh sees the restarted node draining, and it is undrained remotely.
    let seen = wait_for(WAIT, || {
        (mx2_on_mx1(&cluster.nodes[0])? == (true, "draining".to_string())).then_some(())
    });
    assert!(
        seen.is_some(),
        "mx1 sees mx2 live and draining after its restart"
    );
    // Retried (the request is idempotent) while mx1's mesh reaches the new incarnation.
    let mut attempts = 0;
    let undrained = wait_for(WAIT, || {
        attempts += 1;
        let (s, body) = cluster.nodes[0].api("POST", "/api/v1/nodes/mx2/undrain", None);
        (s == 200).then_some(body)
    });
    eprintln!("undrain through mx1 answered 200 at attempt {attempts}");
    let body = undrained.expect("mx2 undrained through mx1");
    assert_eq!(body["health"], "ok", "{body}");
    let r = smtplib(&cluster.nodes[1], "mx2 undrained");
    assert_eq!(r["ok"], true, "{r}");
}
