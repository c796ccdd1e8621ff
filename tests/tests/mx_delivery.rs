//! Delivery by MX against a real BIND 9: a DSN to a sender outside our domains goes to
//! the sender's mail exchanger (found by MX lookup, tried in preference order, with
//! opportunistic STARTTLS), to the domain's own address when it has no MX, and nowhere
//! at all when the domain publishes a null MX (RFC 7505).
//!
//! The outside MXs are sinks on port 25 of addresses in 127.17.0.0/16 (this test file's
//! loopback range); each test uses its own addresses, since tests run in parallel.

use std::path::Path;
use std::time::Duration;

use mxmesh_tests::{
    Bind, Node, NodeOpts, Sink, SinkMode, message, self_signed, send_python, wait_for,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The downstream of our domains, refusing `nobody@…` with 550 5.1.1.
fn refusing_downstream(dir: &Path) -> Sink {
    let mode = SinkMode {
        reject_rcpt: Some("nobody".into()),
        ..SinkMode::default()
    };
    Sink::start(&dir.join("downstream"), mode)
}

/// A node relaying to `downstream`, asking `bind` for MX records.
fn node(dir: &Path, downstream: &Sink, bind: &Bind) -> Node {
    let mut opts = NodeOpts::new(downstream.addr);
    opts.extra = format!("resolver = \"{}\"\n", bind.addr);
    Node::start(&dir.join("node"), &opts)
}

/// Sends one message from `sender` to a recipient the downstream refuses.
fn send_refused(node: &Node, sender: &str, subject: &str) {
    let r = send_python(
        node.smtp,
        sender,
        &["nobody@example.com"],
        &message(subject, "x\r\n"),
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
}

fn assert_dsn_for(env: &Value, bytes: &[u8], sender: &str, subject: &str) {
    assert_eq!(env["from"], "<>", "DSNs use the null sender: {env}");
    assert_eq!(env["to"][0], sender, "{env}");
    let text = String::from_utf8_lossy(bytes);
    assert!(
        text.contains("Final-Recipient: rfc822; nobody@example.com"),
        "{text}"
    );
    assert!(text.contains("550 5.1.1"), "{text}");
    assert!(text.contains(&format!("Subject: {subject}")), "{text}");
}

#[test]
fn a_dsn_to_an_outside_sender_goes_to_its_mx_in_preference_order() {
    let dir = tempfile::tempdir().unwrap();
    // mx-a (preference 10) has nothing listening: the relay must go on to mx-b (20).
    // mx-c (30) would take the mail too; it must not be reached before mx-b.
    let bind = Bind::serve(
        &dir.path().join("bind"),
        &[(
            "outside.test.",
            "@ IN MX 20 mx-b\n@ IN MX 10 mx-a\n@ IN MX 30 mx-c\n\
             mx-a IN A 127.17.0.10\nmx-b IN A 127.17.0.11\nmx-c IN A 127.17.0.12\n",
        )],
    );
    let tls = self_signed(&dir.path().join("certs"), "mx-b.outside.test");
    let mx_b = Sink::start_at(
        "127.17.0.11",
        25,
        &dir.path().join("mx-b"),
        SinkMode {
            tls: Some(tls),
            ..SinkMode::default()
        },
    );
    let mx_c = Sink::start_at(
        "127.17.0.12",
        25,
        &dir.path().join("mx-c"),
        SinkMode::default(),
    );
    let downstream = refusing_downstream(dir.path());
    let node = node(dir.path(), &downstream, &bind);
    send_refused(&node, "sender@outside.test", "to the outside");
    let got = mx_b.wait_count(1, WAIT);
    assert_dsn_for(
        &got[0].0,
        &got[0].1,
        "sender@outside.test",
        "to the outside",
    );
    assert_eq!(
        got[0].0["tls"], true,
        "opportunistic STARTTLS: {}",
        got[0].0
    );
    assert!(
        mx_c.messages().is_empty(),
        "mx-c (30) is not tried before mx-b (20)"
    );
}

#[test]
fn a_domain_without_mx_gets_its_dsn_at_its_own_address() {
    let dir = tempfile::tempdir().unwrap();
    let bind = Bind::serve(
        &dir.path().join("bind"),
        &[("implicit.test.", "@ IN A 127.17.0.30\n")],
    );
    let implicit = Sink::start_at(
        "127.17.0.30",
        25,
        &dir.path().join("mx"),
        SinkMode::default(),
    );
    let downstream = refusing_downstream(dir.path());
    let node = node(dir.path(), &downstream, &bind);
    send_refused(&node, "sender@implicit.test", "implicit mx");
    let got = implicit.wait_count(1, WAIT);
    assert_dsn_for(&got[0].0, &got[0].1, "sender@implicit.test", "implicit mx");
}

#[test]
fn a_null_mx_domain_gets_no_delivery_attempt() {
    let dir = tempfile::tempdir().unwrap();
    // The domain's address has an SMTP server: only honouring the null MX keeps the DSN
    // away from it (an implicit-MX fallback would deliver there).
    let bind = Bind::serve(
        &dir.path().join("bind"),
        &[("nullmx.test.", "@ IN MX 0 .\n@ IN A 127.17.0.40\n")],
    );
    let trap = Sink::start_at(
        "127.17.0.40",
        25,
        &dir.path().join("trap"),
        SinkMode::default(),
    );
    let downstream = refusing_downstream(dir.path());
    let node = node(dir.path(), &downstream, &bind);
    send_refused(&node, "sender@nullmx.test", "null mx");
    // The DSN fails for good, with the null MX as the reason, and is not retried.
    let event = wait_for(WAIT, || {
        let (_, trace) = node.api("GET", "/api/v1/trace?rcpt=sender@nullmx.test", None);
        trace["events"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["event"] == "bounced")
            .cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "no bounced event for the DSN: {}",
            node.api("GET", "/api/v1/trace?rcpt=sender@nullmx.test", None)
                .1
        )
    });
    assert!(
        event["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("556 5.1.10"),
        "the null MX is the reason: {event}"
    );
    let (_, stats) = node.api("GET", "/api/v1/stats", None);
    assert_eq!(stats["nodes"]["mx1"]["relayed"], 0, "{stats}");
    assert!(
        trap.messages().is_empty(),
        "nothing was sent to the null-MX domain"
    );
}
