//! Faults 4: a real-process partition. Three `mxmesh node` processes, each in its own
//! network namespace made by the test, joined by a bridge (veth pairs); the sink listens
//! on the host's bridge address. The test partitions {mx1} from {mx2, mx3} by dropping
//! every packet between them (frames sent to a black-hole MAC address; traffic to the
//! host still flows), edits rules
//! on both sides, sends mail to both sides, heals, and checks: identical rules everywhere
//! with both sides' edits, the quarantine index complete on every node, every acked
//! message delivered. Needs root (ip netns, tc); fails with a clear message otherwise.

use std::collections::BTreeMap;
use std::time::Duration;

use mxmesh_tests::faults::{Netns, NsNode, eventually, require_root, send_one, subjects};
use mxmesh_tests::{Sink, SinkMode, make_certs, mesh_section, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(60);

fn live_members(n: &NsNode) -> Vec<String> {
    let (_, c) = n.api("GET", "/api/v1/cluster", None);
    let mut v: Vec<String> = c["members"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|m| m["live"] == true)
                .map(|m| m["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The rules a node serves, by id, without volatile fields.
fn rules(n: &NsNode) -> BTreeMap<String, Value> {
    let (_, r) = n.api("GET", "/api/v1/rules", None);
    r["rules"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| (x["id"].as_str().unwrap_or_default().to_string(), x.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn quarantine_subjects(n: &NsNode) -> Vec<String> {
    let (_, l) = n.api("GET", "/api/v1/quarantine?subject=part-&limit=1000", None);
    let mut v: Vec<String> = l["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["subject"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn partition_in_network_namespaces_heals_to_identical_rules_and_loses_no_mail() {
    require_root("the network-namespace partition test");
    let net = Netns::create(3);
    let dir = tempfile::tempdir().unwrap();
    let ids = ["mx1", "mx2", "mx3"];
    let certs = dir.path().join("certs");
    make_certs(&certs, &ids);
    let host = net.host_ip();
    let sink = Sink::start_on(&host, &dir.path().join("sink"), SinkMode::default());
    let mesh: Vec<std::net::SocketAddr> = (0..3)
        .map(|i| format!("{}:7946", net.ip(i)).parse().unwrap())
        .collect();
    let nodes: Vec<NsNode> = (0..3)
        .map(|i| {
            let seeds: Vec<_> = mesh.iter().copied().filter(|a| *a != mesh[i]).collect();
            NsNode::start(
                &dir.path().join(ids[i]),
                &net.names[i],
                ids[i],
                &net.ip(i),
                &sink.addr.to_string(),
                &mesh_section(mesh[i], &seeds, &certs, ids[i]),
            )
        })
        .collect();
    for n in &nodes {
        eventually(CONVERGE, &format!("{} sees all three", n.id), || {
            live_members(n) == ids
        });
    }
    // A rule every side will edit.
    let (s, shared_rule) = nodes[0].api(
        "POST",
        "/api/v1/rules",
        Some(
            &json!({"name": "shared", "priority": 50, "action": "tag", "reason": "r0",
                     "when": {"field": "subject", "op": "contains", "value": "nothing-matches"}}),
        ),
    );
    assert_eq!(s, 201, "{shared_rule}");
    let shared_id = shared_rule["id"].as_str().unwrap().to_string();
    for n in &nodes {
        eventually(CONVERGE, "the shared rule reaches every node", || {
            rules(n).contains_key(&shared_id)
        });
    }

    // Partition {mx1} | {mx2, mx3}.
    net.drop_to(0, &[1, 2]);
    net.drop_to(1, &[0]);
    net.drop_to(2, &[0]);
    eventually(CONVERGE, "mx1 sees only itself", || {
        live_members(&nodes[0]) == ["mx1"]
    });
    eventually(CONVERGE, "mx2 sees mx2 and mx3", || {
        live_members(&nodes[1]) == ["mx2", "mx3"]
    });

    // Rules edited on both sides: a new rule each, and different fields of the shared one.
    let (s, a) = nodes[0].api(
        "POST",
        "/api/v1/rules",
        Some(
            &json!({"name": "side a", "priority": 10, "action": "quarantine", "reason": "a",
                     "when": {"field": "subject", "op": "contains", "value": "quar-a"}}),
        ),
    );
    assert_eq!(s, 201, "{a}");
    let (s, b) = nodes[1].api(
        "POST",
        "/api/v1/rules",
        Some(
            &json!({"name": "side b", "priority": 11, "action": "quarantine", "reason": "b",
                     "when": {"field": "subject", "op": "contains", "value": "quar-b"}}),
        ),
    );
    assert_eq!(s, 201, "{b}");
    let path = format!("/api/v1/rules/{shared_id}");
    let mut on_a = shared_rule.clone();
    on_a["priority"] = json!(7);
    let mut on_b = shared_rule.clone();
    on_b["reason"] = json!("edited on side b");
    assert_eq!(nodes[0].api("PUT", &path, Some(&on_a)).0, 200);
    assert_eq!(nodes[2].api("PUT", &path, Some(&on_b)).0, 200);
    // Each side's rule is in force on its own side during the partition.
    eventually(CONVERGE, "side b's rule reaches mx3", || {
        rules(&nodes[2]).contains_key(b["id"].as_str().unwrap())
    });

    // The same message learned as spam on both sides.
    let learned = b"From: prize@lottery.example\r\nSubject: you won\r\n\r\nclaim your prize\r\n";
    for k in [0, 1] {
        let (s, r) = nodes[k].post_raw("/api/v1/learn/spam", learned);
        assert_eq!(
            (s, &r["learned"]),
            (200, &json!(true)),
            "{}: {r}",
            nodes[k].id
        );
    }

    // Mail flows on both sides.
    let mut acked = Vec::new();
    let mut quarantined = Vec::new();
    for i in 0..12 {
        for (k, n) in nodes.iter().enumerate() {
            let subject = match (i % 4, k) {
                (0, 0) => format!("part-{i}-{k}-quar-a"),
                (0, 1) => format!("part-{i}-{k}-quar-b"),
                _ => format!("part-{i}-{k}"),
            };
            let (code, text) = send_one(n.smtp, &subject, 2000);
            assert_eq!(code, 250, "{subject} to {}: {text}", n.id);
            if subject.contains("quar-") {
                quarantined.push(subject);
            } else {
                acked.push(subject);
            }
        }
    }
    sink.wait_count(acked.len(), CONVERGE);
    // During the partition each side's quarantine index lacks the other side's entries.
    assert!(
        !quarantine_subjects(&nodes[0])
            .iter()
            .any(|s| s.contains("quar-b")),
        "the partition held"
    );

    // Heal.
    net.heal(0, &[1, 2]);
    net.heal(1, &[0]);
    net.heal(2, &[0]);
    for n in &nodes {
        eventually(
            CONVERGE,
            &format!("{} sees all three after heal", n.id),
            || live_members(n) == ids,
        );
    }
    eventually(CONVERGE, "identical rules on every node", || {
        let r: Vec<_> = nodes.iter().map(rules).collect();
        r[0].len() == 3 && r.iter().all(|x| *x == r[0])
    });
    let merged = &rules(&nodes[0])[&shared_id];
    assert_eq!(merged["priority"], 7, "side a's edit survived: {merged}");
    assert_eq!(
        merged["reason"], "edited on side b",
        "side b's edit survived: {merged}"
    );
    // The message learned on both sides counts once, on every node.
    for n in &nodes {
        let last = std::cell::RefCell::new(Value::Null);
        let once = wait_for(CONVERGE, || {
            let (_, b) = n.api("GET", "/api/v1/bayes", None);
            let spam = |id: &str| b["nodes"][id]["spam"].as_u64().unwrap_or(9);
            let ok = b["spam_learned"] == 1
                && b["nodes"]["mx1"]["records"] == 1
                && b["nodes"]["mx2"]["records"] == 1
                && spam("mx1") + spam("mx2") == 1;
            *last.borrow_mut() = b;
            ok.then_some(())
        });
        assert!(
            once.is_some(),
            "{}: not learned once: {}",
            n.id,
            last.borrow()
        );
    }
    quarantined.sort();
    for n in &nodes {
        eventually(
            CONVERGE,
            &format!("{}: complete quarantine index", n.id),
            || quarantine_subjects(n) == quarantined,
        );
    }
    let got = sink.wait_count(acked.len(), CONVERGE);
    let seen = subjects(&got);
    let lost: Vec<&String> = acked.iter().filter(|s| !seen.contains_key(*s)).collect();
    assert!(lost.is_empty(), "acked but lost: {lost:?}");
    assert!(
        quarantined.iter().all(|s| !seen.contains_key(s)),
        "quarantined mail stayed in quarantine"
    );
    eprintln!(
        "netns partition: {} delivered, {} quarantined, rules converged",
        acked.len(),
        quarantined.len()
    );
    drop(nodes);
}
