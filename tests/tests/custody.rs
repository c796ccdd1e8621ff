//! Quarantine custody on three real nodes (README, "Quarantine copies, retire and forget"):
//! with `copies = 2`, a node's disk destroyed after the copies completed loses nothing —
//! after `forget`, every message is listed, readable and released once; `retire` of a live
//! node moves its whole quarantine and each message is released once afterwards; queued
//! mail whose shadow completed reaches the downstream from the shadow holder, and the other
//! holder drops its shadow once it did (README, "Queue copies").

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use mxmesh_tests::{Cluster, Node, Sink, SinkMode, TOKEN, bin, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);
/// Messages quarantined on the node whose disk is destroyed.
const FORGET_MESSAGES: usize = 30;
/// Messages quarantined on the node that retires (as the issue asks; handed over in
/// batches, BENCHMARKS.md times larger ones).
const RETIRE_MESSAGES: usize = 1000;
/// Messages queued on the node whose disk is destroyed, with asynchronous shadows and
/// with `sync_queue_copies` each.
const SHADOWED_MESSAGES: usize = 20;
/// Messages waiting in the retiring node's relay queue (downstream down).
const QUEUED_MESSAGES: usize = 20;

/// A sink (held: refusing connections, when `held`) and a formed 3-node mesh whose rule
/// book quarantines subjects with `hold-me`.
fn three_nodes_holding(held: bool) -> (tempfile::TempDir, Sink, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let sink = match held {
        true => Sink::held(&dir.path().join("sink"), SinkMode::default()),
        false => Sink::start(&dir.path().join("sink"), SinkMode::default()),
    };
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let (s, body) = cluster.nodes[0].api(
        "POST",
        "/api/v1/rules",
        Some(
            &json!({"name": "hold", "priority": 1, "action": "quarantine", "reason": "held",
                      "when": {"field": "subject", "op": "contains", "value": "hold-me"}}),
        ),
    );
    assert_eq!(s, 201, "{body}");
    for node in &cluster.nodes {
        let synced = wait_for(CONVERGE, || {
            let (_, r) = node.api("GET", "/api/v1/rules", None);
            (r["rules"].as_array().map_or(0, Vec::len) == 1).then_some(())
        });
        assert!(synced.is_some(), "{} has the rule", node.admin);
    }
    (dir, sink, cluster)
}

/// Puts the cluster's quarantine `settings` on mx1 and waits until every node has them.
fn set_custody(cluster: &Cluster, settings: Value) {
    let (s, body) = cluster.nodes[0].api("PUT", "/api/v1/settings/quarantine", Some(&settings));
    assert_eq!((s, &body["copies"]), (200, &settings["copies"]), "{body}");
    for node in &cluster.nodes {
        let seen = wait_for(CONVERGE, || {
            let (_, got) = node.api("GET", "/api/v1/settings/quarantine", None);
            let all = settings.as_object().unwrap().iter();
            all.into_iter().all(|(k, v)| &got[k] == v).then_some(())
        });
        assert!(seen.is_some(), "{} has {settings}", node.admin);
    }
}

/// Sends `n` messages with subjects `PREFIX TAG i` to `node` in one SMTP session
/// (Python's smtplib), asserting each got 250.
fn send_many(node: &Node, prefix: &str, tag: &str, n: usize) {
    let script = r#"
import smtplib, sys
host, port = sys.argv[1].rsplit(":", 1)
prefix, tag, n = sys.argv[2], sys.argv[3], int(sys.argv[4])
s = smtplib.SMTP(host, int(port), local_hostname="client.test", timeout=30)
for i in range(n):
    msg = ("From: a@example.org\r\nTo: user@example.com\r\nSubject: %s %s %d\r\n"
           "Message-ID: <%s-%d@example.org>\r\n\r\nbody %s %d\r\n" % (prefix, tag, i, tag, i, tag, i))
    s.sendmail("a@example.org", ["user@example.com"], msg.encode())
s.quit()
print("sent", n)
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &node.smtp.to_string(),
            prefix,
            tag,
            &n.to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The quarantine listing of `node` for subjects with `tag`: id → item (every page).
fn listed(node: &Node, tag: &str) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/quarantine?subject=hold-me%20{tag}&limit=1000");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (s, page) = node.api("GET", &path, None);
        assert_eq!(s, 200, "{page}");
        for item in page["items"].as_array().into_iter().flatten() {
            out.insert(item["id"].as_str().unwrap().to_string(), item.clone());
        }
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => return out,
        }
    }
}

/// Waits until `node` lists exactly `n` messages of `tag` and `ok` holds for all.
fn wait_listed(
    node: &Node,
    tag: &str,
    n: usize,
    ok: impl Fn(&Value) -> bool,
) -> BTreeMap<String, Value> {
    wait_for(CONVERGE, || {
        let items = listed(node, tag);
        (items.len() == n && items.values().all(&ok)).then_some(items)
    })
    .unwrap_or_else(|| {
        let items = listed(node, tag);
        panic!(
            "{} lists {} of {n} {tag} messages as expected: {:?}",
            node.admin,
            items.values().filter(|i| ok(i)).count(),
            items.values().take(3).collect::<Vec<_>>()
        )
    })
}

/// Releases every message of `ids` through `node`, asserting 202 each time.
fn release_all(node: &Node, ids: &[String]) {
    for id in ids {
        let (s, body) = node.api("POST", &format!("/api/v1/quarantine/{id}/release"), None);
        assert_eq!(s, 202, "release {id}: {body}");
    }
}

/// Waits until the sink got `n` messages whose subject starts with `subject`, then checks
/// none came twice.
fn delivered_once(sink: &Sink, subject: &str, n: usize) {
    let subjects = |sink: &Sink| -> Vec<String> {
        let start = format!("Subject: {subject} ");
        sink.messages()
            .iter()
            .map(|(_, raw)| String::from_utf8_lossy(raw).into_owned())
            .filter_map(|text| Some(text.lines().find(|l| l.starts_with(&start))?.to_string()))
            .collect()
    };
    let got = wait_for(Duration::from_secs(60), || {
        let s = subjects(sink);
        (s.len() >= n).then_some(s)
    });
    assert!(got.is_some(), "sink got {} of {n}", subjects(sink).len());
    // Give a duplicate every chance to arrive: the relay retries within 1-2 s here.
    std::thread::sleep(Duration::from_secs(4));
    let mut all = subjects(sink);
    let total = all.len();
    all.sort();
    all.dedup();
    assert_eq!(
        (total, all.len()),
        (n, n),
        "each message delivered exactly once"
    );
}

fn member_ids(node: &Node) -> Vec<String> {
    let (_, c) = node.api("GET", "/api/v1/cluster", None);
    c["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| m["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn a_destroyed_disk_loses_no_quarantined_message_that_had_its_copy() {
    let (_dir, sink, mut cluster) = three_nodes_holding(false);
    set_custody(&cluster, json!({"copies": 2}));
    send_many(&cluster.nodes[1], "hold-me", "lost-disk", FORGET_MESSAGES);
    // Every message on mx2 with one copy elsewhere, as every node's index shows it.
    let copied =
        |i: &Value| i["node"] == "mx2" && i["copies"].as_array().is_some_and(|c| c.len() == 1);
    let before = wait_listed(&cluster.nodes[0], "lost-disk", FORGET_MESSAGES, copied);
    wait_listed(&cluster.nodes[2], "lost-disk", FORGET_MESSAGES, copied);

    // mx2 dies for good: SIGKILL, its data directory deleted.
    cluster.nodes[1].kill9();
    std::fs::remove_dir_all(cluster.nodes[1].dir.join("data")).unwrap();
    cluster.wait_members(&["mx1", "mx3"], CONVERGE);
    // While the owner is down, the raw view comes from a copy.
    let some_id = before.keys().next().unwrap();
    let (s, raw) = cluster.nodes[0].api_bytes(&format!("/api/v1/quarantine/{some_id}/raw"));
    assert_eq!(s, 200, "raw from a copy: {}", String::from_utf8_lossy(&raw));
    assert!(String::from_utf8_lossy(&raw).contains("Subject: hold-me lost-disk"));

    let (s, forgot) = cluster.nodes[0].api("POST", "/api/v1/nodes/mx2/forget", None);
    assert_eq!(s, 200, "{forgot}");
    assert_eq!(
        (&forgot["quarantined"], &forgot["lost"]),
        (&json!(FORGET_MESSAGES), &json!(0)),
        "{forgot}"
    );
    // Every message is still listed, now under a surviving holder, on both survivors.
    let adopted = |i: &Value| {
        i["status"] == "quarantined" && i["node"] != "mx2" && i["adopted_from"] == "mx2"
    };
    let after = wait_listed(&cluster.nodes[2], "lost-disk", FORGET_MESSAGES, adopted);
    wait_listed(&cluster.nodes[0], "lost-disk", FORGET_MESSAGES, adopted);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "the same messages"
    );
    for id in after.keys() {
        let (s, raw) = cluster.nodes[2].api_bytes(&format!("/api/v1/quarantine/{id}/raw"));
        assert_eq!(s, 200, "raw of {id}");
        assert!(String::from_utf8_lossy(&raw).contains("hold-me lost-disk"));
    }
    // mx2 never shows again, not even after a survivor restarts.
    assert!(!member_ids(&cluster.nodes[0]).contains(&"mx2".to_string()));
    cluster.nodes[2].kill9();
    cluster.nodes[2].spawn();
    assert!(!member_ids(&cluster.nodes[2]).contains(&"mx2".to_string()));
    cluster.wait_members(&["mx1", "mx3"], CONVERGE);
    wait_listed(&cluster.nodes[2], "lost-disk", FORGET_MESSAGES, adopted);

    let ids: Vec<String> = after.keys().cloned().collect();
    release_all(&cluster.nodes[2], &ids);
    delivered_once(&sink, "hold-me lost-disk", FORGET_MESSAGES);
}

#[test]
fn a_retired_node_hands_over_its_whole_quarantine_and_queue() {
    // The downstream is down: mail accepted on mx2 waits in its relay queue.
    let (_dir, mut sink, cluster) = three_nodes_holding(true);
    send_many(&cluster.nodes[1], "hold-me", "retired", RETIRE_MESSAGES);
    send_many(&cluster.nodes[1], "queued", "retired", QUEUED_MESSAGES);
    let on_mx2 = |i: &Value| i["node"] == "mx2" && i["status"] == "quarantined";
    let before = wait_listed(&cluster.nodes[0], "retired", RETIRE_MESSAGES, on_mx2);
    let (_, queue) = cluster.nodes[1].api("GET", "/api/v1/queue", None);
    assert_eq!(queue["size"], QUEUED_MESSAGES, "{queue}");

    let out = Command::new(bin("mxctl"))
        .env("MXMESH_URL", format!("http://{}", cluster.nodes[0].admin))
        .env("MXMESH_TOKEN", TOKEN)
        .args(["node", "retire", "mx2"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mxctl node retire: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("mx2 done"), "{stdout}");

    let moved = |i: &Value| {
        i["status"] == "quarantined" && i["node"] != "mx2" && i["adopted_from"] == "mx2"
    };
    let after = wait_listed(&cluster.nodes[2], "retired", RETIRE_MESSAGES, moved);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    let gone = wait_for(CONVERGE, || {
        (!member_ids(&cluster.nodes[0]).contains(&"mx2".to_string())
            && !member_ids(&cluster.nodes[2]).contains(&"mx2".to_string()))
        .then_some(())
    });
    assert!(
        gone.is_some(),
        "mx2 left /cluster: {:?}",
        member_ids(&cluster.nodes[0])
    );

    // mx2's queue went to the others; it reaches the downstream once it is back.
    let (_, queue) = cluster.nodes[1].api("GET", "/api/v1/queue", None);
    assert_eq!(queue["size"], 0, "mx2 handed its queue over: {queue}");
    let queued_elsewhere: u64 = [0, 2]
        .iter()
        .map(|&n| {
            cluster.nodes[n].api("GET", "/api/v1/queue", None).1["size"]
                .as_u64()
                .unwrap_or(0)
        })
        .sum();
    assert_eq!(queued_elsewhere, QUEUED_MESSAGES as u64);
    sink.open();
    delivered_once(&sink, "queued retired", QUEUED_MESSAGES);

    let ids: Vec<String> = after.keys().cloned().collect();
    release_all(&cluster.nodes[0], &ids);
    delivered_once(&sink, "hold-me retired", RETIRE_MESSAGES);
}

/// The value of the unlabelled sample of `name` in `node`'s `/metrics`.
fn metric(node: &Node, name: &str) -> Option<u64> {
    let (_, text) = node.api_bytes("/metrics");
    let text = String::from_utf8_lossy(&text).into_owned();
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[test]
fn a_destroyed_disk_loses_no_queued_message_that_had_its_shadow() {
    // The downstream is down: mail accepted on mx2 waits in its relay queue. With
    // `copies = 3` both other nodes hold a shadow of each entry.
    let (_dir, mut sink, mut cluster) = three_nodes_holding(true);
    set_custody(&cluster, json!({"copies": 3}));
    send_many(&cluster.nodes[1], "queued", "async", SHADOWED_MESSAGES);
    let mx2 = &cluster.nodes[1];
    let shadowed = wait_for(CONVERGE, || {
        (metric(mx2, "mxmesh_queue_under_copied") == Some(0)).then_some(())
    });
    assert!(shadowed.is_some(), "mx2's queue entries all got a shadow");

    // With the synchronous option every 250 came after the shadow was held.
    set_custody(&cluster, json!({"copies": 3, "sync_queue_copies": true}));
    send_many(&cluster.nodes[1], "queued", "sync", SHADOWED_MESSAGES);
    assert_eq!(
        metric(mx2, "mxmesh_queue_shadow_sync_missed_total"),
        Some(0)
    );
    assert_eq!(metric(mx2, "mxmesh_queue_under_copied"), Some(0));
    let (_, queue) = mx2.api("GET", "/api/v1/queue", None);
    assert_eq!(queue["size"], 2 * SHADOWED_MESSAGES, "{queue}");

    // mx2 dies for good: SIGKILL, its data directory deleted, forgotten from mx1.
    cluster.nodes[1].kill9();
    std::fs::remove_dir_all(cluster.nodes[1].dir.join("data")).unwrap();
    cluster.wait_members(&["mx1", "mx3"], CONVERGE);
    let (s, forgot) = cluster.nodes[0].api("POST", "/api/v1/nodes/mx2/forget", None);
    assert_eq!(s, 200, "{forgot}");
    // The shadow holders queue them as their own; each reaches the downstream once.
    let requeued = wait_for(CONVERGE, || {
        let sizes = [0, 2].map(|n| {
            let (_, q) = cluster.nodes[n].api("GET", "/api/v1/queue", None);
            q["size"].as_u64().unwrap_or(0)
        });
        (sizes.iter().sum::<u64>() == 2 * SHADOWED_MESSAGES as u64).then_some(())
    });
    assert!(
        requeued.is_some(),
        "the holders queued every shadowed message"
    );
    sink.open();
    delivered_once(&sink, "queued async", SHADOWED_MESSAGES);
    delivered_once(&sink, "queued sync", SHADOWED_MESSAGES);
    // The holder that relayed an entry had the other one drop its shadow of it.
    for n in [0, 2] {
        let node = &cluster.nodes[n];
        let dropped = wait_for(CONVERGE, || {
            (metric(node, "mxmesh_queue_shadows_held") == Some(0)).then_some(())
        });
        assert!(
            dropped.is_some(),
            "{} still holds {:?} shadows",
            node.admin,
            metric(node, "mxmesh_queue_shadows_held")
        );
    }
}

#[test]
fn without_copies_a_forgotten_nodes_messages_show_lost_and_the_filter_finds_only_them() {
    let (_dir, _sink, mut cluster) = three_nodes_holding(false);
    send_many(&cluster.nodes[0], "hold-me", "kept", 2);
    send_many(&cluster.nodes[1], "hold-me", "orphan", 5);
    wait_listed(&cluster.nodes[0], "orphan", 5, |i| i["node"] == "mx2");
    wait_listed(&cluster.nodes[0], "kept", 2, |i| i["node"] == "mx1");
    cluster.nodes[1].kill9();
    std::fs::remove_dir_all(cluster.nodes[1].dir.join("data")).unwrap();
    cluster.wait_members(&["mx1", "mx3"], CONVERGE);
    let (s, forgot) = cluster.nodes[0].api("POST", "/api/v1/nodes/mx2/forget", None);
    assert_eq!((s, &forgot["lost"]), (200, &json!(5)), "{forgot}");
    let (s, page) = cluster.nodes[0].api("GET", "/api/v1/quarantine?status=lost", None);
    assert_eq!(s, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "only the orphans: {page}");
    for item in items {
        assert_eq!(item["status"], "lost", "{item}");
        assert!(
            item["subject"].as_str().unwrap().contains("orphan"),
            "{item}"
        );
    }
}
