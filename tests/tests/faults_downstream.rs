//! Faults 3: the downstream server is down for a long time, with node restarts (SIGKILL
//! and SIGTERM) in between. Retries go on with backoff across restarts (attempt counts in
//! the queue API only grow), memory stays bounded, and when the downstream returns every
//! acked message is delivered exactly once and nothing bounces.
//!
//! "Hours" are compressed: the harness config retries after 1 s, backing off to 2 s. The
//! DSN at the queue lifetime (`relay.queue_lifetime_hours`, whole hours) is tested at the
//! unit level with an injected clock: `relay::tests::at_the_queue_lifetime_*` in the node.

use std::time::Duration;

use mxmesh_tests::faults::{Smtp, message_of, rss_kb, subjects};
use mxmesh_tests::{Node, NodeOpts, Sink, SinkMode};
use serde_json::Value;

const MESSAGES: usize = 300;

fn attempts(node: &Node) -> (usize, u64, u64) {
    let (status, q) = node.api("GET", "/api/v1/queue", None);
    assert_eq!(status, 200, "{q}");
    let entries = q["entries"].as_array().cloned().unwrap_or_default();
    let a: Vec<u64> = entries
        .iter()
        .map(|e| e["attempts"].as_u64().unwrap_or(0))
        .collect();
    (
        q["size"].as_u64().unwrap_or(0) as usize,
        a.iter().copied().min().unwrap_or(0),
        a.iter().copied().max().unwrap_or(0),
    )
}

#[test]
fn downstream_down_with_restarts_retries_bounded_and_delivers_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut sink = Sink::held(&dir.path().join("sink"), SinkMode::default());
    let mut node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));

    let mut acked = Vec::new();
    let mut session = None;
    for i in 0..MESSAGES {
        if i % 25 == 0 {
            let (mut s, code, _) = Smtp::connect(node.smtp, Duration::from_secs(10)).unwrap();
            assert_eq!(code, 220);
            assert_eq!(s.cmd("EHLO down.test").unwrap().0, 250);
            if let Some(old) = session.replace(s) {
                Smtp::quit(old);
            }
        }
        let subject = format!("down-{i}");
        let r = session
            .as_mut()
            .unwrap()
            .send(
                "a@example.org",
                "user@example.com",
                &message_of(&subject, 8000),
            )
            .unwrap();
        assert_eq!(r.0, 250, "{subject}: {r:?}");
        acked.push(subject);
    }
    if let Some(s) = session {
        s.quit();
    }

    let mut rss = Vec::new();
    let mut last_min = 0;
    for round in 0..4 {
        std::thread::sleep(Duration::from_secs(4));
        let (size, min, max) = attempts(&node);
        assert_eq!(size, MESSAGES, "round {round}: queue size");
        assert!(
            min > last_min,
            "round {round}: attempts went on across restarts ({last_min} -> {min}..{max})"
        );
        last_min = min;
        rss.push(rss_kb(node.pid().unwrap()));
        let (_, stats) = node.api("GET", "/api/v1/stats", None);
        assert_eq!(stats["nodes"]["mx1"]["bounced"], 0, "{stats}");
        eprintln!(
            "round {round}: attempts {min}..{max}, rss {} KiB",
            rss[round]
        );
        if round % 2 == 0 {
            node.kill9();
        } else {
            assert_eq!(node.terminate(), Some(0), "SIGTERM exits 0");
        }
        node.spawn();
    }
    // Trace shows the deferrals of one message.
    let (_, trace) = node.api("GET", "/api/v1/trace?rcpt=user@example.com", None);
    let deferred = trace["events"]
        .as_array()
        .or_else(|| trace.as_array())
        .map(|a| a.iter().filter(|e| e["event"] == "deferred").count())
        .unwrap_or(0);
    assert!(deferred > 0, "trace shows deferrals: {trace}");
    let max_rss = *rss.iter().max().unwrap();
    assert!(
        max_rss < 256 * 1024,
        "RSS stays bounded while retrying: {rss:?} KiB"
    );

    sink.open();
    node.api("POST", "/api/v1/queue/flush", Some(&Value::Null));
    let got = sink.wait_count(acked.len(), Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let got = if got.len() > acked.len() {
        got
    } else {
        sink.messages()
    };
    let seen = subjects(&got);
    for s in &acked {
        assert_eq!(seen.get(s), Some(&1), "{s} delivered exactly once");
    }
    assert_eq!(got.len(), acked.len(), "no bounces, no extra messages");
    assert!(
        got.iter().all(|(e, _)| e["from"] == "a@example.org"),
        "no DSN"
    );
    eprintln!(
        "downstream down: {} acked, all delivered once; rss {rss:?} KiB",
        acked.len()
    );
}
