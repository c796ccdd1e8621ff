//! Property tests: random owner operations on 3 nodes, random (partial, duplicated, late)
//! delta exchanges, whole-message and per-recipient requests, relays by nodes that predate
//! per-recipient decisions (they drop them) and owner restarts with empty state, checked
//! against the lattice laws, convergence, no resurrection and exactly-once execution of
//! requests: no recipient is released or deleted twice.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::tests::entry;
use super::*;

const NODES: [&str; 3] = ["n1", "n2", "n3"];

#[derive(Debug, Clone)]
enum Op {
    /// The node quarantines a new message.
    Add { node: usize },
    /// The node releases, deletes or expires one of its quarantined messages itself.
    Status {
        node: usize,
        pick: usize,
        status: EntryStatus,
    },
    /// The node purges tombstones older than `age` ms.
    Purge { node: usize, age: u64 },
    /// An admin on the node asks to release or delete any quarantined entry it sees, for
    /// the whole message or (`rcpt`) for one recipient (a digest link).
    Request {
        node: usize,
        pick: usize,
        action: IntentAction,
        rcpt: Option<u32>,
    },
    /// The owner releases or deletes one of its messages for one recipient itself.
    Decide {
        node: usize,
        pick: usize,
        rcpt: usize,
        action: IntentAction,
    },
    /// The node carries out the requests pending for it.
    Process { node: usize },
    /// One delta of at most `max` items from one node to another, kept for replay or not;
    /// `lossy`: relayed by a node that predates per-recipient decisions, which drops them.
    Sync {
        from: usize,
        to: usize,
        max: usize,
        keep: bool,
        lossy: bool,
    },
    /// A kept delta arrives again (late, duplicated, out of order).
    Replay { pick: usize, to: usize },
    /// The node restarts with an empty index (and, if `wipe`, an empty store), restores
    /// from another node's replica and reconciles with its store.
    Restart {
        node: usize,
        from: usize,
        wipe: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..3usize;
    let terminal = prop_oneof![
        Just(EntryStatus::Released),
        Just(EntryStatus::Deleted),
        Just(EntryStatus::Expired)
    ];
    let action = prop_oneof![Just(IntentAction::Release), Just(IntentAction::Delete)];
    prop_oneof![
        4 => node.clone().prop_map(|node| Op::Add { node }),
        2 => (node.clone(), any::<usize>(), terminal)
            .prop_map(|(node, pick, status)| Op::Status { node, pick, status }),
        1 => (node.clone(), 0..200u64).prop_map(|(node, age)| Op::Purge { node, age }),
        3 => (node.clone(), any::<usize>(), action.clone(), prop::option::of(0..3u32))
            .prop_map(|(node, pick, action, rcpt)| Op::Request { node, pick, action, rcpt }),
        1 => (node.clone(), any::<usize>(), 0..2usize, action)
            .prop_map(|(node, pick, rcpt, action)| Op::Decide { node, pick, rcpt, action }),
        2 => node.clone().prop_map(|node| Op::Process { node }),
        6 => (node.clone(), node.clone(), 0..8usize, any::<bool>(), prop::bool::weighted(0.2))
            .prop_map(|(from, to, max, keep, lossy)| Op::Sync { from, to, max, keep, lossy }),
        1 => (any::<usize>(), node.clone()).prop_map(|(pick, to)| Op::Replay { pick, to }),
        1 => (node.clone(), node, any::<bool>())
            .prop_map(|(node, from, wipe)| Op::Restart { node, from, wipe }),
    ]
}

/// One node: its index replica and its store (the truth about its own messages).
#[derive(Clone)]
struct SimNode {
    id: &'static str,
    index: QuarantineIndex,
    disk: BTreeMap<String, IndexEntry>,
}

struct Sim {
    nodes: Vec<SimNode>,
    now: u64,
    next: u64,
    stash: Vec<IndexDelta>,
    /// Executions per entry and recipient (a release or delete actually carried out for
    /// that recipient).
    executed: BTreeMap<(String, String), u32>,
    /// Per node, entries it has seen in a terminal status.
    seen_terminal: Vec<BTreeSet<String>>,
    /// Whether a relay that predates per-recipient decisions delivered anything.
    lossy: bool,
}

fn every_entry(index: &QuarantineIndex) -> Vec<IndexEntry> {
    let mut query = IndexQuery {
        limit: SEARCH_LIMIT_MAX,
        ..IndexQuery::default()
    };
    let mut out = Vec::new();
    loop {
        let (page, next) = index.search(&query);
        out.extend(page.into_iter().cloned());
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return out,
        }
    }
}

/// Every page of a listing with a small limit, as (id, node, status, seq).
fn listing(index: &QuarantineIndex) -> Vec<(String, String, EntryStatus, u64)> {
    let mut query = IndexQuery {
        limit: 3,
        ..IndexQuery::default()
    };
    let mut out = Vec::new();
    loop {
        let (page, next) = index.search(&query);
        out.extend(
            page.iter()
                .map(|e| (e.id.clone(), e.node.clone(), e.status, e.seq)),
        );
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => return out,
        }
    }
}

impl Sim {
    fn new() -> Sim {
        Sim {
            nodes: NODES
                .iter()
                .map(|&id| SimNode {
                    id,
                    index: QuarantineIndex::new(),
                    disk: BTreeMap::new(),
                })
                .collect(),
            now: 1_000,
            next: 0,
            stash: Vec::new(),
            executed: BTreeMap::new(),
            seen_terminal: vec![BTreeSet::new(); NODES.len()],
            lossy: false,
        }
    }

    fn step(&mut self, op: &Op) {
        self.now += 7;
        let now = self.now;
        match *op {
            Op::Add { node } => {
                self.next += 1;
                let n = &mut self.nodes[node];
                let id = format!("m{:05}{}", self.next, n.id);
                let e = entry(n.id, &id, now);
                n.disk.insert(id.clone(), e.clone());
                n.index.upsert_own(n.id, e).expect("add");
            }
            Op::Status { node, pick, status } => {
                let n = &mut self.nodes[node];
                let Some(id) = pick_quarantined(&n.disk, pick) else {
                    return;
                };
                let id = &id;
                let stored = n.disk.get_mut(id).expect("on disk");
                let action = match status {
                    EntryStatus::Released => Some(IntentAction::Release),
                    EntryStatus::Deleted => Some(IntentAction::Delete),
                    _ => None,
                };
                match action {
                    Some(action) => {
                        let done = stored.decide(None, action, now).expect("live");
                        let stored = stored.clone();
                        count(&mut self.executed, id, &done);
                        n.index.upsert_own(n.id, stored).expect("decide");
                    }
                    None => {
                        (stored.status, stored.status_ms) = (status, now);
                        n.index
                            .set_status_own(n.id, id, status, now)
                            .expect("status");
                    }
                }
            }
            Op::Decide {
                node,
                pick,
                rcpt,
                action,
            } => {
                let n = &mut self.nodes[node];
                let Some(id) = pick_quarantined(&n.disk, pick) else {
                    return;
                };
                let id = &id;
                let stored = n.disk.get_mut(id).expect("on disk");
                let address = stored.recipients[rcpt].clone();
                match stored.decide(Some(&address), action, now) {
                    Ok(done) => {
                        assert_eq!(done, [address]);
                        count(&mut self.executed, id, &done);
                        let stored = stored.clone();
                        n.index.upsert_own(n.id, stored).expect("decide");
                    }
                    Err(Decided::Recipient(_)) => {}
                    Err(other) => panic!("{other:?}"),
                }
            }
            Op::Purge { node, age } => {
                let cutoff = now.saturating_sub(age);
                let n = &mut self.nodes[node];
                n.disk
                    .retain(|_, e| !(e.status.is_terminal() && e.status_ms < cutoff));
                n.index.purge_expired_own(n.id, cutoff).expect("purge");
            }
            Op::Request {
                node,
                pick,
                action,
                rcpt,
            } => {
                let n = &mut self.nodes[node];
                let live: Vec<String> = every_entry(&n.index)
                    .into_iter()
                    .filter(|e| e.status == EntryStatus::Quarantined)
                    .map(|e| e.id)
                    .collect();
                if live.is_empty() {
                    return;
                }
                self.next += 1;
                let pending = PendingAction {
                    action,
                    requested_by: n.id.to_string(),
                    admin: "admin".into(),
                    requested_ms: now,
                    request_id: format!("r{:05}", self.next),
                    recipient: rcpt,
                };
                let id = &live[pick % live.len()];
                match n.index.request(n.id, id, pending) {
                    Ok(_) => {}
                    Err(IndexError::RecipientDecided { .. }) if rcpt.is_some() => {}
                    Err(e) => panic!("request: {e}"),
                }
            }
            Op::Process { node } => self.process(node),
            Op::Sync {
                from,
                to,
                max,
                keep,
                lossy,
            } => {
                let theirs = self.nodes[to].index.version_vector();
                let mut delta = self.nodes[from].index.delta_since(&theirs, max);
                if lossy {
                    self.lossy = true;
                    for e in delta.owners.iter_mut().flat_map(|o| o.entries.iter_mut()) {
                        e.recipients_released.clear();
                        e.recipients_deleted.clear();
                    }
                }
                if keep {
                    let json = serde_json::to_string(&delta).expect("serialise");
                    delta = serde_json::from_str(&json).expect("parse");
                    self.stash.push(delta.clone());
                }
                self.nodes[to].index.apply(delta).expect("apply");
            }
            Op::Replay { pick, to } => {
                if self.stash.is_empty() {
                    return;
                }
                let delta = self.stash[pick % self.stash.len()].clone();
                self.nodes[to].index.apply(delta).expect("replay");
            }
            Op::Restart { node, from, wipe } => self.restart(node, from, wipe),
        }
        self.check();
    }

    /// The owner loop: each pending request, checked against the entry, carried out at
    /// most once.
    fn process(&mut self, node: usize) {
        let now = self.now;
        let n = &mut self.nodes[node];
        let queue: Vec<String> = n
            .index
            .pending_for(n.id)
            .iter()
            .map(|intent| intent.request_id.clone())
            .collect();
        for request_id in queue {
            match n
                .index
                .begin_intent_own(n.id, &request_id, now)
                .expect("begin")
            {
                IntentStep::Execute {
                    entry_id,
                    action,
                    recipient,
                } => {
                    let stored = n.disk.get_mut(&entry_id).expect("executable entry on disk");
                    assert_eq!(stored.status, EntryStatus::Quarantined);
                    let done = stored
                        .decide(recipient.as_deref(), action, now)
                        .expect("the store agrees with the index");
                    assert!(!done.is_empty(), "an execution acts for someone");
                    count(&mut self.executed, &entry_id, &done);
                    let outcome = n
                        .index
                        .finish_intent_own(n.id, &request_id, now)
                        .expect("finish");
                    assert!(matches!(
                        outcome,
                        IntentOutcome::Released | IntentOutcome::Deleted
                    ));
                }
                IntentStep::Done(outcome) => {
                    assert!(!matches!(
                        outcome,
                        IntentOutcome::Released | IntentOutcome::Deleted
                    ));
                }
            }
        }
        assert!(n.index.pending_for(n.id).is_empty());
    }

    fn restart(&mut self, node: usize, from: usize, wipe: bool) {
        let now = self.now;
        let source = if from == node {
            QuarantineIndex::new()
        } else {
            self.nodes[from].index.clone()
        };
        let n = &mut self.nodes[node];
        if wipe {
            n.disk.clear();
        }
        n.index = QuarantineIndex::new();
        n.index.restore_own(n.id, &source, now).expect("restore");
        let adopted: Vec<IndexEntry> = every_entry(&n.index)
            .into_iter()
            .filter(|e| e.node == n.id)
            .collect();
        for e in &adopted {
            match n.disk.get(&e.id) {
                None if !e.status.is_terminal() => {
                    n.index
                        .set_status_own(n.id, &e.id, EntryStatus::Deleted, now)
                        .expect("lost message");
                }
                None => {}
                Some(stored) if stored.status != e.status => {
                    assert!(!e.status.is_terminal(), "a store is never behind the index");
                    n.index.upsert_own(n.id, stored.clone()).expect("reconcile");
                }
                Some(stored) if stored != &bare(e) => {
                    // The store holds the truth, decisions included (a relay that predates
                    // them may have dropped them from the replica restored from).
                    n.index
                        .upsert_own(n.id, stored.clone())
                        .expect("reconcile decisions");
                }
                Some(_) => {}
            }
        }
        for stored in n.disk.values() {
            if n.index.get_of(n.id, &stored.id).is_none() {
                n.index.upsert_own(n.id, stored.clone()).expect("re-add");
            }
        }
        self.seen_terminal[node].clear();
    }

    /// Invariants after every step.
    fn check(&mut self) {
        for (k, n) in self.nodes.iter().enumerate() {
            for e in every_entry(&n.index) {
                if self.seen_terminal[k].contains(&e.id) {
                    assert!(e.status.is_terminal(), "{} resurrected on {}", e.id, n.id);
                }
                if e.status.is_terminal() {
                    self.seen_terminal[k].insert(e.id.clone());
                }
            }
            for stored in n.disk.values() {
                let held = n.index.get_of(n.id, &stored.id).map(bare);
                assert_eq!(
                    held.as_ref(),
                    Some(stored),
                    "index of {} follows its store",
                    n.id
                );
            }
            let live = n.disk.values().filter(|e| !e.status.is_terminal()).count();
            assert_eq!(n.index.live_entries(n.id), live);
        }
    }

    /// Exchanges deltas of at most `max` items until `to` holds everything `from` holds.
    fn sync_fully(&mut self, from: usize, to: usize, max: usize) {
        for _ in 0..1000 {
            let theirs = self.nodes[to].index.version_vector();
            let delta = self.nodes[from].index.delta_since(&theirs, max);
            let report = self.nodes[to].index.apply(delta).expect("apply");
            if !report.changed() && self.nodes[to].index.version_vector() == theirs {
                return;
            }
        }
        panic!("sync did not settle");
    }

    fn exchange_all(&mut self, max: usize) {
        for _ in 0..3 {
            for from in 0..3 {
                for to in 0..3 {
                    if from != to {
                        self.sync_fully(from, to, max);
                    }
                }
            }
        }
        self.check();
    }
}

/// Counts one execution for each of `rcpts` of entry `id`; a second one is a bug.
/// The id of the `pick`-th (modulo) quarantined entry on `disk`, if any.
fn pick_quarantined(disk: &BTreeMap<String, IndexEntry>, pick: usize) -> Option<String> {
    let live: Vec<&String> = disk
        .values()
        .filter(|e| e.status == EntryStatus::Quarantined)
        .map(|e| &e.id)
        .collect();
    (!live.is_empty()).then(|| live[pick % live.len()].clone())
}

fn count(executed: &mut BTreeMap<(String, String), u32>, id: &str, rcpts: &[String]) {
    for rcpt in rcpts {
        let n = executed
            .entry((id.to_string(), rcpt.to_ascii_lowercase()))
            .or_default();
        *n += 1;
        assert_eq!(*n, 1, "{id} executed twice for {rcpt}");
    }
}

/// An entry as its owner's store holds it: no seq, no `pending`.
fn bare(e: &IndexEntry) -> IndexEntry {
    IndexEntry {
        seq: 0,
        pending: None,
        ..e.clone()
    }
}

fn run(ops: &[Op]) -> Sim {
    let mut sim = Sim::new();
    for op in ops {
        sim.step(op);
    }
    sim
}

fn merged(a: &QuarantineIndex, b: &QuarantineIndex) -> QuarantineIndex {
    let mut out = a.clone();
    out.merge(b).expect("merge");
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn replicas_converge_and_requests_run_once(
        ops in proptest::collection::vec(op(), 1..80),
        max in 1..6usize,
    ) {
        let mut sim = run(&ops);
        sim.exchange_all(max);
        for node in 0..3 {
            sim.process(node);
        }
        sim.exchange_all(max);
        let first = sim.nodes[0].index.clone();
        for n in &sim.nodes[1..] {
            prop_assert_eq!(listing(&n.index), listing(&first));
        }
        if sim.lossy {
            // A copy an older node relayed lacks the decisions; version vectors never send
            // that seq again, so it stays until the owner rewrites the entry (the owner
            // itself decides from its store, so nothing runs twice). Whole replicas merged
            // (the same seq met again) join to the full version.
            let all = sim.nodes.iter().fold(QuarantineIndex::new(), |acc, n| merged(&acc, &n.index));
            for n in &mut sim.nodes {
                n.index.merge(&all).expect("merge");
            }
        }
        let first = &sim.nodes[0].index;
        for n in &sim.nodes[1..] {
            prop_assert!(n.index == *first, "replicas differ after a full exchange");
        }
        for n in &sim.nodes {
            prop_assert!(n.index.pending_for(n.id).is_empty());
            prop_assert!(n.index.intents().all(|i| i.done.is_some()), "every request answered");
            prop_assert!(every_entry(&n.index).iter().all(|e| e.pending.is_none()));
        }
        prop_assert!(sim.executed.values().all(|&count| count == 1));
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        let sim = run(&ops);
        let [a, b, c] = [0, 1, 2].map(|k| sim.nodes[k].index.clone());
        let ab = merged(&a, &b);
        prop_assert!(ab == merged(&b, &a), "commutative");
        prop_assert!(merged(&ab, &c) == merged(&a, &merged(&b, &c)), "associative");
        prop_assert!(merged(&a, &a) == a, "idempotent");
        prop_assert!(merged(&ab, &b) == ab, "idempotent with a part");
        let via_json: QuarantineIndex =
            serde_json::from_str(&serde_json::to_string(&ab).expect("serialise")).expect("load");
        prop_assert!(via_json == ab, "serialisation round-trips");
    }

    #[test]
    fn applying_deltas_commutes_and_is_idempotent(
        ops in proptest::collection::vec(op(), 1..60),
        k1 in 0..6usize,
        k2 in 0..6usize,
        stale in any::<prop::sample::Index>(),
    ) {
        let sim = run(&ops);
        let [a, b, c] = [0, 1, 2].map(|k| sim.nodes[k].index.clone());
        let d1 = a.delta_since(&c.version_vector(), k1);
        let d2 = b.delta_since(&c.version_vector(), k2);
        let d3 = sim.stash.get(stale.index(sim.stash.len().max(1))).cloned().unwrap_or_default();
        let apply_all = |order: &[&IndexDelta]| {
            let mut out = c.clone();
            for d in order {
                out.apply((*d).clone()).expect("apply");
            }
            out
        };
        let forward = apply_all(&[&d1, &d2, &d3]);
        prop_assert!(forward == apply_all(&[&d3, &d2, &d1]), "order does not matter");
        prop_assert!(forward == apply_all(&[&d2, &d1, &d3, &d1, &d2]), "duplicates change nothing");
        let mut twice = apply_all(&[&d1, &d2, &d3]);
        let report = twice.apply(d1.clone()).expect("again");
        prop_assert!(!report.changed());
        twice.apply(d3).expect("again");
        prop_assert!(twice == forward);
    }
}
