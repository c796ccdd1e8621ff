//! Unit tests of the quarantine index, one or more per operation.

use std::collections::BTreeMap;
use std::time::Instant;

use super::*;

pub(super) fn entry(node: &str, id: &str, received_ms: u64) -> IndexEntry {
    IndexEntry {
        id: id.to_string(),
        node: node.to_string(),
        received_ms,
        sender: format!("Sender-{id}@Example.org"),
        recipients: vec![
            format!("rcpt-{id}@example.net"),
            "postmaster@example.net".into(),
        ],
        subject: format!("Subject of {id}"),
        size: 1234,
        reason: "spam".into(),
        rule_id: Some("01HRULE".into()),
        score: None,
        symbols: Default::default(),
        status: EntryStatus::Quarantined,
        status_ms: received_ms,
        pending: None,
        seq: 0,
        copies: Vec::new(),
        adopted_from: None,
    }
}

fn pending(by: &str, request_id: &str, action: IntentAction) -> PendingAction {
    PendingAction {
        action,
        requested_by: by.to_string(),
        admin: "alice".into(),
        requested_ms: 5_000,
        request_id: request_id.to_string(),
    }
}

/// Sends everything `from` has that `to` lacks, in deltas of at most `max` items.
pub(super) fn sync(from: &QuarantineIndex, to: &mut QuarantineIndex, max: usize) {
    for _ in 0..10_000 {
        let delta = from.delta_since(&to.version_vector(), max);
        let report = to.apply(delta).expect("apply");
        if !report.changed() && to.version_vector() == from.version_vector() {
            return;
        }
        if !report.changed() && from.delta_since(&to.version_vector(), max).item_count() == 0 {
            return;
        }
    }
    panic!("sync did not finish");
}

fn ids(list: &[&IndexEntry]) -> Vec<String> {
    list.iter().map(|e| e.id.clone()).collect()
}

fn all(index: &QuarantineIndex) -> Vec<String> {
    let query = IndexQuery {
        limit: SEARCH_LIMIT_MAX,
        ..IndexQuery::default()
    };
    ids(&index.search(&query).0)
}

fn invalid(result: Result<ApplyReport, IndexError>) -> (String, Problem) {
    match result {
        Err(IndexError::Invalid { at, problem }) => (at, problem),
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
}

#[test]
fn upsert_own_assigns_seqs_and_checks_owner_and_bounds() {
    let mut index = QuarantineIndex::new();
    let first = index.upsert_own("n1", entry("n1", "a", 10)).expect("add a");
    assert_eq!(first.seq, 1);
    assert_eq!(
        index
            .upsert_own("n1", entry("n1", "b", 20))
            .expect("add")
            .seq,
        2
    );
    let same = index.upsert_own("n1", entry("n1", "a", 10)).expect("same");
    assert_eq!(same.seq, 1, "an identical write changes nothing");
    let mut changed = entry("n1", "a", 10);
    changed.subject = "new subject".into();
    assert_eq!(index.upsert_own("n1", changed).expect("rewrite").seq, 3);
    assert_eq!(index.version_vector(), BTreeMap::from([("n1".into(), 3)]));

    let err = index
        .upsert_own("n2", entry("n1", "c", 30))
        .expect_err("not mine");
    assert!(matches!(err, IndexError::NotOwner { .. }), "{err}");
    let mut long = entry("n1", "c", 30);
    long.subject = "x".repeat(SUBJECT_BYTES_MAX + 1);
    let err = index.upsert_own("n1", long.clone()).expect_err("too long");
    assert_eq!(err.to_string(), "entry.subject: longer than 2048 bytes");
    long.recipients = vec!["r".repeat(ADDRESS_BYTES_MAX + 10); RECIPIENTS_MAX + 5];
    long.subject = "é".repeat(SUBJECT_BYTES_MAX);
    long.fit_to_bounds();
    assert!(long.subject.len() <= SUBJECT_BYTES_MAX && long.subject.ends_with('é'));
    assert_eq!(long.recipients.len(), RECIPIENTS_MAX);
    index
        .upsert_own("n1", long)
        .expect("fits after fit_to_bounds");
    let err = index
        .upsert_own("n1", entry("n1", "", 1))
        .expect_err("empty id");
    assert_eq!(err.to_string(), "entry.id: must not be empty");
    assert_eq!(index.total_entries(), 3);
}

#[test]
fn set_status_moves_forward_only() {
    let mut index = QuarantineIndex::new();
    index.upsert_own("n1", entry("n1", "a", 10)).expect("add");
    assert_eq!(index.live_entries("n1"), 1);
    let released = index
        .set_status_own("n1", "a", EntryStatus::Released, 99)
        .expect("release");
    assert_eq!(
        (released.status, released.status_ms, released.seq),
        (EntryStatus::Released, 99, 2)
    );
    assert_eq!(index.live_entries("n1"), 0);
    let again = index
        .set_status_own("n1", "a", EntryStatus::Released, 100)
        .expect("same status");
    assert_eq!((again.status_ms, again.seq), (99, 2));
    for status in [EntryStatus::Quarantined, EntryStatus::Deleted] {
        let err = index
            .set_status_own("n1", "a", status, 101)
            .expect_err("backwards");
        assert!(matches!(err, IndexError::StatusRegression { .. }), "{err}");
    }
    let mut back = entry("n1", "a", 10);
    back.status = EntryStatus::Quarantined;
    let err = index
        .upsert_own("n1", back)
        .expect_err("upsert cannot undo a release");
    assert!(matches!(err, IndexError::StatusRegression { .. }));
    let err = index
        .set_status_own("n1", "zz", EntryStatus::Deleted, 1)
        .expect_err("unknown");
    assert_eq!(err, IndexError::NotFound("zz".into()));
    let err = index
        .set_status_own("n2", "a", EntryStatus::Deleted, 1)
        .expect_err("not n2's");
    assert_eq!(err, IndexError::NotFound("a".into()));
}

#[test]
fn replicas_converge_with_partial_deltas() {
    let mut n1 = QuarantineIndex::new();
    for k in 0..20 {
        n1.upsert_own("n1", entry("n1", &format!("a{k:02}"), k))
            .expect("add");
    }
    n1.set_status_own("n1", "a03", EntryStatus::Deleted, 50)
        .expect("delete");
    let mut n2 = QuarantineIndex::new();
    let delta = n1.delta_since(&n2.version_vector(), 5);
    assert_eq!(delta.item_count(), 5);
    let record = &delta.owners[0];
    assert_eq!(
        (record.from, record.to, record.floor),
        (0, 6, 0),
        "seq 4 was superseded"
    );
    n2.apply(delta.clone()).expect("apply");
    assert_eq!(n2.version_vector()["n1"], 6);
    let again = n2.apply(delta).expect("duplicate");
    assert_eq!((again.added, again.ignored), (0, 5));
    sync(&n1, &mut n2, 3);
    assert_eq!(n2, n1);
    assert_eq!(all(&n2), all(&n1));
    assert_eq!(n2.get("a03").map(|e| e.status), Some(EntryStatus::Deleted));
    assert_eq!(n2.live_entries("n1"), 19);
    let empty = n1.delta_since(&n2.version_vector(), 100);
    assert_eq!(empty.item_count(), 0);
}

#[test]
fn out_of_order_partial_deltas_leave_gaps_until_filled() {
    let mut n1 = QuarantineIndex::new();
    for k in 0..10 {
        n1.upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
    }
    let first = n1.delta_since(&BTreeMap::new(), 4);
    let second = n1.delta_since(&BTreeMap::from([("n1".into(), 4)]), 4);
    let mut n2 = QuarantineIndex::new();
    n2.apply(second.clone()).expect("late half first");
    assert_eq!(n2.version_vector()["n1"], 0, "the gap (0, 4] is not known");
    assert_eq!(n2.total_entries(), 4);
    n2.apply(first.clone()).expect("first half");
    assert_eq!(n2.version_vector()["n1"], 8);
    let mut n3 = QuarantineIndex::new();
    n3.apply(first).expect("in order");
    n3.apply(second).expect("in order");
    assert_eq!(n2, n3, "order does not matter");
}

#[test]
fn purge_is_replicated_and_stale_deltas_do_not_resurrect() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", entry("n1", "old", 10)).expect("add");
    n1.upsert_own("n1", entry("n1", "keep", 20)).expect("add");
    let stale = n1.delta_since(&BTreeMap::new(), 100);
    n1.set_status_own("n1", "old", EntryStatus::Released, 100)
        .expect("release");
    let mut n2 = QuarantineIndex::new();
    sync(&n1, &mut n2, 100);
    let report = n1.purge_expired_own("n1", 200).expect("purge");
    assert_eq!(
        (report.entries, report.floor),
        (1, 2),
        "floor is the seq of `keep`"
    );
    assert!(n1.get("old").is_none());
    let err = n1
        .upsert_own("n1", entry("n1", "old", 10))
        .expect_err("purged id");
    assert_eq!(err, IndexError::Purged("old".into()));
    sync(&n1, &mut n2, 100);
    assert!(
        n2.get("old").is_none(),
        "the marker removed the replica's tombstone"
    );
    let report = n2.apply(stale.clone()).expect("stale delta");
    assert_eq!(report.added + report.updated, 0);
    assert!(n2.get("old").is_none(), "a stale delta does not resurrect");
    assert_eq!(n2, n1);

    n1.set_status_own("n1", "keep", EntryStatus::Expired, 300)
        .expect("expire");
    let report = n1.purge_expired_own("n1", 400).expect("purge all");
    assert_eq!(
        report.floor,
        n1.high_water("n1") + 1,
        "nothing survives: floor past the end"
    );
    let delta = n1.delta_since(&n2.version_vector(), 100);
    assert_eq!(delta.owners.last().map(|r| r.floor), Some(report.floor));
    n2.apply(delta).expect("apply");
    assert_eq!((n2.total_entries(), n2.floor("n1")), (0, report.floor));
    let mut fresh = QuarantineIndex::new();
    fresh.apply(stale).expect("stale first");
    sync(&n1, &mut fresh, 1);
    assert_eq!(
        fresh.total_entries(),
        0,
        "the floor drops what markers no longer cover"
    );
    assert_eq!(fresh, n1);
}

#[test]
fn floor_is_withheld_from_cut_deltas() {
    let mut n1 = QuarantineIndex::new();
    for k in 0..4 {
        n1.upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
    }
    let mut n2 = QuarantineIndex::new();
    sync(&n1, &mut n2, 100);
    n1.set_status_own("n1", "a0", EntryStatus::Deleted, 10)
        .expect("delete");
    for k in 1..4 {
        n1.set_status_own("n1", &format!("a{k}"), EntryStatus::Released, 30)
            .expect("release");
    }
    n1.purge_expired_own("n1", 20).expect("purge a0 only");
    assert_eq!(n1.floor("n1"), 6);
    let cut = n1.delta_since(&n2.version_vector(), 1);
    assert!(cut.owners.iter().all(|r| r.floor == 0));
    n2.apply(cut).expect("apply");
    assert_eq!(
        n2.total_entries(),
        4,
        "stale versions stay until their newer ones arrive"
    );
    assert_eq!(n2.get("a1").map(|e| e.status), Some(EntryStatus::Released));
    sync(&n1, &mut n2, 1);
    assert_eq!(n2, n1);
}

#[test]
fn floor_is_withheld_by_a_replica_with_gaps() {
    let mut n1 = QuarantineIndex::new();
    for k in 0..6 {
        n1.upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
    }
    n1.set_status_own("n1", "a0", EntryStatus::Deleted, 10)
        .expect("delete");
    n1.purge_expired_own("n1", 20).expect("purge");
    assert_eq!(n1.floor("n1"), 2);
    let mut gappy = QuarantineIndex::new();
    gappy
        .apply(n1.delta_since(&BTreeMap::from([("n1".into(), 3)]), 100))
        .expect("the tail only");
    assert_eq!(
        gappy.version_vector()["n1"],
        1,
        "below the floor is known, (1, 3] is not"
    );
    let delta = gappy.delta_since(&BTreeMap::new(), 100);
    assert!(delta.owners.iter().all(|r| r.floor == 0), "{delta:?}");
    gappy
        .apply(n1.delta_since(&gappy.version_vector(), 100))
        .expect("the rest");
    assert_eq!(gappy.delta_since(&BTreeMap::new(), 100).owners[0].floor, 2);
}

#[test]
fn malformed_deltas_are_refused_whole() {
    let mut n1 = QuarantineIndex::new();
    for k in 0..3 {
        n1.upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
    }
    let good = n1.delta_since(&BTreeMap::new(), 100);
    let mut n2 = QuarantineIndex::new();
    n2.upsert_own("n2", entry("n2", "b", 1)).expect("own");
    let before = n2.clone();

    let mut bad = good.clone();
    bad.owners[0].entries[1].node = "n3".into();
    let (at, problem) = invalid(n2.apply(bad));
    assert_eq!(at, "owners[0].entries[1].node");
    assert!(matches!(problem, Problem::WrongOwner { .. }));

    let mut bad = good.clone();
    bad.owners[0].entries.swap(0, 1);
    let (at, problem) = invalid(n2.apply(bad));
    assert_eq!(
        (at.as_str(), problem),
        (
            "owners[0].entries[1].seq",
            Problem::NotIncreasing { prev: 2, seq: 1 }
        )
    );

    let mut bad = good.clone();
    bad.owners[0].to = 2;
    let (_, problem) = invalid(n2.apply(bad));
    assert_eq!(
        problem,
        Problem::OutOfRange {
            seq: 3,
            from: 0,
            to: 2
        }
    );

    let mut bad = good.clone();
    bad.owners[0].floor = 3;
    let (_, problem) = invalid(n2.apply(bad));
    assert_eq!(problem, Problem::BelowFloor { seq: 1, floor: 3 });

    let mut bad = good.clone();
    bad.owners[0].entries[2].sender = "s".repeat(ADDRESS_BYTES_MAX + 1);
    let err = n2.apply(bad).expect_err("oversized");
    assert_eq!(
        err.to_string(),
        "owners[0].entries[2].sender: longer than 512 bytes"
    );

    let mut bad = good.clone();
    bad.owners.push(bad.owners[0].clone());
    let (_, problem) = invalid(n2.apply(bad));
    assert_eq!(problem, Problem::DuplicateSeq(1));

    let mut bad = good.clone();
    bad.owners[0].from = 3;
    let (_, problem) = invalid(n2.apply(bad));
    assert!(matches!(problem, Problem::OutOfRange { .. }));

    let mut bad = good.clone();
    bad.owners[0].from = 5;
    bad.owners[0].to = 4;
    bad.owners[0].entries.clear();
    let (_, problem) = invalid(n2.apply(bad));
    assert_eq!(problem, Problem::BadRange { from: 5, to: 4 });

    let mut bad = good.clone();
    let template = bad.owners[0].entries[0].clone();
    bad.owners[0].to = DELTA_ITEMS_MAX as u64 + 1;
    bad.owners[0].entries = (1..=DELTA_ITEMS_MAX as u64 + 1)
        .map(|seq| IndexEntry {
            id: format!("x{seq}"),
            seq,
            ..template.clone()
        })
        .collect();
    let (at, problem) = invalid(n2.apply(bad));
    assert_eq!(
        (at.as_str(), problem),
        (
            "owners",
            Problem::TooMany {
                max: DELTA_ITEMS_MAX
            }
        )
    );

    let mut bad = good.clone();
    bad.v = 2;
    let err = n2.apply(bad).expect_err("future version");
    assert_eq!(
        err,
        IndexError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    );

    let mut bad = good.clone();
    bad.owners[0].node = "n2".into();
    for e in &mut bad.owners[0].entries {
        e.node = "n2".into();
    }
    let (at, problem) = invalid(n2.apply(bad));
    assert_eq!(
        (at.as_str(), problem),
        ("owners[0].entries[0]", Problem::SeqConflict(1))
    );

    let mut bad = good.clone();
    bad.owners[0].intents.push(IntentRecord {
        request_id: "r1".into(),
        entry_id: "a0".into(),
        owner: "n1".into(),
        action: IntentAction::Release,
        requested_by: "n9".into(),
        admin: "mallory".into(),
        requested_ms: 1,
        seq: 3,
    });
    let (at, _) = invalid(n2.apply(bad));
    assert_eq!(at, "owners[0].intents[0].requested_by");

    assert_eq!(n2, before, "nothing changed");
    n2.apply(good).expect("the good delta applies");
    assert_eq!(n2.total_entries(), 4);
}

#[test]
fn fragmented_knowledge_is_bounded() {
    let mut n1 = QuarantineIndex::new();
    for k in 0..(2 * KNOWN_RANGES_MAX as u64 + 4) {
        n1.upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
    }
    let mut n2 = QuarantineIndex::new();
    let mut refused = None;
    for k in 0..(KNOWN_RANGES_MAX as u64 + 2) {
        let theirs = BTreeMap::from([("n1".to_string(), 2 * k + 1)]);
        if let Err(err) = n2.apply(n1.delta_since(&theirs, 1)) {
            refused = Some(err);
            break;
        }
    }
    let (_, problem) = invalid(Err(refused.expect("refused once too fragmented")));
    assert_eq!(
        problem,
        Problem::TooFragmented {
            max: KNOWN_RANGES_MAX
        }
    );
    sync(&n1, &mut n2, 1000);
    assert_eq!(n2, n1, "a contiguous delta mends the gaps");
}

#[test]
fn restore_after_empty_restart_keeps_tombstones_and_outruns_old_seqs() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", entry("n1", "a", 10)).expect("add");
    n1.upsert_own("n1", entry("n1", "b", 20)).expect("add");
    n1.set_status_own("n1", "a", EntryStatus::Released, 30)
        .expect("release");
    let mut peer = QuarantineIndex::new();
    sync(&n1, &mut peer, 100);
    // Changes that reached only a peer that is down during the restart:
    n1.upsert_own("n1", entry("n1", "ghost", 40)).expect("add");
    let mut away = peer.clone();
    sync(&n1, &mut away, 100);
    let old_high = n1.high_water("n1");

    let mut restarted = QuarantineIndex::new();
    let report = restarted.restore_own("n1", &peer, 7).expect("restore");
    assert_eq!(
        report.mark,
        7 * SEQS_PER_MS,
        "the clock reserve is above every old seq"
    );
    assert_eq!((report.entries, report.high), (2, 7 * SEQS_PER_MS + 2));
    assert_eq!(restarted.floor("n1"), report.mark + 1);
    assert!(report.mark >= old_high);
    assert_eq!(
        restarted.get("a").map(|e| (e.status, e.status_ms)),
        Some((EntryStatus::Released, 30)),
        "the release is remembered"
    );
    let err = restarted.set_status_own("n1", "a", EntryStatus::Quarantined, 50);
    assert!(err.is_err());
    let fresh = restarted
        .upsert_own("n1", entry("n1", "c", 60))
        .expect("new")
        .seq;
    assert!(fresh > old_high);

    sync(&restarted, &mut peer, 100);
    sync(&restarted, &mut away, 100);
    assert!(
        away.get("ghost").is_none(),
        "an item the node did not adopt vanishes"
    );
    assert_eq!(
        away.get("c").map(|e| e.seq),
        Some(fresh),
        "the new write reaches everyone"
    );
    assert_eq!(away, restarted);
    assert_eq!(peer, restarted);
    sync(&away, &mut restarted, 100);
    assert_eq!(away, restarted);
}

#[test]
fn restore_without_peers_uses_the_clock_reserve() {
    let mut index = QuarantineIndex::new();
    let report = index
        .restore_own("n1", &QuarantineIndex::new(), 1_700_000_000_000)
        .expect("restore");
    assert_eq!(report.mark, 1_700_000_000_000 * SEQS_PER_MS);
    assert!(report.mark < SEQ_MAX);
    let seq = index
        .upsert_own("n1", entry("n1", "a", 1))
        .expect("add")
        .seq;
    assert_eq!(seq, report.mark + 1);
    let err = index
        .restore_own("n1", &QuarantineIndex::new(), u64::MAX / 2)
        .expect_err("beyond");
    assert_eq!(err, IndexError::SeqExhausted("n1".into()));
}

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
            action: IntentAction::Release
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

#[test]
fn search_filters_orders_and_pages() {
    let mut index = QuarantineIndex::new();
    for (node, id, ms) in [
        ("n1", "a", 10),
        ("n2", "b", 30),
        ("n1", "c", 20),
        ("n3", "d", 30),
    ] {
        index.upsert_own(node, entry(node, id, ms)).expect("add");
    }
    let mut special = entry("n2", "e", 25);
    special.sender = "Bob@ÉXAMPLE.com".into();
    special.subject = "Rechnung Nr. 7".into();
    special.recipients = vec!["Ops@Corp.example".into()];
    index.upsert_own("n2", special).expect("add");
    index
        .set_status_own("n1", "c", EntryStatus::Released, 40)
        .expect("release");
    assert_eq!(all(&index), ["d", "b", "e", "c", "a"]);

    let q = |f: &dyn Fn(&mut IndexQuery)| {
        let mut query = IndexQuery::default();
        f(&mut query);
        ids(&index.search(&query).0)
    };
    assert_eq!(q(&|q| q.sender = Some("bob@éxample".into())), ["e"]);
    assert_eq!(q(&|q| q.rcpt = Some("OPS@corp".into())), ["e"]);
    assert_eq!(
        q(&|q| q.rcpt = Some("postmaster".into())),
        ["d", "b", "c", "a"]
    );
    assert_eq!(q(&|q| q.subject = Some("RECHNUNG".into())), ["e"]);
    assert_eq!(q(&|q| q.node = Some("n1".into())), ["c", "a"]);
    assert_eq!(q(&|q| q.since_ms = Some(25)), ["d", "b", "e"]);
    assert_eq!(q(&|q| q.status = Some(EntryStatus::Released)), ["c"]);
    assert_eq!(
        q(&|q| {
            q.node = Some("n2".into());
            q.subject = Some("of".into());
        }),
        ["b"]
    );

    let mut query = IndexQuery {
        limit: 2,
        ..IndexQuery::default()
    };
    let (page, next) = index.search(&query);
    assert_eq!(ids(&page), ["d", "b"]);
    let next = next.expect("more");
    assert_eq!(next.to_string(), "30:b");
    index
        .upsert_own("n3", entry("n3", "newer", 99))
        .expect("arrives meanwhile");
    index
        .upsert_own("n3", entry("n3", "between", 28))
        .expect("arrives meanwhile");
    query.cursor = Some(next.to_string().parse().expect("cursor"));
    let (page, next) = index.search(&query);
    assert_eq!(ids(&page), ["between", "e"]);
    query.cursor = next;
    let (page, next) = index.search(&query);
    assert_eq!(
        (ids(&page), next),
        (vec!["c".to_string(), "a".to_string()], None)
    );
    query.since_ms = Some(50);
    query.cursor = Some(Cursor {
        received_ms: 20,
        id: "c".into(),
    });
    assert_eq!(index.search(&query), (Vec::new(), None));
    assert_eq!(
        index
            .search(&IndexQuery {
                limit: 1,
                ..IndexQuery::default()
            })
            .0
            .len(),
        1
    );
}

#[test]
fn one_id_claimed_by_two_owners_is_listed_once_per_owner() {
    let mut index = QuarantineIndex::new();
    index.upsert_own("n1", entry("n1", "x", 10)).expect("add");
    index.upsert_own("n2", entry("n2", "x", 10)).expect("add");
    index.upsert_own("n2", entry("n2", "y", 5)).expect("add");
    let (page, next) = index.search(&IndexQuery {
        limit: 1,
        ..IndexQuery::default()
    });
    assert_eq!(
        page.iter().map(|e| e.node.as_str()).collect::<Vec<_>>(),
        ["n2", "n1"]
    );
    let query = IndexQuery {
        limit: 1,
        cursor: next,
        ..IndexQuery::default()
    };
    assert_eq!(ids(&index.search(&query).0), ["y"]);
}

#[test]
fn counts() {
    let mut index = QuarantineIndex::new();
    for k in 0..5 {
        index
            .upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
    }
    index.upsert_own("n2", entry("n2", "b", 1)).expect("add");
    index
        .set_status_own("n1", "a1", EntryStatus::Deleted, 9)
        .expect("delete");
    assert_eq!((index.live_entries("n1"), index.live_entries("n2")), (4, 1));
    assert_eq!((index.live_entries("n9"), index.total_entries()), (0, 6));
    assert_eq!(index.owners().collect::<Vec<_>>(), ["n1", "n2"]);
}

#[test]
fn serialises_with_a_schema_version_and_round_trips() {
    let mut n1 = QuarantineIndex::new();
    n1.upsert_own("n1", entry("n1", "a", 10)).expect("add");
    n1.upsert_own("n1", entry("n1", "b", 11)).expect("add");
    n1.set_status_own("n1", "a", EntryStatus::Released, 12)
        .expect("release");
    n1.purge_expired_own("n1", 100).expect("purge");
    let mut n2 = QuarantineIndex::new();
    sync(&n1, &mut n2, 100);
    n2.request("n2", "b", pending("n2", "r1", IntentAction::Delete))
        .expect("ask");
    let partial = n1.delta_since(&BTreeMap::new(), 1);
    n2.apply(partial).expect("nothing new");

    let json = serde_json::to_value(&n2).expect("serialise");
    assert_eq!(json["v"], 1);
    let back: QuarantineIndex = serde_json::from_value(json.clone()).expect("deserialise");
    assert_eq!(back, n2);
    assert_eq!(
        back.get("b")
            .and_then(|e| e.pending.as_ref())
            .map(|p| p.action),
        Some(IntentAction::Delete)
    );

    let delta = n2.delta_since(&BTreeMap::new(), 100);
    let text = serde_json::to_string(&delta).expect("serialise delta");
    assert!(text.starts_with("{\"v\":1,"));
    let parsed: IndexDelta = serde_json::from_str(&text).expect("parse delta");
    assert_eq!(parsed, delta);

    let mut wrong = json;
    wrong["v"] = 7.into();
    let err = serde_json::from_value::<QuarantineIndex>(wrong).expect_err("version");
    assert!(
        err.to_string().contains("unsupported schema version 7"),
        "{err}"
    );
    let err = serde_json::from_str::<IndexDelta>(r#"{"v":1,"owners":[{"node":"n1"}]}"#);
    assert!(err.is_err(), "from and to are required");
}

#[test]
fn merge_is_apply_of_everything() {
    let mut n1 = QuarantineIndex::new();
    let mut n2 = QuarantineIndex::new();
    for k in 0..30 {
        n1.upsert_own("n1", entry("n1", &format!("a{k}"), k))
            .expect("add");
        n2.upsert_own("n2", entry("n2", &format!("b{k}"), k))
            .expect("add");
    }
    let mut left = n1.clone();
    left.merge(&n2).expect("merge");
    let mut right = n2.clone();
    right.merge(&n1).expect("merge");
    assert_eq!(left, right);
    assert_eq!(left.total_entries(), 60);
}

/// Builds 1,000,000 entries across 3 owners, each with a score and ten symbols as a
/// quarantined message typically has, and prints the time of 100 searches and the resident
/// memory per entry. Prints only: timings depend on the machine and the profile.
#[test]
fn million_entries_search_timing() {
    const ENTRIES: u64 = 1_000_000;
    let rss_before = resident_bytes();
    let build = Instant::now();
    let mut index = QuarantineIndex::new();
    let owners = ["n1", "n2", "n3"];
    for k in 0..ENTRIES {
        let node = owners[(k % 3) as usize];
        let e = IndexEntry {
            id: format!("01J{k:023}"),
            node: node.to_string(),
            received_ms: 1_700_000_000_000 + k * 7,
            sender: format!("user{}@sender{}.example", k % 5000, k % 97),
            recipients: vec![format!("rcpt{}@corp.example", k % 300)],
            subject: format!("Invoice {k} for your account (spam?)"),
            size: 10_000 + k % 5000,
            reason: "rule matched".to_string(),
            rule_id: Some("01HRULE0000000000000000000".to_string()),
            score: Some(12.5),
            symbols: typical_symbols().into(),
            status: EntryStatus::Quarantined,
            status_ms: 1_700_000_000_000 + k * 7,
            pending: None,
            seq: 0,
            copies: Vec::new(),
            adopted_from: None,
        };
        index.upsert_own(node, e).expect("add");
    }
    let built = build.elapsed();
    let rss_after = resident_bytes();
    assert_eq!(index.total_entries(), ENTRIES as usize);

    let queries: Vec<IndexQuery> = (0..100u64)
        .map(|n| match n % 5 {
            0 => IndexQuery::default(),
            1 => IndexQuery {
                sender: Some(format!("USER{}@", n * 37)),
                ..IndexQuery::default()
            },
            2 => IndexQuery {
                node: Some("n2".into()),
                subject: Some("invoice 9".into()),
                ..IndexQuery::default()
            },
            3 => IndexQuery {
                cursor: Some(Cursor {
                    received_ms: 1_700_000_000_000 + n * 60_000,
                    id: "01J".into(),
                }),
                rcpt: Some("rcpt7@".into()),
                ..IndexQuery::default()
            },
            _ => IndexQuery {
                subject: Some("no such subject".into()),
                ..IndexQuery::default()
            },
        })
        .collect();
    let mut by_kind = [std::time::Duration::ZERO; 5];
    let mut found = 0;
    let timer = Instant::now();
    for (n, query) in queries.iter().enumerate() {
        let one = Instant::now();
        found += index.search(query).0.len();
        by_kind[n % 5] += one.elapsed();
    }
    let searched = timer.elapsed();
    println!(
        "1M entries: built in {built:?}; 100 searches in {searched:?} ({:?} each, {found} items)",
        searched / 100
    );
    let kinds = [
        "no filter",
        "rare sender",
        "node+subject",
        "cursor+rcpt",
        "no match",
    ];
    for (kind, total) in kinds.iter().zip(by_kind) {
        println!("  {kind}: {:?} per search", total / 20);
    }
    println!(
        "size_of IndexEntry {} bytes",
        std::mem::size_of::<IndexEntry>()
    );
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!(
            "resident memory: {} bytes per entry",
            after.saturating_sub(before) / ENTRIES
        );
    }
}

/// The symbols a typical quarantined message carries (ten, the names of the node's table).
fn typical_symbols() -> Vec<SymbolWeight> {
    let names = [
        "FROM_NAME_SPOOFS_ADDRESS",
        "HTML_LINK_TEXT_MISMATCH",
        "SUBJECT_ALL_CAPS",
        "URL_IP_ADDRESS",
        "BODY_SPAM_PHRASES",
        "MIME_HTML_ONLY",
        "MISSING_MESSAGE_ID",
        "MISSING_DATE",
        "RECEIVED_MISSING",
        "SPF_PASS",
    ];
    let weight = |n: usize| 2.5 - n as f64 * 0.25;
    let symbol = |(n, name): (usize, &str)| SymbolWeight {
        name: name.to_string(),
        weight: weight(n),
    };
    names.into_iter().enumerate().map(symbol).collect()
}

/// Resident set size from /proc (Linux), for the timing test's memory estimate.
fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
