//! Property tests: random learns and forgets on 2–4 replicas with skewed clocks, random
//! delta exchanges (cut small, lost, duplicated, late, reordered), restarts from the
//! persisted store and restarts on a wiped store; checked against the lattice laws,
//! convergence, an independent recount of the winners, and what each operation means.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::tests::{assert_counts_recounted, digest, recount};
use super::*;

const NODE_IDS: [&str; 4] = ["n1", "n2", "n3", "n4"];
/// Distinct messages the operations pick from.
const MESSAGES: u8 = 10;
/// Most rounds of a full exchange before giving up.
const EXCHANGE_ROUNDS_MAX: usize = 10_000;

#[derive(Debug, Clone)]
enum Op {
    /// The node learns message `msg` (tokens depend on `msg` and `variant`, so two nodes may
    /// learn one digest with different token lists).
    Learn {
        node: usize,
        msg: u8,
        class: Class,
        variant: u8,
    },
    /// The node forgets message `msg`.
    Forget { node: usize, msg: u8 },
    /// One delta of at most `max` records from one node to another: delivered or lost,
    /// kept for replay or not.
    Sync {
        from: usize,
        to: usize,
        max: usize,
        deliver: bool,
        keep: bool,
    },
    /// A kept delta arrives (again, late, out of order).
    Replay { pick: usize, to: usize },
    /// The node restarts: from its store, or on a wiped store restoring its own log from
    /// another node's replica (itself: no peer reachable).
    Restart {
        node: usize,
        from: usize,
        wipe: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..4usize;
    let class = prop_oneof![Just(Class::Spam), Just(Class::Ham)];
    prop_oneof![
        5 => (node.clone(), 0..MESSAGES, class, 0..2u8)
            .prop_map(|(node, msg, class, variant)| Op::Learn { node, msg, class, variant }),
        2 => (node.clone(), 0..MESSAGES).prop_map(|(node, msg)| Op::Forget { node, msg }),
        6 => (node.clone(), node.clone(), 0..5usize, prop::bool::weighted(0.8), any::<bool>())
            .prop_map(|(from, to, max, deliver, keep)| Op::Sync { from, to, max, deliver, keep }),
        2 => (any::<usize>(), node.clone()).prop_map(|(pick, to)| Op::Replay { pick, to }),
        1 => (node.clone(), node, any::<bool>())
            .prop_map(|(node, from, wipe)| Op::Restart { node, from, wipe }),
    ]
}

fn tokens_of(msg: u8, variant: u8) -> Vec<u64> {
    let base = u64::from(msg) * 10 + u64::from(variant) * 3;
    // Token 0 is shared by every message; the others overlap between neighbours.
    let mut tokens: Vec<u64> = (0..u64::from(msg % 4) + 2).map(|k| base + k).collect();
    tokens.push(0);
    tokens
}

/// What a node keeps on disk: records by `(owner, digest)` and owner floors.
#[derive(Debug, Clone, Default)]
struct Store {
    records: BTreeMap<(String, Digest), Record>,
    floors: BTreeMap<String, u64>,
}

impl Store {
    fn write(&mut self, changes: Changes) {
        for key in changes.delete {
            self.records.remove(&(key.owner, key.digest));
        }
        for record in changes.put {
            self.records
                .insert((record.owner.clone(), record.digest), record);
        }
        self.floors.extend(changes.floors);
    }

    fn load(&self) -> BayesCorpus {
        let floors = self.floors.iter().map(|(n, &f)| (n.clone(), f));
        BayesCorpus::restore(floors, self.records.values().cloned()).expect("restore")
    }
}

struct SimNode {
    id: &'static str,
    corpus: BayesCorpus,
    store: Store,
    skew_ms: u64,
}

struct Sim {
    nodes: Vec<SimNode>,
    now_ms: u64,
    stash: Vec<BayesDelta>,
}

impl Sim {
    fn new(count: usize, skews: &[u64]) -> Sim {
        let node = |k: usize| SimNode {
            id: NODE_IDS[k],
            corpus: BayesCorpus::new(),
            store: Store::default(),
            skew_ms: skews[k],
        };
        Sim {
            nodes: (0..count).map(node).collect(),
            now_ms: 1_000,
            stash: Vec::new(),
        }
    }

    fn step(&mut self, op: &Op) {
        self.now_ms += 7;
        let count = self.nodes.len();
        match *op {
            Op::Learn {
                node,
                msg,
                class,
                variant,
            } => {
                let n = &mut self.nodes[node % count];
                let now = self.now_ms + n.skew_ms;
                let tokens = tokens_of(msg, variant);
                let report = n.corpus.learn(n.id, digest(msg), class, &tokens, now);
                n.store.write(report.expect("learn").changes);
            }
            Op::Forget { node, msg } => {
                let n = &mut self.nodes[node % count];
                let now = self.now_ms + n.skew_ms;
                let report = n.corpus.forget(n.id, digest(msg), now).expect("forget");
                n.store.write(report.changes);
            }
            Op::Sync {
                from,
                to,
                max,
                deliver,
                keep,
            } => {
                let (from, to) = (from % count, to % count);
                let theirs = self.nodes[to].corpus.version_vector();
                let mut delta = self.nodes[from].corpus.delta_since(&theirs, max);
                if keep {
                    let json = serde_json::to_string(&delta).expect("serialise");
                    delta = serde_json::from_str(&json).expect("parse");
                    self.stash.push(delta.clone());
                }
                if deliver {
                    self.deliver(to, delta);
                }
            }
            Op::Replay { pick, to } => {
                if let Some(delta) = self.stash.get(pick % self.stash.len().max(1)).cloned() {
                    self.deliver(to % count, delta);
                }
            }
            Op::Restart { node, from, wipe } => self.restart(node % count, from % count, wipe),
        }
        self.check();
    }

    fn deliver(&mut self, to: usize, delta: BayesDelta) {
        let n = &mut self.nodes[to];
        let report = n.corpus.apply(delta).expect("apply");
        n.store.write(report.changes);
    }

    fn restart(&mut self, node: usize, from: usize, wipe: bool) {
        let now = self.now_ms + self.nodes[node].skew_ms;
        let source = if from == node {
            BayesCorpus::new()
        } else {
            self.nodes[from].corpus.clone()
        };
        let n = &mut self.nodes[node];
        if !wipe {
            n.corpus = n.store.load();
            return;
        }
        n.store = Store::default();
        n.corpus = BayesCorpus::new();
        let report = n
            .corpus
            .restore_own(n.id, &source, now)
            .expect("restore own");
        n.store.write(report.changes);
    }

    /// After every step: counts equal a recount, and the store restores the same corpus.
    fn check(&self) {
        for n in &self.nodes {
            assert_counts_recounted(&n.corpus);
            let loaded = n.store.load();
            assert_eq!(
                loaded.fingerprint(),
                n.corpus.fingerprint(),
                "store of {}",
                n.id
            );
            assert!(loaded.records().eq(n.corpus.records()), "store of {}", n.id);
            assert_eq!(
                loaded.version_vector().get(n.id),
                n.corpus.version_vector().get(n.id)
            );
        }
    }

    /// Exchanges deltas of at most `max` records until `to` holds everything `from` holds.
    fn sync_fully(&mut self, from: usize, to: usize, max: usize) {
        for _ in 0..EXCHANGE_ROUNDS_MAX {
            let theirs = self.nodes[to].corpus.version_vector();
            let delta = self.nodes[from].corpus.delta_since(&theirs, max);
            let n = &mut self.nodes[to];
            let report = n.corpus.apply(delta).expect("apply");
            let changed = report.changed();
            n.store.write(report.changes);
            if !changed {
                return;
            }
        }
        panic!("sync did not settle");
    }

    fn exchange_all(&mut self, max: usize) {
        let count = self.nodes.len();
        for _ in 0..2 {
            for from in 0..count {
                for to in (0..count).filter(|&to| to != from) {
                    self.sync_fully(from, to, max);
                }
            }
        }
        self.check();
    }

    fn assert_converged(&self) {
        let first = &self.nodes[0].corpus;
        for n in &self.nodes[1..] {
            assert!(
                n.corpus == *first,
                "{} differs from {}",
                n.id,
                self.nodes[0].id
            );
            assert_eq!(n.corpus.fingerprint(), first.fingerprint());
            assert_eq!(n.corpus.contributions(), first.contributions());
        }
    }
}

fn run(count: usize, skews: &[u64], ops: &[Op]) -> Sim {
    let mut sim = Sim::new(count, skews);
    for op in ops {
        sim.step(op);
    }
    sim
}

fn merged(a: &BayesCorpus, b: &BayesCorpus) -> BayesCorpus {
    let mut out = a.clone();
    out.merge(b).expect("merge");
    out
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..70)
}

fn skews() -> impl Strategy<Value = Vec<u64>> {
    proptest::collection::vec(prop_oneof![Just(0u64), 0..50u64, Just(5_000u64)], 4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn replicas_converge_to_a_recount_of_the_winners(
        count in 2..=4usize,
        skews in skews(),
        ops in ops(),
        max in 1..5usize,
    ) {
        let mut sim = run(count, &skews, &ops);
        sim.exchange_all(max);
        sim.assert_converged();
        let corpus = &sim.nodes[0].corpus;
        let (counts, learned) = recount(corpus.records());
        prop_assert_eq!(corpus.learned(), learned);
        for (token, expected) in counts {
            prop_assert_eq!(corpus.counts(token), expected);
        }
        let per_digest = (0..MESSAGES).filter(|&m| corpus.class_of(&digest(m)).is_some());
        let total = corpus.learned();
        prop_assert_eq!(per_digest.count() as u32, total.spam + total.ham, "each message once");
    }

    #[test]
    fn merge_is_commutative_associative_idempotent(
        skews in skews(),
        ops in ops(),
    ) {
        let sim = run(3, &skews, &ops);
        let [a, b, c] = [0, 1, 2].map(|k| sim.nodes[k].corpus.clone());
        let ab = merged(&a, &b);
        prop_assert!(ab == merged(&b, &a), "commutative");
        prop_assert!(merged(&ab, &c) == merged(&a, &merged(&b, &c)), "associative");
        prop_assert!(merged(&a, &a) == a, "idempotent");
        prop_assert!(merged(&ab, &b) == ab, "idempotent with a part");
        let abc = merged(&ab, &c);
        assert_counts_recounted(&abc);
        let orders = [merged(&merged(&c, &a), &b), merged(&merged(&b, &c), &a)];
        for other in orders {
            prop_assert!(other == abc, "any merge order");
            prop_assert_eq!(other.fingerprint(), abc.fingerprint());
        }
    }

    #[test]
    fn applying_deltas_commutes_and_is_idempotent(
        skews in skews(),
        ops in ops(),
        k1 in 0..6usize,
        k2 in 0..6usize,
        stale in any::<prop::sample::Index>(),
    ) {
        let sim = run(3, &skews, &ops);
        let [a, b, c] = [0, 1, 2].map(|k| sim.nodes[k].corpus.clone());
        let d1 = a.delta_since(&c.version_vector(), k1);
        let d2 = b.delta_since(&c.version_vector(), k2);
        let d3 = sim.stash.get(stale.index(sim.stash.len().max(1))).cloned().unwrap_or_default();
        let apply_all = |order: &[&BayesDelta]| {
            let mut out = c.clone();
            for d in order {
                out.apply((*d).clone()).expect("apply");
            }
            out
        };
        let forward = apply_all(&[&d1, &d2, &d3]);
        assert_counts_recounted(&forward);
        prop_assert!(forward == apply_all(&[&d1, &d2, &d3, &d1, &d2, &d3]), "duplicates change nothing");
        let mut twice = forward.clone();
        prop_assert!(!twice.apply(d1.clone()).expect("again").changed());
        prop_assert!(twice == forward);
        // Whatever the order, a full exchange with the sources (and the late delta once
        // more, which a lower version may have set aside) brings the same state.
        let mut back = apply_all(&[&d3, &d2, &d1]);
        let mut fwd = forward.clone();
        for source in [&a, &b] {
            for target in [&mut back, &mut fwd] {
                super::tests::sync(source, target, 3);
            }
        }
        for target in [&mut back, &mut fwd] {
            target.apply(d3.clone()).expect("late delta");
        }
        prop_assert!(back == fwd, "order does not matter once complete");
    }

    #[test]
    fn operations_mean_the_same_on_every_replica(
        count in 2..=4usize,
        skews in skews(),
        ops in ops(),
        msg in 0..MESSAGES,
        first in 0..4usize,
        second in 0..4usize,
        class in prop_oneof![Just(Class::Spam), Just(Class::Ham)],
    ) {
        let mut sim = run(count, &skews, &ops);
        sim.exchange_all(3);
        let (first, second) = (first % count, second % count);
        let before = sim.nodes[0].corpus.learned();
        let had = sim.nodes[0].corpus.class_of(&digest(msg));

        // Learned on two nodes concurrently (as the same class): counts once.
        for node in [first, second] {
            sim.step(&Op::Learn { node, msg, class, variant: 0 });
        }
        sim.exchange_all(3);
        sim.assert_converged();
        let after = sim.nodes[0].corpus.learned();
        let expected = match had {
            Some(old) if old == class => before,
            Some(old) => {
                let mut moved = before;
                moved.step(old, false);
                moved.step(class, true);
                moved
            }
            None => {
                let mut one_more = before;
                one_more.step(class, true);
                one_more
            }
        };
        prop_assert_eq!(after, expected);

        // Relearned as the other class on any node: moves everywhere.
        let other = match class { Class::Spam => Class::Ham, Class::Ham => Class::Spam };
        sim.step(&Op::Learn { node: second, msg, class: other, variant: 1 });
        sim.exchange_all(2);
        for n in &sim.nodes {
            prop_assert_eq!(n.corpus.class_of(&digest(msg)), Some(other));
            for token in tokens_of(msg, 1) {
                prop_assert!(n.corpus.counts(token).get(other) >= 1);
            }
        }
        let mut moved = expected;
        moved.step(class, false);
        moved.step(other, true);
        prop_assert_eq!(sim.nodes[0].corpus.learned(), moved);

        // Forgotten on any node: gone everywhere.
        sim.step(&Op::Forget { node: first, msg });
        sim.exchange_all(4);
        sim.assert_converged();
        for n in &sim.nodes {
            prop_assert_eq!(n.corpus.class_of(&digest(msg)), None);
        }
        prop_assert_eq!(sim.nodes[0].corpus.learned(), before_minus(before, had));
    }
}

/// `counts` without the message that had class `had`.
fn before_minus(counts: ClassCounts, had: Option<Class>) -> ClassCounts {
    let mut out = counts;
    if let Some(class) = had {
        out.step(class, false);
    }
    out
}
