//! Quarantine digests and the recipient portal on a real 3-node mesh: mail held for two
//! recipients on two nodes; a digest run → each recipient gets exactly one digest (the
//! nodes share the work by the sender choice); the release link, opened on the third node,
//! asks first (nothing changes), releases once on POST (the downstream gets the message
//! once), and a second click says "already released"; a tampered link changes nothing; a
//! "release and always allow" link used on another node adds the allow entry. A message
//! for two recipients: one's link releases it to that recipient only (the downstream's
//! RCPT shows it), the other's page still lists it and the other's delete link ends it; an
//! admin release after a per-recipient one goes to the remaining recipient only.

use std::time::Duration;

use mxmesh_tests::{Cluster, Node, Sink, SinkMode, mxctl_at, send_swaks, wait_for};
use serde_json::{Value, json};

const CONVERGE: Duration = Duration::from_secs(60);
const HELD_SENDER: &str = "news@spam.example";

/// Sends a clean message from [`HELD_SENDER`] to `to` through `node`; asserts a 250.
fn send_held(node: &Node, to: &str, subject: &str) {
    let headers = [
        "From: News <news@spam.example>",
        &format!("Subject: {subject}"),
    ];
    let sent = send_swaks(node.smtp, HELD_SENDER, to, &headers, "Our weekly offers.");
    assert!(
        sent.transcript.contains("250 2.0.0 Ok: queued"),
        "{}",
        sent.transcript
    );
}

/// Waits until `node` lists the held message with `subject`; returns it.
fn held_on(node: &Node, subject: &str) -> Value {
    let path = format!("/api/v1/quarantine?subject={}", subject.replace(' ', "%20"));
    wait_for(CONVERGE, || {
        let (_, list) = node.api("GET", &path, None);
        list["items"].as_array()?.first().cloned()
    })
    .unwrap_or_else(|| {
        panic!(
            "{subject:?} not held on {}; log:\n{}",
            node.admin,
            node.log()
        )
    })
}

/// The sink's messages whose text contains every one of `needles`.
fn in_sink(sink: &Sink, needles: &[&str]) -> Vec<String> {
    sink.messages()
        .into_iter()
        .map(|(_, raw)| String::from_utf8_lossy(&raw).into_owned())
        .filter(|text| needles.iter().all(|n| text.contains(n)))
        .collect()
}

/// Waits until every node's relay queue is empty.
fn queues_drained(cluster: &Cluster) {
    for node in &cluster.nodes {
        let empty = wait_for(CONVERGE, || {
            let (_, q) = node.api("GET", "/api/v1/queue", None);
            (q["size"] == 0).then_some(())
        });
        assert!(empty.is_some(), "queue of {} never emptied", node.admin);
    }
}

/// The link after `label` in a digest (`   Release: URL`).
fn link(digest: &str, label: &str) -> String {
    digest
        .lines()
        .find_map(|l| l.trim().strip_prefix(label))
        .map(|url| url.trim().to_string())
        .unwrap_or_else(|| panic!("no {label:?} in the digest:\n{digest}"))
}

/// GET without any admin credential: (status, page).
fn get(url: &str) -> (u16, String) {
    let r = reqwest::blocking::get(url).unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// POST of a form without any admin credential: (status, page).
fn post(url: &str, form: &str) -> (u16, String) {
    let r = reqwest::blocking::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form.to_string())
        .send()
        .unwrap();
    (r.status().as_u16(), r.text().unwrap_or_default())
}

/// The form check value a portal page carries.
fn check_of(page: &str) -> String {
    let at = page.find("name=\"check\" value=\"").expect("a form") + 20;
    page[at..].split('"').next().unwrap().to_string()
}

fn status_of(node: &Node, id: &str) -> String {
    let (_, e) = node.api("GET", &format!("/api/v1/quarantine/{id}"), None);
    e["status"].as_str().unwrap_or_default().to_string()
}

#[test]
fn each_recipient_gets_one_digest_and_its_links_act_once_on_any_node() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let [mx1, mx2, mx3] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];

    // Held by a deny entry: one message for alice on mx1, one for bob on mx2.
    let deny = json!({"kind": "deny", "sender": "spam.example", "scope": "*"});
    let (status, body) = mx1.api("POST", "/api/v1/lists", Some(&deny));
    assert_eq!(status, 201, "{body}");
    let (status, body) = mx1.api(
        "PUT",
        "/api/v1/settings/digest",
        Some(&json!({"time": "8am"})),
    );
    assert_eq!(
        (
            status,
            body["error"].as_str().map(|e| e.starts_with("time"))
        ),
        (400, Some(true)),
        "{body}"
    );
    let settings = json!({
        "public_url": mx3.url(""),
        "sender": "quarantine@example.com",
        "link_lifetime_hours": 24,
    });
    let (status, body) = mx1.api("PUT", "/api/v1/settings/digest", Some(&settings));
    assert_eq!(status, 200, "{body}");
    for node in [mx1, mx2] {
        let listed = wait_for(CONVERGE, || {
            let (_, l) = node.api("GET", "/api/v1/lists", None);
            (l["entries"].as_array()?.len() == 1).then_some(())
        });
        assert!(listed.is_some(), "deny entry never reached {}", node.admin);
    }
    send_held(mx1, "alice@example.com", "Offers for Alice");
    send_held(mx2, "bob@example.com", "Offers for Bob");
    let mut ids = Vec::new();
    for node in [mx1, mx2, mx3] {
        ids = vec![
            held_on(node, "Offers for Alice")["id"]
                .as_str()
                .unwrap()
                .to_string(),
            held_on(node, "Offers for Bob")["id"]
                .as_str()
                .unwrap()
                .to_string(),
        ];
        let keyed = wait_for(CONVERGE, || {
            let (_, d) = node.api("GET", "/api/v1/digest", None);
            d["key_generation"].as_u64()
        });
        assert_eq!(keyed, Some(1), "the link key reached {}", node.admin);
    }

    // Send now, from mx3 (with mxctl): every node picks the run up; each digest goes out once.
    let (ok, out, err) = mxctl_at(mx3, &["--json", "digest", "run"]);
    assert!(ok, "mxctl digest run: {out}{err}");
    let run: Value = serde_json::from_str(&out).expect("mxctl digest run prints JSON");
    let period = run["period_ms"].as_u64().unwrap();
    for node in [mx1, mx2, mx3] {
        let done = wait_for(CONVERGE, || {
            let (_, d) = node.api("GET", "/api/v1/digest", None);
            (d["period_ms"] == period && d["complete"] == true).then_some(d)
        });
        assert!(
            done.is_some(),
            "{} never completed the run; log:\n{}",
            node.admin,
            node.log()
        );
    }
    queues_drained(&cluster);
    let alice = in_sink(
        &sink,
        &["Subject: Quarantine digest", "To: <alice@example.com>"],
    );
    let bob = in_sink(
        &sink,
        &["Subject: Quarantine digest", "To: <bob@example.com>"],
    );
    assert_eq!(
        (alice.len(), bob.len()),
        (1, 1),
        "one digest each: {alice:?} {bob:?}"
    );
    assert!(alice[0].contains("Offers for Alice") && !alice[0].contains("Offers for Bob"));
    let sent: u64 = cluster
        .nodes
        .iter()
        .map(|n| {
            n.api("GET", "/api/v1/digest", None).1["sent_total"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(sent, 2, "two digests in all");

    // Alice's release link points at mx3 (the public URL) and asks before it acts.
    let release = link(&alice[0], "Release:");
    assert!(release.starts_with(&mx3.url("/q/")), "{release}");
    let (status, page) = get(&release);
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Release this message to your mailbox?"),
        "{page}"
    );
    assert_eq!(
        status_of(mx1, &ids[0]),
        "quarantined",
        "opening the link changed nothing"
    );
    assert!(in_sink(&sink, &["Subject: Offers for Alice"]).is_empty());
    let check = check_of(&page);
    let (status, page) = post(&release, "check=wrong");
    assert_eq!(status, 403, "a form without the page's check value: {page}");
    let (status, page) = post(&release, &format!("check={check}"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Released"), "{page}");
    let delivered = wait_for(CONVERGE, || {
        (!in_sink(&sink, &["Subject: Offers for Alice"]).is_empty()).then_some(())
    });
    assert!(
        delivered.is_some(),
        "the released message never reached the sink"
    );

    // A second click: already released; the downstream got it once.
    let (status, page) = post(&release, &format!("check={check}"));
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("already released"), "{page}");
    // Once mx3's copy of the index has the release, opening the link says so too.
    let told = wait_for(CONVERGE, || {
        let (_, page) = get(&release);
        page.contains("already released").then_some(())
    });
    assert!(told.is_some(), "the link page never said already released");
    queues_drained(&cluster);
    assert_eq!(in_sink(&sink, &["Subject: Offers for Alice"]).len(), 1);

    // A tampered link (bob's, one character changed) changes nothing.
    let bob_release = link(&bob[0], "Release:");
    let mut tampered = bob_release.clone().into_bytes();
    let at = tampered.len() - 5;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (status, page) = get(&tampered);
    assert_eq!(status, 403, "{page}");
    assert!(page.contains("not valid or has expired"), "{page}");
    let (status, _) = post(&tampered, &format!("check={check}"));
    assert_eq!(status, 403);
    assert_eq!(status_of(mx2, &ids[1]), "quarantined");

    // Bob's "show all" page lists his mail only; "release and always allow" on mx1.
    let (status, page) = get(&link(&bob[0], "All your quarantined mail:"));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Offers for Bob") && !page.contains("Offers for Alice"),
        "{page}"
    );
    let allow = link(&bob[0], "Release and always allow this sender:")
        .replace(&mx3.admin.to_string(), &mx1.admin.to_string());
    let (_, page) = get(&allow);
    let (status, page) = post(&allow, &format!("check={}", check_of(&page)));
    assert_eq!(status, 200, "{page}");
    let delivered = wait_for(CONVERGE, || {
        (!in_sink(&sink, &["Subject: Offers for Bob"]).is_empty()).then_some(())
    });
    assert!(
        delivered.is_some(),
        "bob's released message never reached the sink"
    );
    let allowed = wait_for(CONVERGE, || {
        let (_, lists) = mx2.api("GET", "/api/v1/lists", None);
        lists["entries"]
            .as_array()?
            .iter()
            .any(|e| {
                e["kind"] == "allow"
                    && e["sender"] == HELD_SENDER
                    && e["scope"] == "bob@example.com"
            })
            .then_some(())
    });
    assert!(allowed.is_some(), "the allow entry never reached mx2");
}

/// The sink's envelopes (`to`) of the messages whose text contains `needle`.
fn delivered_to(sink: &Sink, needle: &str) -> Vec<Vec<String>> {
    sink.messages()
        .into_iter()
        .filter(|(_, raw)| String::from_utf8_lossy(raw).contains(needle))
        .map(|(env, _)| {
            let to = env["to"].as_array().cloned().unwrap_or_default();
            to.iter()
                .map(|r| r.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .collect()
}

/// Opens a link's confirmation page and submits it: (status, page).
fn confirm(url: &str) -> (u16, String) {
    let (status, page) = get(url);
    assert_eq!(status, 200, "{page}");
    post(url, &format!("check={}", check_of(&page)))
}

#[test]
fn a_link_releases_or_deletes_for_its_recipient_only() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let [mx1, mx2, mx3] = [&cluster.nodes[0], &cluster.nodes[1], &cluster.nodes[2]];
    let deny = json!({"kind": "deny", "sender": "spam.example", "scope": "*"});
    let (status, body) = mx1.api("POST", "/api/v1/lists", Some(&deny));
    assert_eq!(status, 201, "{body}");
    let settings = json!({"public_url": mx3.url(""), "sender": "quarantine@example.com"});
    let (status, body) = mx1.api("PUT", "/api/v1/settings/digest", Some(&settings));
    assert_eq!(status, 200, "{body}");
    let listed = wait_for(CONVERGE, || {
        let (_, l) = mx1.api("GET", "/api/v1/lists", None);
        (l["entries"].as_array()?.len() == 1).then_some(())
    });
    assert!(listed.is_some());

    // One message for alice and bob, held on mx1; both get a digest.
    send_held(mx1, "alice@example.com,bob@example.com", "Offers for both");
    let id = held_on(mx1, "Offers for both")["id"]
        .as_str()
        .unwrap()
        .to_string();
    for node in [mx2, mx3] {
        held_on(node, "Offers for both");
        let keyed = wait_for(CONVERGE, || {
            let (_, d) = node.api("GET", "/api/v1/digest", None);
            d["key_generation"].as_u64()
        });
        assert_eq!(keyed, Some(1), "the link key reached {}", node.admin);
    }
    let (status, run) = mx3.api("POST", "/api/v1/digest/run", None);
    assert!(status < 300, "{run}");
    let digests = wait_for(CONVERGE, || {
        let alice = in_sink(
            &sink,
            &["Subject: Quarantine digest", "To: <alice@example.com>"],
        );
        let bob = in_sink(
            &sink,
            &["Subject: Quarantine digest", "To: <bob@example.com>"],
        );
        (alice.len() == 1 && bob.len() == 1).then(|| (alice[0].clone(), bob[0].clone()))
    });
    let (alice, bob) = digests.expect("one digest each");
    assert!(alice.contains("Offers for both") && bob.contains("Offers for both"));

    // Alice's release link, followed on mx3: the downstream gets it for alice only.
    let release = link(&alice, "Release:");
    let (status, page) = get(&release);
    assert_eq!(status, 200, "{page}");
    let check = check_of(&page);
    let (status, page) = post(&release, &format!("check={check}"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Released"), "{page}");
    let got = wait_for(CONVERGE, || {
        let got = delivered_to(&sink, "Subject: Offers for both");
        (!got.is_empty()).then_some(got)
    });
    assert_eq!(got, Some(vec![vec!["alice@example.com".to_string()]]));
    let (_, shown) = mx1.api("GET", &format!("/api/v1/quarantine/{id}"), None);
    assert_eq!(
        shown["status"], "quarantined",
        "still held for bob: {shown}"
    );
    assert_eq!(shown["recipients_released"], json!(["alice@example.com"]));
    assert_eq!(shown["recipients_held"], json!(["bob@example.com"]));

    // A second click: already released, nothing relayed.
    let (status, page) = post(&release, &format!("check={check}"));
    assert_eq!(status, 409, "{page}");
    assert!(page.contains("already released"), "{page}");

    // Alice's page no longer lists it (once mx3 knows); bob's still does.
    let alice_page = link(&alice, "All your quarantined mail:");
    let gone = wait_for(CONVERGE, || {
        let (_, page) = get(&alice_page);
        (!page.contains("Offers for both")).then_some(())
    });
    assert!(
        gone.is_some(),
        "alice's page still lists the released message"
    );
    let (status, page) = get(&link(&bob, "All your quarantined mail:"));
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Offers for both"),
        "bob's copy is held: {page}"
    );

    // Bob's delete link ends it: released (to alice), deleted for bob.
    let (status, page) = confirm(&link(&bob, "Delete:"));
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("Deleted"), "{page}");
    let ended = wait_for(CONVERGE, || {
        let (_, e) = mx3.api("GET", &format!("/api/v1/quarantine/{id}"), None);
        (e["status"] == "released").then_some(e)
    })
    .expect("the entry ends terminal on every node");
    assert_eq!(ended["recipients_deleted"], json!(["bob@example.com"]));
    queues_drained(&cluster);
    assert_eq!(
        delivered_to(&sink, "Subject: Offers for both"),
        [vec!["alice@example.com".to_string()]],
        "bob never got it, alice got it once"
    );

    // An admin release after a per-recipient one (the API's ?rcpt=) goes to the rest only.
    send_held(mx1, "alice@example.com,bob@example.com", "Second for both");
    let second = held_on(mx2, "Second for both")["id"]
        .as_str()
        .unwrap()
        .to_string();
    held_on(mx3, "Second for both");
    let path = format!("/api/v1/quarantine/{second}/release?rcpt=Bob@Example.com");
    let (status, body) = mx2.api("POST", &path, None);
    assert_eq!(status, 202, "{body}");
    let (status, body) = mx2.api("POST", &path, None);
    assert_eq!(status, 409, "bob was already released: {body}");
    let (status, body) = mx3.api(
        "POST",
        &format!("/api/v1/quarantine/{second}/release"),
        None,
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "released", "{body}");
    queues_drained(&cluster);
    let mut got = delivered_to(&sink, "Subject: Second for both");
    got.sort();
    assert_eq!(
        got,
        [
            vec!["alice@example.com".to_string()],
            vec!["bob@example.com".to_string()]
        ],
        "each recipient once"
    );
}

#[test]
fn a_recipient_release_asked_while_its_node_is_down_is_done_for_that_recipient_on_return() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut cluster = Cluster::start(3, sink.addr);
    cluster.wait_members(&["mx1", "mx2", "mx3"], CONVERGE);
    let deny = json!({"kind": "deny", "sender": "spam.example", "scope": "*"});
    let (status, body) = cluster.nodes[0].api("POST", "/api/v1/lists", Some(&deny));
    assert_eq!(status, 201, "{body}");
    let listed = wait_for(CONVERGE, || {
        let (_, l) = cluster.nodes[0].api("GET", "/api/v1/lists", None);
        (l["entries"].as_array()?.len() == 1).then_some(())
    });
    assert!(listed.is_some());
    send_held(
        &cluster.nodes[0],
        "alice@example.com,bob@example.com",
        "Held while away",
    );
    let id = held_on(&cluster.nodes[1], "Held while away")["id"]
        .as_str()
        .unwrap()
        .to_string();

    // mx1 (the message's node) down: alice's release asked on mx2 is recorded for her.
    cluster.nodes[0].kill9();
    let mx2 = &cluster.nodes[1];
    let down = wait_for(CONVERGE, || {
        let (_, c) = mx2.api("GET", "/api/v1/cluster", None);
        c["members"]
            .as_array()?
            .iter()
            .find(|m| m["id"] == "mx1")
            .filter(|m| m["live"] == false)
            .map(|_| ())
    });
    assert!(down.is_some(), "mx2 never saw mx1 down");
    let path = format!("/api/v1/quarantine/{id}/release?rcpt=alice@example.com");
    let (status, body) = mx2.api("POST", &path, None);
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["pending"]["recipient"], "alice@example.com", "{body}");

    // Back: carried out once, for alice only; bob's copy stays held.
    cluster.nodes[0].spawn();
    let got = wait_for(CONVERGE, || {
        let got = delivered_to(&sink, "Subject: Held while away");
        (!got.is_empty()).then_some(got)
    });
    assert_eq!(got, Some(vec![vec!["alice@example.com".to_string()]]));
    let decided = wait_for(CONVERGE, || {
        let (_, e) = cluster.nodes[2].api("GET", &format!("/api/v1/quarantine/{id}"), None);
        (e["recipients_released"] == json!(["alice@example.com"]) && e["pending"].is_null())
            .then_some(e)
    })
    .expect("the decision reaches mx3");
    assert_eq!(decided["status"], "quarantined", "{decided}");
    assert_eq!(decided["recipients_held"], json!(["bob@example.com"]));
    queues_drained(&cluster);
    assert_eq!(
        delivered_to(&sink, "Subject: Held while away").len(),
        1,
        "alice got it once, bob not at all"
    );
}
