//! The holder's decision (pure): who adopts a message whose owner left, and when a copy
//! goes.

use mxmesh_crdt::qindex::{EntryStatus, IndexEntry};

use super::{CopyFate, fate, fate_held};

fn entry(owner: &str, copies: &[&str], status: EntryStatus) -> IndexEntry {
    IndexEntry {
        id: "01MSG".into(),
        node: owner.into(),
        received_ms: 1,
        sender: String::new(),
        recipients: Vec::new(),
        subject: String::new(),
        size: 1,
        reason: String::new(),
        rule_id: None,
        score: None,
        symbols: Default::default(),
        status,
        status_ms: 1,
        pending: None,
        seq: 1,
        copies: copies.iter().map(|c| c.to_string()).collect(),
        adopted_from: None,
        recipients_released: Vec::new(),
        recipients_deleted: Vec::new(),
    }
}

#[test]
fn exactly_one_holder_adopts_from_a_departed_owner() {
    let e = entry("mx2", &["mx3", "mx1"], EntryStatus::Quarantined);
    let gone = |n: &str| n == "mx2";
    let fates: Vec<CopyFate> = ["mx1", "mx3"]
        .iter()
        .map(|me| fate(me, Some(&e), gone))
        .collect();
    assert_eq!(fates, [CopyFate::Keep, CopyFate::Adopt("mx2".into())]);
    // With the first holder gone as well, the next one (and only it) adopts.
    let both_gone = |n: &str| n == "mx2" || n == "mx3";
    assert_eq!(
        fate("mx1", Some(&e), both_gone),
        CopyFate::Adopt("mx2".into())
    );
}

#[test]
fn no_holder_adopts_while_the_owner_is_a_member() {
    let e = entry("mx2", &["mx3"], EntryStatus::Quarantined);
    assert_eq!(fate("mx3", Some(&e), |_| false), CopyFate::Keep);
    assert_eq!(
        fate("mx3", None, |_| true),
        CopyFate::Keep,
        "index not there yet"
    );
}

#[test]
fn a_copy_goes_once_the_message_left_quarantine_or_is_owned_here() {
    for status in [
        EntryStatus::Released,
        EntryStatus::Deleted,
        EntryStatus::Expired,
    ] {
        let e = entry("mx2", &["mx3"], status);
        assert_eq!(fate("mx3", Some(&e), |n| n == "mx2"), CopyFate::Drop);
    }
    let mine = entry("mx3", &["mx1"], EntryStatus::Quarantined);
    assert_eq!(fate("mx3", Some(&mine), |_| false), CopyFate::Drop);
}

#[test]
fn a_copy_of_a_handed_over_message_waits_for_the_new_owners_entry() {
    let e = entry("mx2", &["mx3"], EntryStatus::Moved);
    assert_eq!(fate("mx3", Some(&e), |n| n == "mx2"), CopyFate::Keep);
}

#[test]
fn a_holder_the_owner_never_recorded_adopts_only_when_no_recorded_holder_survives() {
    let gone = |n: &str| n == "mx2";
    let unrecorded = entry("mx2", &[], EntryStatus::Quarantined);
    assert_eq!(
        fate_held("mx3", "mx2", Some(&unrecorded), &[], gone),
        CopyFate::Adopt("mx2".into())
    );
    assert_eq!(
        fate_held("mx3", "mx2", None, &[], gone),
        CopyFate::Adopt("mx2".into()),
        "the entry never reached this index before the owner's disk went"
    );
    assert_eq!(
        fate_held("mx3", "mx2", None, &["mx1".to_string()], gone),
        CopyFate::Keep,
        "mx1 took a copy first and survives"
    );
    let recorded = entry("mx2", &["mx1"], EntryStatus::Quarantined);
    assert_eq!(
        fate_held("mx3", "mx2", Some(&recorded), &["mx1".to_string()], gone),
        CopyFate::Keep,
        "mx1 was recorded and survives: it adopts"
    );
    assert_eq!(
        fate_held("mx3", "mx2", Some(&unrecorded), &[], |_| false),
        CopyFate::Keep,
        "the owner is a member"
    );
}
