//! The learned Bayes corpus on a real 3-node mesh (`mxmesh node` processes over QUIC):
//! a learn on one node is counted on every node, relearning moves it, a forget on any node
//! removes it everywhere, bad input changes nothing, and once both classes reach the
//! minimum every node classifies with what was learned elsewhere; a node restarted on a
//! wiped data directory takes its learning back from its peers; the spam settings are
//! cluster-wide.

use std::time::Duration;

use mxmesh_tests::{Cluster, Node, Sink, SinkMode, wait_for};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(30);
/// Learned messages of each class the classifier needs before it votes (the README).
const MIN_LEARNED: usize = 200;

fn three_nodes() -> (tempfile::TempDir, Sink, Cluster) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    (dir, sink, cluster)
}

fn bayes(node: &Node) -> Value {
    let (s, b) = node.api("GET", "/api/v1/bayes", None);
    assert_eq!(s, 200, "{b}");
    b
}

/// Waits until every node's `/bayes` satisfies `ok`; panics naming the node otherwise.
fn on_every_node(cluster: &Cluster, what: &str, ok: impl Fn(&Value) -> bool) {
    for n in &cluster.nodes {
        let got = wait_for(CONVERGE, || ok(&bayes(n)).then_some(()));
        assert!(got.is_some(), "{what}: {} shows {}", n.admin, bayes(n));
    }
}

/// The sample of `family` labelled with the node and `label` in `node`'s `/metrics`.
fn metric(node: &Node, family: &str, label: &str) -> Option<u64> {
    let (s, body) = node.api_bytes("/metrics");
    assert_eq!(s, 200);
    let text = String::from_utf8(body).unwrap();
    let (start, end) = (format!("{family}{{node=\""), format!("\",{label}}}"));
    let line = text.lines().find(|l| {
        l.starts_with(&start)
            && l.split_once(' ')
                .is_some_and(|(name, _)| name.ends_with(&end))
    })?;
    line.rsplit_once(' ')?.1.parse().ok()
}

/// The Bayes sync counters of every node: `(sent, received)` summed over the mesh.
fn bayes_sync_bytes(cluster: &Cluster) -> (u64, u64) {
    let of = |n: &Node, family: &str| metric(n, family, "sync=\"bayes\"").expect(family);
    let sent = cluster
        .nodes
        .iter()
        .map(|n| of(n, "mxmesh_sync_bytes_sent_total"));
    let received = cluster
        .nodes
        .iter()
        .map(|n| of(n, "mxmesh_sync_bytes_received_total"));
    (sent.sum(), received.sum())
}

fn spam(n: usize) -> Vec<u8> {
    format!(
        "From: winner{n}@lottery.example\r\nTo: you@example.com\r\nSubject: You won {n} million, claim your prize\r\n\r\n\
         Congratulations winner! Claim your lottery prize now, send your bank details \
         and a small fee to release {n} million dollars. Act now, limited offer.\r\n"
    )
    .into_bytes()
}

fn ham(n: usize) -> Vec<u8> {
    format!(
        "From: colleague{n}@example.com\r\nTo: you@example.com\r\nSubject: Agenda for meeting {n}\r\n\r\n\
         Hi, attached are the minutes of yesterday's meeting and the agenda for \
         review {n}. Let me know if the schedule works for the project team.\r\n"
    )
    .into_bytes()
}

#[test]
fn learning_is_shared_mesh_wide_and_bad_input_changes_nothing() {
    let (_dir, _sink, cluster) = three_nodes();
    let [mx1, mx2, mx3] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let message = spam(0);

    // Learned on mx1, counted on mx3.
    let (s, r) = mx1.api_raw("POST", "/api/v1/learn/spam", &message);
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["learned"], true, "{r}");
    let digest = r["digest"].as_str().unwrap().to_string();
    assert_eq!(digest.len(), 64);
    on_every_node(&cluster, "the learn on mx1", |b| {
        b["spam_learned"] == 1 && b["ham_learned"] == 0 && b["nodes"]["mx1"]["spam"] == 1
    });
    // The sync's bytes are counted per replicated type on both ends of every exchange, and
    // the learned record takes room in mx1's Bayes column family.
    let settled = wait_for(CONVERGE, || {
        let (sent, received) = bayes_sync_bytes(&cluster);
        (sent > 0 && sent == received).then_some(sent)
    });
    assert!(settled.is_some(), "{:?}", bayes_sync_bytes(&cluster));
    let sent_by_mx1 = metric(mx1, "mxmesh_sync_bytes_sent_total", "sync=\"bayes\"");
    assert!(
        sent_by_mx1 > Some(message.len() as u64 / 2),
        "{sent_by_mx1:?}"
    );
    let stored = ["mxmesh_store_memtable_bytes", "mxmesh_store_sst_bytes"]
        .map(|family| metric(mx1, family, "cf=\"bayes\"").expect(family));
    assert!(stored.iter().sum::<u64>() > 0, "{stored:?}");
    // Learned again as spam (on another node): nothing changes.
    let (s, r) = mx3.api_raw("POST", "/api/v1/learn/spam", &message);
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["learned"], false, "{r}");
    assert_eq!(r["digest"], digest.as_str());
    assert!(r["reason"].as_str().unwrap().contains("already"), "{r}");

    // Relearned as ham on mx3: it moves, everywhere.
    let (s, r) = mx3.api_raw("POST", "/api/v1/learn/ham", &message);
    assert_eq!((s, &r["learned"]), (200, &Value::Bool(true)), "{r}");
    on_every_node(&cluster, "the move to ham on mx3", |b| {
        b["spam_learned"] == 0 && b["ham_learned"] == 1 && b["nodes"]["mx3"]["ham"] == 1
    });

    // Forgotten on mx2: gone everywhere.
    let (s, r) = mx2.api("DELETE", &format!("/api/v1/learn/{digest}"), None);
    assert_eq!(s, 200, "{r}");
    on_every_node(&cluster, "the forget on mx2", |b| {
        b["spam_learned"] == 0 && b["ham_learned"] == 0 && b["tokens"] == 0
    });

    // Bad input: a clear 400/413, and nothing changes.
    let before = bayes(mx1);
    let too_big = [spam(1), vec![b'x'; 2 * 1024 * 1024]].concat();
    let cases: [(&str, &str, &[u8], u16); 10] = [
        ("POST", "/api/v1/learn/eggs", &message, 400),
        ("POST", "/api/v1/learn/spam", b"", 400),
        (
            "POST",
            "/api/v1/learn/spam",
            b"no headers, no empty line",
            400,
        ),
        (
            "POST",
            "/api/v1/learn/spam",
            b"\x00\xff\x13binary\r\n\r\n\x00",
            400,
        ),
        ("POST", "/api/v1/learn/ham", &too_big, 413),
        ("DELETE", "/api/v1/learn/not-hex", b"", 400),
        ("POST", "/api/v1/classify", b"", 400),
        (
            "POST",
            "/api/v1/classify",
            b"no headers, no empty line",
            400,
        ),
        ("POST", "/api/v1/classify?ip=not-an-ip", &message, 400),
        ("POST", "/api/v1/classify", &too_big, 413),
    ];
    for (method, path, body, want) in cases {
        let (s, r) = mx1.api_raw(method, path, body);
        assert_eq!(s, want, "{method} {path}: {r}");
        if want == 400 {
            assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
        }
    }
    assert_eq!(bayes(mx1), before, "bad input changed the corpus");

    // Classify stores nothing and stays silent while the corpus is not ready.
    let (s, c) = mx2.api_raw(
        "POST",
        "/api/v1/classify?from=a@example.org&ip=192.0.2.7",
        &spam(2),
    );
    assert_eq!(s, 200, "{c}");
    assert!(c["bayes"].is_null(), "{c}");
    let symbols = c["symbols"].as_array().expect("symbols");
    let sum: f64 = symbols.iter().map(|s| s["weight"].as_f64().unwrap()).sum();
    assert!((c["score"].as_f64().unwrap() - sum).abs() < 0.01, "{c}");
    assert!(
        symbols
            .iter()
            .all(|s| s["name"].is_string() && s["detail"].is_string()),
        "{c}"
    );
    assert!(
        ["accept", "tag", "quarantine", "reject"].contains(&c["verdict"].as_str().unwrap()),
        "{c}"
    );
    assert!(
        !symbols
            .iter()
            .any(|s| s["name"].as_str().unwrap().starts_with("BAYES")),
        "{c}"
    );
    let (s, c) = mx2.api_raw("POST", "/api/v1/classify?bogus=1", &spam(2));
    assert_eq!(s, 400, "{c}");
    assert_eq!(bayes(mx2)["spam_learned"], 0);
}

#[test]
fn once_both_classes_reach_the_minimum_every_node_classifies() {
    let (_dir, _sink, cluster) = three_nodes();
    // Spam learned on mx1, ham on mx2.
    for n in 1..=MIN_LEARNED {
        let (s, r) = cluster.nodes[0].api_raw("POST", "/api/v1/learn/spam", &spam(n));
        assert_eq!((s, &r["learned"]), (200, &Value::Bool(true)), "{r}");
        let (s, r) = cluster.nodes[1].api_raw("POST", "/api/v1/learn/ham", &ham(n));
        assert_eq!((s, &r["learned"]), (200, &Value::Bool(true)), "{r}");
    }
    on_every_node(&cluster, "the corpus is ready", |b| {
        b["ready"] == true
            && b["spam_learned"] == MIN_LEARNED
            && b["ham_learned"] == MIN_LEARNED
            && b["min_learned"] == MIN_LEARNED
    });
    let mx3 = &cluster.nodes[2];
    let (_, s) = mx3.api_raw("POST", "/api/v1/classify", &spam(MIN_LEARNED + 1));
    let (_, h) = mx3.api_raw("POST", "/api/v1/classify", &ham(MIN_LEARNED + 1));
    let (ps, ph) = (s["bayes"].as_f64(), h["bayes"].as_f64());
    assert!(ps.is_some_and(|p| p > 0.9), "spam: {s}");
    assert!(ph.is_some_and(|p| p < 0.1), "ham: {h}");
    // The probability feeds the score: a Bayes band symbol fired.
    let names = |c: &Value| -> Vec<String> {
        c["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert!(
        names(&s).iter().any(|n| n.starts_with("BAYES")),
        "spam: {s}"
    );
    assert!(names(&h).iter().any(|n| n.starts_with("BAYES")), "ham: {h}");
}

#[test]
fn spam_settings_are_cluster_wide_and_validated() {
    let (_dir, _sink, cluster) = three_nodes();
    let (s, defaults) = cluster.nodes[2].api("GET", "/api/v1/settings/spam", None);
    assert_eq!(s, 200, "{defaults}");
    let wanted = serde_json::json!({"tag": 3.0, "quarantine": 8.0, "reject": null,
        "subject_prefix": "[SPAM]", "weights": {}});
    let (s, r) = cluster.nodes[0].api("PUT", "/api/v1/settings/spam", Some(&wanted));
    assert_eq!(s, 200, "{r}");
    for n in &cluster.nodes {
        let got = wait_for(CONVERGE, || {
            let (_, g) = n.api("GET", "/api/v1/settings/spam", None);
            (g == wanted).then_some(())
        });
        assert!(
            got.is_some(),
            "{}: {}",
            n.admin,
            n.api("GET", "/api/v1/settings/spam", None).1
        );
    }
    for bad in [
        serde_json::json!({"tag": "high"}),
        serde_json::json!({"unknown": 1}),
        serde_json::json!({"weights": {"DATE_IN_PAST": 1e9}}),
    ] {
        let (s, r) = cluster.nodes[1].api("PUT", "/api/v1/settings/spam", Some(&bad));
        assert_eq!(s, 400, "{bad}: {r}");
    }
    let (_, after) = cluster.nodes[1].api("GET", "/api/v1/settings/spam", None);
    assert_eq!(after, wanted, "a refused PUT changed the settings");
}

/// The counts a node shows: (spam, ham, tokens) mesh-wide, and per node (spam, ham).
fn counts(b: &Value) -> (Value, Value, Value, Value) {
    let per_node = b["nodes"]
        .as_object()
        .map(|nodes| {
            nodes
                .iter()
                .map(|(id, n)| (id.clone(), serde_json::json!([n["spam"], n["ham"]])))
                .collect::<serde_json::Map<_, _>>()
        })
        .unwrap_or_default();
    (
        b["spam_learned"].clone(),
        b["ham_learned"].clone(),
        b["tokens"].clone(),
        Value::Object(per_node),
    )
}

#[test]
fn a_node_restarted_on_a_wiped_store_takes_its_learning_back() {
    let (_dir, _sink, mut cluster) = three_nodes();
    for n in 1..=5 {
        let (s, r) = cluster.nodes[1].api_raw("POST", "/api/v1/learn/spam", &spam(n));
        assert_eq!((s, &r["learned"]), (200, &Value::Bool(true)), "{r}");
    }
    for n in 1..=3 {
        let (s, r) = cluster.nodes[1].api_raw("POST", "/api/v1/learn/ham", &ham(n));
        assert_eq!((s, &r["learned"]), (200, &Value::Bool(true)), "{r}");
    }
    let (s, r) = cluster.nodes[0].api_raw("POST", "/api/v1/learn/ham", &ham(4));
    assert_eq!(s, 200, "{r}");
    on_every_node(&cluster, "the learns on mx2 and mx1", |b| {
        b["spam_learned"] == 5 && b["ham_learned"] == 4 && b["nodes"]["mx2"]["ham"] == 3
    });
    let before = counts(&bayes(&cluster.nodes[0]));

    // mx2 stops, loses its data directory, comes back, and at once learns a new message:
    // it must take its own log back from its peers first, or it would reuse their seqs.
    let mx2 = &mut cluster.nodes[1];
    assert_eq!(mx2.terminate(), Some(0), "{}", mx2.log());
    std::fs::remove_dir_all(mx2.dir.join("data")).unwrap();
    mx2.spawn();
    let (s, r) = mx2.api_raw("POST", "/api/v1/learn/spam", &spam(6));
    assert_eq!((s, &r["learned"]), (200, &Value::Bool(true)), "{r}");
    let (mut spam_learned, mut per_node) = (before.0.clone(), before.3.clone());
    spam_learned = Value::from(spam_learned.as_u64().unwrap() + 1);
    per_node["mx2"] = serde_json::json!([6, 3]);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    for n in &cluster.nodes {
        let got = wait_for(CONVERGE, || {
            let (spam, ham, _, nodes) = counts(&bayes(n));
            (spam == spam_learned && ham == before.1 && nodes == per_node).then_some(())
        });
        assert!(
            got.is_some(),
            "{}: {:?}; before the wipe {before:?}\nmx2's log:\n{}",
            n.admin,
            counts(&bayes(n)),
            cluster.nodes[1].log()
        );
    }
    let settled = cluster.nodes[1].log();
    let settled = settled.lines().filter(|l| l.contains("own log"));
    println!("mx2 after the wipe: {:?}", settled.collect::<Vec<_>>());
    // It knows what it learned before the wipe.
    let (s, r) = cluster.nodes[1].api_raw("POST", "/api/v1/learn/spam", &spam(2));
    assert_eq!((s, &r["learned"]), (200, &Value::Bool(false)), "{r}");
}
