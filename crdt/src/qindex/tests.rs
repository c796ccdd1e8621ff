//! Unit tests of the quarantine index, one or more per operation.

use std::collections::BTreeMap;

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
        recipients_released: Vec::new(),
        recipients_deleted: Vec::new(),
    }
}

fn pending(by: &str, request_id: &str, action: IntentAction) -> PendingAction {
    PendingAction {
        action,
        requested_by: by.to_string(),
        admin: "alice".into(),
        requested_ms: 5_000,
        request_id: request_id.to_string(),
        recipient: None,
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

mod requests;
mod search;
