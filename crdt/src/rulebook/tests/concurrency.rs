//! Concurrency semantics (the module documentation): concurrent edits, deletes and creates.

use super::*;

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
