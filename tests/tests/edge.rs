//! The SMTP edge across a real 3-node mesh: greylisting that a retry on another node
//! passes, recipient verification at RCPT (callout and list), mesh-wide rate limits.

use std::time::Duration;

use mxmesh_tests::{Client, Cluster, Node, Sink, SinkMode, message, send_with, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(20);

/// A sink and a formed 3-node mesh whose domains carry `domain_extra`.
fn mesh(domain_extra: &str, mode: SinkMode) -> (tempfile::TempDir, Sink, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), mode);
    let cluster = Cluster::start_domains(3, sink.addr, domain_extra, |_| String::new());
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    (dir, sink, cluster)
}

fn send(node: &Node, client: &Client, from: &str, to: &str) -> Value {
    send_with(node.smtp, client, from, &[to], &message("edge", "hi\r\n"), false)
}

/// Puts a cluster-wide setting on node 1 and waits until every node reads it back.
fn put_setting(cluster: &Cluster, name: &str, body: &Value) {
    let path = format!("/api/v1/settings/{name}");
    let (status, stored) = cluster.nodes[0].api("PUT", &path, Some(body));
    assert_eq!(status, 200, "{stored}");
    for node in &cluster.nodes {
        let seen = wait_for(CONVERGE, || {
            let (_, got) = node.api("GET", &path, None);
            (got == stored).then_some(())
        });
        assert!(seen.is_some(), "{} never saw {name} settings {stored}", node.admin);
    }
}

#[test]
fn a_triplet_deferred_on_one_node_passes_on_the_others() {
    let (_dir, sink, cluster) = mesh("greylist = true", SinkMode::default());
    put_setting(
        &cluster,
        "greylist",
        &json!({"delay_secs": 2, "skip_spf_pass": false, "auto_allow_after": 0}),
    );
    let client = Client::from("127.27.0.1", "retrier.example.net");
    let (from, to) = ("alice@outside.example.net", "user@example.com");

    let first = send(&cluster.nodes[0], &client, from, to);
    assert_eq!(first["stage"], "rcpt", "{first}");
    assert_eq!(first["code"], 451, "{first}");
    assert!(first["reply"].as_str().unwrap_or_default().starts_with("4.7.1"), "{first}");

    // The sender retries on node 2 (round-robin DNS) until the delay is over.
    let passed = wait_for(CONVERGE, || {
        let r = send(&cluster.nodes[1], &client, from, to);
        match r["ok"].as_bool() {
            Some(true) => Some(r),
            _ => {
                assert_eq!(r["code"], 451, "a retry is only ever deferred: {r}");
                None
            }
        }
    });
    assert!(passed.is_some(), "the retry on node 2 never passed");

    // Node 3 never saw this client: its first attempt passes on what the mesh knows.
    let third = send(&cluster.nodes[2], &client, from, to);
    assert_eq!(third["ok"], true, "node 3 did not recognise the triplet: {third}");
    // ... while a new triplet is greylisted there.
    let fresh = send(&cluster.nodes[2], &client, from, "other@example.com");
    assert_eq!(fresh["code"], 451, "{fresh}");
    sink.wait_count(2, CONVERGE);

    // Settings that do not validate are refused, naming the key.
    let (status, body) = cluster.nodes[1].api(
        "PUT",
        "/api/v1/settings/greylist",
        Some(&json!({"remember_days": 0})),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("remember_days"), "{body}");
}
