use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT};
use proptest::prelude::*;
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

// ---- concurrency semantics (module documentation) ----

/// Two replicas of a book holding `rules`, as after a first sync.
fn two_replicas(rules: &[Rule]) -> (RuleBook, RuleBook) {
    let a = book_with(rules);
    let b = a.fork();
    (a, b)
}

#[test]
fn edits_to_different_rules_both_survive() {
    let (mut a, mut b) = two_replicas(&[rule("r-a", 1), rule("r-b", 2)]);
    a.update("r-a", rule("r-a", 10), &author("n1"), 2_000)
        .expect("edit a");
    b.update("r-b", rule("r-b", 20), &author("n2"), 2_000)
        .expect("edit b");
    merge_both(&mut a, &mut b);
    assert_converged(&[&a, &b]);
    assert_eq!(a.get("r-a").map(|r| r.priority), Some(10));
    assert_eq!(a.get("r-b").map(|r| r.priority), Some(20));
}

#[test]
fn edits_to_different_fields_of_one_rule_both_survive() {
    let (mut a, mut b) = two_replicas(&[rule("r-a", 1)]);
    let mut renamed = rule("r-a", 1);
    renamed.name = "renamed on a".into();
    a.update("r-a", renamed, &author("n1"), 2_000)
        .expect("edit a");
    let mut reprioritised = rule("r-a", 50);
    reprioritised.enabled = false;
    b.update("r-a", reprioritised, &author("n2"), 2_000)
        .expect("edit b");
    merge_both(&mut a, &mut b);
    assert_converged(&[&a, &b]);
    let merged = a.get("r-a").expect("present");
    assert_eq!(
        (merged.name.as_str(), merged.priority, merged.enabled),
        ("renamed on a", 50, false)
    );
}

#[test]
fn concurrent_writes_to_one_field_converge() {
    let (mut a, mut b) = two_replicas(&[rule("r-a", 1)]);
    a.update("r-a", rule("r-a", 10), &author("n1"), 2_000)
        .expect("edit a");
    b.update("r-a", rule("r-a", 20), &author("n2"), 2_000)
        .expect("edit b");
    let (mut a2, mut b2) = (a.fork(), b.fork());
    merge_both(&mut a, &mut b);
    b2.merge(&mut a2).expect("other order");
    assert_converged(&[&a, &b, &b2]);
    let priority = a.get("r-a").map(|r| r.priority);
    assert!(matches!(priority, Some(10) | Some(20)), "{priority:?}");
}

#[test]
fn delete_wins_over_a_concurrent_edit() {
    let (mut a, mut b) = two_replicas(&[rule("r-a", 1), rule("r-b", 2)]);
    a.delete("r-a", &author("n1"), 2_000).expect("delete on a");
    let mut edited = rule("r-a", 99);
    edited.reason = "edited on b".into();
    b.update("r-a", edited, &author("n2"), 2_001)
        .expect("edit on b");
    merge_both(&mut a, &mut b);
    assert_converged(&[&a, &b]);
    assert_eq!(ids(&a), ["r-b"]);
    let ops: Vec<_> = a.history().iter().map(|e| e.op).collect();
    assert_eq!(ops[ops.len() - 2..], [ChangeOp::Delete, ChangeOp::Update]);
}

#[test]
fn concurrent_creates_of_one_id_converge() {
    let mut a = RuleBook::new();
    let mut b = RuleBook::new();
    a.create(rule("r-same", 1), &author("n1"), 1_000)
        .expect("create a");
    b.create(rule("r-same", 2), &author("n2"), 1_000)
        .expect("create b");
    merge_both(&mut a, &mut b);
    assert_converged(&[&a, &b]);
    assert_eq!(ids(&a), ["r-same"]);
}

#[test]
fn sync_converges_two_replicas() {
    let (mut a, mut b) = two_replicas(&[rule("r-a", 1)]);
    a.create(rule("r-b", 2), &author("n1"), 2_000)
        .expect("create");
    b.update("r-a", rule("r-a", 5), &author("n2"), 2_000)
        .expect("update");
    sync_pair(&mut a, &mut b);
    assert_converged(&[&a, &b]);
    assert_eq!(ids(&a), ["r-b", "r-a"]);
}

#[test]
fn an_empty_replica_never_resurrects_a_deleted_rule() {
    let mut a = book_with(&[rule("r-a", 1), rule("r-b", 2)]);
    a.delete("r-a", &author("n1"), 2_000).expect("delete");
    let mut fresh = RuleBook::new();
    sync_pair(&mut fresh, &mut a);
    assert_converged(&[&a, &fresh]);
    assert_eq!(ids(&fresh), ["r-b"]);
}

#[test]
fn an_old_replica_never_resurrects_a_deleted_rule() {
    let (mut a, stale) = two_replicas(&[rule("r-a", 1)]);
    let stale_bytes = stale.save();
    a.delete("r-a", &author("n1"), 2_000).expect("delete");
    drop(stale);
    let mut returned = RuleBook::load(&stale_bytes).expect("old store");
    assert_eq!(ids(&returned), ["r-a"]);
    sync_pair(&mut returned, &mut a);
    assert_converged(&[&a, &returned]);
    assert!(returned.list().is_empty());
}

// ---- sync input is untrusted ----

#[test]
fn malformed_sync_messages_are_errors() {
    let mut book = book_with(&[rule("r-a", 1)]);
    let mut session = SyncSession::new();
    let error = session
        .receive(&mut book, b"\x42garbage")
        .expect_err("malformed");
    assert!(
        error.to_string().starts_with("malformed sync message: "),
        "{error}"
    );
    session.reset();
    let error = session.receive(&mut book, &[]).expect_err("empty");
    assert!(matches!(error, RuleBookError::SyncDecode(_)), "{error}");
    assert_eq!(ids(&book), ["r-a"]);
}

#[test]
fn oversized_sync_messages_are_refused_before_decoding() {
    let mut book = RuleBook::new();
    let huge = vec![0x42; SYNC_MESSAGE_BYTES_MAX + 1];
    let error = SyncSession::new()
        .receive(&mut book, &huge)
        .expect_err("too large");
    assert!(
        matches!(error, RuleBookError::SyncMessageTooLarge { .. }),
        "{error}"
    );
}

/// A real first sync message from a book with a few rules to an empty one.
fn real_message() -> Vec<u8> {
    let mut book = book_with(&[rule("r-a", 1), rule("r-b", 2)]);
    let (mut sender, mut receiver) = (SyncSession::new(), SyncSession::new());
    let hello = receiver.generate(&RuleBook::new()).expect("hello");
    sender.receive(&mut book, &hello).expect("receive hello");
    sender.generate(&book).expect("changes")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut book = book_with(&[rule("r-a", 1)]);
        let _ = SyncSession::new().receive(&mut book, &bytes);
        let _ = RuleBook::load(&bytes);
        prop_assert_eq!(ids(&book), ["r-a"]);
    }

    #[test]
    fn corrupted_real_messages_never_panic(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut message = real_message();
        for (at, byte) in flips {
            let at = at % message.len();
            message[at] = byte;
        }
        let mut book = RuleBook::new();
        let _ = SyncSession::new().receive(&mut book, &message);
        let _ = book.list();
    }
}

// ---- merge order does not matter ----

/// One step of a random scenario on three replicas.
#[derive(Debug, Clone)]
enum Step {
    Create {
        replica: usize,
        id: usize,
        priority: i64,
    },
    Rename {
        replica: usize,
        id: usize,
        name: u8,
    },
    Reprioritise {
        replica: usize,
        id: usize,
        priority: i64,
    },
    Toggle {
        replica: usize,
        id: usize,
    },
    Delete {
        replica: usize,
        id: usize,
    },
    Merge {
        into: usize,
        from: usize,
    },
}

const REPLICAS: usize = 3;
const IDS: usize = 4;

fn step() -> impl Strategy<Value = Step> {
    let replica = 0..REPLICAS;
    let id = 0..IDS;
    prop_oneof![
        (replica.clone(), id.clone(), -5i64..5).prop_map(|(replica, id, priority)| Step::Create {
            replica,
            id,
            priority
        }),
        (replica.clone(), id.clone(), any::<u8>()).prop_map(|(replica, id, name)| Step::Rename {
            replica,
            id,
            name
        }),
        (replica.clone(), id.clone(), -5i64..5).prop_map(|(replica, id, priority)| {
            Step::Reprioritise {
                replica,
                id,
                priority,
            }
        }),
        (replica.clone(), id.clone()).prop_map(|(replica, id)| Step::Toggle { replica, id }),
        (replica.clone(), id).prop_map(|(replica, id)| Step::Delete { replica, id }),
        (replica.clone(), replica).prop_map(|(into, from)| Step::Merge { into, from }),
    ]
}

fn rule_id(id: usize) -> String {
    format!("r-{id}")
}

/// Applies one step; refused operations (absent rule, existing id) are part of the scenario.
fn apply(books: &mut [RuleBook], step: &Step, now_ms: u64) {
    let edit = |books: &mut [RuleBook], replica: usize, id: usize, change: &dyn Fn(&mut Rule)| {
        let book = &mut books[replica];
        if let Some(mut current) = book.get(&rule_id(id)) {
            change(&mut current);
            book.update(&rule_id(id), current, &author("n"), now_ms)
                .expect("update of a present rule");
        }
    };
    match *step {
        Step::Create {
            replica,
            id,
            priority,
        } => {
            let _ = books[replica].create(rule(&rule_id(id), priority), &author("n"), now_ms);
        }
        Step::Rename { replica, id, name } => {
            edit(books, replica, id, &|r| r.name = format!("name {name}"))
        }
        Step::Reprioritise {
            replica,
            id,
            priority,
        } => edit(books, replica, id, &|r| r.priority = priority),
        Step::Toggle { replica, id } => edit(books, replica, id, &|r| r.enabled = !r.enabled),
        Step::Delete { replica, id } => {
            let _ = books[replica].delete(&rule_id(id), &author("n"), now_ms);
        }
        Step::Merge { into, from } if into != from => {
            let mut source = books[from].fork();
            books[into].merge(&mut source).expect("merge");
        }
        Step::Merge { .. } => {}
    }
}

/// Merges forks of `books` into a fresh book in the given order.
#[test]
fn settings_are_stored_merged_alike_and_audited() {
    let mut a = book_with(&[rule("r-a", 1)]);
    let mut b = a.fork();
    assert_eq!(a.setting("spam"), None);
    a.set_setting("spam", r#"{"tag":3}"#, &author("n1"), 2_000)
        .expect("set");
    assert_eq!(a.setting("spam").as_deref(), Some(r#"{"tag":3}"#));
    let heads = a.digest();
    a.set_setting("spam", r#"{"tag":3}"#, &author("n1"), 2_001)
        .expect("same again");
    assert_eq!(a.digest(), heads, "the same document again commits nothing");
    b.set_setting("spam", r#"{"tag":4}"#, &author("n2"), 2_000)
        .expect("set on b");
    merge_both(&mut a, &mut b);
    assert_eq!(
        a.setting("spam"),
        b.setting("spam"),
        "one value on every replica"
    );
    assert_eq!(ids(&a), ["r-a"], "rules untouched");
    let trail: Vec<_> = a
        .history()
        .into_iter()
        .filter(|e| e.rule_id == "settings:spam")
        .collect();
    assert_eq!(trail.len(), 2, "both writes audited");
}

fn merged_in_order(books: &[RuleBook], order: [usize; REPLICAS]) -> RuleBook {
    let mut target = RuleBook::new();
    for index in order {
        target.merge(&mut books[index].fork()).expect("merge");
    }
    target
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn merge_order_does_not_matter(steps in proptest::collection::vec(step(), 1..40)) {
        let base = book_with(&[rule(&rule_id(0), 0), rule(&rule_id(1), 1)]);
        let mut books: Vec<RuleBook> = (0..REPLICAS).map(|_| base.fork()).collect();
        for (n, step) in steps.iter().enumerate() {
            apply(&mut books, step, 10_000 + n as u64);
        }
        let orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
        let results: Vec<RuleBook> = orders.iter().map(|order| merged_in_order(&books, *order)).collect();
        for result in &results[1..] {
            prop_assert_eq!(result.list(), results[0].list());
            prop_assert_eq!(result.digest(), results[0].digest());
            prop_assert_eq!(result.history(), results[0].history());
        }
        // Pairwise merges in place reach the same state as well.
        let (first, rest) = books.split_at_mut(1);
        let (second, third) = rest.split_at_mut(1);
        merge_both(&mut first[0], &mut second[0]);
        merge_both(&mut second[0], &mut third[0]);
        merge_both(&mut first[0], &mut second[0]);
        prop_assert_eq!(first[0].list(), results[0].list());
        prop_assert_eq!(third[0].digest(), results[0].digest());
    }
}

#[test]
fn books_and_sessions_can_move_between_threads() {
    fn sendable<T: Send + Sync>() {}
    sendable::<RuleBook>();
    sendable::<SyncSession>();
    sendable::<RuleBookError>();
}

#[test]
fn a_fixed_actor_makes_runs_reproducible() {
    let run = || {
        let mut book = RuleBook::new().with_actor(b"sim-node-1-boot-1");
        let mut unnamed = rule("r-x", 1);
        unnamed.id.clear();
        let created = book.create(unnamed, &author("n1"), 42).expect("create");
        (created.id, book.digest(), book.history())
    };
    assert_eq!(run(), run());
}

/// Runs one sync conversation with long-lived sessions (as a node keeps them per peer).
fn converse(a: &mut RuleBook, sa: &mut SyncSession, b: &mut RuleBook, sb: &mut SyncSession) {
    for _ in 0..32 {
        let a_to_b = sa.generate(a);
        if let Some(message) = &a_to_b {
            sb.receive(b, message).expect("b receives");
        }
        let b_to_a = sb.generate(b);
        if let Some(message) = &b_to_a {
            sa.receive(a, message).expect("a receives");
        }
        if a_to_b.is_none() && b_to_a.is_none() {
            return;
        }
    }
    panic!("sync did not finish in 32 rounds");
}

#[test]
fn a_peer_that_restarts_without_what_it_was_sent_gets_it_again() {
    // `a` sends a change to `b`; `b` crashes before persisting it and comes back with its
    // older book and a new session, while `a` keeps its session for `b`. The sent change
    // must not be taken as delivered.
    let mut a = book_with(&[rule("r-1", 10)]);
    let mut b = RuleBook::new();
    let (mut sa, mut sb) = (SyncSession::new(), SyncSession::new());
    converse(&mut a, &mut sa, &mut b, &mut sb);
    let persisted = b.fork();
    a.create(rule("r-2", 20), &author("n1"), 2_000)
        .expect("create");
    converse(&mut a, &mut sa, &mut b, &mut sb);
    assert_converged(&[&a, &b]);

    let mut b = persisted; // the restart: the in-memory change is gone
    let mut sb = SyncSession::new();
    converse(&mut b, &mut sb, &mut a, &mut sa);
    assert_converged(&[&a, &b]);
}

#[test]
fn a_change_lost_in_flight_to_a_restarting_peer_is_sent_again() {
    // `a` sends `b` a change; `b` takes it in memory, crashes before storing it or
    // answering, and comes back with its older book and a new session, while `a` keeps
    // its session and believes the change sent. Without a restart of `a`'s side of the
    // conversation the two exchange heads forever and `b` never gets the change.
    let mut a = book_with(&[rule("r-1", 10)]);
    let mut b = RuleBook::new();
    let (mut sa, mut sb) = (SyncSession::new(), SyncSession::new());
    converse(&mut a, &mut sa, &mut b, &mut sb);
    let stored = b.fork();
    a.create(rule("r-2", 20), &author("n1"), 2_000)
        .expect("create");
    let in_flight = sa.generate(&a).expect("a sends the new change");
    sb.receive(&mut b, &in_flight).expect("b receives");

    let mut b = stored; // the restart: the change was only in memory
    let mut sb = SyncSession::new();
    converse(&mut b, &mut sb, &mut a, &mut sa);
    assert_converged(&[&a, &b]);
}
