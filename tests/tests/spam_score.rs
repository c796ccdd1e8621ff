//! The spam score end to end: the real node binary, a real SMTP client (smtplib) and a
//! sink. Messages with typical spam traits are tagged or quarantined by the default
//! thresholds with `X-Spam-*` headers; a clean message is relayed with its score; rules
//! still decide first, and can read the score's symbols.

use std::time::Duration;

use mxmesh_tests::{Bind, Node, NodeOpts, Sink, SinkMode, send_python};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(15);

struct Setup {
    _dir: tempfile::TempDir,
    sink: Sink,
    node: Node,
}

fn setup() -> Setup {
    setup_with(tempfile::tempdir().unwrap(), "")
}

/// A sink and a node with `extra` appended to its config.
fn setup_with(dir: tempfile::TempDir, extra: &str) -> Setup {
    let sink = Sink::start(&dir.path().join("sink"), SinkMode::default());
    let mut opts = NodeOpts::new(sink.addr);
    opts.extra = extra.to_string();
    let node = Node::start(&dir.path().join("node"), &opts);
    Setup {
        _dir: dir,
        sink,
        node,
    }
}

impl Setup {
    fn send(&self, from: &str, message: &str) -> Value {
        send_python(
            self.node.smtp,
            from,
            &["user@example.com"],
            message.as_bytes(),
            false,
        )
    }

    /// The relayed copy of the message whose Subject line contains `subject`.
    fn relayed(&self, subject: &str) -> String {
        let found = mxmesh_tests::wait_for(WITHIN, || {
            self.sink
                .messages()
                .into_iter()
                .map(|(_, bytes)| String::from_utf8_lossy(&bytes).into_owned())
                .find(|m| {
                    m.lines()
                        .any(|l| l.starts_with("Subject:") && l.contains(subject))
                })
        });
        found.unwrap_or_else(|| panic!("{subject:?} was not relayed; log:\n{}", self.node.log()))
    }

    /// The one quarantine entry whose subject is `subject`.
    fn quarantined(&self, subject: &str) -> Value {
        let (status, body) = self.node.api(
            "GET",
            &format!("/api/v1/quarantine?subject={}", subject.replace(' ', "%20")),
            None,
        );
        assert_eq!(status, 200, "{body}");
        match body["items"].as_array().map(Vec::as_slice) {
            Some([one]) => one.clone(),
            _ => panic!("{subject:?}: expected one quarantined message, got {body}"),
        }
    }
}

/// The unfolded value of header `name` in the header section of `message`.
fn header(message: &str, name: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or_default();
    let unfolded = head.replace("\r\n\t", " ").replace("\r\n ", " ");
    unfolded.lines().find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

fn symbols_of(message: &str) -> String {
    header(message, "X-Spam-Symbols").unwrap_or_default()
}

/// A well-formed, ordinary message (dated now, so no date symbol fires).
fn clean(subject: &str) -> String {
    format!(
        "Received: from mx.sender.test (mx.sender.test [192.0.2.1])\r\n\tby relay.sender.test; {date}\r\n\
         From: Alice <alice@sender.test>\r\nTo: user@example.com\r\nSubject: {subject}\r\n\
         Date: {date}\r\nMessage-ID: <{id}@sender.test>\r\n\r\nSee you at lunch on Friday.\r\n",
        date = now_rfc5322(),
        id = subject.replace(' ', ".")
    )
}

/// Shouting subject, display name spoofing a bank, HTML only, a link whose text shows
/// the bank while it goes to a numeric host, no Message-ID, no Date, no Received:
/// MISSING_MESSAGE_ID 1 + MISSING_DATE 1 + FROM_NAME_SPOOFS_ADDRESS 2.5 +
/// SUBJECT_ALL_CAPS 2 + MIME_HTML_ONLY 1 + HTML_LINK_TEXT_MISMATCH 2.5 +
/// URL_IP_ADDRESS 2 + RECEIVED_MISSING 0.5 = 12.5: quarantine.
fn phish(subject: &str) -> String {
    format!(
        "From: \"security@bank.example\" <alert@phish.test>\r\nTo: user@example.com\r\n\
         Subject: {subject}\r\nMIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n\
         <p>Your account is locked. <a href=\"http://192.0.2.66/login\">https://www.bank.example/login</a></p>\r\n"
    )
}

/// Fewer traits: HTML only, shouting subject, a numeric link, no Message-ID or Date:
/// between the tag (5) and quarantine (10) thresholds.
fn promo(subject: &str) -> String {
    format!(
        "From: Deals <deals@shop.test>\r\nTo: user@example.com\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n\
         <p>Huge savings today only at <a href=\"http://192.0.2.77/\">our store</a></p>\r\n"
    )
}

/// The current time as an RFC 5322 date (UTC), from the system clock of the test.
fn now_rfc5322() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "-R"])
        .output()
        .expect("date(1)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn rule(node: &Node, rule: Value) {
    let (status, body) = node.api("POST", "/api/v1/rules", Some(&rule));
    assert_eq!(status, 201, "{body}");
}

#[test]
fn spam_traits_are_scored_tagged_and_quarantined() {
    let s = setup();
    assert_eq!(
        s.send("alice@sender.test", &clean("Lunch plans"))["code"],
        250
    );
    let ok = s.relayed("Lunch plans");
    assert_eq!(header(&ok, "X-Spam-Flag"), None, "{ok}");
    let score: f64 = header(&ok, "X-Spam-Score").unwrap().parse().unwrap();
    assert!(score < 5.0, "{ok}");
    assert!(header(&ok, "X-Spam-Symbols").is_some(), "{ok}");

    assert_eq!(
        s.send("deals@shop.test", &promo("HUGE SAVINGS ON EVERYTHING"))["code"],
        250
    );
    let tagged = s.relayed("HUGE SAVINGS ON EVERYTHING");
    assert_eq!(
        header(&tagged, "X-Spam-Flag").as_deref(),
        Some("YES"),
        "{tagged}"
    );
    let score: f64 = header(&tagged, "X-Spam-Score").unwrap().parse().unwrap();
    assert!((5.0..10.0).contains(&score), "{tagged}");
    let symbols = symbols_of(&tagged);
    for name in [
        "MIME_HTML_ONLY(1.00)",
        "SUBJECT_ALL_CAPS(2.00)",
        "URL_IP_ADDRESS(2.00)",
    ] {
        assert!(symbols.contains(name), "{name} in {symbols}");
    }
    assert_eq!(header(&tagged, "X-Mxmesh-Verdict").as_deref(), Some("tag"));

    let reply = s.send("alert@phish.test", &phish("ACCOUNT LOCKED VERIFY NOW"));
    assert_eq!(reply["code"], 250, "{reply}");
    let entry = s.quarantined("ACCOUNT LOCKED VERIFY NOW");
    let reason = entry["reason"].as_str().unwrap();
    assert!(reason.starts_with("spam score "), "{reason}");
    assert!(reason.contains("quarantine threshold 10"), "{reason}");
    // Released, it carries the score it was quarantined with.
    let id = entry["id"].as_str().unwrap();
    let (status, body) = s
        .node
        .api("POST", &format!("/api/v1/quarantine/{id}/release"), None);
    assert_eq!(status, 202, "{body}");
    let released = s.relayed("ACCOUNT LOCKED VERIFY NOW");
    let symbols = symbols_of(&released);
    for name in [
        "HTML_LINK_TEXT_MISMATCH(2.50)",
        "FROM_NAME_SPOOFS_ADDRESS(2.50)",
    ] {
        assert!(symbols.contains(name), "{name} in {released}");
    }
    let score: f64 = header(&released, "X-Spam-Score").unwrap().parse().unwrap();
    assert!((10.0..15.0).contains(&score), "{released}");
}

#[test]
fn rules_decide_before_the_score_and_read_its_symbols() {
    let s = setup();
    // The phishing message's sender is allowed by a rule: relayed despite its score.
    rule(
        &s.node,
        json!({ "name": "partner", "priority": 1, "action": "accept",
                "when": { "field": "from", "op": "equals", "value": "alert@phish.test" } }),
    );
    // A rule on a symbol rejects whatever shows a link to another domain.
    rule(
        &s.node,
        json!({ "name": "no link tricks", "priority": 2, "action": "reject",
                "reason": "deceptive link",
                "when": { "field": "symbol", "op": "in", "value": ["HTML_LINK_TEXT_MISMATCH"] } }),
    );
    // A rule on the score tags with a prefix what the thresholds would accept.
    rule(
        &s.node,
        json!({ "name": "mild", "priority": 3, "action": "tag", "subject_prefix": "[MAYBE]",
                "when": { "field": "score", "op": "gt", "value": 0.9 } }),
    );
    let reply = s.send("alert@phish.test", &phish("PARTNER NOTICE FOR YOU"));
    assert_eq!(reply["code"], 250, "{reply}");
    let relayed = s.relayed("PARTNER NOTICE FOR YOU");
    assert_eq!(
        header(&relayed, "X-Spam-Flag"),
        None,
        "accepted by the rule: {relayed}"
    );
    let score: f64 = header(&relayed, "X-Spam-Score").unwrap().parse().unwrap();
    assert!(score >= 10.0, "the score is still reported: {relayed}");

    let reply = s.send("other@phish.test", &phish("SECOND NOTICE FOR YOU"));
    assert_eq!(reply["code"], 550, "{reply}");
    assert!(reply.to_string().contains("deceptive link"), "{reply}");

    // No Date and no Received: MISSING_DATE + RECEIVED_MISSING = 1.5 > 0.9.
    let undated = "From: Bob <bob@sender.test>\r\nTo: user@example.com\r\nSubject: Quick question\r\n\
                   Message-ID: <q1@sender.test>\r\n\r\nAre you free tomorrow?\r\n";
    assert_eq!(s.send("bob@sender.test", undated)["code"], 250);
    let tagged = s.relayed("[MAYBE] Quick question");
    assert_eq!(
        header(&tagged, "X-Spam-Flag").as_deref(),
        Some("YES"),
        "{tagged}"
    );
}

#[test]
fn forged_spam_headers_are_replaced() {
    let s = setup();
    let forged = clean("Forged verdict").replace(
        "Subject:",
        "X-Spam-Flag: NO\r\nX-Spam-Score: -100\r\nSubject:",
    );
    assert_eq!(s.send("alice@sender.test", &forged)["code"], 250);
    let relayed = s.relayed("Forged verdict");
    assert_eq!(relayed.matches("X-Spam-Score:").count(), 1, "{relayed}");
    assert!(!relayed.contains("X-Spam-Flag: NO"), "{relayed}");
    assert!(!relayed.contains("-100"), "{relayed}");
}

#[test]
fn url_domains_listed_in_a_uribl_zone_score() {
    // BIND serves `uribl.test`: evil.example is listed (127.0.0.2), refused.example gets
    // the "query refused" answer 127.0.0.1, everything else is NXDOMAIN.
    let dir = tempfile::tempdir().unwrap();
    let records = "evil.example IN A 127.0.0.2\nrefused.example IN A 127.0.0.1\n";
    let bind = Bind::serve(&dir.path().join("bind"), &[("uribl.test.", records)]);
    let filter = format!(
        "\n[filter]\nresolver = \"{}\"\nauthentication = false\nuribl = [\"uribl.test\"]\n",
        bind.addr
    );
    let s = setup_with(dir, &filter); // dropped before `bind`: the node stops first
    let body = |subject: &str, host: &str| {
        clean(subject).replace(
            "See you at lunch on Friday.",
            &format!("See https://www.{host}/offer and http://{host}/x for details."),
        )
    };
    assert_eq!(
        s.send("alice@sender.test", &body("Listed link", "evil.example"))["code"],
        250
    );
    let listed = s.relayed("Listed link");
    assert!(
        symbols_of(&listed).contains("URIBL_LISTED(4.00)"),
        "{listed}"
    );
    assert!(
        !symbols_of(&listed).contains("URIBL_LISTED_MULTI"),
        "one domain: {listed}"
    );

    for (subject, host) in [
        ("Clean link", "good.example"),
        ("Refused link", "refused.example"),
    ] {
        assert_eq!(
            s.send("alice@sender.test", &body(subject, host))["code"],
            250
        );
        let relayed = s.relayed(subject);
        assert!(!symbols_of(&relayed).contains("URIBL"), "{relayed}");
    }
}
