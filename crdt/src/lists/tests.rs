use serde_json::json;

use super::*;
use crate::rulebook::{Author, RuleBook, RuleBookError};

fn entry(kind: &str, sender: &str, scope: &str) -> ListEntry {
    ListEntry::from_json(&json!({"kind": kind, "sender": sender, "scope": scope})).unwrap()
}

fn author() -> Author {
    Author {
        node: "n1".into(),
        admin: "admin".into(),
    }
}

#[test]
fn sender_patterns_match_address_domain_and_subdomains() {
    let exact = entry("allow", "News@Shop.example", "*");
    assert!(exact.matches("news@shop.example", "a@b.example"));
    assert!(exact.matches("NEWS@SHOP.EXAMPLE", "a@b.example"));
    assert!(!exact.matches("other@shop.example", "a@b.example"));
    for domain in ["shop.example", "@shop.example"] {
        let e = entry("allow", domain, "*");
        assert!(e.matches("anyone@shop.example", "a@b.example"), "{domain}");
        assert!(
            !e.matches("anyone@mail.shop.example", "a@b.example"),
            "{domain}"
        );
        assert!(
            !e.matches("anyone@evilshop.example", "a@b.example"),
            "{domain}"
        );
    }
    let sub = entry("allow", "*.shop.example", "*");
    assert!(sub.matches("a@shop.example", "x@y.example"));
    assert!(sub.matches("a@mail.shop.example", "x@y.example"));
    assert!(!sub.matches("a@evilshop.example", "x@y.example"));
}

#[test]
fn scopes_are_one_recipient_a_domain_or_everyone() {
    let one = entry("deny", "spam.example", "Alice@Corp.example");
    assert!(one.matches("x@spam.example", "alice@corp.example"));
    assert!(!one.matches("x@spam.example", "bob@corp.example"));
    let domain = entry("deny", "spam.example", "corp.example");
    assert!(domain.matches("x@spam.example", "bob@corp.example"));
    assert!(!domain.matches("x@spam.example", "bob@sub.corp.example"));
    let all = entry("deny", "spam.example", "*");
    assert!(all.matches("x@spam.example", "anyone@else.example"));
}

#[test]
fn invalid_entries_name_the_field() {
    let bad = |value: serde_json::Value| ListEntry::from_json(&value).unwrap_err().field;
    let ok = json!({"kind": "allow", "sender": "a@b.example", "scope": "*"});
    let with = |k: &str, v: serde_json::Value| {
        let mut o = ok.clone();
        o[k] = v;
        o
    };
    assert_eq!(bad(with("kind", json!("maybe"))), "kind");
    assert_eq!(bad(with("sender", json!(""))), "sender");
    assert_eq!(bad(with("sender", json!("a b@c"))), "sender");
    assert_eq!(bad(with("sender", json!("*@x.example"))), "sender");
    assert_eq!(bad(with("scope", json!("not a domain"))), "scope");
    assert_eq!(bad(with("scope", json!(7))), "scope");
    assert_eq!(bad(with("id", json!("no/pe"))), "id");
    assert_eq!(bad(with("extra", json!(1))), "extra");
    assert_eq!(bad(json!([1])), "entry");
    let long = format!("{}@b.example", "a".repeat(LIST_FIELD_BYTES_MAX));
    assert_eq!(bad(with("sender", json!(long))), "sender");
}

#[test]
fn deny_wins_and_allow_needs_every_recipient() {
    let mut allow = entry("allow", "friend@x.example", "alice@corp.example");
    allow.id = "A".into();
    let mut deny = entry("deny", "x.example", "bob@corp.example");
    deny.id = "D".into();
    let entries = vec![allow, deny];
    let rcpt = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let from = "friend@x.example";
    assert_eq!(
        list_decision(&entries, from, &rcpt(&["alice@corp.example"])),
        Some((ListKind::Allow, "A".into()))
    );
    assert_eq!(
        list_decision(
            &entries,
            from,
            &rcpt(&["alice@corp.example", "bob@corp.example"])
        ),
        Some((ListKind::Deny, "D".into()))
    );
    assert_eq!(
        list_decision(
            &entries,
            from,
            &rcpt(&["alice@corp.example", "carol@corp.example"])
        ),
        None
    );
    assert_eq!(list_decision(&entries, from, &[]), None);
}

#[test]
fn concurrent_adds_both_survive_and_delete_wins() {
    let mut a = RuleBook::new();
    let base = a
        .add_list_entry(entry("allow", "a@x.example", "*"), &author(), 1_000)
        .unwrap();
    let mut b = a.fork();
    let on_a = a
        .add_list_entry(entry("deny", "y.example", "corp.example"), &author(), 2_000)
        .unwrap();
    let on_b = b
        .add_list_entry(
            entry("allow", "*.z.example", "u@corp.example"),
            &author(),
            2_000,
        )
        .unwrap();
    b.delete_list_entry(&base.id, &author(), 2_500).unwrap();
    a.merge(&mut b).unwrap();
    b.merge(&mut a).unwrap();
    let ids = |book: &RuleBook| {
        book.list_entries()
            .into_iter()
            .map(|e| e.id)
            .collect::<Vec<_>>()
    };
    let mut expected = vec![on_a.id.clone(), on_b.id.clone()];
    expected.sort();
    assert_eq!(ids(&a), expected);
    assert_eq!(ids(&b), expected);
    assert_eq!(a.digest(), b.digest());
    // A replica from an empty book receives the delete with the log: no resurrection.
    let mut fresh = RuleBook::new();
    fresh.merge(&mut a).unwrap();
    assert_eq!(ids(&fresh), expected);
    assert!(a.list().is_empty(), "list entries are not rules");
    let history = a.history();
    assert!(
        history
            .iter()
            .any(|h| h.rule_id == format!("list:{}", base.id))
    );
}

#[test]
fn delete_of_unknown_entry_and_duplicate_add_are_errors() {
    let mut book = RuleBook::new();
    let stored = book
        .add_list_entry(entry("allow", "a@x.example", "*"), &author(), 1)
        .unwrap();
    let again = book.add_list_entry(stored.clone(), &author(), 2);
    assert!(matches!(again, Err(RuleBookError::AlreadyExists(_))));
    book.delete_list_entry(&stored.id, &author(), 3).unwrap();
    let gone = book.delete_list_entry(&stored.id, &author(), 4);
    assert!(matches!(gone, Err(RuleBookError::NotFound(_))));
}
