//! The admin API's contract, field by field, on a real 3-node mesh: every field of
//! `/api/v1/cluster`, and every search parameter of `/api/v1/quarantine` end to end.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mxmesh_tests::{Cluster, Node, Sink, SinkMode, bin, message, send_python, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);

/// A sink and a 3-node mesh that has formed, with a rule that quarantines subjects
/// containing `hold-me`.
fn three_nodes_with_a_quarantine_rule() -> (tempfile::TempDir, Sink, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let (s, rule) = cluster.nodes[0].api(
        "POST",
        "/api/v1/rules",
        Some(&json!({"name": "hold", "priority": 5, "action": "quarantine", "reason": "held for the test",
                      "when": {"field": "subject", "op": "contains", "value": "hold-me"}})),
    );
    assert_eq!(s, 201, "{rule}");
    let id = rule["id"].as_str().unwrap().to_string();
    for n in &cluster.nodes {
        let has = wait_for(CONVERGE, || {
            let (_, r) = n.api("GET", &format!("/api/v1/rules/{id}"), None);
            (r["id"] == id.as_str()).then_some(())
        });
        assert!(has.is_some(), "the rule never reached {}", n.admin);
    }
    (dir, sink, cluster)
}

fn send(node: &Node, from: &str, to: &str, subject: &str) {
    let r = send_python(node.smtp, from, &[to], &message(subject, "body\r\n"), false);
    assert_eq!(r["ok"], true, "{r}");
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Subjects of a listing, sorted.
fn subjects(listing: &Value) -> Vec<String> {
    let mut s: Vec<String> = listing["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|i| i["subject"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    s.sort();
    s
}

fn search(node: &Node, query: &str) -> Value {
    let (s, v) = node.api("GET", &format!("/api/v1/quarantine?{query}"), None);
    assert_eq!(s, 200, "{query}: {v}");
    v
}

#[test]
fn every_field_of_the_cluster_view_is_there_and_true() {
    let (_dir, _sink, cluster) = three_nodes_with_a_quarantine_rule();
    send(
        &cluster.nodes[1],
        "a@example.org",
        "user@example.com",
        "hold-me please",
    );
    let version = String::from_utf8(
        Command::new(bin("mxmesh"))
            .arg("--version")
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .split_whitespace()
    .nth(1)
    .unwrap()
    .to_string();

    for (i, asked) in cluster.nodes.iter().enumerate() {
        let view = wait_for(CONVERGE, || {
            let (_, c) = asked.api("GET", "/api/v1/cluster", None);
            let members = c["members"].as_array()?;
            let settled = members.len() == 3
                && members.iter().all(|m| m["live"] == true)
                && members
                    .iter()
                    .any(|m| m["id"] == "mx2" && m["quarantine_entries"] == 1);
            settled.then_some(c)
        })
        .unwrap_or_else(|| {
            panic!(
                "{} never showed three live members with mx2's entry: {}",
                asked.admin,
                asked.api("GET", "/api/v1/cluster", None).1
            )
        });
        assert_eq!(view["self"], format!("mx{}", i + 1), "{view}");
        let members = view["members"].as_array().unwrap();
        let digests: Vec<&Value> = members.iter().map(|m| &m["rules_digest"]).collect();
        for (j, node) in cluster.nodes.iter().enumerate() {
            let id = format!("mx{}", j + 1);
            let m = members
                .iter()
                .find(|m| m["id"] == id.as_str())
                .unwrap_or_else(|| panic!("{id} missing: {view}"));
            assert_eq!(m["live"], true, "{m}");
            assert_eq!(m["health"], "ok", "{m}");
            assert_eq!(m["version"], version.as_str(), "{m}");
            assert_eq!(m["smtp_addr"], node.smtp.to_string(), "{m}");
            assert_eq!(m["admin_addr"], node.admin.to_string(), "{m}");
            assert_eq!(
                m["mesh_addr"],
                node.mesh.expect("mesh node").to_string(),
                "{m}"
            );
            let seen = m["last_seen_ms"]
                .as_u64()
                .expect("last_seen_ms is a number");
            if j == i {
                assert_eq!(seen, 0, "a node sees itself now: {m}");
            } else {
                assert!(seen < CONVERGE.as_millis() as u64, "live but stale: {m}");
            }
            assert!(
                m["rules_digest"].as_str().is_some_and(|d| !d.is_empty()),
                "{m}"
            );
            let expected = if id == "mx2" { 1 } else { 0 };
            assert_eq!(m["quarantine_entries"], expected, "{m}");
            let keys: Vec<&String> = m.as_object().unwrap().keys().collect();
            assert_eq!(keys.len(), 10, "unexpected fields: {m}");
        }
        assert!(
            digests.windows(2).all(|w| w[0] == w[1]),
            "one rule book, one digest: {view}"
        );
    }
}

#[test]
fn every_quarantine_search_parameter_filters_across_the_mesh() {
    let (_dir, _sink, cluster) = three_nodes_with_a_quarantine_rule();
    let [mx1, mx2, mx3] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    send(mx1, "alice@one.test", "user1@example.com", "hold-me one");
    send(mx2, "bob@two.test", "user2@example.com", "hold-me two");
    let listed = wait_for(CONVERGE, || {
        (subjects(&search(mx3, "")).len() == 2).then_some(())
    });
    assert!(listed.is_some(), "mx3 never listed the first two");
    let between = now_ms();
    let third_sent = wait_for(CONVERGE, || (now_ms() > between).then_some(()));
    assert!(third_sent.is_some());
    send(
        mx3,
        "carol@three.test",
        "user3@example.com",
        "hold-me three",
    );
    let all = ["hold-me one", "hold-me three", "hold-me two"];
    for n in [mx1, mx2, mx3] {
        let ok = wait_for(CONVERGE, || (subjects(&search(n, "")) == all).then_some(()));
        assert!(ok.is_some(), "{} never listed all three", n.admin);
    }

    // Each parameter alone, asked of a node that holds none of the matches.
    assert_eq!(subjects(&search(mx3, "sender=bob%40two")), ["hold-me two"]);
    assert_eq!(subjects(&search(mx1, "rcpt=USER3")), ["hold-me three"]);
    assert_eq!(subjects(&search(mx2, "subject=one")), ["hold-me one"]);
    assert_eq!(subjects(&search(mx1, "node=mx3")), ["hold-me three"]);
    assert_eq!(
        subjects(&search(mx2, &format!("since={between}"))),
        ["hold-me three"]
    );

    // status: release one from a node that does not hold it; the listing follows.
    let one = search(mx3, "subject=one")["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, r) = mx3.api("POST", &format!("/api/v1/quarantine/{one}/release"), None);
    assert!(s == 200 || s == 202, "{s} {r}");
    for n in [mx1, mx2, mx3] {
        let released = wait_for(CONVERGE, || {
            (subjects(&search(n, "status=released")) == ["hold-me one"]).then_some(())
        });
        assert!(released.is_some(), "{} never showed the release", n.admin);
        assert_eq!(
            subjects(&search(n, "status=quarantined")),
            ["hold-me three", "hold-me two"]
        );
    }
    // Parameters combine.
    assert_eq!(
        subjects(&search(mx2, "status=quarantined&node=mx2")),
        ["hold-me two"]
    );

    // limit + cursor: pages of one, newest first, every entry once, then no cursor.
    let mut seen = Vec::new();
    let mut query = "limit=1".to_string();
    for _ in 0..4 {
        let page = search(mx1, &query);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 1, "{page}");
        seen.extend(items.iter().map(|i| i["received_ms"].as_u64().unwrap()));
        match page["next"].as_str() {
            Some(next) => query = format!("limit=1&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {seen:?}"
    );

    // Bad parameters are refused, naming what is wrong.
    for (query, names) in [
        ("colour=red", "colour"),
        ("status=lost-in-space", "status"),
        ("since=yesterday", "since"),
        ("cursor=nonsense", "cursor"),
        ("limit=0", "limit"),
    ] {
        let (s, v) = mx1.api("GET", &format!("/api/v1/quarantine?{query}"), None);
        assert_eq!(s, 400, "{query}: {v}");
        assert!(v.to_string().contains(names), "{query}: {v}");
    }
}
