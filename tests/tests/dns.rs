//! The DNS helper of real nodes, asked with dig: the embedded server lists the healthy
//! nodes, a killed or draining node leaves the set, the set is never empty, and names
//! outside the zone are refused. The RFC 2136 publisher keeps a real BIND 9 in step
//! (added, withdrawn, restored, taken over when the publisher dies), and a wrong TSIG key
//! is refused by BIND and reported by the node.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use mxmesh_tests::{Bind, Cluster, Node, NodeOpts, Sink, SinkMode, dig, wait_for};

const NAME: &str = "mx.example.com.";
const WITHIN: Duration = Duration::from_secs(15);

/// The embedded DNS server of node i listens on a port the node chooses (UDP and TCP).
fn dns_listen(i: usize) -> SocketAddr {
    format!("127.0.0.{i}:0").parse().unwrap()
}

/// The DNS servers the cluster's nodes bound.
fn dns_servers(cluster: &Cluster) -> Vec<SocketAddr> {
    cluster
        .nodes
        .iter()
        .map(|n| n.dns.expect("the node reports its DNS server"))
        .collect()
}

fn wait_answer(server: SocketAddr, want: &[&str]) -> Vec<String> {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    let got = wait_for(WITHIN, || {
        let (_, a) = dig(server, NAME, "A");
        (a == want).then_some(a)
    });
    got.unwrap_or_else(|| {
        panic!(
            "{server} answers {:?}, expected {want:?}",
            dig(server, NAME, "A")
        )
    })
}

#[test]
fn healthy_nodes_are_published_and_leave_when_dead_or_draining() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut cluster = Cluster::start_with(3, sink.addr, move |i| {
        format!(
            "\n[dns]\nlisten = \"{}\"\nname = \"{NAME}\"\npublish_address = \"127.0.0.{i}\"\nttl = 5\n",
            dns_listen(i)
        )
    });
    let servers = dns_servers(&cluster);
    cluster.wait_members(&["mx1", "mx2", "mx3"], WITHIN);
    for s in &servers {
        wait_answer(*s, &["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    }
    let (status, soa) = dig(servers[0], NAME, "SOA");
    assert_eq!(status, "NOERROR");
    assert_eq!(soa.len(), 1, "one SOA at the zone's origin");
    let (status, _) = dig(servers[0], "www.example.org.", "A");
    assert_eq!(status, "REFUSED", "names outside the zone are refused");

    // Killed: gone from the others' answers.
    cluster.nodes[2].kill9();
    wait_answer(servers[0], &["127.0.0.1", "127.0.0.2"]);
    wait_answer(servers[1], &["127.0.0.1", "127.0.0.2"]);

    // Draining (through the API of another node): gone too, and never empty.
    let (s, _) = cluster.nodes[0].api("POST", "/api/v1/nodes/mx2/drain", None);
    assert_eq!(s, 200);
    wait_answer(servers[0], &["127.0.0.1"]);
    wait_answer(servers[1], &["127.0.0.1"]);
    let (s, _) = cluster.nodes[0].api("POST", "/api/v1/nodes/mx1/drain", None);
    assert_eq!(s, 200);
    std::thread::sleep(Duration::from_secs(3));
    let (_, last) = dig(servers[0], NAME, "A");
    assert!(!last.is_empty(), "the set is never published empty");
}

/// The `[dns]` section of node i: embedded server on `listen`, publisher to `bind`.
fn dns_with_rfc2136(
    i: usize,
    listen: SocketAddr,
    bind: SocketAddr,
    key: &Path,
    key_name: &str,
) -> String {
    format!(
        "\n[dns]\nlisten = \"{listen}\"\nname = \"{NAME}\"\npublish_address = \"127.0.0.{i}\"\nttl = 5\n\
         rfc2136 = {{ server = \"{bind}\", zone = \"example.com.\", tsig_name = \"{key_name}\", tsig_secret_file = \"{}\" }}\n",
        key.display()
    )
}

/// Waits until the node reports an RFC 2136 error containing `what`; returns it.
fn wait_error(node: &Node, what: &str) -> String {
    wait_for(WITHIN, || {
        let e = dns_status(node)["rfc2136_last_error"].as_str()?.to_string();
        e.contains(what).then_some(e)
    })
    .unwrap_or_else(|| panic!("no {what} report: {}", dns_status(node)))
}

/// The `dns` object of a node's `/api/v1/cluster`.
fn dns_status(node: &Node) -> serde_json::Value {
    node.api("GET", "/api/v1/cluster", None).1["dns"].clone()
}

#[test]
fn rfc2136_keeps_bind_in_step_through_kill_takeover_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let bind = Bind::start(&dir.path().join("bind"), "example.com.", NAME, "mxmesh.");
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let key = bind.key_file.clone();
    let mut cluster = Cluster::start_with(3, sink.addr, move |i| {
        dns_with_rfc2136(i, dns_listen(i), bind.addr, &key, "mxmesh.")
    });
    let servers = dns_servers(&cluster);
    cluster.wait_members(&["mx1", "mx2", "mx3"], WITHIN);
    // Added: BIND lists every node, and every node names mx1 the one publisher.
    wait_answer(bind.addr, &["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    for node in &cluster.nodes {
        let ok = wait_for(WITHIN, || {
            (dns_status(node)["publisher"] == "mx1").then_some(())
        });
        assert!(ok.is_some(), "{}", dns_status(node));
    }
    let st = dns_status(&cluster.nodes[0]);
    assert!(st["rfc2136_updates_ok"].as_u64().unwrap() >= 1, "{st}");
    assert!(st["rfc2136_last_error"].is_null(), "{st}");

    // Withdrawn, by the next node: kill -9 the publisher itself.
    cluster.nodes[0].kill9();
    wait_answer(bind.addr, &["127.0.0.2", "127.0.0.3"]);
    let st = dns_status(&cluster.nodes[1]);
    assert_eq!(st["publisher"], "mx2", "{st}");
    assert!(
        st["rfc2136_updates_ok"].as_u64().unwrap() >= 1,
        "mx2 took over: {st}"
    );

    // Restored: the node comes back and is listed again.
    cluster.nodes[0].spawn();
    wait_answer(bind.addr, &["127.0.0.1", "127.0.0.2", "127.0.0.3"]);

    // SIGTERM drains: the node leaves BIND's set before it exits (a dead node would take
    // failure detection plus the hold-down, about 2.5 s, after exit).
    assert_eq!(cluster.nodes[2].terminate(), Some(0));
    let left = wait_for(Duration::from_millis(500), || {
        (dig(bind.addr, NAME, "A").1 == ["127.0.0.1", "127.0.0.2"]).then_some(())
    });
    assert!(
        left.is_some(),
        "BIND after mx3 exited: {:?}",
        dig(bind.addr, NAME, "A")
    );

    // All but one dead: once the dead are forgotten (30 s), the survivor lists just
    // itself, in BIND and in its own answer — never nothing.
    cluster.nodes[1].kill9();
    let start = Instant::now();
    let lone = wait_for(Duration::from_secs(60), || {
        // An answered query (NOERROR, or NXDOMAIN once the name holds nothing) must never
        // be empty; a query that timed out (dig under load) says nothing about the set.
        let answered = |s: &str| s == "NOERROR" || s == "NXDOMAIN";
        let (status, a) = dig(bind.addr, NAME, "A");
        assert!(!answered(&status) || !a.is_empty(), "BIND's set went empty");
        let (status, e) = dig(servers[0], NAME, "A");
        assert!(
            !answered(&status) || !e.is_empty(),
            "the embedded set went empty"
        );
        (a == ["127.0.0.1"] && e == ["127.0.0.1"]).then_some(())
    });
    assert!(
        lone.is_some(),
        "after {:?}: BIND {:?}, embedded {:?}",
        start.elapsed(),
        dig(bind.addr, NAME, "A"),
        dig(servers[0], NAME, "A")
    );
    assert!(bind.log().contains("updating zone"), "{}", bind.log());
}

#[test]
fn a_wrong_tsig_key_is_refused_by_bind_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let bind = Bind::start(&dir.path().join("bind"), "example.com.", NAME, "mxmesh.");
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    // Same key name, another secret: BADSIG.
    let other = Bind::start(
        &dir.path().join("other"),
        "example.net.",
        "mx.example.net.",
        "mxmesh.",
    );
    let listen = dns_listen(1);
    let mut o = NodeOpts::new(sink.addr);
    o.extra = dns_with_rfc2136(1, listen, bind.addr, &other.key_file, "mxmesh.");
    let mut node = Node::start(&dir.path().join("mx1"), &o);
    let refused = wait_error(&node, "BADSIG");
    assert!(refused.contains("NOTAUTH"), "{refused}");
    assert!(
        refused.contains("secret"),
        "the report says what to fix: {refused}"
    );
    assert!(
        refused.contains(&other.key_file.display().to_string()),
        "{refused}"
    );
    assert!(
        node.log().contains("RFC 2136 update failed"),
        "{}",
        node.log()
    );
    let (_, m) = node.api_bytes("/metrics");
    assert!(
        String::from_utf8_lossy(&m).contains("mxmesh_dns_update_failing{node=\"mx1\"} 1"),
        "{}",
        String::from_utf8_lossy(&m)
    );
    assert_eq!(
        dig(bind.addr, NAME, "A").1,
        Vec::<String>::new(),
        "BIND unchanged"
    );
    assert!(
        bind.log().contains("bad signature")
            || bind.log().contains("BADSIG")
            || bind.log().contains("tsig verify failure"),
        "{}",
        bind.log()
    );

    // A key name BIND does not know: BADKEY.
    node.kill9();
    o.extra = dns_with_rfc2136(1, listen, bind.addr, &bind.key_file, "stranger.");
    let mut node = Node::start(&dir.path().join("mx1b"), &o);
    let unknown = wait_error(&node, "BADKEY");
    assert!(unknown.contains("stranger."), "{unknown}");

    // The right key: published, and the error clears.
    node.kill9();
    o.extra = dns_with_rfc2136(1, listen, bind.addr, &bind.key_file, "mxmesh.");
    let node = Node::start(&dir.path().join("mx1c"), &o);
    wait_answer(bind.addr, &["127.0.0.1"]);
    let st = dns_status(&node);
    assert!(st["rfc2136_last_error"].is_null(), "{st}");
    assert_eq!(
        st["rfc2136_confirmed"],
        serde_json::json!(["127.0.0.1"]),
        "{st}"
    );
}

#[test]
fn ipv6_addresses_are_published_as_aaaa_embedded_and_in_bind() {
    let dir = tempfile::tempdir().unwrap();
    let bind = Bind::start(&dir.path().join("bind"), "example.com.", NAME, "mxmesh.");
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut o = NodeOpts::new(sink.addr);
    o.extra = dns_with_rfc2136(1, dns_listen(1), bind.addr, &bind.key_file, "mxmesh.").replace(
        "publish_address = \"127.0.0.1\"",
        "publish_address = \"::1\"",
    );
    let node = Node::start(&dir.path().join("mx1"), &o);
    for server in [node.dns.unwrap(), bind.addr] {
        let got = wait_for(WITHIN, || {
            let (_, a) = dig(server, NAME, "AAAA");
            (a == ["::1"]).then_some(())
        });
        assert!(
            got.is_some(),
            "{server}: AAAA {:?}",
            dig(server, NAME, "AAAA")
        );
        assert_eq!(
            dig(server, NAME, "A").1,
            Vec::<String>::new(),
            "{server}: no A"
        );
    }
}
