//! Unit tests of the learned corpus, one or more per operation.

use std::collections::{BTreeMap, HashMap};

use super::*;

pub(super) fn digest(n: u8) -> Digest {
    let mut bytes = [0u8; DIGEST_BYTES];
    bytes[0] = n;
    bytes[31] = 0xa5;
    Digest(bytes)
}

/// Sends everything `from` has that `to` lacks, in deltas of at most `max` records.
pub(super) fn sync(from: &BayesCorpus, to: &mut BayesCorpus, max: usize) {
    for _ in 0..10_000 {
        let delta = from.delta_since(&to.version_vector(), max);
        let report = to.apply(delta).expect("apply");
        if !report.changed() {
            return;
        }
    }
    panic!("sync did not finish");
}

fn both_ways(a: &mut BayesCorpus, b: &mut BayesCorpus) {
    sync(a, b, 100);
    sync(b, a, 100);
}

/// A recount written independently of the corpus: the winner of each digest by
/// `(stamp_ms, owner)` over the records, and its contribution.
pub(super) fn recount(
    records: impl Iterator<Item = Record>,
) -> (HashMap<u64, ClassCounts>, ClassCounts) {
    let mut winners: BTreeMap<Digest, Record> = BTreeMap::new();
    for record in records {
        let better = winners.get(&record.digest).is_none_or(|best| {
            (record.stamp_ms, record.owner.as_str()) > (best.stamp_ms, best.owner.as_str())
        });
        if better {
            winners.insert(record.digest, record);
        }
    }
    let mut counts: HashMap<u64, ClassCounts> = HashMap::new();
    let mut learned = ClassCounts::default();
    for record in winners.values() {
        if let RecordOp::Learn { class, tokens } = &record.op {
            learned.step(*class, true);
            for token in tokens {
                counts.entry(*token).or_default().step(*class, true);
            }
        }
    }
    (counts, learned)
}

/// Asserts the incremental counts equal both recounts (the corpus's own and the test's).
pub(super) fn assert_counts_recounted(corpus: &BayesCorpus) {
    corpus.audit().expect("audit");
    let (counts, learned) = recount(corpus.records());
    assert_eq!(corpus.learned(), learned);
    assert_eq!(corpus.tokens(), counts.len());
    for (token, count) in counts {
        assert_eq!(corpus.counts(token), count, "token {token}");
    }
}

fn invalid(result: Result<ApplyReport, BayesError>) -> (String, Problem) {
    match result {
        Err(BayesError::Invalid { at, problem }) => (at, problem),
        other => panic!("expected an invalid-input error, got {other:?}"),
    }
}

#[test]
fn learn_counts_the_message_and_its_distinct_tokens() {
    let mut c = BayesCorpus::new();
    let report = c
        .learn("n1", digest(1), Class::Spam, &[3, 1, 3, 2], 1_000)
        .expect("learn");
    assert_eq!(report.outcome, LearnOutcome::Learned);
    let [record] = &report.changes.put[..] else {
        panic!("one record written");
    };
    assert_eq!((record.seq, record.stamp_ms), (1, 1_000));
    let tokens = vec![1, 2, 3];
    assert_eq!(
        record.op,
        RecordOp::Learn {
            class: Class::Spam,
            tokens
        }
    );
    assert_eq!(c.class_of(&digest(1)), Some(Class::Spam));
    assert_eq!(c.counts(3), ClassCounts { spam: 1, ham: 0 });
    assert_eq!(c.counts(4), ClassCounts::default());
    assert_eq!(
        (c.learned(), c.tokens()),
        (ClassCounts { spam: 1, ham: 0 }, 3)
    );
    c.learn("n1", digest(2), Class::Ham, &[3, 4], 1_000)
        .expect("learn");
    assert_eq!(c.counts(3), ClassCounts { spam: 1, ham: 1 });
    assert_eq!(
        (c.learned(), c.tokens()),
        (ClassCounts { spam: 1, ham: 1 }, 4)
    );
    let n1 = c.contributions()["n1"];
    assert_eq!(
        (n1.winning, n1.records),
        (ClassCounts { spam: 1, ham: 1 }, 2)
    );
    assert_counts_recounted(&c);
}

#[test]
fn a_plan_changes_nothing_until_committed_and_goes_stale() {
    let mut c = BayesCorpus::new();
    c.learn("n2", digest(9), Class::Ham, &[7], 500)
        .expect("peer");
    let before = c.clone();
    let plan = c
        .plan_learn("n1", digest(1), Class::Spam, &[3, 1], 1_000)
        .expect("plan");
    let forget = c.plan_forget("n1", digest(9), 1_000).expect("plan");
    assert_eq!(c, before, "planning writes nothing");
    assert_eq!(c.class_of(&digest(1)), None);
    // Committed, it is what learn would have done.
    c.commit_own("n1", &plan.changes).expect("commit");
    let mut direct = before.clone();
    direct
        .learn("n1", digest(1), Class::Spam, &[1, 3], 1_000)
        .expect("learn");
    assert_eq!(c, direct);
    // The forget was planned with the same seq: stale now, refused, nothing changed.
    let err = c.commit_own("n1", &forget.changes).expect_err("stale");
    assert_eq!(
        err,
        BayesError::StalePlan {
            me: "n1".into(),
            seq: 1,
            next: 2
        }
    );
    assert_eq!(c, direct);
    let theirs = c.plan_forget("n2", digest(9), 2_000).expect("plan of n2");
    assert!(
        c.commit_own("n1", &theirs.changes).is_err(),
        "not n1's record"
    );
    assert_counts_recounted(&c);
}

#[test]
fn learning_the_same_class_again_writes_nothing() {
    let mut c = BayesCorpus::new();
    c.learn("n1", digest(1), Class::Spam, &[1], 1_000)
        .expect("learn");
    let again = c
        .learn("n2", digest(1), Class::Spam, &[1, 2], 2_000)
        .expect("again");
    assert_eq!(again.outcome, LearnOutcome::AlreadyLearned);
    assert!(again.changes.is_empty());
    assert_eq!((c.learned().spam, c.record_count()), (1, 1));
}

#[test]
fn relearning_as_the_other_class_moves_the_message() {
    let mut c = BayesCorpus::new();
    c.learn("n1", digest(1), Class::Spam, &[1, 2], 1_000)
        .expect("learn");
    let moved = c
        .learn("n1", digest(1), Class::Ham, &[1, 2], 1_000)
        .expect("move");
    assert_eq!(moved.outcome, LearnOutcome::Moved { from: Class::Spam });
    assert_eq!(
        moved.changes.put[0].stamp_ms, 1_001,
        "stamped after what it saw"
    );
    assert_eq!(c.class_of(&digest(1)), Some(Class::Ham));
    assert_eq!(c.counts(1), ClassCounts { spam: 0, ham: 1 });
    assert_eq!(c.learned(), ClassCounts { spam: 0, ham: 1 });
    assert_eq!(
        c.record_count(),
        1,
        "the owner keeps its latest record only"
    );
    assert_counts_recounted(&c);
}

#[test]
fn forget_removes_and_says_what_was_learned() {
    let mut c = BayesCorpus::new();
    c.learn("n1", digest(1), Class::Spam, &[1, 2], 1_000)
        .expect("learn");
    let forgot = c.forget("n1", digest(1), 2_000).expect("forget");
    assert_eq!(forgot.was, Some(Class::Spam));
    assert!(matches!(forgot.changes.put[0].op, RecordOp::Forget));
    assert_eq!(
        (c.class_of(&digest(1)), c.learned(), c.tokens()),
        (None, ClassCounts::default(), 0)
    );
    let again = c.forget("n2", digest(1), 3_000).expect("forget again");
    assert_eq!(again.was, None);
    assert!(
        again.changes.is_empty(),
        "already forgotten: nothing written"
    );
    let winner = c.winner_of(&digest(1)).expect("tombstone");
    assert_eq!((winner.owner.as_str(), winner.op), ("n1", RecordOp::Forget));
    let unknown = c.forget("n1", digest(9), 3_000).expect("forget unknown");
    assert_eq!((unknown.was, unknown.changes.put.len()), (None, 1));
    let back = c
        .learn("n2", digest(1), Class::Ham, &[5], 4_000)
        .expect("relearn");
    assert_eq!(back.outcome, LearnOutcome::Learned);
    assert_eq!(c.counts(5), ClassCounts { spam: 0, ham: 1 });
    assert_counts_recounted(&c);
}

#[test]
fn concurrent_learns_of_one_message_count_once() {
    let (mut a, mut b) = (BayesCorpus::new(), BayesCorpus::new());
    a.learn("n1", digest(1), Class::Spam, &[1, 2], 5_000)
        .expect("learn on n1");
    b.learn("n2", digest(1), Class::Spam, &[1, 2], 5_000)
        .expect("learn on n2");
    both_ways(&mut a, &mut b);
    assert!(a == b);
    assert_eq!(a.record_count(), 2, "both contributions are held");
    assert_eq!(a.learned(), ClassCounts { spam: 1, ham: 0 });
    assert_eq!(a.counts(1), ClassCounts { spam: 1, ham: 0 });
    let contributions = a.contributions();
    assert_eq!(contributions["n1"].winning, ClassCounts::default());
    assert_eq!(
        contributions["n2"].winning.spam, 1,
        "equal stamps: the greater owner id wins"
    );
    assert_counts_recounted(&a);
}

#[test]
fn a_replica_lacking_a_losing_record_has_another_fingerprint() {
    let (mut a, mut b) = (BayesCorpus::new(), BayesCorpus::new());
    a.learn("n1", digest(1), Class::Spam, &[1, 2], 5_000)
        .expect("learn on n1");
    b.learn("n2", digest(1), Class::Spam, &[1, 2], 5_001)
        .expect("learn on n2");
    // c holds only n2's (winning) record: it classifies like a and b once they merged...
    let mut c = BayesCorpus::new();
    sync(&b, &mut c, 100);
    both_ways(&mut a, &mut b);
    assert_eq!(c.learned(), a.learned());
    // ...but lacks n1's record, and the fingerprint says so (peers sync on a difference).
    assert_ne!(c.fingerprint(), a.fingerprint());
    sync(&a, &mut c, 100);
    assert_eq!(c.record_count(), 2);
    assert_eq!(c.fingerprint(), a.fingerprint());
    assert_eq!(b.fingerprint(), a.fingerprint());
}

#[test]
fn concurrent_learns_as_different_classes_the_later_wins() {
    let (mut a, mut b) = (BayesCorpus::new(), BayesCorpus::new());
    a.learn("n2", digest(1), Class::Spam, &[1], 5_000)
        .expect("learn on n2");
    b.learn("n1", digest(1), Class::Ham, &[1], 5_001)
        .expect("learn on n1");
    both_ways(&mut a, &mut b);
    for c in [&a, &b] {
        assert_eq!(c.class_of(&digest(1)), Some(Class::Ham));
        assert_eq!(c.counts(1), ClassCounts { spam: 0, ham: 1 });
    }
}

#[test]
fn a_later_operation_wins_even_from_a_slow_clock() {
    let (mut a, mut b) = (BayesCorpus::new(), BayesCorpus::new());
    a.learn("n1", digest(1), Class::Spam, &[1], 90_000)
        .expect("learn, clock ahead");
    sync(&a, &mut b, 10);
    let forgot = b
        .forget("n2", digest(1), 10_000)
        .expect("forget, clock behind");
    assert_eq!(forgot.changes.put[0].stamp_ms, 90_001);
    both_ways(&mut a, &mut b);
    assert_eq!(a.class_of(&digest(1)), None, "forgotten on every node");
    assert_eq!(
        (a.learned(), b.learned()),
        (ClassCounts::default(), ClassCounts::default())
    );
}

#[test]
fn deltas_respect_the_record_and_token_bounds() {
    let mut a = BayesCorpus::new();
    for n in 0..5 {
        a.learn("n1", digest(n), Class::Spam, &[u64::from(n)], 1_000)
            .expect("learn");
    }
    let delta = a.delta_since(&BTreeMap::new(), 2);
    assert_eq!(delta.record_count(), 2);
    assert_eq!(
        (delta.owners[0].from, delta.owners[0].to),
        (0, 2),
        "claims up to the cut"
    );
    let mut b = BayesCorpus::new();
    b.apply(delta).expect("apply");
    assert_eq!(b.version_vector()["n1"], 2);
    sync(&a, &mut b, 1);
    assert!(a == b);

    let mut big = BayesCorpus::new();
    let tokens: Vec<u64> = (0..TOKENS_PER_RECORD_MAX as u64).collect();
    let fit = DELTA_TOKENS_MAX / TOKENS_PER_RECORD_MAX;
    for n in 0..=fit as u8 {
        big.learn("n1", digest(n), Class::Ham, &tokens, 1_000)
            .expect("learn");
    }
    let delta = big.delta_since(&BTreeMap::new(), DELTA_RECORDS_MAX);
    assert_eq!(
        (delta.record_count(), delta.owners[0].to),
        (fit, fit as u64)
    );
    assert!(delta.token_count() <= DELTA_TOKENS_MAX);
}

#[test]
fn learn_refuses_too_many_tokens_and_bad_ids() {
    let mut c = BayesCorpus::new();
    let tokens: Vec<u64> = (0..=TOKENS_PER_RECORD_MAX as u64).collect();
    let err = c
        .learn("n1", digest(1), Class::Spam, &tokens, 1)
        .expect_err("too many");
    let max = TOKENS_PER_RECORD_MAX;
    assert_eq!(err, BayesError::at("tokens", Problem::TooMany { max }));
    let err = c
        .learn("", digest(1), Class::Spam, &[1], 1)
        .expect_err("empty id");
    assert!(matches!(err, BayesError::Invalid { ref at, .. } if at == "me"));
    assert_eq!(c, BayesCorpus::new(), "nothing changed");
}

/// A corpus of two learns by `n1` and the delta carrying them.
fn two_learns() -> BayesDelta {
    let mut a = BayesCorpus::new();
    a.learn("n1", digest(1), Class::Spam, &[1, 2], 1_000)
        .expect("learn");
    a.learn("n1", digest(2), Class::Ham, &[2, 3], 1_000)
        .expect("learn");
    a.delta_since(&BTreeMap::new(), 100)
}

#[test]
fn apply_refuses_hostile_deltas_naming_the_fault() {
    type Break = fn(&mut BayesDelta);
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "wrong writer",
            |d| d.owners[0].records[1].owner = "n2".into(),
            "owners[0].records[1].owner",
        ),
        (
            "unsorted tokens",
            |d| {
                d.owners[0].records[0].op = RecordOp::Learn {
                    class: Class::Spam,
                    tokens: vec![2, 1],
                }
            },
            "owners[0].records[0].op.tokens",
        ),
        (
            "seq beyond the range",
            |d| d.owners[0].to = 1,
            "owners[0].records[1].seq",
        ),
        (
            "seqs out of order",
            |d| d.owners[0].records.swap(0, 1),
            "owners[0].records[1].seq",
        ),
        (
            "digest twice",
            |d| d.owners[0].records[1].digest = digest(1),
            "owners[0].records[1].digest",
        ),
        (
            "owner twice",
            |d| d.owners.push(d.owners[0].clone()),
            "owners[1].node",
        ),
        ("bad range", |d| d.owners[0].from = 5, "owners[0]"),
        (
            "floor above range",
            |d| d.owners[0].floor = 9,
            "owners[0].floor",
        ),
        (
            "below floor",
            |d| d.owners[0].floor = 2,
            "owners[0].records[0].seq",
        ),
        (
            "seq too large",
            |d| d.owners[0].to = SEQ_MAX + 1,
            "owners[0].to",
        ),
        (
            "stamp too large",
            |d| d.owners[0].records[0].stamp_ms = u64::MAX,
            "owners[0].records[0].stamp_ms",
        ),
        (
            "empty node id",
            |d| d.owners[0].node = String::new(),
            "owners[0].node",
        ),
    ];
    for (name, break_it, at_expected) in cases {
        let mut delta = two_learns();
        break_it(&mut delta);
        let mut c = BayesCorpus::new();
        let (at, problem) = invalid(c.apply(delta));
        assert_eq!(at, at_expected, "{name}: {problem}");
        assert_eq!(c, BayesCorpus::new(), "{name}: nothing changed");
    }
    let mut delta = two_learns();
    delta.v = 2;
    let err = BayesCorpus::new().apply(delta).expect_err("version");
    assert!(matches!(
        err,
        BayesError::UnsupportedVersion {
            found: 2,
            supported: 1
        }
    ));
}

#[test]
fn apply_refuses_oversized_deltas() {
    let mut delta = two_learns();
    let record = delta.owners[0].records[0].clone();
    delta.owners[0].records = (1..=DELTA_RECORDS_MAX as u64 + 1)
        .map(|seq| Record {
            seq,
            digest: Digest([seq as u8; 32]),
            ..record.clone()
        })
        .collect();
    delta.owners[0].to = DELTA_RECORDS_MAX as u64 + 1;
    let (at, problem) = invalid(BayesCorpus::new().apply(delta));
    assert_eq!(
        (at.as_str(), problem),
        (
            "owners",
            Problem::TooMany {
                max: DELTA_RECORDS_MAX
            }
        )
    );
    let mut delta = two_learns();
    let tokens: Vec<u64> = (0..TOKENS_PER_RECORD_MAX as u64).collect();
    delta.owners[0].records.truncate(1);
    delta.owners = (0..DELTA_TOKENS_MAX / TOKENS_PER_RECORD_MAX + 1)
        .map(|n| {
            let mut section = delta.owners[0].clone();
            section.node = format!("n{n}");
            section.records[0].owner = section.node.clone();
            section.records[0].op = RecordOp::Learn {
                class: Class::Spam,
                tokens: tokens.clone(),
            };
            section
        })
        .collect();
    let (at, problem) = invalid(BayesCorpus::new().apply(delta));
    assert_eq!(
        (at.as_str(), problem),
        (
            "owners",
            Problem::TooMany {
                max: DELTA_TOKENS_MAX
            }
        )
    );
}

#[test]
fn a_reused_seq_is_refused_as_a_conflict() {
    let mut a = BayesCorpus::new();
    a.learn("n1", digest(1), Class::Spam, &[1], 1_000)
        .expect("learn");
    let mut b = BayesCorpus::new();
    sync(&a, &mut b, 10);
    // n1 loses its store and, wrongly, starts again without restore_own: seq 1 again.
    let mut wiped = BayesCorpus::new();
    wiped
        .learn("n1", digest(2), Class::Ham, &[2], 2_000)
        .expect("learn");
    let delta = wiped.delta_since(&BTreeMap::new(), 10);
    let (at, problem) = invalid(b.apply(delta));
    assert_eq!(
        (at.as_str(), problem),
        ("owners[0].records[0]", Problem::SeqConflict(1))
    );
}

#[test]
fn duplicated_late_and_gapped_deltas_are_harmless() {
    let mut a = BayesCorpus::new();
    for n in 0..6 {
        a.learn("n1", digest(n), Class::Spam, &[u64::from(n)], 1_000)
            .expect("learn");
    }
    let first = a.delta_since(&BTreeMap::new(), 3);
    let later = a.delta_since(&BTreeMap::from([("n1".to_string(), 3)]), 3);
    let mut b = BayesCorpus::new();
    let report = b.apply(later.clone()).expect("gap");
    assert_eq!(
        (report.ignored, report.changed()),
        (3, false),
        "a section above the version"
    );
    b.apply(first.clone()).expect("first");
    b.apply(first).expect("duplicate");
    b.apply(later.clone()).expect("later");
    let report = b.apply(later).expect("duplicate");
    assert!(!report.changed());
    assert!(a == b);
    assert_counts_recounted(&b);
}

#[test]
fn restore_rebuilds_what_was_persisted() {
    let (mut a, mut b) = (BayesCorpus::new(), BayesCorpus::new());
    let mut store: BTreeMap<(String, Digest), Record> = BTreeMap::new();
    let mut persist = |changes: Changes| {
        for key in changes.delete {
            store.remove(&(key.owner, key.digest));
        }
        for record in changes.put {
            store.insert((record.owner.clone(), record.digest), record);
        }
    };
    persist(
        a.learn("n1", digest(1), Class::Spam, &[1, 2], 1_000)
            .expect("learn")
            .changes,
    );
    persist(
        a.learn("n1", digest(2), Class::Ham, &[2], 1_000)
            .expect("learn")
            .changes,
    );
    b.learn("n2", digest(3), Class::Spam, &[3], 1_000)
        .expect("learn");
    b.learn("n2", digest(1), Class::Ham, &[1], 2_000)
        .expect("move");
    persist(
        a.apply(b.delta_since(&a.version_vector(), 10))
            .expect("sync")
            .changes,
    );
    persist(a.forget("n1", digest(2), 3_000).expect("forget").changes);
    let restored = BayesCorpus::restore([], store.values().cloned()).expect("restore");
    assert!(restored == a, "records, versions and counts come back");
    assert_eq!(restored.fingerprint(), a.fingerprint());
    assert!(restored.clock_ms() >= 3_000);
    let mut shuffled: Vec<Record> = store.into_values().rev().collect();
    shuffled.push(shuffled[0].clone());
    let again = BayesCorpus::restore([], shuffled.clone()).expect("any order, duplicates");
    assert!(again == a);
    shuffled[0].stamp_ms += 1;
    let err = BayesCorpus::restore([], shuffled).expect_err("two records under one seq");
    assert!(matches!(
        err,
        BayesError::Invalid {
            problem: Problem::SeqConflict(_),
            ..
        }
    ));
}

#[test]
fn restart_on_a_wiped_store_reissues_above_what_peers_hold() {
    let (mut n1, mut n2, mut n3) = (BayesCorpus::new(), BayesCorpus::new(), BayesCorpus::new());
    n1.learn("n1", digest(1), Class::Spam, &[1, 2], 1_000)
        .expect("learn a");
    sync(&n1, &mut n2, 10);
    n1.learn("n1", digest(2), Class::Ham, &[2, 3], 1_100)
        .expect("learn b");
    sync(&n1, &mut n3, 10); // only n3 has heard of b
    // n1 loses its store and restarts while only n2 is reachable.
    let mut fresh = BayesCorpus::new();
    let report = fresh.restore_own("n1", &n2, 2_000).expect("restore");
    assert_eq!(report.reissued, 1, "adopts what n2 knows: a");
    assert_eq!(report.mark, 2_000 * SEQS_PER_MS);
    assert_eq!(
        report.changes.floors,
        vec![("n1".to_string(), report.mark + 1)]
    );
    assert_eq!(
        report.changes.put.last().expect("reissued").seq,
        report.mark + 1
    );
    let mut n1 = fresh;
    let learned = n1
        .learn("n1", digest(4), Class::Spam, &[4], 2_001)
        .expect("learn after");
    assert_eq!(learned.changes.put[0].seq, report.mark + 2);
    for _ in 0..2 {
        for (from, to) in [(0, 1), (1, 2), (2, 0), (0, 2), (2, 1), (1, 0)] {
            let mut nodes = [n1.clone(), n2.clone(), n3.clone()];
            let source = nodes[from].clone();
            sync(&source, &mut nodes[to], 2);
            [n1, n2, n3] = nodes;
        }
    }
    assert!(n1 == n2 && n2 == n3, "converged");
    assert_eq!(n3.class_of(&digest(1)), Some(Class::Spam));
    assert_eq!(
        n3.class_of(&digest(2)),
        None,
        "b of the lost life vanished everywhere"
    );
    assert_eq!(n3.learned(), ClassCounts { spam: 2, ham: 0 });
    assert!(
        n3.records().all(|r| r.seq > report.mark),
        "no record of the old life left"
    );
    assert_counts_recounted(&n3);
}

#[test]
fn digest_and_class_parse_and_serialise() {
    let d = digest(7);
    let text = d.to_string();
    assert_eq!(text.len(), 64);
    assert_eq!(text.to_uppercase().parse::<Digest>().expect("hex"), d);
    assert!(matches!(
        "abc".parse::<Digest>(),
        Err(BayesError::BadDigest { .. })
    ));
    assert_eq!("ham".parse::<Class>().expect("ham"), Class::Ham);
    assert!(matches!(
        "eggs".parse::<Class>(),
        Err(BayesError::UnknownClass { .. })
    ));
    let delta = two_learns();
    let json = serde_json::to_string(&delta).expect("serialise");
    assert!(
        json.contains(&format!("\"digest\":\"{}\"", digest(1))),
        "{json}"
    );
    assert!(
        json.contains("\"kind\":\"learn\",\"class\":\"spam\""),
        "{json}"
    );
    let back: BayesDelta = serde_json::from_str(&json).expect("parse");
    assert_eq!(back, delta);
    let bad = json.replacen(&digest(1).to_string(), "zz", 1);
    assert!(serde_json::from_str::<BayesDelta>(&bad).is_err());
    let record = &delta.owners[0].records[0];
    let json = serde_json::to_value(record).expect("record");
    // Tokens 1 and 2 as little-endian u64s, base64 without padding.
    assert_eq!(json["op"]["tokens"], "AQAAAAAAAAACAAAAAAAAAA");
    for (tokens, fault) in [("AQAAAAAAAA", "not a multiple of 8"), ("!!", "not base64")] {
        let mut bad = json.clone();
        bad["op"]["tokens"] = tokens.into();
        let err = serde_json::from_value::<Record>(bad).expect_err(fault);
        assert!(err.to_string().contains(fault), "{err}");
    }
    let mut huge = json.clone();
    huge["op"]["tokens"] = "A".repeat((TOKENS_PER_RECORD_MAX + 2) * 8 * 4 / 3).into();
    let err = serde_json::from_value::<Record>(huge).expect_err("too many");
    assert!(err.to_string().contains("more than"), "{err}");
}
