//! Golden-style tables: one sample message, then (condition, expected) per field and op.

use std::collections::BTreeMap;
use std::net::IpAddr;

use mxmesh_crdt::rule::{Condition, Field, Match, MatchValue, Op};
use serde_json::{Value, json};

use super::*;
use crate::filter::facts::AttachmentFacts;

fn ip(text: &str) -> IpAddr {
    text.parse().expect("test address")
}

fn sample() -> MessageFacts {
    let mut dnsbl = BTreeMap::new();
    dnsbl.insert(
        "zen.spamhaus.org".to_string(),
        vec!["127.0.0.2".to_string()],
    );
    dnsbl.insert(
        "BL.Example.".to_string(),
        vec!["127.0.0.4".to_string(), "127.0.0.10".to_string()],
    );
    dnsbl.insert("clean.example".to_string(), Vec::new());
    let header = |name: &str, value: &str| (name.to_string(), value.to_string());
    MessageFacts {
        from: "Alice@Example.com".into(),
        to: vec!["bob@corp.example".into(), "carol@corp.example".into()],
        helo: "mail.example.com".into(),
        client_ip: ip("203.0.113.7"),
        size: 12_345,
        headers: vec![
            header("Subject", "Cheap VIAGRA now"),
            header("X-Spam", "yes"),
            header("Received", "from a.example"),
            header("received", "from b.example"),
            header("X-Empty", ""),
        ],
        subject: "Cheap VIAGRA now".into(),
        body_text: "Hello Bob\nclick here to win".into(),
        attachments: vec![
            AttachmentFacts {
                name: "Invoice.EXE".into(),
                ext: "exe".into(),
                detected_type: "application/x-msdownload".into(),
                encrypted: false,
            },
            AttachmentFacts {
                name: "notes.txt".into(),
                ext: "txt".into(),
                detected_type: "text/plain".into(),
                encrypted: false,
            },
        ],
        dnsbl,
        spf: Some("fail".into()),
        dkim: Some("pass".into()),
        dmarc: None,
        virus: None,
        archive_bomb: false,
        ..MessageFacts::default()
    }
}

fn rule_json(id: &str, priority: i64, when: Value, action: &str) -> Value {
    json!({ "id": id, "name": format!("rule {id}"), "priority": priority, "when": when,
            "action": action, "reason": format!("reason {id}") })
}

fn rule(id: &str, priority: i64, when: Value, action: &str) -> Rule {
    Rule::from_json(&rule_json(id, priority, when, action)).expect("valid test rule")
}

/// Whether a rule with condition `when` matches `facts`.
fn matches(when: &Value, facts: &MessageFacts) -> bool {
    let set = RuleSet::compile(&[rule("r-t", 1, when.clone(), "reject")]);
    assert!(set.skipped().is_empty(), "{:?}", set.skipped());
    set.evaluate(facts).rule_id.is_some()
}

/// Runs a golden table against `facts`; reports every mismatch at once.
fn check(facts: &MessageFacts, table: &[(Value, bool)]) {
    let wrong: Vec<String> = table
        .iter()
        .filter(|(when, expected)| matches(when, facts) != *expected)
        .map(|(when, expected)| format!("expected {expected} for {when}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

fn leaf(field: &str, op: &str, value: Value) -> Value {
    json!({ "field": field, "op": op, "value": value })
}

fn exists(field: &str) -> Value {
    json!({ "field": field, "op": "exists" })
}

#[test]
fn from_field() {
    check(
        &sample(),
        &[
            (leaf("from", "contains", json!("example.com")), true),
            (leaf("from", "equals", json!("alice@example.com")), true),
            (
                json!({ "field": "from", "op": "equals", "value": "alice@example.com", "case": true }),
                false,
            ),
            (leaf("from", "equals", json!("")), false),
            (leaf("from", "regex", json!("^alice@")), true),
            (
                leaf("from", "in", json!(["x@y", "ALICE@example.com"])),
                true,
            ),
            (exists("from"), true),
        ],
    );
    let null_sender = MessageFacts {
        from: String::new(),
        ..sample()
    };
    check(
        &null_sender,
        &[
            (leaf("from", "equals", json!("")), true),
            (exists("from"), false),
        ],
    );
}

#[test]
fn to_field_matches_any_recipient() {
    check(
        &sample(),
        &[
            (leaf("to", "contains", json!("carol")), true),
            (leaf("to", "equals", json!("BOB@corp.example")), true),
            (leaf("to", "in", json!(["dave@corp.example"])), false),
            (leaf("to", "regex", json!("^carol@")), true),
            (
                json!({ "field": "to", "op": "contains", "value": "corp", "not": true }),
                false,
            ),
            (
                json!({ "field": "to", "op": "contains", "value": "dave", "not": true }),
                true,
            ),
            (exists("to"), true),
        ],
    );
    check(
        &MessageFacts::default(),
        &[
            (exists("to"), false),
            (leaf("to", "contains", json!("a")), false),
        ],
    );
}

#[test]
fn header_field() {
    check(
        &sample(),
        &[
            (leaf("header:x-spam", "equals", json!("YES")), true),
            (leaf("header:X-SPAM", "equals", json!("no")), false),
            (
                leaf("header:Received", "contains", json!("b.example")),
                true,
            ),
            (
                leaf("header:received", "contains", json!("a.example")),
                true,
            ),
            (leaf("header:Received", "regex", json!("^from c")), false),
            (exists("header:X-Missing"), false),
            (exists("header:X-Empty"), true),
            (leaf("header:X-Empty", "equals", json!("")), true),
            (
                json!({ "field": "header:X-Spam", "op": "exists", "not": true }),
                false,
            ),
        ],
    );
}

#[test]
fn subject_and_body_fields() {
    check(
        &sample(),
        &[
            (leaf("subject", "contains", json!("viagra")), true),
            (
                json!({ "field": "subject", "op": "contains", "value": "viagra", "case": true }),
                false,
            ),
            (
                json!({ "field": "subject", "op": "contains", "value": "VIAGRA", "case": true }),
                true,
            ),
            (leaf("subject", "regex", json!("^cheap\\s+viagra")), true),
            (leaf("subject", "equals", json!("cheap viagra now")), true),
            (leaf("body", "contains", json!("CLICK HERE")), true),
            (leaf("body", "regex", json!("^click")), false),
            (leaf("body", "regex", json!("(?m)^click")), true),
            (exists("body"), true),
        ],
    );
    check(
        &MessageFacts::default(),
        &[(exists("subject"), false), (exists("body"), false)],
    );
}

#[test]
fn attachment_fields_match_any_attachment() {
    check(
        &sample(),
        &[
            (
                leaf("attachment.name", "equals", json!("invoice.exe")),
                true,
            ),
            (leaf("attachment.name", "regex", json!("\\.txt$")), true),
            (leaf("attachment.ext", "in", json!(["exe", "js"])), true),
            (leaf("attachment.ext", "equals", json!("js")), false),
            (
                leaf("attachment.type", "contains", json!("msdownload")),
                true,
            ),
            (
                leaf("attachment.type", "equals", json!("application/pdf")),
                false,
            ),
            (exists("attachment.name"), true),
            (exists("attachment.type"), true),
        ],
    );
    check(
        &MessageFacts::default(),
        &[
            (exists("attachment.name"), false),
            (leaf("attachment.ext", "in", json!(["exe"])), false),
            (
                json!({ "field": "attachment.ext", "op": "in", "value": ["exe"], "not": true }),
                true,
            ),
        ],
    );
}

#[test]
fn size_field() {
    check(
        &sample(),
        &[
            (leaf("size", "gt", json!(10_000)), true),
            (leaf("size", "gt", json!(12_345)), false),
            (leaf("size", "lt", json!(10_000)), false),
            (leaf("size", "lt", json!(12_346)), true),
            (leaf("size", "equals", json!(12_345)), true),
            (
                json!({ "field": "size", "op": "gt", "value": 10_000, "not": true }),
                false,
            ),
        ],
    );
}

#[test]
fn client_ip_field() {
    check(
        &sample(),
        &[
            (leaf("client_ip", "in_cidr", json!("203.0.113.0/24")), true),
            (
                leaf(
                    "client_ip",
                    "in_cidr",
                    json!(["10.0.0.0/8", "192.168.0.0/16"]),
                ),
                false,
            ),
            (
                leaf("client_ip", "in_cidr", json!(["10.0.0.0/8", "203.0.113.7"])),
                true,
            ),
            (leaf("client_ip", "equals", json!("203.0.113.7")), true),
            (leaf("client_ip", "equals", json!("203.0.113.8")), false),
            (
                leaf("client_ip", "in", json!(["192.0.2.1", "203.0.113.7"])),
                true,
            ),
            (
                leaf("client_ip", "equals", json!("::ffff:203.0.113.7")),
                true,
            ),
        ],
    );
    let mapped = MessageFacts {
        client_ip: ip("::ffff:203.0.113.7"),
        ..sample()
    };
    check(
        &mapped,
        &[
            (leaf("client_ip", "in_cidr", json!("203.0.113.0/24")), true),
            (leaf("client_ip", "equals", json!("203.0.113.7")), true),
            (leaf("client_ip", "in_cidr", json!("::ffff:0:0/96")), true),
        ],
    );
    let v6 = MessageFacts {
        client_ip: ip("2001:db8::25"),
        ..sample()
    };
    check(
        &v6,
        &[
            (leaf("client_ip", "in_cidr", json!("2001:db8::/32")), true),
            (leaf("client_ip", "in_cidr", json!("203.0.113.0/24")), false),
        ],
    );
}

#[test]
fn helo_field() {
    check(
        &sample(),
        &[
            (leaf("helo", "equals", json!("MAIL.example.com")), true),
            (leaf("helo", "regex", json!("^\\[?\\d+\\.")), false),
            (exists("helo"), true),
        ],
    );
}

#[test]
fn dnsbl_field() {
    check(
        &sample(),
        &[
            (exists("dnsbl:zen.spamhaus.org"), true),
            (exists("dnsbl:ZEN.spamhaus.org."), true),
            (exists("dnsbl:bl.example"), true),
            (exists("dnsbl:clean.example"), false),
            (exists("dnsbl:never-queried.example"), false),
            (
                leaf("dnsbl:zen.spamhaus.org", "equals", json!("127.0.0.2")),
                true,
            ),
            (
                leaf(
                    "dnsbl:zen.spamhaus.org",
                    "in",
                    json!(["127.0.0.3", "127.0.0.9"]),
                ),
                false,
            ),
            (
                leaf("dnsbl:bl.example", "equals", json!("127.0.0.10")),
                true,
            ),
            (
                leaf("dnsbl:bl.example", "contains", json!("127.0.0.")),
                true,
            ),
            (
                json!({ "field": "dnsbl:clean.example", "op": "exists", "not": true }),
                true,
            ),
        ],
    );
}

#[test]
fn authentication_result_fields() {
    check(
        &sample(),
        &[
            (leaf("spf", "equals", json!("fail")), true),
            (leaf("spf", "in", json!(["softfail", "fail"])), true),
            (leaf("dkim", "equals", json!("PASS")), true),
            (exists("dkim"), true),
            (exists("dmarc"), false),
            (leaf("dmarc", "equals", json!("none")), false),
            (
                json!({ "field": "dmarc", "op": "exists", "not": true }),
                true,
            ),
        ],
    );
}

#[test]
fn virus_and_archive_bomb_fields() {
    check(
        &sample(),
        &[
            (exists("virus"), false),
            (exists("archive.bomb"), false),
            (leaf("archive.bomb", "equals", json!("true")), false),
            (leaf("archive.bomb", "equals", json!("false")), true),
        ],
    );
    let infected = MessageFacts {
        virus: Some("Eicar-Test-Signature".into()),
        archive_bomb: true,
        ..sample()
    };
    check(
        &infected,
        &[
            (exists("virus"), true),
            (leaf("virus", "contains", json!("eicar")), true),
            (exists("archive.bomb"), true),
            (leaf("archive.bomb", "equals", json!(true)), true),
        ],
    );
}

#[test]
fn combinators() {
    let viagra = leaf("subject", "contains", json!("viagra"));
    let internal = leaf("client_ip", "in_cidr", json!("10.0.0.0/8"));
    let exe = leaf("attachment.ext", "in", json!(["exe", "js"]));
    check(
        &sample(),
        &[
            (json!({ "all": [viagra, exe] }), true),
            (json!({ "all": [viagra, internal] }), false),
            (json!({ "any": [internal, exe] }), true),
            (json!({ "any": [internal] }), false),
            (json!({ "not": internal }), true),
            (json!({ "not": { "not": viagra } }), true),
            (
                json!({ "all": [viagra, { "any": [internal, { "not": exe }] }] }),
                false,
            ),
            (json!({ "all": [viagra, { "any": [internal, exe] }] }), true),
        ],
    );
}

#[test]
fn first_match_in_priority_order_decides() {
    let spam = leaf("subject", "contains", json!("viagra"));
    let never = leaf("subject", "contains", json!("no such words"));
    let rules = [
        rule("r-late", 30, spam.clone(), "reject"),
        rule("r-b", 20, spam.clone(), "tempfail"),
        rule("r-a", 20, spam.clone(), "quarantine"),
        rule("r-early", 10, never, "reject"),
    ];
    let verdict = RuleSet::compile(&rules).evaluate(&sample());
    assert_eq!(
        verdict,
        Verdict {
            action: Action::Quarantine,
            rule_id: Some("r-a".into()),
            rule_name: Some("rule r-a".into()),
            reason: "reason r-a".into(),
            subject_prefix: None,
        }
    );
}

#[test]
fn disabled_rules_are_left_out() {
    let spam = leaf("subject", "contains", json!("viagra"));
    let mut disabled = rule("r-off", 1, spam.clone(), "reject");
    disabled.enabled = false;
    let rules = [disabled, rule("r-on", 50, spam, "quarantine")];
    let set = RuleSet::compile(&rules);
    assert_eq!(set.len(), 1);
    assert_eq!(set.evaluate(&sample()).rule_id.as_deref(), Some("r-on"));
}

#[test]
fn no_match_accepts() {
    let set = RuleSet::compile(&[rule(
        "r-x",
        1,
        leaf("size", "gt", json!(1_000_000)),
        "reject",
    )]);
    assert_eq!(set.evaluate(&sample()), Verdict::no_match());
    assert_eq!(
        RuleSet::default().evaluate(&sample()).action,
        Action::Accept
    );
    assert!(RuleSet::default().is_empty());
}

#[test]
fn tag_verdict_carries_the_subject_prefix() {
    let mut value = rule_json("r-tag", 1, leaf("spf", "equals", json!("fail")), "tag");
    value["subject_prefix"] = json!("[SPF FAIL] ");
    let tag = Rule::from_json(&value).expect("valid");
    let verdict = RuleSet::compile(&[tag]).evaluate(&sample());
    assert_eq!(verdict.action, Action::Tag);
    assert_eq!(verdict.subject_prefix.as_deref(), Some("[SPF FAIL] "));
}

#[test]
fn a_rule_that_fails_to_compile_is_skipped_and_reported() {
    let mut broken = rule(
        "r-broken",
        1,
        leaf("subject", "contains", json!("x")),
        "reject",
    );
    broken.when = Condition::Match(Match {
        field: Field::Subject,
        op: Op::Regex,
        value: MatchValue::Text("(unclosed".into()),
        negate: false,
        case_sensitive: false,
    });
    let mut bad_ip = rule(
        "r-bad-ip",
        2,
        leaf("subject", "contains", json!("x")),
        "reject",
    );
    bad_ip.when = Condition::Match(Match {
        field: Field::ClientIp,
        op: Op::InCidr,
        value: MatchValue::List(vec!["not a network".into()]),
        negate: false,
        case_sensitive: false,
    });
    let good = rule(
        "r-good",
        3,
        leaf("subject", "contains", json!("viagra")),
        "quarantine",
    );
    let set = RuleSet::compile(&[broken, bad_ip, good]);
    let skipped: Vec<&str> = set.skipped().iter().map(|s| s.rule_id.as_str()).collect();
    assert_eq!(skipped, ["r-broken", "r-bad-ip"]);
    let message = set.skipped()[1].error.to_string();
    assert_eq!(
        message,
        "field client_ip: \"not a network\" is not a valid CIDR network"
    );
    assert_eq!(set.evaluate(&sample()).rule_id.as_deref(), Some("r-good"));
}

#[test]
fn dnsbl_zones_of_applied_rules() {
    let rules = [
        rule("r-1", 1, exists("dnsbl:zen.spamhaus.org"), "reject"),
        rule(
            "r-2",
            2,
            json!({ "any": [exists("dnsbl:B.example"), exists("spf")] }),
            "reject",
        ),
    ];
    let zones: Vec<String> = RuleSet::compile(&rules).dnsbl_zones().into_iter().collect();
    assert_eq!(zones, ["b.example", "zen.spamhaus.org"]);
}

#[test]
fn default_facts_come_from_the_unspecified_address() {
    let facts = MessageFacts::default();
    assert_eq!(facts.client_ip, ip("0.0.0.0"));
    assert!(facts.dnsbl.is_empty() && facts.spf.is_none() && !facts.archive_bomb);
}

#[test]
fn rule_sets_can_be_shared_across_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<RuleSet>();
    shareable::<Verdict>();
    shareable::<MessageFacts>();
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn facts() -> impl Strategy<Value = MessageFacts> {
        let to = proptest::collection::vec("[a-cA-C@.]{0,6}", 0..3);
        ("[a-cA-C ]{0,8}", to, 0u64..2_000).prop_map(|(subject, to, size)| MessageFacts {
            subject,
            to,
            size,
            ..MessageFacts::default()
        })
    }

    fn leaf_condition() -> impl Strategy<Value = Value> {
        prop_oneof![
            "[a-cA-C]{1,3}".prop_map(|needle| leaf("subject", "contains", json!(needle))),
            "[a-cA-C@.]{0,6}".prop_map(|value| leaf("to", "equals", json!(value))),
            (0u64..2_000).prop_map(|size| leaf("size", "gt", json!(size))),
            Just(exists("to")),
        ]
    }

    proptest! {
        #[test]
        fn negated_leaf_equals_not_of_leaf(when in leaf_condition(), facts in facts()) {
            let mut negated = when.clone();
            negated["not"] = json!(true);
            prop_assert_eq!(matches(&negated, &facts), matches(&json!({ "not": when }), &facts));
            prop_assert_ne!(matches(&negated, &facts), matches(&when, &facts));
        }

        #[test]
        fn contains_ignores_case_unless_asked(needle in "[a-cA-C]{1,3}", facts in facts()) {
            let expected = facts.subject.to_lowercase().contains(&needle.to_lowercase());
            prop_assert_eq!(matches(&leaf("subject", "contains", json!(needle)), &facts), expected);
            let exact = json!({ "field": "subject", "op": "contains", "value": needle, "case": true });
            prop_assert_eq!(matches(&exact, &facts), facts.subject.contains(&needle));
        }
    }
}

mod scored;
