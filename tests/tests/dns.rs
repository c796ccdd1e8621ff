//! The embedded DNS server of three real nodes, asked with dig: the healthy nodes are
//! listed, a killed or draining node leaves the set, the set is never empty, and names
//! outside the zone are refused.

use std::net::SocketAddr;
use std::time::Duration;

use mxmesh_tests::{Cluster, Sink, SinkMode, dig, free_port, free_udp_port, wait_for};

const NAME: &str = "mx.example.com.";
const WITHIN: Duration = Duration::from_secs(15);

fn dns_addr(i: usize) -> SocketAddr {
    let ip = format!("127.0.0.{i}");
    // Both UDP and TCP must be free on the port.
    loop {
        let port = free_udp_port(&ip);
        if std::net::TcpListener::bind((ip.as_str(), port)).is_ok() {
            return format!("{ip}:{port}").parse().unwrap();
        }
    }
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
    let sink = Sink::start(
        &dir.path().join("sink"),
        free_port("127.0.0.1"),
        SinkMode::default(),
    );
    let servers: Vec<SocketAddr> = (1..=3).map(dns_addr).collect();
    let s2 = servers.clone();
    let mut cluster = Cluster::start_with(3, sink.addr, move |i| {
        format!(
            "\n[dns]\nlisten = \"{}\"\nname = \"{NAME}\"\npublish_address = \"127.0.0.{i}\"\nttl = 5\n",
            s2[i - 1]
        )
    });
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
