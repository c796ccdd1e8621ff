//! Per-recipient decisions: a request may name one recipient; the owner carries it out for
//! that recipient only, once; the entry stays quarantined while anyone is undecided; an
//! older node can neither misread a per-recipient request nor lose a decision for good.

use serde::{Deserialize, Serialize};

use super::tests::{entry, sync};
use super::*;

const ALICE: &str = "alice@example.net";
const BOB: &str = "bob@example.net";

fn two(node: &str, id: &str) -> IndexEntry {
    IndexEntry {
        recipients: vec![ALICE.into(), BOB.into()],
        ..entry(node, id, 10)
    }
}

fn ask(by: &str, rid: &str, action: IntentAction, recipient: Option<u32>) -> PendingAction {
    PendingAction {
        action,
        requested_by: by.into(),
        admin: "digest link".into(),
        requested_ms: 20,
        request_id: rid.into(),
        recipient,
    }
}

/// The owner's loop for one request: what it was told to do, and the answer.
fn carry_out(owner: &mut QuarantineIndex, me: &str, rid: &str) -> (IntentStep, IntentOutcome) {
    let step = owner.begin_intent_own(me, rid, 30).expect("begin");
    let outcome = match &step {
        IntentStep::Execute { .. } => owner.finish_intent_own(me, rid, 31).expect("finish"),
        IntentStep::Done(outcome) => *outcome,
    };
    (step, outcome)
}

#[test]
fn decide_acts_for_one_recipient_and_the_last_decision_ends_the_entry() {
    let mut e = two("n1", "a");
    assert_eq!(e.undecided(), [ALICE, BOB]);
    let done = e.decide(Some("Alice@Example.net"), IntentAction::Release, 5);
    assert_eq!(done, Ok(vec![ALICE.to_string()]));
    assert_eq!(e.status, EntryStatus::Quarantined, "bob is still undecided");
    assert!(!e.held_for(ALICE) && e.held_for(BOB));
    assert_eq!(e.decision_for(ALICE), Some(EntryStatus::Released));
    let again = e.decide(Some(ALICE), IntentAction::Release, 6);
    assert_eq!(again, Err(Decided::Recipient(EntryStatus::Released)));
    let stranger = e.decide(Some("eve@example.net"), IntentAction::Delete, 6);
    assert_eq!(stranger, Err(Decided::NotRecipient));
    assert_eq!(
        e.decide(Some(BOB), IntentAction::Delete, 7),
        Ok(vec![BOB.into()])
    );
    assert_eq!(
        (e.status, e.status_ms),
        (EntryStatus::Released, 7),
        "released to someone"
    );
    assert_eq!(
        (e.recipients_released.clone(), e.recipients_deleted.clone()),
        (vec![ALICE.to_string()], vec![BOB.to_string()])
    );
    assert_eq!(
        e.decide(None, IntentAction::Release, 8),
        Err(Decided::Entry(EntryStatus::Released))
    );
}

#[test]
fn a_whole_message_decision_acts_for_the_undecided_only() {
    let mut e = two("n1", "a");
    e.decide(Some(ALICE), IntentAction::Release, 5).unwrap();
    assert_eq!(
        e.decide(None, IntentAction::Release, 6),
        Ok(vec![BOB.to_string()]),
        "alice is never relayed to twice"
    );
    assert_eq!(e.status, EntryStatus::Released);
    assert_eq!(e.recipients_released, [ALICE, BOB]);

    let mut e = two("n1", "b");
    e.decide(Some(BOB), IntentAction::Delete, 5).unwrap();
    assert_eq!(
        e.decide(None, IntentAction::Delete, 6),
        Ok(vec![ALICE.into()])
    );
    assert_eq!(e.status, EntryStatus::Deleted, "nobody got it");

    // Without per-recipient decisions, a whole-message decision is what it always was.
    let mut e = two("n1", "c");
    assert_eq!(e.decide(None, IntentAction::Release, 6).unwrap().len(), 2);
    assert_eq!(e.status, EntryStatus::Released);
    assert!(!e.has_decisions());
    assert_eq!(e.decision_for(BOB), Some(EntryStatus::Released));
}

#[test]
fn a_recipient_request_is_carried_out_once_for_that_recipient() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", two("n1", "a")).unwrap();
    let mut n3 = QuarantineIndex::new();
    sync(&n1, &mut n3, 100);
    // Alice's link is followed on n3 twice before n3 hears back (two requests).
    n3.request("n3", "a", ask("n3", "r1", IntentAction::Release, Some(0)))
        .unwrap();
    n3.request("n3", "a", ask("n3", "r2", IntentAction::Release, Some(0)))
        .unwrap();
    let pending = n3.get("a").unwrap().pending.clone().expect("shown pending");
    assert_eq!(pending.recipient, Some(0));
    sync(&n3, &mut n1, 100);
    let (step, outcome) = carry_out(&mut n1, "n1", "r1");
    assert_eq!(
        step,
        IntentStep::Execute {
            entry_id: "a".into(),
            action: IntentAction::Release,
            recipient: Some(ALICE.into()),
        }
    );
    assert_eq!(outcome, IntentOutcome::Released);
    let (step, outcome) = carry_out(&mut n1, "n1", "r2");
    assert_eq!(step, IntentStep::Done(IntentOutcome::AlreadyReleased));
    assert_eq!(outcome, IntentOutcome::AlreadyReleased);
    let e = n1.get("a").unwrap();
    assert_eq!(e.status, EntryStatus::Quarantined);
    assert_eq!(e.recipients_released, [ALICE]);
    // n3 learns it: alice is decided there too and a new request for her is refused.
    sync(&n1, &mut n3, 100);
    assert!(!n3.get("a").unwrap().held_for(ALICE));
    let err = n3
        .request("n3", "a", ask("n3", "r3", IntentAction::Delete, Some(0)))
        .unwrap_err();
    assert!(
        err.to_string().contains("already released for alice"),
        "{err}"
    );
    // Bob's delete ends it.
    n3.request("n3", "a", ask("n3", "r4", IntentAction::Delete, Some(1)))
        .unwrap();
    sync(&n3, &mut n1, 100);
    assert_eq!(carry_out(&mut n1, "n1", "r4").1, IntentOutcome::Deleted);
    let e = n1.get("a").unwrap();
    assert_eq!(e.status, EntryStatus::Released, "released to alice");
    assert_eq!(e.recipients_deleted, [BOB]);
    assert!(n1.pending_for("n1").is_empty());
}

#[test]
fn an_admin_request_after_a_recipient_release_acts_for_the_rest() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", two("n1", "a")).unwrap();
    n1.request("n1", "a", ask("n1", "r1", IntentAction::Release, Some(1)))
        .unwrap();
    n1.request("n1", "a", ask("n1", "r2", IntentAction::Release, None))
        .unwrap();
    assert_eq!(carry_out(&mut n1, "n1", "r1").1, IntentOutcome::Released);
    let (step, _) = carry_out(&mut n1, "n1", "r2");
    assert!(
        matches!(
            step,
            IntentStep::Execute {
                recipient: None,
                ..
            }
        ),
        "{step:?}"
    );
    let e = n1.get("a").unwrap();
    assert_eq!(e.status, EntryStatus::Released);
    assert_eq!(e.recipients_released, [BOB, ALICE]);
}

/// An [`IntentRecord`] as the release before per-recipient requests decoded it (serde
/// drops unknown fields), and an owner of that release: it looks the entry id up.
#[derive(Debug, Serialize, Deserialize)]
struct OldIntentRecord {
    request_id: String,
    entry_id: String,
    owner: String,
    action: IntentAction,
    requested_by: String,
    admin: String,
    requested_ms: u64,
    seq: u64,
}

#[test]
fn an_older_node_cannot_misread_a_recipient_request_and_relays_it_intact() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", two("n1", "a")).unwrap();
    let mut n3 = QuarantineIndex::new();
    sync(&n1, &mut n3, 100);
    n3.request("n3", "a", ask("n3", "r1", IntentAction::Release, Some(1)))
        .unwrap();
    let delta = n3.delta_since(&n1.version_vector(), 100);
    let record = serde_json::to_value(&delta.owners[0].intents[0]).unwrap();
    let old: OldIntentRecord = serde_json::from_value(record).expect("an old node reads it");
    assert_eq!(old.entry_id, "a#rcpt1");
    assert!(
        n1.get_of("n1", &old.entry_id).is_none(),
        "an old owner finds no entry by that id: it answers `not found` and relays nothing"
    );
    // Relayed through the old node (decoded into the old shape and encoded again), the
    // request still names bob for a current owner.
    let relayed: IntentRecord =
        serde_json::from_value(serde_json::to_value(&old).unwrap()).unwrap();
    assert_eq!(relayed, delta.owners[0].intents[0]);
    let mut via_old = delta.clone();
    via_old.owners[0].intents[0] = relayed;
    n1.apply(via_old).unwrap();
    let intent = n1.intent("r1").unwrap();
    assert_eq!((intent.entry_id.as_str(), intent.recipient), ("a", Some(1)));
    assert_eq!(parse_target("a#rcpt"), ("a#rcpt", None));
    assert_eq!(parse_target("a#rcptx1"), ("a#rcptx1", None));
    assert_eq!(parse_target(&request_target("m", Some(7))), ("m", Some(7)));
}

#[test]
fn decisions_dropped_by_an_older_relay_come_back_in_any_order() {
    let mut owner = QuarantineIndex::new();
    let mut e = two("n1", "a");
    e.decide(Some(ALICE), IntentAction::Release, 5).unwrap();
    owner.upsert_own("n1", e).unwrap();
    let full = owner.delta_since(&Default::default(), 100);
    let mut lossy = full.clone();
    for e in &mut lossy.owners[0].entries {
        e.recipients_released.clear();
        e.recipients_deleted.clear();
    }
    let mut first_lossy = QuarantineIndex::new();
    first_lossy.apply(lossy.clone()).expect("no seq conflict");
    assert!(first_lossy.get("a").unwrap().held_for(ALICE), "stale view");
    let report = first_lossy.apply(full.clone()).expect("the full copy");
    assert!(report.changed(), "the full copy joins the lossy one");
    let mut first_full = QuarantineIndex::new();
    first_full.apply(full).unwrap();
    let report = first_full.apply(lossy).expect("no seq conflict");
    assert!(!report.changed(), "the lossy copy adds nothing");
    assert!(first_full == first_lossy, "converged");
    assert!(!first_full.get("a").unwrap().held_for(ALICE));
}

#[test]
fn the_owner_never_forgets_a_decision_and_bounds_hold() {
    let mut n1 = QuarantineIndex::new();
    let mut e = two("n1", "a");
    e.decide(Some(BOB), IntentAction::Delete, 5).unwrap();
    n1.upsert_own("n1", e).unwrap();
    // A rewrite from a copy that lacks the decision (a held copy, a backup) keeps it.
    let mut rewrite = two("n1", "a");
    rewrite.copies = vec!["n2".into()];
    let kept = n1.upsert_own("n1", rewrite).unwrap();
    assert_eq!(kept.recipients_deleted, [BOB]);
    assert_eq!(kept.copies, ["n2"]);
    let mut big = two("n1", "b");
    big.recipients_released = vec![ALICE.into(); RECIPIENTS_MAX + 1];
    let err = n1.upsert_own("n1", big.clone()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "entry.recipients_released: more than 1000 items"
    );
    big.fit_to_bounds();
    assert_eq!(big.recipients_released.len(), RECIPIENTS_MAX);
    // Per-recipient fields are left out of the JSON when empty (an older reader's shape).
    let json = serde_json::to_string(&two("n1", "c")).unwrap();
    assert!(!json.contains("recipients_released"), "{json}");
}
