//! One real `mxmesh node` process, real clients (smtplib, swaks), a real downstream
//! (aiosmtpd): mail path, rules, quarantine, API errors.

use std::process::Command;
use std::time::Duration;

use mxmesh_tests::{Node, NodeOpts, Sink, SinkMode, message, send_python};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn setup(mode: SinkMode) -> (tempfile::TempDir, Sink, Node) {
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), mode);
    let node = Node::start(&dir.path().join("node"), &NodeOpts::new(sink.addr));
    (dir, sink, node)
}

fn add_rule(node: &Node, rule: serde_json::Value) -> String {
    let (status, body) = node.api("POST", "/api/v1/rules", Some(&rule));
    assert_eq!(status, 201, "{body}");
    body["id"].as_str().unwrap().to_string()
}

/// Splits the trace headers we add (one Received, then the X-Spam-* ones) from the rest.
fn strip_received(delivered: &[u8]) -> &[u8] {
    assert!(
        delivered.starts_with(b"Received: from "),
        "{}",
        String::from_utf8_lossy(delivered)
    );
    let mut rest = skip_field(delivered);
    // The score headers every relayed message carries follow our Received.
    while rest.starts_with(b"X-Spam-") {
        rest = skip_field(rest);
    }
    rest
}

/// `delivered` after its first header field (continuation lines included).
fn skip_field(delivered: &[u8]) -> &[u8] {
    let mut i = 0;
    // The field ends at the first CRLF not followed by folding white space.
    loop {
        let p = delivered[i..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap()
            + i
            + 2;
        if delivered[p] != b'\t' && delivered[p] != b' ' {
            return &delivered[p..];
        }
        i = p;
    }
}

#[test]
fn clean_mail_arrives_byte_exact_including_dot_lines() {
    let (_d, sink, node) = setup(SinkMode::default());
    let body = "line one\r\n.leading dot line\r\n..two dots\r\n.\r\nend\r\n";
    let msg = message("hello", body);
    let r = send_python(
        node.smtp,
        "alice@example.org",
        &["user@example.com"],
        &msg,
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert!(r["reply"].as_str().unwrap().contains("queued as"), "{r}");
    let got = sink.wait_count(1, WAIT);
    assert_eq!(got[0].0["from"], "alice@example.org");
    assert_eq!(got[0].0["to"], json!(["user@example.com"]));
    assert_eq!(
        strip_received(&got[0].1),
        &msg[..],
        "delivered bytes differ from sent bytes"
    );
}

#[test]
fn relay_denied_for_other_domains() {
    let (_d, sink, node) = setup(SinkMode::default());
    let r = send_python(
        node.smtp,
        "a@example.org",
        &["victim@elsewhere.test"],
        &message("x", "x\r\n"),
        false,
    );
    assert_eq!(r["ok"], false);
    assert_eq!(r["stage"], "rcpt");
    assert_eq!(r["code"], 550, "{r}");
    assert!(
        r["reply"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("relay"),
        "{r}"
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(sink.messages().is_empty());
}

#[test]
fn quarantine_rule_then_release_delivers_once() {
    let (_d, sink, node) = setup(SinkMode::default());
    let rule = add_rule(
        &node,
        json!({"name": "pharma", "priority": 10, "action": "quarantine", "reason": "pharma spam",
               "when": {"field": "subject", "op": "contains", "value": "viagra"}}),
    );
    let msg = message("cheap VIAGRA now", "buy\r\n");
    let r = send_python(
        node.smtp,
        "spam@example.org",
        &["user@example.com"],
        &msg,
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    let (s, list) = node.api("GET", "/api/v1/quarantine?subject=viagra", None);
    assert_eq!(s, 200);
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let item = &items[0];
    assert_eq!(item["rule_id"], rule.as_str());
    assert_eq!(item["reason"], "pharma spam");
    assert_eq!(item["status"], "quarantined");
    assert_eq!(item["node"], "mx1");
    let id = item["id"].as_str().unwrap();
    let (s, raw) = node.api_bytes(&format!("/api/v1/quarantine/{id}/raw"));
    assert_eq!(s, 200);
    assert_eq!(raw, msg, "raw is the message as received");
    assert!(
        sink.messages().is_empty(),
        "quarantined mail must not be relayed"
    );

    let (s, body) = node.api("POST", &format!("/api/v1/quarantine/{id}/release"), None);
    assert_eq!(s, 202, "{body}");
    let got = sink.wait_count(1, WAIT);
    assert_eq!(strip_received(&got[0].1), &msg[..]);
    let (s, _) = node.api("POST", &format!("/api/v1/quarantine/{id}/release"), None);
    assert_eq!(s, 409, "a second release is refused");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(sink.messages().len(), 1, "released exactly once");
    let (_, shown) = node.api("GET", &format!("/api/v1/quarantine/{id}"), None);
    assert_eq!(shown["status"], "released");
}

#[test]
fn reject_tempfail_tag_and_delete() {
    let (_d, sink, node) = setup(SinkMode::default());
    add_rule(
        &node,
        json!({"name": "no exe", "priority": 1, "action": "reject", "reason": "executables not accepted",
        "when": {"field": "header:X-Kind", "op": "equals", "value": "reject-me"}}),
    );
    add_rule(
        &node,
        json!({"name": "later", "priority": 2, "action": "tempfail", "reason": "greylisted",
        "when": {"field": "from", "op": "regex", "value": "^grey@"}}),
    );
    add_rule(
        &node,
        json!({"name": "tag newsletters", "priority": 3, "action": "tag", "reason": "bulk",
        "subject_prefix": "[BULK]", "when": {"field": "body", "op": "contains", "value": "unsubscribe"}}),
    );
    add_rule(
        &node,
        json!({"name": "quarantine big", "priority": 4, "action": "quarantine", "reason": "too big",
        "when": {"field": "size", "op": "gt", "value": 5000}}),
    );

    let rejected =
        b"From: a@example.org\r\nX-Kind: reject-me\r\nSubject: r\r\n\r\nbody\r\n".to_vec();
    let r = send_python(
        node.smtp,
        "a@example.org",
        &["user@example.com"],
        &rejected,
        false,
    );
    assert_eq!(r["code"], 550, "{r}");
    assert!(
        r["reply"]
            .as_str()
            .unwrap()
            .contains("executables not accepted"),
        "{r}"
    );

    let r = send_python(
        node.smtp,
        "grey@example.org",
        &["user@example.com"],
        &message("g", "x\r\n"),
        false,
    );
    assert_eq!(r["code"], 451, "{r}");

    let tagged = message("weekly news", "hello\r\nclick to unsubscribe\r\n");
    let r = send_python(
        node.smtp,
        "news@example.org",
        &["user@example.com"],
        &tagged,
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    let got = sink.wait_count(1, WAIT);
    let text = String::from_utf8_lossy(&got[0].1);
    assert!(text.contains("X-Mxmesh-Verdict: tag"), "{text}");
    assert!(text.contains("Subject: [BULK] weekly news\r\n"), "{text}");

    let big = message("big", &"0123456789abcdef\r\n".repeat(400));
    let r = send_python(
        node.smtp,
        "b@example.org",
        &["user@example.com"],
        &big,
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
    let (_, list) = node.api("GET", "/api/v1/quarantine", None);
    let id = list["items"][0]["id"].as_str().unwrap().to_string();
    let (s, _) = node.api("DELETE", &format!("/api/v1/quarantine/{id}"), None);
    assert_eq!(s, 200);
    let (s, _) = node.api_bytes(&format!("/api/v1/quarantine/{id}/raw"));
    assert_eq!(s, 409, "deleted message has no raw any more");
    let (s, _) = node.api("POST", &format!("/api/v1/quarantine/{id}/release"), None);
    assert_eq!(s, 409);

    let (_, stats) = node.api("GET", "/api/v1/stats", None);
    let mine = &stats["nodes"]["mx1"];
    assert_eq!(mine["rejected"], 1, "{stats}");
    assert_eq!(mine["tempfailed"], 1, "{stats}");
    assert_eq!(mine["tagged"], 1, "{stats}");
    assert_eq!(mine["quarantined"], 1, "{stats}");
    assert_eq!(stats["total"]["received"], 4, "{stats}");
}

#[test]
fn api_auth_and_bad_input() {
    let (_d, _sink, node) = setup(SinkMode::default());
    let c = reqwest::blocking::Client::new();
    let r = c.get(node.url("/api/v1/rules")).send().unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(node.url("/api/v1/rules"))
        .bearer_auth("wrong")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c.get(node.url("/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap(),
        json!({"status": "ok"})
    );
    let r = c.get(node.url("/metrics")).send().unwrap();
    assert!(
        r.text()
            .unwrap()
            .contains("mxmesh_messages_total{node=\"mx1\",outcome=\"received\"}")
    );

    let (s, body) = node.api(
        "POST",
        "/api/v1/rules",
        Some(&json!({"name": "x", "action": "quarantine", "when": {"field": "subject", "op": "containz", "value": "a"}})),
    );
    assert_eq!(s, 400);
    assert!(
        body["error"].as_str().unwrap().contains("containz"),
        "{body}"
    );
    let (s, body) = node.api("POST", "/api/v1/rules", Some(&json!({"name": "x", "action": "drop", "when": {"field": "subject", "op": "contains", "value": "a"}})));
    assert_eq!(s, 400);
    assert!(body["error"].as_str().unwrap().contains("action"), "{body}");
    let r = c
        .post(node.url("/api/v1/rules"))
        .bearer_auth(mxmesh_tests::TOKEN)
        .body("{not json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let (s, _) = node.api("GET", "/api/v1/rules/r-doesnotexist", None);
    assert_eq!(s, 404);
    let (s, _) = node.api("GET", "/api/v1/quarantine/01NOPE", None);
    assert_eq!(s, 404);
    let (s, body) = node.api("GET", "/api/v1/quarantine?limit=0", None);
    assert_eq!(s, 400, "{body}");
    let (s, _) = node.api("GET", "/api/v1/rules", None);
    assert_eq!(s, 200);
    assert!(
        node.api("GET", "/api/v1/rules", None).1["rules"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// The `op` of each entry of a `/rules/history` answer, in its order.
fn history_ops(h: &serde_json::Value) -> Vec<&str> {
    h["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["op"].as_str().unwrap())
        .collect()
}

#[test]
fn rule_update_delete_and_history() {
    let (_d, _sink, node) = setup(SinkMode::default());
    let id = add_rule(
        &node,
        json!({"name": "a", "action": "tag", "when": {"field": "subject", "op": "contains", "value": "a"}}),
    );
    let mut rule = node.api("GET", &format!("/api/v1/rules/{id}"), None).1;
    rule["priority"] = json!(5);
    let (s, body) = node.api("PUT", &format!("/api/v1/rules/{id}"), Some(&rule));
    assert_eq!(s, 200, "{body}");
    assert_eq!(body["priority"], 5);
    let (s, _) = node.api("DELETE", &format!("/api/v1/rules/{id}"), None);
    assert_eq!(s, 200);
    let (s, _) = node.api("GET", &format!("/api/v1/rules/{id}"), None);
    assert_eq!(s, 404);
    let (_, h) = node.api("GET", "/api/v1/rules/history", None);
    assert_eq!(history_ops(&h), vec!["create", "update", "delete"], "{h}");
    assert!(
        h["history"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["admin"] == "tester" && e["node"] == "mx1")
    );
    assert_eq!(
        (h["total"].as_u64(), h["truncated"].as_bool()),
        (Some(3), Some(false)),
        "{h}"
    );
    // `limit` keeps the newest changes and says that older ones were left out.
    let (s, h) = node.api("GET", "/api/v1/rules/history?limit=2", None);
    assert_eq!(s, 200, "{h}");
    assert_eq!(history_ops(&h), vec!["update", "delete"], "{h}");
    assert_eq!(
        (h["total"].as_u64(), h["truncated"].as_bool()),
        (Some(3), Some(true)),
        "{h}"
    );
    for bad in ["limit=0", "limit=10001", "limit=x", "since=1"] {
        let (s, body) = node.api("GET", &format!("/api/v1/rules/history?{bad}"), None);
        assert_eq!(s, 400, "{bad}: {body}");
        assert!(body["error"].as_str().is_some(), "{bad}: {body}");
    }
}

#[test]
fn swaks_delivers() {
    let (_d, sink, node) = setup(SinkMode::default());
    let out = Command::new("swaks")
        .args([
            "--server",
            &node.smtp.to_string(),
            "--from",
            "bob@example.org",
            "--to",
            "user@example.com",
        ])
        .args(["--header", "Subject: from swaks", "--body", "hi from swaks"])
        .output()
        .expect("swaks installed by the test command");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = sink.wait_count(1, WAIT);
    assert!(String::from_utf8_lossy(&got[0].1).contains("hi from swaks"));
}

#[test]
fn starttls_with_smtplib() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = mxmesh_tests::self_signed(&dir.path().join("certs"), "mx1.example.com");
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut o = NodeOpts::new(sink.addr);
    o.smtp_extra = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    );
    let node = Node::start(&dir.path().join("node"), &o);
    let msg = message("over tls", "secret\r\n");
    let r = send_python(
        node.smtp,
        "a@example.org",
        &["user@example.com"],
        &msg,
        true,
    );
    assert_eq!(r["tls"], true, "{r}");
    assert_eq!(r["ok"], true, "{r}");
    let got = sink.wait_count(1, WAIT);
    let text = String::from_utf8_lossy(&got[0].1);
    assert!(text.contains("with ESMTPS"), "{text}");
}

#[test]
fn early_talker_is_refused_when_greet_pause_is_on() {
    use std::io::{Read, Write};
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut o = NodeOpts::new(sink.addr);
    o.smtp_extra = "greet_pause_ms = 400".into();
    let node = Node::start(&dir.path().join("node"), &o);
    let mut s = std::net::TcpStream::connect(node.smtp).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"EHLO eager.test\r\nMAIL FROM:<a@example.org>\r\n")
        .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("554 5.5.0"), "{out:?}");
    assert!(!out.contains("250"), "no command was executed: {out:?}");
    // A patient client is served.
    let r = send_python(
        node.smtp,
        "a@example.org",
        &["user@example.com"],
        &message("patient", "x\r\n"),
        false,
    );
    assert_eq!(r["ok"], true, "{r}");
}
