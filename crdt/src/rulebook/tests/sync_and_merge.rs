//! Sync input is untrusted; merge order does not matter; restarts get what they lost.

use proptest::prelude::*;

use super::*;

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
