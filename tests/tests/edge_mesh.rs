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
    send_with(
        node.smtp,
        client,
        from,
        &[to],
        &message("edge", "hi\r\n"),
        false,
    )
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
        assert!(
            seen.is_some(),
            "{} never saw {name} settings {stored}",
            node.admin
        );
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
    assert!(
        first["reply"]
            .as_str()
            .unwrap_or_default()
            .starts_with("4.7.1"),
        "{first}"
    );

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
    assert_eq!(
        third["ok"], true,
        "node 3 did not recognise the triplet: {third}"
    );
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

/// `[[domains]]` entry for example.net, verified against `file`.
fn listed_domain(relay_to: std::net::SocketAddr, file: &std::path::Path) -> String {
    format!(
        "\n[[domains]]\nname = \"example.net\"\nrelay_to = \"{relay_to}\"\n\
         verify_recipients = \"list\"\nrecipients_file = \"{}\"\n",
        file.display()
    )
}

fn refused_with(r: &Value, code: u64, enhanced: &str) -> bool {
    r["stage"] == "rcpt"
        && r["code"] == code
        && r["reply"]
            .as_str()
            .unwrap_or_default()
            .starts_with(enhanced)
}

#[test]
fn unknown_recipients_are_refused_at_rcpt_by_callout_and_by_list() {
    let dir = tempfile::tempdir().unwrap();
    let mode = SinkMode {
        reject_rcpt: Some("ghost".into()),
        ..SinkMode::default()
    };
    let sink = Sink::start(&dir.path().join("sink"), mode);
    let list = dir.path().join("recipients.txt");
    std::fs::write(
        &list,
        "# example.net\nknown@example.net\n*-team@example.net\n",
    )
    .unwrap();
    let relay_to = sink.addr;
    let cluster = Cluster::start_domains(3, relay_to, "verify_recipients = \"callout\"", |_| {
        listed_domain(relay_to, &list)
    });
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let client = Client::from("127.27.0.2", "sender.example.net");
    let from = "alice@outside.example.net";

    // Callout: the downstream knows user@, refuses ghost@.
    let known = send(&cluster.nodes[0], &client, from, "user@example.com");
    assert_eq!(known["ok"], true, "{known}");
    let ghost = send(&cluster.nodes[0], &client, from, "ghost@example.com");
    assert!(refused_with(&ghost, 550, "5.1.1"), "{ghost}");

    // List: addresses and wildcards; a change to the file is picked up.
    let n = &cluster.nodes[1];
    assert_eq!(send(n, &client, from, "known@example.net")["ok"], true);
    assert_eq!(send(n, &client, from, "ops-team@example.net")["ok"], true);
    let nobody = send(n, &client, from, "nobody@example.net");
    assert!(refused_with(&nobody, 550, "5.1.1"), "{nobody}");
    std::fs::write(&list, "known@example.net\nnobody@example.net\n").unwrap();
    let reloaded = wait_for(CONVERGE, || {
        (send(n, &client, from, "nobody@example.net")["ok"] == true).then_some(())
    });
    assert!(
        reloaded.is_some(),
        "the changed recipients file was not reloaded"
    );
    let gone = send(n, &client, from, "ops-team@example.net");
    assert!(refused_with(&gone, 550, "5.1.1"), "{gone}");

    // The downstream goes away. Node 2 still refuses ghost@ on node 1's cached answer (it
    // cannot ask itself: until the answer reaches it, its own callout fails with 451).
    drop(sink);
    let shared = wait_for(CONVERGE, || {
        let r = send(&cluster.nodes[1], &client, from, "ghost@example.com");
        if refused_with(&r, 550, "5.1.1") {
            return Some(());
        }
        assert!(refused_with(&r, 451, "4.4.3"), "{r}");
        None
    });
    assert!(
        shared.is_some(),
        "node 1's callout answer never served node 2"
    );
    // A recipient nobody asked about cannot be verified now: 451 (verify_unreachable).
    let unknown = send(&cluster.nodes[2], &client, from, "fresh@example.com");
    assert!(refused_with(&unknown, 451, "4.4.3"), "{unknown}");
}

#[test]
fn a_distributed_burst_over_three_nodes_is_limited_mesh_wide() {
    let (_dir, _sink, cluster) = mesh("", SinkMode::default());
    let limit = 6;
    put_setting(
        &cluster,
        "ratelimit",
        &json!({"per_client_per_minute": limit}),
    );
    let client = Client::from("127.27.0.3", "burst.example.net");
    let (mut accepted, mut limited) = (0, 0);
    let mut refused_on = [false; 3];
    for i in 0..30 {
        let r = send(
            &cluster.nodes[i % 3],
            &client,
            "bulk@outside.example.net",
            "user@example.com",
        );
        if r["ok"] == true {
            accepted += 1;
        } else {
            assert!(refused_with(&r, 451, "4.7.0"), "{r}");
            limited += 1;
            refused_on[i % 3] = true;
        }
    }
    // Each node alone would take `limit` (18 in all); mesh-wide the burst stops near
    // `limit` (README: the overshoot bound).
    assert!(accepted >= limit, "accepted {accepted}");
    assert!(
        accepted <= limit + 3,
        "accepted {accepted} of 30, limit {limit}"
    );
    assert_eq!(accepted + limited, 30);
    assert_eq!(
        refused_on, [true; 3],
        "every node refused once the mesh was over"
    );
    // Another client is not limited.
    let other = Client::from("127.27.0.4", "other.example.net");
    let r = send(
        &cluster.nodes[0],
        &other,
        "x@outside.example.net",
        "user@example.com",
    );
    assert_eq!(r["ok"], true, "{r}");
}
