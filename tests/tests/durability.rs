//! The promise: a 250 means the message survives a SIGKILL. Relay retries 4xx and
//! bounces 5xx with a DSN. SIGTERM stops gracefully with exit 0.

use std::time::Duration;

use mxmesh_tests::{Node, NodeOpts, Sink, SinkMode, message, self_signed, send_python};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn acked_mail_survives_sigkill_while_downstream_is_down() {
    let dir = tempfile::tempdir().unwrap();
    // Downstream is down: its port refuses connections until the sink opens.
    let mut sink = Sink::held(&dir.path().join("sink"), SinkMode::default());
    let mut node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let n = 20;
    let mut subjects = Vec::new();
    for i in 0..n {
        let subject = format!("durable {i}");
        let r = send_python(
            node.smtp,
            "a@example.org",
            &["user@example.com"],
            &message(&subject, "x\r\n"),
            false,
        );
        assert_eq!(r["ok"], true, "message {i}: {r}");
        subjects.push(subject);
    }
    node.kill9();
    sink.open();
    node.spawn();
    let got = sink.wait_count(n, WAIT);
    for s in &subjects {
        let needle = format!("Subject: {s}\r\n");
        let count = got
            .iter()
            .filter(|(_, b)| String::from_utf8_lossy(b).contains(&needle))
            .count();
        assert!(count >= 1, "{s} lost after SIGKILL");
    }
}

#[test]
fn tempfail_downstream_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let mode = SinkMode {
        tempfail_first: 2,
        ..SinkMode::default()
    };
    let sink = Sink::start(&dir.path().join("sink"), mode);
    let node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let r = send_python(
        node.smtp,
        "a@example.org",
        &["user@example.com"],
        &message("retry me", "x\r\n"),
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    let got = sink.wait_count(1, WAIT);
    assert!(String::from_utf8_lossy(&got[0].1).contains("Subject: retry me"));
    // The sink stores the message before its 250 reaches the node, which counts `relayed`
    // only after its synced commit: wait for the counter instead of racing it.
    let stats = mxmesh_tests::wait_for(WAIT, || {
        let (_, stats) = node.api("GET", "/api/v1/stats", None);
        (stats["nodes"]["mx1"]["relayed"] == 1).then_some(stats)
    })
    .unwrap_or_else(|| node.api("GET", "/api/v1/stats", None).1);
    assert!(
        stats["nodes"]["mx1"]["deferred"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert_eq!(stats["nodes"]["mx1"]["relayed"], 1, "{stats}");
}

#[test]
fn permanent_failure_bounces_to_sender() {
    let dir = tempfile::tempdir().unwrap();
    let mode = SinkMode {
        reject_rcpt: Some("nobody".into()),
        ..SinkMode::default()
    };
    let sink = Sink::start(&dir.path().join("sink"), mode);
    let node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let r = send_python(
        node.smtp,
        "sender@example.org",
        &["nobody@example.com", "user@example.com"],
        &message("partly bad", "x\r\n"),
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    let got = sink.wait_count(2, WAIT);
    let (env, dsn) = got
        .iter()
        .find(|(e, _)| e["to"][0] == "sender@example.org")
        .expect("a DSN to the sender");
    // aiosmtpd reports the null reverse-path as "<>".
    assert_eq!(env["from"], "<>", "DSNs use the null sender");
    let text = String::from_utf8_lossy(dsn);
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@example.com"),
        "{text}"
    );
    assert!(text.contains("550 5.1.1"), "{text}");
    assert!(
        got.iter().any(|(e, _)| e["to"][0] == "user@example.com"),
        "the good recipient still got it"
    );
}

#[test]
fn sigterm_stops_cleanly_and_state_persists() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let (s, _) = node.api(
        "POST",
        "/api/v1/rules",
        Some(&serde_json::json!({"name": "keep", "action": "tag", "when": {"field": "subject", "op": "contains", "value": "z"}})),
    );
    assert_eq!(s, 201);
    let r = send_python(
        node.smtp,
        "a@example.org",
        &["user@example.com"],
        &message("count me", "x\r\n"),
        false,
    );
    assert_eq!(r["ok"], true);
    sink.wait_count(1, WAIT);
    assert_eq!(
        node.terminate(),
        Some(0),
        "SIGTERM exits 0; log:\n{}",
        node.log()
    );
    node.spawn();
    let (_, rules) = node.api("GET", "/api/v1/rules", None);
    assert_eq!(rules["rules"].as_array().unwrap().len(), 1, "rules persist");
    let (_, stats) = node.api("GET", "/api/v1/stats", None);
    assert_eq!(
        stats["nodes"]["mx1"]["received"], 1,
        "counters persist across a graceful restart"
    );
}

#[test]
fn relay_uses_starttls_when_the_downstream_offers_it() {
    let dir = tempfile::tempdir().unwrap();
    let tls = self_signed(&dir.path().join("certs"), "downstream.example.com");
    let mode = SinkMode {
        tls: Some(tls),
        ..SinkMode::default()
    };
    let sink = Sink::start(&dir.path().join("sink"), mode);
    let node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let msg = message("to a tls downstream", "secret\r\n.dot\r\n");
    let r = send_python(
        node.smtp,
        "a@example.org",
        &["user@example.com"],
        &msg,
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    let got = sink.wait_count(1, WAIT);
    assert_eq!(
        got[0].0["tls"], true,
        "the relay upgraded with STARTTLS: {}",
        got[0].0
    );
    assert!(got[0].1.ends_with(&msg), "bytes survive the TLS hop");
}
