//! The `client` symbols against a real BIND 9 on loopback: the node looks up the reverse
//! name of a public client address (PTR in `113.0.203.in-addr.arpa.`), forward-confirms
//! it (A in `test.`), and scores the HELO name and the name it found. Driven through
//! `POST /api/v1/classify?ip=&helo=[&hostname=]`, which runs the same facts phase as SMTP
//! (SMTP clients in tests connect from loopback, which these checks never judge).

use std::collections::BTreeSet;

use mxmesh_tests::{Bind, Node, NodeOpts, Sink, SinkMode};

/// A DSL line: its PTR name embeds the address and resolves back to it.
const DSL_IP: &str = "203.0.113.91";
/// A mail server: PTR and A agree.
const SERVER_IP: &str = "203.0.113.10";
/// A PTR name without an A record: not forward-confirmed.
const UNCONFIRMED_IP: &str = "203.0.113.20";
/// No PTR record at all (NXDOMAIN).
const NAMELESS_IP: &str = "203.0.113.30";

const CLIENT_SYMBOLS: [&str; 5] = [
    "RDNS_NONE",
    "RDNS_DYNAMIC",
    "HELO_NOT_FQDN",
    "HELO_IP_LITERAL",
    "HELO_FORGED_PROVIDER",
];

fn dns(dir: &std::path::Path) -> Bind {
    let forward = format!("203-0-113-91.dsl.isp IN A {DSL_IP}\nmx.sender IN A {SERVER_IP}\n");
    let reverse = "91 IN PTR 203-0-113-91.dsl.isp.test.\n\
                   10 IN PTR mx.sender.test.\n\
                   20 IN PTR ghost.isp.test.\n";
    Bind::serve(
        &dir.join("bind"),
        &[("test.", &forward), ("113.0.203.in-addr.arpa.", reverse)],
    )
}

/// The client symbols `node` finds for a message from `query` (`ip=…&helo=…`).
fn client_symbols(node: &Node, query: &str) -> BTreeSet<String> {
    let message = b"From: a@sender.test\r\nTo: b@example.com\r\nSubject: hello\r\n\
        Message-ID: <1@sender.test>\r\n\r\nSee you on Friday.\r\n";
    let (status, answer) = node.api_raw("POST", &format!("/api/v1/classify?{query}"), message);
    assert_eq!(status, 200, "{answer}");
    answer["symbols"]
        .as_array()
        .expect("symbols")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .filter(|n| CLIENT_SYMBOLS.contains(n))
        .map(str::to_string)
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| n.to_string()).collect()
}

#[test]
fn the_reverse_name_is_looked_up_forward_confirmed_and_judged() {
    let dir = tempfile::tempdir().unwrap();
    let bind = dns(dir.path());
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut opts = NodeOpts::new(sink.addr);
    opts.extra = format!(
        "\n[filter]\nresolver = \"{}\"\ndns_timeout_ms = 2000\n",
        bind.addr
    );
    let node = Node::start(&dir.path().join("node"), &opts);

    // A mail server greeting with its name: nothing.
    let server = client_symbols(&node, &format!("ip={SERVER_IP}&helo=mx.sender.test"));
    assert_eq!(server, set(&[]), "log:\n{}", node.log());
    // A DSL line greeting as a large provider.
    let dsl = client_symbols(&node, &format!("ip={DSL_IP}&helo=aol.com"));
    assert_eq!(dsl, set(&["RDNS_DYNAMIC", "HELO_FORGED_PROVIDER"]));
    // A PTR name that does not resolve back counts as none, as does no PTR at all.
    let unconfirmed = client_symbols(&node, &format!("ip={UNCONFIRMED_IP}&helo=box"));
    assert_eq!(unconfirmed, set(&["RDNS_NONE", "HELO_NOT_FQDN"]));
    let nameless = client_symbols(&node, &format!("ip={NAMELESS_IP}&helo=[{NAMELESS_IP}]"));
    assert_eq!(nameless, set(&["RDNS_NONE", "HELO_IP_LITERAL"]));
    // A reverse name the caller gives is taken as given (no lookup).
    let given = client_symbols(
        &node,
        &format!("ip={SERVER_IP}&helo=mx.sender.test&hostname=unknown"),
    );
    assert_eq!(given, set(&["RDNS_NONE"]));
    // Clients inside the organisation are never judged.
    let inside = client_symbols(&node, "ip=10.0.0.5&helo=laptop");
    assert_eq!(inside, set(&[]));
}

#[test]
fn without_a_resolver_the_reverse_name_stays_unchecked() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    let nameless = client_symbols(&node, &format!("ip={NAMELESS_IP}&helo=mx.sender.test"));
    assert_eq!(nameless, set(&[]), "no [filter]: no lookup, no RDNS_NONE");
    let bare = client_symbols(&node, &format!("ip={NAMELESS_IP}&helo=box"));
    assert_eq!(bare, set(&["HELO_NOT_FQDN"]));
}
