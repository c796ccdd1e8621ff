//! The invariants checked continuously, at every workload tick while the faults run (the
//! final checks after the heal are in `run.rs`):
//!
//! - the DNS set of every running node is never empty;
//! - a node down for longer than [`DNS_DEAD_TARGET`] is not in the set of any node on the
//!   majority side (a minority side keeps its last set by design: it cannot know);
//! - no deleted rule comes back: once a node that had listed a rule was seen without it
//!   after the workload deleted it, that node never lists it again (a rule still on its
//!   way to a node when it was deleted may arrive before its deletion does; a restart
//!   starts the node's record afresh, since a wiped store forgets both);
//! - no release is delivered twice (half of them are made for the message's recipient, as a
//!   digest link does: no recipient receives a released message twice);
//! - no quarantined message that got `250` is lost: while its owner runs, the owner's index
//!   holds its entry (quarantined, released or deleted — never absent).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use mxmesh_crdt::qindex::{IndexQuery, SEARCH_LIMIT_MAX};

use crate::world::World;

/// A node down for longer than this must have left every majority-side DNS set: failure
/// detection (~1–1.5 s) plus the set's flap hold-down (1 s), with margin. The DNS issue's
/// target is 5 s plus the record's TTL, and the TTL is the resolvers' part.
pub const DNS_DEAD_TARGET_MS: u64 = 5_000;
/// Violations kept per run; the first ones say what went wrong.
const VIOLATIONS_MAX: usize = 100;

/// What the workload did so far, as the checks need it.
pub struct Expect<'a> {
    /// Ids of the rules the workload deleted.
    pub deleted_rules: &'a BTreeSet<String>,
    /// Tokens of the quarantined messages the workload released.
    pub released: &'a BTreeSet<String>,
    /// Acked quarantined messages (token → index of the owner node) whose owner's store
    /// has not been wiped since it took them.
    pub quarantined: Vec<(&'a str, usize)>,
    /// Deliveries at the sink so far, by token.
    pub delivered: &'a BTreeMap<String, usize>,
}

/// State carried between ticks.
#[derive(Default)]
pub struct Watch {
    /// (node, rule id): that node has listed the rule.
    listed: BTreeSet<(usize, String)>,
    /// (node, rule id): that node listed the rule, then was seen without it after it was
    /// deleted.
    gone: BTreeSet<(usize, String)>,
    /// node → virtual ms since which it has been down.
    down_since: BTreeMap<usize, u64>,
    /// What broke an invariant so far, in words (at most `VIOLATIONS_MAX`).
    pub violations: Vec<String>,
}

impl Watch {
    /// Checks every continuous invariant once, at `now_ms` of the run.
    pub fn tick(&mut self, world: &World, expect: &Expect<'_>, now_ms: u64) {
        self.note_down(world, now_ms);
        self.dns(world, now_ms);
        self.rules(world, expect.deleted_rules);
        self.releases(expect);
        self.quarantine_held(world, expect);
    }

    fn push(&mut self, v: String) {
        if self.violations.len() < VIOLATIONS_MAX && !self.violations.contains(&v) {
            self.violations.push(v);
        }
    }

    fn note_down(&mut self, world: &World, now_ms: u64) {
        let up: BTreeSet<usize> = world.up().into_iter().collect();
        self.down_since.retain(|i, _| !up.contains(i));
        for i in (0..world.nodes.len()).filter(|i| !up.contains(i)) {
            self.down_since.entry(i).or_insert(now_ms);
        }
        self.listed.retain(|(i, _)| up.contains(i));
        self.gone.retain(|(i, _)| up.contains(i));
    }

    fn dns(&mut self, world: &World, now_ms: u64) {
        let dead: Vec<(usize, IpAddr)> = self
            .down_since
            .iter()
            .filter(|(_, since)| now_ms.saturating_sub(**since) > DNS_DEAD_TARGET_MS)
            .map(|(i, _)| (*i, world.nodes[*i].mesh_addr.ip()))
            .collect();
        for i in world.up() {
            let Some(s) = world.handle(i) else { continue };
            let st = s.dns.get();
            if st.publisher.is_none() {
                continue;
            }
            if st.published.is_empty() {
                self.push(format!("{}: the DNS set was empty", world.nodes[i].id));
            }
            for (d, addr) in &dead {
                if st.published.contains(addr) {
                    self.push(format!(
                        "{}: the DNS set still listed {} more than {} ms after it went down",
                        world.nodes[i].id, world.nodes[*d].id, DNS_DEAD_TARGET_MS
                    ));
                }
            }
        }
    }

    fn rules(&mut self, world: &World, deleted: &BTreeSet<String>) {
        for i in world.up() {
            let Some(s) = world.handle(i) else { continue };
            let listed: BTreeSet<String> = s.rules.list().into_iter().map(|r| r.id).collect();
            for id in &listed {
                self.listed.insert((i, id.clone()));
            }
            for id in deleted {
                let key = (i, id.clone());
                if !listed.contains(id) {
                    if self.listed.contains(&key) {
                        self.gone.insert(key);
                    }
                } else if self.gone.contains(&key) {
                    self.push(format!(
                        "{}: deleted rule {id} came back after the node had dropped it",
                        world.nodes[i].id
                    ));
                }
            }
        }
    }

    fn releases(&mut self, expect: &Expect<'_>) {
        for t in expect.released {
            let n = expect.delivered.get(t).copied().unwrap_or(0);
            if n > 1 {
                self.push(format!("released message {t} delivered {n} times"));
            }
        }
    }

    fn quarantine_held(&mut self, world: &World, expect: &Expect<'_>) {
        let mut by_owner: BTreeMap<usize, Vec<&str>> = BTreeMap::new();
        for (token, owner) in &expect.quarantined {
            by_owner.entry(*owner).or_default().push(token);
        }
        for (owner, tokens) in by_owner {
            let Some(s) = world.handle(owner) else {
                continue;
            };
            let q = IndexQuery {
                node: Some(world.nodes[owner].id.clone()),
                limit: SEARCH_LIMIT_MAX,
                ..Default::default()
            };
            let held: BTreeSet<String> = s
                .quarantine
                .index()
                .search(&q)
                .0
                .into_iter()
                .filter_map(|e| e.subject.split_whitespace().next().map(str::to_string))
                .collect();
            for t in tokens {
                if !held.contains(t) {
                    self.push(format!(
                        "acked quarantined message {t} is missing from its owner {}'s index",
                        world.nodes[owner].id
                    ));
                }
            }
        }
    }
}
