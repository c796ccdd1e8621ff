use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT};
use serde_json::json;

use super::*;
use crate::rule::Action;

fn author(node: &str) -> Author {
    Author {
        node: node.to_string(),
        admin: "alice".to_string(),
    }
}

fn rule(id: &str, priority: i64) -> Rule {
    let value = json!({
        "id": id, "name": format!("rule {id}"), "priority": priority,
        "when": { "field": "subject", "op": "contains", "value": "viagra" },
        "action": "quarantine", "reason": "pharma"
    });
    Rule::from_json(&value).expect("valid test rule")
}

fn book_with(rules: &[Rule]) -> RuleBook {
    let mut book = RuleBook::new();
    for (n, rule) in rules.iter().enumerate() {
        book.create(rule.clone(), &author("n1"), 1_000 + n as u64)
            .expect("create");
    }
    book
}

fn ids(book: &RuleBook) -> Vec<String> {
    book.list().into_iter().map(|rule| rule.id).collect()
}

/// Merges both ways so that `a` and `b` end with the same changes.
fn merge_both(a: &mut RuleBook, b: &mut RuleBook) {
    a.merge(b).expect("merge into a");
    b.merge(a).expect("merge into b");
}

/// Runs the sync protocol between `a` and `b` until neither has anything to send.
fn sync_pair(a: &mut RuleBook, b: &mut RuleBook) {
    let (mut a_session, mut b_session) = (SyncSession::new(), SyncSession::new());
    for _ in 0..32 {
        let a_to_b = a_session.generate(a);
        if let Some(message) = &a_to_b {
            b_session.receive(b, message).expect("b receives");
        }
        let b_to_a = b_session.generate(b);
        if let Some(message) = &b_to_a {
            a_session.receive(a, message).expect("a receives");
        }
        if a_to_b.is_none() && b_to_a.is_none() {
            return;
        }
    }
    panic!("sync did not finish in 32 rounds");
}

fn assert_converged(books: &[&RuleBook]) {
    let first = books[0];
    for book in &books[1..] {
        assert_eq!(book.list(), first.list());
        assert_eq!(book.digest(), first.digest());
        assert_eq!(book.history(), first.history());
    }
}

#[test]
fn create_get_and_list_in_evaluation_order() {
    let book = book_with(&[rule("r-c", 10), rule("r-b", 20), rule("r-a", 20)]);
    assert_eq!(ids(&book), ["r-c", "r-a", "r-b"]);
    assert_eq!(book.get("r-b"), Some(rule("r-b", 20)));
    assert_eq!(book.get("r-zz"), None);
}

#[test]
fn create_refuses_an_existing_id() {
    let mut book = book_with(&[rule("r-a", 1)]);
    let error = book
        .create(rule("r-a", 2), &author("n1"), 5)
        .expect_err("exists");
    assert!(
        matches!(error, RuleBookError::AlreadyExists(ref id) if id == "r-a"),
        "{error}"
    );
    assert_eq!(book.get("r-a"), Some(rule("r-a", 1)));
}

#[test]
fn create_assigns_an_id_when_absent() {
    let mut book = RuleBook::new();
    let mut unnamed = rule("r-x", 1);
    unnamed.id.clear();
    let first = book
        .create(unnamed.clone(), &author("n1"), 1_700_000_000_000)
        .expect("create");
    let second = book
        .create(unnamed, &author("n1"), 1_700_000_000_000)
        .expect("create again");
    assert!(first.id.starts_with("r-01"), "{}", first.id);
    assert_ne!(
        first.id, second.id,
        "the heads differ between the two creates"
    );
    assert_eq!(book.get(&first.id), Some(first));
}

#[test]
fn create_refuses_an_invalid_rule() {
    let mut bad = rule("r-a", 1);
    bad.name = String::new();
    let error = RuleBook::new()
        .create(bad, &author("n1"), 1)
        .expect_err("invalid");
    assert_eq!(error.to_string(), "invalid rule: name: must not be empty");
}

#[test]
fn create_returns_the_canonical_rule() {
    let mut book = RuleBook::new();
    let mut odd = rule("r-a", 1);
    odd.when = Condition::Match(crate::rule::Match {
        field: crate::rule::Field::Dnsbl("ZEN.Example.".into()),
        op: crate::rule::Op::Exists,
        value: crate::rule::MatchValue::None,
        negate: false,
        case_sensitive: false,
    });
    let stored = book.create(odd, &author("n1"), 1).expect("create");
    assert_eq!(book.get("r-a"), Some(stored.clone()));
    assert_eq!(stored.dnsbl_zones(), vec!["zen.example"]);
}

use crate::rule::Condition;

#[test]
fn update_writes_only_changed_fields() {
    let mut book = book_with(&[rule("r-a", 1)]);
    let mut edited = rule("r-a", 7);
    edited.reason = "new reason".into();
    let stored = book
        .update("r-a", edited.clone(), &author("n2"), 2_000)
        .expect("update");
    assert_eq!(stored, edited);
    assert_eq!(book.get("r-a"), Some(edited));
    let last = book.history().pop().expect("an entry");
    assert_eq!(last.op, ChangeOp::Update);
    assert_eq!(last.fields, ["priority", "reason"]);
    assert_eq!(last.node, "n2");
}

#[test]
fn update_without_change_commits_nothing() {
    let mut book = book_with(&[rule("r-a", 1)]);
    let before = book.digest();
    book.update("r-a", rule("r-a", 1), &author("n1"), 2_000)
        .expect("update");
    assert_eq!(book.digest(), before);
    assert_eq!(book.history().len(), 1);
}

#[test]
fn update_takes_the_id_from_the_path() {
    let mut book = book_with(&[rule("r-a", 1)]);
    let mut body = rule("r-a", 3);
    body.id.clear();
    let stored = book.update("r-a", body, &author("n1"), 2).expect("update");
    assert_eq!(stored.id, "r-a");
    let error = book
        .update("r-a", rule("r-b", 3), &author("n1"), 3)
        .expect_err("mismatch");
    assert!(matches!(error, RuleBookError::IdMismatch { .. }), "{error}");
}

#[test]
fn update_sets_and_clears_the_subject_prefix() {
    let mut book = book_with(&[rule("r-a", 1)]);
    let mut tagged = rule("r-a", 1);
    tagged.action = Action::Tag;
    tagged.subject_prefix = Some("[SPAM] ".into());
    book.update("r-a", tagged.clone(), &author("n1"), 2_000)
        .expect("tag");
    assert_eq!(book.get("r-a"), Some(tagged.clone()));
    tagged.subject_prefix = None;
    book.update("r-a", tagged.clone(), &author("n1"), 3_000)
        .expect("untag");
    assert_eq!(book.get("r-a"), Some(tagged));
    let last = book.history().pop().expect("an entry");
    assert_eq!(last.fields, ["subject_prefix"]);
}

#[test]
fn update_and_delete_of_unknown_rule_are_not_found() {
    let mut book = book_with(&[rule("r-a", 1)]);
    let error = book
        .update("r-b", rule("r-b", 1), &author("n1"), 2)
        .expect_err("absent");
    assert_eq!(error.to_string(), "rule \"r-b\" not found");
    let error = book.delete("r-b", &author("n1"), 2).expect_err("absent");
    assert!(matches!(error, RuleBookError::NotFound(_)), "{error}");
    let error = book
        .delete("bad id", &author("n1"), 2)
        .expect_err("invalid id");
    assert!(
        error
            .to_string()
            .starts_with("invalid rule id \"bad id\": invalid character ' '"),
        "{error}"
    );
}

#[test]
fn delete_removes_the_rule() {
    let mut book = book_with(&[rule("r-a", 1), rule("r-b", 2)]);
    book.delete("r-a", &author("n1"), 5).expect("delete");
    assert_eq!(ids(&book), ["r-b"]);
    let error = book.delete("r-a", &author("n1"), 6).expect_err("gone");
    assert!(matches!(error, RuleBookError::NotFound(_)));
}

#[test]
fn history_records_who_what_and_when_in_order() {
    let mut book = RuleBook::new();
    book.create(rule("r-a", 1), &author("n1"), 3_000)
        .expect("create");
    book.update(
        "r-a",
        rule("r-a", 2),
        &Author {
            node: "n2".into(),
            admin: "bob".into(),
        },
        4_000,
    )
    .expect("update");
    book.delete("r-a", &author("n3"), 5_000).expect("delete");
    let history = book.history();
    let summary: Vec<_> = history
        .iter()
        .map(|e| {
            (
                e.time_ms,
                e.node.as_str(),
                e.admin.as_str(),
                e.op,
                e.rule_id.as_str(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (3_000, "n1", "alice", ChangeOp::Create, "r-a"),
            (4_000, "n2", "bob", ChangeOp::Update, "r-a"),
            (5_000, "n3", "alice", ChangeOp::Delete, "r-a"),
        ]
    );
    assert_eq!(
        history[0].fields,
        ["name", "enabled", "priority", "when", "action", "reason"]
    );
    assert!(history[2].fields.is_empty());
    assert!(history.iter().all(|e| e.change_hash.len() == 64));
}

#[test]
fn history_serialises_for_the_admin_api() {
    let book = book_with(&[rule("r-a", 1)]);
    let value = serde_json::to_value(book.history()).expect("serialise");
    assert_eq!(value[0]["op"], "create");
    assert_eq!(value[0]["rule_id"], "r-a");
    assert_eq!(value[0]["time_ms"], 1_000);
}

#[test]
fn save_and_load_round_trip() {
    let book = book_with(&[rule("r-a", 1), rule("r-b", 2)]);
    let loaded = RuleBook::load(&book.save()).expect("load");
    assert_converged(&[&book, &loaded]);
    let empty = RuleBook::load(&RuleBook::new().save()).expect("load empty");
    assert!(empty.list().is_empty());
}

#[test]
fn load_refuses_garbage() {
    let error = RuleBook::load(b"not an automerge document").expect_err("garbage");
    assert!(
        error.to_string().starts_with("cannot load rule book: "),
        "{error}"
    );
}

#[test]
fn digest_tracks_the_heads() {
    let mut a = book_with(&[rule("r-a", 1)]);
    let mut b = RuleBook::new();
    assert_ne!(a.digest(), b.digest());
    b.merge(&mut a).expect("merge");
    assert_eq!(a.digest(), b.digest());
    b.delete("r-a", &author("n2"), 9).expect("delete");
    assert_ne!(a.digest(), b.digest());
}

#[test]
fn undecodable_entries_are_skipped() {
    let mut book = book_with(&[rule("r-good", 1)]);
    book.doc
        .transact::<_, _, AutomergeError>(|tx| {
            let future = tx.put_object(ROOT, "rule:r-future", ObjType::Map)?;
            tx.put(&future, "v", 2)?;
            tx.put(&future, "name", "from the future")?;
            let broken = tx.put_object(ROOT, "rule:r-broken", ObjType::Map)?;
            tx.put(&broken, "v", 1)?;
            tx.put(&broken, "name", "broken")?;
            tx.put(&broken, "priority", "high")?;
            tx.put(&broken, "when", "{not json")?;
            tx.put(ROOT, "rule:r-scalar", "not a map")?;
            tx.put(ROOT, "unrelated", 1)?;
            Ok(())
        })
        .expect("raw writes");
    assert_eq!(ids(&book), ["r-good"]);
    assert_eq!(book.get("r-future"), None);
    assert_eq!(book.get("r-broken"), None);
    let error = book
        .update("r-future", rule("r-future", 1), &author("n1"), 9)
        .expect_err("unreadable");
    assert!(matches!(error, RuleBookError::NotFound(_)));
    book.delete("r-broken", &author("n1"), 9)
        .expect("an unreadable entry can still be deleted");
}

/// A newer version's rule (a key this version does not know beside the known ones, or a
/// field, op or action inside them it does not know) is never applied here in a narrower
/// or different reading: it is skipped, as if absent, while the rest of the book applies.
#[test]
fn rules_with_newer_parts_are_skipped_not_misread() {
    let mut book = book_with(&[rule("r-good", 1)]);
    let when = r#"{"field":"subject","op":"contains","value":"x"}"#;
    book.doc
        .transact::<_, _, AutomergeError>(|tx| {
            // Same schema version, one key more: e.g. a later `domains` restriction that
            // this version would ignore and so apply the rule to every domain.
            let wider = tx.put_object(ROOT, "rule:r-newer-key", ObjType::Map)?;
            for (key, value) in [("name", "newer key"), ("when", when), ("action", "reject")] {
                tx.put(&wider, key, value)?;
            }
            tx.put(&wider, "v", 1)?;
            tx.put(&wider, "enabled", true)?;
            tx.put(&wider, "priority", 1)?;
            tx.put(&wider, "reason", "")?;
            tx.put(&wider, "domains", r#"["example.org"]"#)?;
            let field = tx.put_object(ROOT, "rule:r-newer-field", ObjType::Map)?;
            tx.put(&field, "v", 1)?;
            tx.put(&field, "name", "newer field")?;
            tx.put(
                &field,
                "when",
                r#"{"field":"arc","op":"equals","value":"pass"}"#,
            )?;
            tx.put(&field, "action", "accept")?;
            let action = tx.put_object(ROOT, "rule:r-newer-action", ObjType::Map)?;
            tx.put(&action, "v", 1)?;
            tx.put(&action, "name", "newer action")?;
            tx.put(&action, "when", when)?;
            tx.put(&action, "action", "redirect")?;
            Ok(())
        })
        .expect("raw writes");
    assert_eq!(ids(&book), ["r-good"]);
    for id in ["r-newer-key", "r-newer-field", "r-newer-action"] {
        assert_eq!(book.get(id), None, "{id}");
    }
}

mod concurrency;
mod sync_and_merge;
