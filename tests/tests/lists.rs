//! Per-user allow and deny lists on a real 3-node mesh: an allow entry added on mx1 lets a
//! high-scoring message to that recipient through on mx3 while the same message to another
//! recipient is quarantined; a deny entry added on mx2 quarantines a clean message on mx1;
//! deleting it restores the normal verdict.

use std::time::Duration;

use mxmesh_tests::{Cluster, Node, Sink, SinkMode, send_swaks, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(30);
const SPAMMER: &str = "win@prize.test";
const FRIEND: &str = "friend@partner.example";

/// Sends a message that scores 12.5 (quarantine threshold 10; see tests/tests/verdict.rs)
/// from [`SPAMMER`] to `to` with `subject` (all caps, ending in `!!!`); asserts a 250.
fn send_spam(node: &Node, to: &str, subject: &str) {
    let headers = [
        "From: \"security@bank.example\" <win@prize.test>",
        &format!("Subject: {subject}"),
        "MIME-Version: 1.0",
        "Content-Type: text/html",
    ];
    let body = "<html><body><p>You are a winner! Act now to claim your prize at \
                <a href=\"http://192.0.2.66/claim\">https://www.bank.example/claim</a></p></body></html>";
    let sent = send_swaks(node.smtp, SPAMMER, to, &headers, body);
    assert!(
        sent.transcript.contains("250 2.0.0 Ok: queued"),
        "{}",
        sent.transcript
    );
}

/// Sends a plain, clean message from [`FRIEND`] to `to`; asserts a 250.
fn send_clean(node: &Node, to: &str, subject: &str) {
    let headers = [
        "From: Friend <friend@partner.example>",
        &format!("Subject: {subject}"),
    ];
    let body = "Hello, here are the minutes of yesterday's meeting.";
    let sent = send_swaks(node.smtp, FRIEND, to, &headers, body);
    assert!(
        sent.transcript.contains("250 2.0.0 Ok: queued"),
        "{}",
        sent.transcript
    );
}

/// Adds a list entry on `node`; returns its id.
fn add(node: &Node, kind: &str, sender: &str, scope: &str) -> String {
    let body = json!({"kind": kind, "sender": sender, "scope": scope});
    let (status, stored) = node.api("POST", "/api/v1/lists", Some(&body));
    assert_eq!(status, 201, "{stored}");
    assert_eq!(stored["sender"], sender, "{stored}");
    stored["id"].as_str().expect("an id").to_string()
}

/// Waits until `node` lists entry `id` (`present`) or no longer lists it.
fn wait_listed(node: &Node, id: &str, present: bool) {
    let seen = wait_for(CONVERGE, || {
        let (_, list) = node.api("GET", "/api/v1/lists", None);
        let ids: Vec<&str> = list["entries"]
            .as_array()?
            .iter()
            .filter_map(|e| e["id"].as_str())
            .collect();
        (ids.contains(&id) == present).then_some(())
    });
    assert!(
        seen.is_some(),
        "entry {id} present={present} on {}",
        node.admin
    );
}

/// The quarantine entry with `subject`, as listed on `node`, once there.
fn quarantined(node: &Node, subject: &str) -> Value {
    let path = format!("/api/v1/quarantine?subject={}", subject.replace(' ', "%20"));
    wait_for(CONVERGE, || {
        let (_, list) = node.api("GET", &path, None);
        list["items"].as_array()?.first().cloned()
    })
    .unwrap_or_else(|| panic!("{subject:?} not quarantined; log:\n{}", node.log()))
}

/// Waits until the sink has a message whose text contains `subject`.
fn relayed(sink: &Sink, subject: &str) {
    let got = wait_for(CONVERGE, || {
        sink.messages()
            .iter()
            .any(|(_, raw)| String::from_utf8_lossy(raw).contains(subject))
            .then_some(())
    });
    assert!(got.is_some(), "{subject:?} never reached the sink");
}

fn in_sink(sink: &Sink, subject: &str) -> bool {
    sink.messages()
        .iter()
        .any(|(_, raw)| String::from_utf8_lossy(raw).contains(subject))
}

#[test]
fn allow_and_deny_entries_replicate_and_decide_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let [mx1, mx2, mx3] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];

    // A bad entry is refused with the field named.
    let bad = json!({"kind": "allow", "sender": "not an address", "scope": "*"});
    let (status, error) = mx1.api("POST", "/api/v1/lists", Some(&bad));
    assert_eq!(
        (status, &error["field"]),
        (400, &json!("sender")),
        "{error}"
    );

    // Allow on mx1 for one recipient; it reaches mx3, which decides.
    let allow = add(mx1, "allow", SPAMMER, "alice@example.com");
    wait_listed(mx3, &allow, true);
    send_spam(mx3, "alice@example.com", "ALLOWED PRIZE FOR ALICE!!!");
    relayed(&sink, "ALLOWED PRIZE FOR ALICE!!!");
    send_spam(mx3, "bob@example.com", "HELD PRIZE FOR BOB!!!");
    let held = quarantined(mx3, "HELD PRIZE FOR BOB");
    assert!(
        held["reason"]
            .as_str()
            .unwrap()
            .contains("quarantine threshold"),
        "{held}"
    );
    assert!(!in_sink(&sink, "HELD PRIZE FOR BOB"));

    // Deny on mx2 for a clean sender, to everyone; mx1 quarantines.
    let deny = add(mx2, "deny", "partner.example", "*");
    wait_listed(mx1, &deny, true);
    send_clean(mx1, "carol@example.com", "Minutes while denied");
    let denied = quarantined(mx1, "Minutes while denied");
    assert_eq!(
        denied["reason"],
        format!("deny list entry {deny}"),
        "{denied}"
    );
    assert!(!in_sink(&sink, "Minutes while denied"));

    // Deleted (on mx3): back to normal on mx1.
    let (status, body) = mx3.api("DELETE", &format!("/api/v1/lists/{deny}"), None);
    assert_eq!(status, 200, "{body}");
    wait_listed(mx1, &deny, false);
    send_clean(mx1, "carol@example.com", "Minutes after the delete");
    relayed(&sink, "Minutes after the delete");
    let (status, _) = mx1.api("DELETE", &format!("/api/v1/lists/{deny}"), None);
    assert_eq!(status, 404, "a deleted entry is gone");

    // The changes are in the rule history, from any node.
    let (_, history) = mx2.api("GET", "/api/v1/rules/history", None);
    let ids: Vec<&str> = history["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["rule_id"].as_str())
        .collect();
    assert!(ids.contains(&format!("list:{allow}").as_str()), "{history}");
}
