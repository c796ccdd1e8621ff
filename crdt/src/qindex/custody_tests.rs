//! Adoption: the adopter's entry supersedes the previous owner's everywhere, whatever order
//! the two logs arrive in; the copy holders replicate and are checked; the successor is the
//! first holder that has not left.

use super::tests::{entry, sync};
use super::*;

fn adopted(by: &str, from: &str, id: &str) -> IndexEntry {
    IndexEntry {
        adopted_from: Some(from.into()),
        ..entry(by, id, 10)
    }
}

fn ids_and_owners(index: &QuarantineIndex) -> Vec<(String, String)> {
    let (items, _) = index.search(&IndexQuery::default());
    items
        .into_iter()
        .map(|e| (e.id.clone(), e.node.clone()))
        .collect()
}

#[test]
fn an_adoption_supersedes_the_previous_owners_entry_in_any_order() {
    let mut mx2 = QuarantineIndex::new();
    let held = IndexEntry {
        copies: vec!["mx3".into()],
        ..entry("mx2", "a", 10)
    };
    mx2.upsert_own("mx2", held).expect("own");
    mx2.upsert_own("mx2", entry("mx2", "b", 11)).expect("own");
    let mut mx3 = QuarantineIndex::new();
    mx3.upsert_own("mx3", adopted("mx3", "mx2", "a"))
        .expect("adopt");
    // A third replica learns the adoption first, then the old owner's log; another the
    // other way round. Both show one entry per message, the adopter's for `a`.
    let mut first = QuarantineIndex::new();
    sync(&mx3, &mut first, 100);
    sync(&mx2, &mut first, 100);
    let mut second = QuarantineIndex::new();
    sync(&mx2, &mut second, 100);
    sync(&mx3, &mut second, 100);
    for replica in [&first, &second] {
        let mut shown = ids_and_owners(replica);
        shown.sort();
        assert_eq!(
            shown,
            [("a".into(), "mx3".into()), ("b".into(), "mx2".into())]
        );
        assert_eq!(replica.get("a").map(|e| e.node.as_str()), Some("mx3"));
        let old = replica.get_of("mx2", "a").expect("still held");
        assert!(replica.superseded(old));
        assert_eq!(replica.live_unadopted_of("mx2").count(), 1, "only b");
    }
}

#[test]
fn copy_holders_replicate_and_are_checked() {
    let mut mx1 = QuarantineIndex::new();
    let with = IndexEntry {
        copies: vec!["mx2".into()],
        ..entry("mx1", "a", 10)
    };
    mx1.upsert_own("mx1", with).expect("own");
    let mut other = QuarantineIndex::new();
    sync(&mx1, &mut other, 100);
    assert_eq!(other.get("a").unwrap().copies, ["mx2"]);
    let too_many = IndexEntry {
        copies: (0..=COPIES_MAX).map(|n| format!("h{n}")).collect(),
        ..entry("mx1", "b", 10)
    };
    let err = mx1.upsert_own("mx1", too_many).unwrap_err();
    assert!(err.to_string().contains("copies"), "{err}");
    let bad = IndexEntry {
        adopted_from: Some(String::new()),
        ..entry("mx1", "c", 10)
    };
    let err = mx1.upsert_own("mx1", bad).unwrap_err();
    assert!(err.to_string().contains("adopted_from"), "{err}");
}

#[test]
fn the_successor_is_the_first_holder_that_has_not_left() {
    let e = IndexEntry {
        copies: vec!["mx3".into(), "mx1".into()],
        ..entry("mx2", "a", 10)
    };
    assert_eq!(successor(&e, |n| n == "mx2"), Some("mx3"));
    assert_eq!(successor(&e, |n| n != "mx1"), Some("mx1"));
    assert_eq!(successor(&e, |_| true), None, "no copy survives: lost");
    let plain = entry("mx2", "b", 10);
    assert_eq!(successor(&plain, |n| n == "mx2"), None);
}

#[test]
fn a_moved_entry_is_a_tombstone() {
    let mut mx2 = QuarantineIndex::new();
    mx2.upsert_own("mx2", entry("mx2", "a", 10)).expect("own");
    mx2.set_status_own("mx2", "a", EntryStatus::Moved, 20)
        .expect("moved");
    assert_eq!(mx2.live_entries("mx2"), 0);
    let err = mx2
        .set_status_own("mx2", "a", EntryStatus::Released, 30)
        .unwrap_err();
    assert!(matches!(err, IndexError::StatusRegression { .. }), "{err}");
}

#[test]
fn a_request_to_a_departed_owner_is_withdrawn_by_its_requester() {
    let mut mx2 = QuarantineIndex::new();
    mx2.upsert_own("mx2", entry("mx2", "a", 10)).expect("own");
    let mut mx1 = QuarantineIndex::new();
    sync(&mx2, &mut mx1, 100);
    let pending = PendingAction {
        action: IntentAction::Release,
        requested_by: "mx1".into(),
        admin: "ops".into(),
        requested_ms: 20,
        request_id: "01REQ".into(),
        recipient: None,
    };
    mx1.request("mx1", "a", pending).expect("request");
    assert_eq!(mx1.pending_for("mx2").len(), 1);
    let err = mx1.withdraw_own("mx3", "01REQ").unwrap_err();
    assert!(matches!(err, IndexError::NotRequester { .. }), "{err}");
    mx1.withdraw_own("mx1", "01REQ").expect("withdrawn");
    assert!(mx1.pending_for("mx2").is_empty());
    assert!(mx1.get("a").unwrap().pending.is_none());
    // Every replica drops it.
    let mut mx3 = QuarantineIndex::new();
    sync(&mx1, &mut mx3, 100);
    assert!(mx3.intent("01REQ").is_none());
}
