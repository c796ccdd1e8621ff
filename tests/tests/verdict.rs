//! The scored verdict as a new user meets it, on a real 3-node mesh (`mxmesh node`
//! processes over QUIC): a message with typical spam traits sent with swaks to one node is
//! quarantined by its score under the default thresholds (tag 5, quarantine 10, reject
//! 15), and its score and symbols show on the other nodes — in the quarantine listing and
//! entry (API and `mxctl`), in `/trace` — and `mxctl classify` of the same message (fetched
//! with `mxctl quarantine raw`) gives the same score and symbols.

use std::collections::BTreeMap;
use std::time::Duration;

use mxmesh_tests::{Cluster, Node, Sink, SinkMode, mxctl_at, send_swaks, wait_for};
use serde_json::Value;

const CONVERGE: Duration = Duration::from_secs(30);
const SUBJECT: &str = "YOU HAVE WON A PRIZE!!!";

/// The symbols the message below fires, with their default weights (the README's table):
/// 12.5 in all, between the quarantine (10) and reject (15) thresholds.
const EXPECTED: [(&str, f64); 8] = [
    ("FROM_NAME_SPOOFS_ADDRESS", 2.5), // "security@bank.example" <win@prize.test>
    ("HTML_LINK_TEXT_MISMATCH", 2.5),  // the link shows bank.example, goes elsewhere
    ("SUBJECT_ALL_CAPS", 2.0),
    ("URL_IP_ADDRESS", 2.0),    // http://192.0.2.66/
    ("BODY_SPAM_PHRASES", 1.5), // "you are a winner", "act now"
    ("MIME_HTML_ONLY", 1.0),
    ("RECEIVED_MISSING", 0.5), // straight from swaks, no mail server on the way
    ("SUBJECT_EXCESS_PUNCTUATION", 0.5), // "!!!"
];

/// Sends the spam with swaks to `node`; panics with the transcript unless it got a 250.
fn send_spam(node: &Node) {
    let headers = [
        "From: \"security@bank.example\" <win@prize.test>",
        &format!("Subject: {SUBJECT}"),
        "MIME-Version: 1.0",
        "Content-Type: text/html",
    ];
    let body = "<html><body><p>You are a winner! Act now to claim your prize at \
                <a href=\"http://192.0.2.66/claim\">https://www.bank.example/claim</a></p></body></html>";
    let sent = send_swaks(
        node.smtp,
        "win@prize.test",
        "user@example.com",
        &headers,
        body,
    );
    assert!(sent.ok, "swaks:\n{}", sent.transcript);
    assert!(
        sent.transcript.contains("<-  250 2.0.0 Ok: queued"),
        "{}",
        sent.transcript
    );
}

/// Name → weight of a JSON list of `{"name","weight"}`.
fn weights(symbols: &Value) -> BTreeMap<String, f64> {
    let list = symbols.as_array().expect("symbols is a list");
    list.iter()
        .map(|s| {
            let name = s["name"].as_str().expect("name").to_string();
            (name, s["weight"].as_f64().expect("weight"))
        })
        .collect()
}

/// The score and symbols as quarantined: the expected ones at their weights, heaviest
/// first, adding up to the score, which lies between the quarantine and reject thresholds.
fn assert_scored(what: &str, score: &Value, symbols: &Value) {
    let score = score.as_f64().unwrap_or_else(|| panic!("{what}: no score"));
    assert!((10.0..15.0).contains(&score), "{what}: score {score}");
    let got = weights(symbols);
    for (name, weight) in EXPECTED {
        assert_eq!(got.get(name), Some(&weight), "{what}: {name} in {symbols}");
    }
    let sum: f64 = got.values().sum();
    assert!((sum - score).abs() < 0.01, "{what}: {sum} vs {score}");
    let order: Vec<f64> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_f64().unwrap())
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] >= w[1]),
        "{what}: heaviest first: {symbols}"
    );
}

#[test]
fn a_swaks_spam_is_quarantined_by_score_and_shows_its_symbols_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let [mx1, mx2, mx3] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    send_spam(mx1);

    // Listed on mx3 with its score and symbols (the index replicated them).
    let path = "/api/v1/quarantine?subject=WON%20A%20PRIZE";
    let item = wait_for(CONVERGE, || {
        let (_, list) = mx3.api("GET", path, None);
        list["items"].as_array()?.first().cloned()
    })
    .unwrap_or_else(|| panic!("not listed on mx3; mx1's log:\n{}", mx1.log()));
    assert_eq!(item["node"], "mx1", "{item}");
    assert_eq!(item["status"], "quarantined", "{item}");
    assert!(
        item["reason"]
            .as_str()
            .unwrap()
            .contains("reached the quarantine threshold 10"),
        "{item}"
    );
    assert_eq!(
        item["rule_id"],
        Value::Null,
        "the score decided, not a rule"
    );
    assert_scored("listing on mx3", &item["score"], &item["symbols"]);
    assert!(sink.messages().is_empty(), "nothing was relayed");
    let id = item["id"].as_str().unwrap().to_string();
    let score = item["score"].as_f64().unwrap();

    // The entry on mx2, and the trace of the verdict from mx3 (mx1 holds the event).
    let entry = wait_for(CONVERGE, || {
        let (s, entry) = mx2.api("GET", &format!("/api/v1/quarantine/{id}"), None);
        (s == 200).then_some(entry)
    })
    .expect("the entry reaches mx2");
    assert_eq!(
        (&entry["score"], &entry["symbols"]),
        (&item["score"], &item["symbols"])
    );
    let (s, trace) = mx3.api("GET", &format!("/api/v1/trace?id={id}"), None);
    assert_eq!(s, 200, "{trace}");
    let events = trace["events"]
        .as_array()
        .or(trace.as_array())
        .expect("events");
    let verdict = events
        .iter()
        .find(|e| e["event"] == "quarantined")
        .unwrap_or_else(|| panic!("no quarantined event: {trace}"));
    assert_eq!(verdict["node"], "mx1", "{verdict}");
    assert_scored("trace from mx3", &verdict["score"], &verdict["symbols"]);

    // mxctl on mx3: the listing's SCORE column, the entry's symbols, and --json.
    let (ok, table, err) = mxctl_at(mx3, &["quarantine", "list", "--subject", "WON A PRIZE"]);
    assert!(ok, "{err}");
    let header = table.lines().next().unwrap_or_default();
    assert!(header.contains("SCORE"), "{table}");
    let row = table.lines().find(|l| l.starts_with(&id)).expect("a row");
    assert!(row.contains(&format!("{score:.2}")), "{table}");
    let (ok, shown, err) = mxctl_at(mx3, &["quarantine", "show", &id]);
    assert!(ok, "{err}");
    assert!(
        shown.contains(&format!("score:      {score:.2}")),
        "{shown}"
    );
    for (name, weight) in EXPECTED {
        let line = shown.lines().find(|l| l.starts_with(name));
        let line = line.unwrap_or_else(|| panic!("{name} in\n{shown}"));
        assert!(line.ends_with(&format!("{weight:.2}")), "{line}");
    }
    let (ok, json, err) = mxctl_at(
        mx3,
        &["quarantine", "list", "--subject", "WON A PRIZE", "--json"],
    );
    assert!(ok, "{err}");
    let list: Value = serde_json::from_str(&json).expect("--json is JSON");
    assert_eq!(list["items"][0]["symbols"], item["symbols"], "{json}");

    // The same message, fetched from mx1 through mx2, classified on mx3 with its envelope.
    let file = dir.path().join("spam.eml");
    let file_arg = file.to_str().unwrap();
    let (ok, _, err) = mxctl_at(mx2, &["quarantine", "raw", &id, "--out", file_arg]);
    assert!(ok, "{err}");
    let envelope = [
        "--from",
        "win@prize.test",
        "--rcpt",
        "user@example.com",
        "--ip",
        "127.0.0.1",
    ];
    let mut args = vec!["classify", file_arg];
    args.extend(envelope);
    let (ok, view, err) = mxctl_at(mx3, &args);
    assert!(ok, "{err}");
    assert!(view.contains("verdict: quarantine"), "{view}");
    assert!(view.contains("HTML_LINK_TEXT_MISMATCH"), "{view}");
    args.push("--json");
    let (ok, json, err) = mxctl_at(mx3, &args);
    assert!(ok, "{err}");
    let classified: Value = serde_json::from_str(&json).expect("--json is JSON");
    assert_eq!(classified["verdict"], "quarantine", "{classified}");
    let classified_score = classified["score"].as_f64().unwrap();
    assert!(
        (classified_score - score).abs() < 0.001,
        "{classified} vs {score}"
    );
    assert_eq!(weights(&classified["symbols"]), weights(&item["symbols"]));
}
