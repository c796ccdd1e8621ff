//! Three real `mxmesh node` processes on 127.0.0.1-3, meshed over QUIC with mutual TLS:
//! membership, failure detection, rule sync and merge, and refusal of strangers.

use std::process::Command;
use std::time::Duration;

use mxmesh_tests::{
    Cluster, Node, NodeOpts, Sink, SinkMode, bin, make_certs, mesh_section, message, send_python,
    wait_for,
};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(20);

/// A sink and a 3-node mesh that has formed.
fn three_nodes() -> (tempfile::TempDir, Sink, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    (dir, sink, cluster)
}

fn rule_ids(node: &Node) -> Vec<String> {
    let (_, r) = node.api("GET", "/api/v1/rules", None);
    r["rules"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| x["id"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_rule_created_on_one_node_filters_mail_on_another() {
    let (_dir, _sink, cluster) = three_nodes();
    let (s, rule) = cluster.nodes[0].api(
        "POST",
        "/api/v1/rules",
        Some(&json!({"name": "mesh rule", "priority": 5, "action": "quarantine", "reason": "mesh-wide",
                      "when": {"field": "subject", "op": "contains", "value": "meshtest"}})),
    );
    assert_eq!(s, 201, "{rule}");
    let id = rule["id"].as_str().unwrap().to_string();
    let node3 = &cluster.nodes[2];
    assert!(
        wait_for(CONVERGE, || rule_ids(node3).contains(&id).then_some(())).is_some(),
        "rule never reached mx3"
    );
    let r = send_python(
        node3.smtp,
        "a@example.org",
        &["user@example.com"],
        &message("a meshtest mail", "x\r\n"),
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    let (_, stats) = node3.api("GET", "/api/v1/stats", None);
    assert_eq!(stats["nodes"]["mx3"]["quarantined"], 1, "{stats}");
    // The audit trail is mesh-wide: mx3 shows who created the rule, on which node.
    let (_, h) = node3.api("GET", "/api/v1/rules/history", None);
    let entry = &h["history"][0];
    assert_eq!(entry["node"], "mx1", "{h}");
    assert_eq!(entry["admin"], "tester", "{h}");
    // Counters are mesh-wide too: any node reports every node's.
    let got = wait_for(CONVERGE, || {
        let (_, s1) = cluster.nodes[0].api("GET", "/api/v1/stats", None);
        (s1["nodes"]["mx3"]["quarantined"] == 1).then_some(s1)
    });
    assert!(got.is_some(), "mx1 never saw mx3's counters");
}

#[test]
fn a_killed_node_is_shown_not_live_and_rejoins() {
    let (_dir, _sink, mut cluster) = three_nodes();
    cluster.nodes[1].kill9();
    let gone = wait_for(CONVERGE, || {
        let (_, c) = cluster.nodes[0].api("GET", "/api/v1/cluster", None);
        let m = c["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == "mx2")?
            .clone();
        (m["live"] == false).then_some(m)
    });
    assert!(gone.is_some(), "mx2 still live on mx1 after SIGKILL");
    cluster.nodes[1].spawn();
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
}

#[test]
fn concurrent_edits_of_different_fields_both_survive() {
    let (_dir, _sink, cluster) = three_nodes();
    let (_, rule) = cluster.nodes[0].api(
        "POST",
        "/api/v1/rules",
        Some(
            &json!({"name": "shared", "priority": 50, "action": "tag", "reason": "r0",
                      "when": {"field": "subject", "op": "contains", "value": "x"}}),
        ),
    );
    let id = rule["id"].as_str().unwrap().to_string();
    for n in &cluster.nodes {
        assert!(wait_for(CONVERGE, || rule_ids(n).contains(&id).then_some(())).is_some());
    }
    let path = format!("/api/v1/rules/{id}");
    let mut on2 = rule.clone();
    on2["priority"] = json!(7);
    let mut on3 = rule.clone();
    on3["reason"] = json!("edited on mx3");
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(cluster.nodes[1].api("PUT", &path, Some(&on2)).0, 200));
        s.spawn(|| assert_eq!(cluster.nodes[2].api("PUT", &path, Some(&on3)).0, 200));
    });
    for n in &cluster.nodes {
        let merged = wait_for(CONVERGE, || {
            let (_, r) = n.api("GET", &path, None);
            (r["priority"] == 7 && r["reason"] == "edited on mx3").then_some(r)
        });
        assert!(
            merged.is_some(),
            "{} did not converge: {}",
            n.admin,
            n.api("GET", &path, None).1
        );
    }
}

#[test]
fn strangers_never_become_members() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(2, sink.addr);
    cluster.wait_members(&["mx1", "mx2"], CONVERGE);

    // A node whose certificate comes from another CA.
    let other_ca = dir.path().join("other-ca");
    make_certs(&other_ca, &["mx4"]);
    let mut o = NodeOpts::new(sink.addr);
    o.id = "mx4".into();
    o.ip = "127.0.0.4".into();
    let listen = "127.0.0.4:0".parse().unwrap();
    o.extra = mesh_section(listen, &cluster.mesh_addrs, &other_ca, "mx4");
    let stranger = Node::start(&dir.path().join("mx4"), &o);

    // A node whose certificate names another id than the one it claims refuses to start.
    let mut o = NodeOpts::new(sink.addr);
    o.id = "mx2".into();
    o.ip = "127.0.0.5".into();
    let listen = "127.0.0.5:0".parse().unwrap();
    o.extra = mesh_section(
        listen,
        &cluster.mesh_addrs,
        &cluster.dir.path().join("certs"),
        "mx1",
    );
    let impostor_dir = dir.path().join("impostor");
    std::fs::create_dir_all(&impostor_dir).unwrap();
    std::fs::write(impostor_dir.join("admin.tokens"), "x y\n").unwrap();
    let config = impostor_dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\nid = \"mx2\"\ndata_dir = \"data\"\n[smtp]\nlisten = \"127.0.0.5:0\"\nhostname = \"x\"\n[[domains]]\nname = \"example.com\"\nrelay_to = \"{}\"\n[admin]\nlisten = \"127.0.0.5:0\"\ntokens_file = \"admin.tokens\"\n{}",
            sink.addr,
            o.extra
        ),
    )
    .unwrap();
    let out = Command::new(bin("mxmesh"))
        .arg("node")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a node whose certificate names mx1 must not run as mx2"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("mx1") && err.contains("mx2"),
        "the error names both ids: {err}"
    );

    std::thread::sleep(Duration::from_secs(4));
    cluster.wait_members(&["mx1", "mx2"], CONVERGE);
    let (_, c) = cluster.nodes[0].api("GET", "/api/v1/cluster", None);
    assert!(
        c["members"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["id"] != "mx4"),
        "a node of another CA appeared: {c}"
    );
    drop(stranger);
}

fn quarantined_ids(node: &Node, subject: &str) -> Vec<(String, serde_json::Value)> {
    let (_, l) = node.api(
        "GET",
        &format!("/api/v1/quarantine?subject={subject}"),
        None,
    );
    l["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| (i["id"].as_str().unwrap_or_default().to_string(), i.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn quarantine_is_mesh_wide_and_releases_happen_once() {
    let (_dir, sink, mut cluster) = three_nodes();
    let (s, _) = cluster.nodes[0].api(
        "POST",
        "/api/v1/rules",
        Some(
            &json!({"name": "hold", "priority": 1, "action": "quarantine", "reason": "held",
                      "when": {"field": "subject", "op": "contains", "value": "hold-me"}}),
        ),
    );
    assert_eq!(s, 201);
    let node2 = &cluster.nodes[1];
    assert!(wait_for(CONVERGE, || (rule_ids(node2).len() == 1).then_some(())).is_some());
    let first = message("hold-me first", "line\r\n.dot line\r\n");
    let second = message("hold-me second", "body two\r\n");
    for m in [&first, &second] {
        let r = send_python(node2.smtp, "a@example.org", &["user@example.com"], m, false);
        assert_eq!(r["ok"], true, "{r}");
    }
    // Listed and shown from mx1, byte-exact.
    let node1 = &cluster.nodes[0];
    let listed = wait_for(CONVERGE, || {
        let ids = quarantined_ids(node1, "hold-me");
        (ids.len() == 2).then_some(ids)
    })
    .expect("mx1 lists mx2's quarantine");
    assert!(
        listed
            .iter()
            .all(|(_, i)| i["node"] == "mx2" && i["status"] == "quarantined")
    );
    let first_id = listed
        .iter()
        .find(|(_, i)| i["subject"] == "hold-me first")
        .unwrap()
        .0
        .clone();
    let second_id = listed
        .iter()
        .find(|(_, i)| i["subject"] == "hold-me second")
        .unwrap()
        .0
        .clone();
    let (s, raw) = node1.api_bytes(&format!("/api/v1/quarantine/{first_id}/raw"));
    assert_eq!(s, 200);
    assert_eq!(raw, first, "raw fetched from the owner is byte-exact");

    // Released from mx3 (once its copy of the index has the entry): arrives downstream once.
    let on_mx3 = wait_for(CONVERGE, || {
        (quarantined_ids(&cluster.nodes[2], "hold-me").len() == 2).then_some(())
    });
    assert!(on_mx3.is_some(), "mx3 lists mx2's quarantine");
    let (s, body) = cluster.nodes[2].api(
        "POST",
        &format!("/api/v1/quarantine/{first_id}/release"),
        None,
    );
    assert_eq!(s, 202, "{body}");
    sink.wait_count(1, CONVERGE);
    let (s, _) = node1.api(
        "POST",
        &format!("/api/v1/quarantine/{first_id}/release"),
        None,
    );
    assert_eq!(
        s, 409,
        "a second release (from another node) is refused once the first is known"
    );

    // mx2 down: a release asked on mx1 is recorded, shown as pending, carried out on return.
    cluster.nodes[1].kill9();
    let node1 = &cluster.nodes[0];
    assert!(
        wait_for(CONVERGE, || {
            let (_, c) = node1.api("GET", "/api/v1/cluster", None);
            c["members"]
                .as_array()?
                .iter()
                .find(|m| m["id"] == "mx2")
                .filter(|m| m["live"] == false)
                .map(|_| ())
        })
        .is_some()
    );
    let (s, body) = node1.api(
        "POST",
        &format!("/api/v1/quarantine/{second_id}/release"),
        None,
    );
    assert_eq!(s, 202, "{body}");
    assert_eq!(body["pending"]["action"], "release", "{body}");
    let (_, shown) = cluster.nodes[2].api("GET", &format!("/api/v1/quarantine/{second_id}"), None);
    assert!(
        wait_for(CONVERGE, || {
            let (_, shown) =
                cluster.nodes[2].api("GET", &format!("/api/v1/quarantine/{second_id}"), None);
            (shown["pending"]["action"] == "release").then_some(())
        })
        .is_some(),
        "the pending request is visible mesh-wide: {shown}"
    );
    cluster.nodes[1].spawn();
    let got = sink.wait_count(2, Duration::from_secs(30));
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        sink.messages().len(),
        2,
        "each release delivered exactly once"
    );
    assert!(String::from_utf8_lossy(&got[1].1).contains("hold-me second"));
    let released = wait_for(CONVERGE, || {
        let (_, shown) =
            cluster.nodes[0].api("GET", &format!("/api/v1/quarantine/{second_id}"), None);
        (shown["status"] == "released").then_some(shown)
    });
    assert!(released.is_some(), "mx1 sees the deferred release done");
}

#[test]
fn any_node_answers_for_the_others_and_a_wiped_node_catches_up() {
    let (_dir, sink, mut cluster) = three_nodes();
    let rule = |name: &str| json!({"name": name, "action": "tag", "when": {"field": "subject", "op": "contains", "value": name}});
    let (_, keep) = cluster.nodes[0].api("POST", "/api/v1/rules", Some(&rule("keep")));
    let (_, gone) = cluster.nodes[0].api("POST", "/api/v1/rules", Some(&rule("gone")));
    let gone_id = gone["id"].as_str().unwrap().to_string();
    let keep_id = keep["id"].as_str().unwrap().to_string();
    assert_eq!(
        cluster.nodes[1]
            .api("DELETE", "/api/v1/rules/__none__", None)
            .0,
        404
    );
    for n in &cluster.nodes {
        let both = wait_for(CONVERGE, || (rule_ids(n).len() == 2).then_some(()));
        assert!(both.is_some(), "{} never got both rules", n.admin);
    }
    assert_eq!(
        cluster.nodes[1]
            .api("DELETE", &format!("/api/v1/rules/{gone_id}"), None)
            .0,
        200
    );

    // Trace: mail through mx2, asked on mx1.
    let r = send_python(
        cluster.nodes[1].smtp,
        "tracer@example.org",
        &["user@example.com"],
        &message("traced", "x\r\n"),
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    sink.wait_count(1, CONVERGE);
    let trace_of = |node: &Node| -> Vec<(String, String)> {
        let (_, t) = node.api("GET", "/api/v1/trace?sender=tracer", None);
        t["events"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["node"].as_str().unwrap_or_default().to_string(),
                            e["event"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    // The relayed event is committed just after the downstream's reply: wait for it.
    let traced = wait_for(CONVERGE, || {
        let events = trace_of(&cluster.nodes[0]);
        (events.contains(&("mx2".into(), "accepted".into()))
            && events.contains(&("mx2".into(), "relayed".into())))
        .then_some(())
    });
    assert!(
        traced.is_some(),
        "mx1's trace misses mx2's events: {:?}",
        trace_of(&cluster.nodes[0])
    );

    // Queue of another node, and draining it, from mx1.
    let (s, q) = cluster.nodes[0].api("GET", "/api/v1/queue?node=mx3", None);
    assert_eq!(s, 200, "{q}");
    assert_eq!(q["node"], "mx3");
    let (s, d) = cluster.nodes[0].api("POST", "/api/v1/nodes/mx3/drain", None);
    assert_eq!((s, d["health"].as_str()), (200, Some("draining")), "{d}");
    let drained = wait_for(CONVERGE, || {
        let (_, c) = cluster.nodes[1].api("GET", "/api/v1/cluster", None);
        c["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == "mx3" && m["health"] == "draining")
            .map(|_| ())
    });
    assert!(drained.is_some(), "mx2 sees mx3 draining");
    assert_eq!(
        cluster.nodes[0]
            .api("POST", "/api/v1/nodes/mx3/undrain", None)
            .0,
        200
    );
    assert_eq!(
        cluster.nodes[0]
            .api("POST", "/api/v1/nodes/mx9/drain", None)
            .0,
        404
    );

    // mx3 comes back with a wiped data dir: it gets the rules, never the deleted one.
    cluster.nodes[2].kill9();
    std::fs::remove_dir_all(cluster.nodes[2].dir.join("data")).unwrap();
    cluster.nodes[2].spawn();
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let caught_up = wait_for(CONVERGE, || {
        (rule_ids(&cluster.nodes[2]) == vec![keep_id.clone()]).then_some(())
    });
    assert!(
        caught_up.is_some(),
        "wiped mx3 has {:?}",
        rule_ids(&cluster.nodes[2])
    );
    std::thread::sleep(Duration::from_secs(2));
    for n in &cluster.nodes {
        assert_eq!(
            rule_ids(n),
            vec![keep_id.clone()],
            "{} resurrected a deleted rule",
            n.admin
        );
    }
}
