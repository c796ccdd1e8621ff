//! Unit tests of release/delete requests: carried out once by the owner, answered, purged.

use super::*;

#[test]
fn requests_are_carried_out_once_by_the_owner() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", entry("n1", "a", 10)).expect("add");
    n1.upsert_own("n1", entry("n1", "b", 20)).expect("add");
    let mut n2 = QuarantineIndex::new();
    sync(&n1, &mut n2, 100);

    let err = n2
        .request("n2", "a", pending("n1", "r1", IntentAction::Release))
        .expect_err("name");
    assert!(matches!(err, IndexError::NotRequester { .. }));
    let err = n2
        .request("n2", "zz", pending("n2", "r1", IntentAction::Release))
        .expect_err("none");
    assert_eq!(err, IndexError::NotFound("zz".into()));
    let intent = n2
        .request("n2", "a", pending("n2", "r1", IntentAction::Release))
        .expect("ask");
    assert_eq!((intent.owner.as_str(), intent.done), ("n1", None));
    n2.request("n2", "a", pending("n2", "r1", IntentAction::Release))
        .expect("same again");
    let err = n2
        .request("n2", "b", pending("n2", "r1", IntentAction::Delete))
        .expect_err("taken");
    assert_eq!(err, IndexError::DuplicateRequest("r1".into()));
    n2.request("n2", "a", pending("n2", "r2", IntentAction::Delete))
        .expect("second request");
    let shown = n2
        .get("a")
        .and_then(|e| e.pending.clone())
        .expect("pending shown");
    assert_eq!(
        (shown.request_id.as_str(), shown.action),
        ("r1", IntentAction::Release)
    );
    assert!(n2.pending_for("n2").is_empty());
    let err = n2
        .begin_intent_own("n2", "r1", 1)
        .expect_err("not the owner");
    assert!(matches!(err, IndexError::NotIntentOwner { .. }));

    sync(&n2, &mut n1, 100);
    let queue: Vec<String> = n1
        .pending_for("n1")
        .iter()
        .map(|i| i.request_id.clone())
        .collect();
    assert_eq!(queue, ["r1", "r2"]);
    assert_eq!(
        n1.get("a")
            .and_then(|e| e.pending.as_ref())
            .map(|p| p.request_id.as_str()),
        Some("r1")
    );
    let step = n1.begin_intent_own("n1", "r1", 100).expect("begin");
    assert_eq!(
        step,
        IntentStep::Execute {
            entry_id: "a".into(),
            action: IntentAction::Release,
            recipient: None,
        }
    );
    assert_eq!(
        n1.finish_intent_own("n1", "r1", 101).expect("finish"),
        IntentOutcome::Released
    );
    assert_eq!(n1.get("a").map(|e| e.status), Some(EntryStatus::Released));
    assert_eq!(
        n1.begin_intent_own("n1", "r1", 102).expect("again"),
        IntentStep::Done(IntentOutcome::Released)
    );
    let step = n1.begin_intent_own("n1", "r2", 103).expect("second");
    assert_eq!(step, IntentStep::Done(IntentOutcome::AlreadyReleased));
    assert_eq!(
        IntentOutcome::AlreadyReleased.to_string(),
        "already released"
    );
    assert!(n1.pending_for("n1").is_empty());
    assert!(n1.get("a").is_some_and(|e| e.pending.is_none()));

    sync(&n1, &mut n2, 100);
    let done = n2
        .intent("r1")
        .and_then(|i| i.done)
        .expect("answer replicated");
    assert_eq!((done.outcome, done.done_ms), (IntentOutcome::Released, 101));
    let err = n2
        .request("n2", "a", pending("n2", "r3", IntentAction::Delete))
        .expect_err("gone");
    assert_eq!(
        err,
        IndexError::Gone {
            id: "a".into(),
            status: EntryStatus::Released
        }
    );
    assert_eq!(n2, n1);
}

#[test]
fn owner_restart_that_lost_the_answer_does_not_execute_twice() {
    let mut owner = QuarantineIndex::new();
    owner.upsert_own("n1", entry("n1", "a", 10)).expect("add");
    let mut asker = QuarantineIndex::new();
    sync(&owner, &mut asker, 100);
    asker
        .request("n2", "a", pending("n2", "r1", IntentAction::Delete))
        .expect("ask");
    sync(&asker, &mut owner, 100);
    assert!(matches!(
        owner.begin_intent_own("n1", "r1", 20),
        Ok(IntentStep::Execute { .. })
    ));
    owner.finish_intent_own("n1", "r1", 21).expect("deleted");
    // The owner crashes before anyone saw the answer; its store says "deleted".
    let mut restarted = QuarantineIndex::new();
    restarted.restore_own("n1", &asker, 1).expect("restore");
    assert_eq!(
        restarted.get("a").map(|e| e.status),
        Some(EntryStatus::Quarantined)
    );
    restarted
        .set_status_own("n1", "a", EntryStatus::Deleted, 21)
        .expect("reconcile with store");
    let queue: Vec<String> = restarted
        .pending_for("n1")
        .iter()
        .map(|i| i.request_id.clone())
        .collect();
    assert_eq!(queue, ["r1"], "the answer was lost with the store");
    let step = restarted.begin_intent_own("n1", "r1", 30).expect("begin");
    assert_eq!(step, IntentStep::Done(IntentOutcome::AlreadyDeleted));
    assert!(restarted.pending_for("n1").is_empty());
    sync(&restarted, &mut asker, 100);
    let done = asker.intent("r1").and_then(|i| i.done).expect("answered");
    assert_eq!(done.outcome, IntentOutcome::AlreadyDeleted);
}

#[test]
fn unknown_entries_and_races_are_answered_without_execution() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", entry("n1", "a", 10)).expect("add");
    let mut n2 = QuarantineIndex::new();
    sync(&n1, &mut n2, 100);
    n2.request("n2", "a", pending("n2", "r1", IntentAction::Release))
        .expect("ask");
    sync(&n2, &mut n1, 100);
    assert!(matches!(
        n1.begin_intent_own("n1", "r1", 1),
        Ok(IntentStep::Execute { .. })
    ));
    n1.set_status_own("n1", "a", EntryStatus::Expired, 2)
        .expect("expired meanwhile");
    assert_eq!(
        n1.finish_intent_own("n1", "r1", 3),
        Ok(IntentOutcome::AlreadyExpired)
    );

    let mut n3 = QuarantineIndex::new();
    n3.upsert_own("n3", entry("n3", "x", 10)).expect("add");
    sync(&n3, &mut n2, 100);
    n2.request("n2", "x", pending("n2", "r9", IntentAction::Delete))
        .expect("ask");
    let mut empty_owner = QuarantineIndex::new();
    sync(&n2, &mut empty_owner, 100);
    empty_owner
        .restore_own("n3", &QuarantineIndex::new(), 1)
        .expect("restore");
    empty_owner
        .set_status_own("n3", "x", EntryStatus::Deleted, 3)
        .expect("message lost");
    assert_eq!(
        empty_owner.begin_intent_own("n3", "r9", 4),
        Ok(IntentStep::Done(IntentOutcome::AlreadyDeleted))
    );
    assert_eq!(
        empty_owner.begin_intent_own("n3", "nope", 4),
        Err(IndexError::UnknownRequest("nope".into()))
    );
}

#[test]
fn requests_and_answers_are_purged_in_turn() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", entry("n1", "a", 10)).expect("add");
    let mut n2 = QuarantineIndex::new();
    sync(&n1, &mut n2, 100);
    n2.request("n2", "a", pending("n2", "r1", IntentAction::Release))
        .expect("ask");
    sync(&n2, &mut n1, 100);
    n1.begin_intent_own("n1", "r1", 100).expect("begin");
    n1.finish_intent_own("n1", "r1", 100).expect("finish");
    let report = n1.purge_expired_own("n1", 1000).expect("purge");
    assert_eq!(
        (report.entries, report.dones),
        (1, 0),
        "the request is still visible"
    );
    sync(&n1, &mut n2, 100);
    assert_eq!(
        n2.purge_expired_own("n2", 50).expect("too early").intents,
        0
    );
    assert_eq!(n2.purge_expired_own("n2", 1000).expect("purge").intents, 1);
    sync(&n2, &mut n1, 100);
    assert!(n1.intent("r1").is_none());
    assert_eq!(n1.purge_expired_own("n1", 1000).expect("purge").dones, 1);
    sync(&n1, &mut n2, 100);
    assert_eq!(n2, n1);
    assert_eq!((n1.intents().count(), n1.total_entries()), (0, 0));
}
