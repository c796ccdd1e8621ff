//! Which node addresses the DNS name should list: a pure function of what the membership
//! view shows, the previous set and the time. No I/O, no clock reads.
//!
//! Safety rules (README, "DNS"):
//! - **Never empty.** If the rules would leave no address, the last good set stays.
//! - **Minority never withdraws.** A node removes *another* node's address only while it
//!   sees a majority of the known members live; on the minority side of a partition it
//!   leaves the records alone. A member counts as known while it is live or was seen within
//!   `forget_after_ms`, so once dead nodes are forgotten a lone survivor is a majority of
//!   one and lists just itself.
//! - **Damped.** A change of one member (in or out) is applied only after it has held for
//!   `hold_down_ms`, so a flapping node does not churn the set. The first fill and draining
//!   (a live member reporting itself unhealthy: deliberate, not a flap) apply at once.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

/// Tunables of the set computation.
#[derive(Debug, Clone, Copy)]
pub struct SetPolicy {
    /// A member not live and not seen for this long no longer counts as known.
    pub forget_after_ms: u64,
    /// How long a member's new state must hold before the set follows it.
    pub hold_down_ms: u64,
}

impl Default for SetPolicy {
    fn default() -> Self {
        SetPolicy {
            forget_after_ms: 30_000,
            hold_down_ms: 1_000,
        }
    }
}

/// One member as the set computation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The member's node id.
    pub id: String,
    /// The address it publishes for DNS (`[dns] publish_address`); none: never listed.
    pub addr: Option<IpAddr>,
    /// Held live by the failure detector.
    pub live: bool,
    /// Health `ok` (not draining or degraded).
    pub healthy: bool,
    /// Milliseconds since this node last saw it (0 for itself).
    pub last_seen_ms: u64,
}

/// The published set and the changes waiting out their hold-down.
#[derive(Debug, Default, Clone)]
pub struct DnsSet {
    published: BTreeMap<String, IpAddr>,
    /// Member → (wanted in the set?, since when that has been so).
    pending: BTreeMap<String, (bool, u64)>,
}

impl DnsSet {
    /// The addresses to publish, sorted.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut v: Vec<IpAddr> = self.published.values().copied().collect();
        v.sort();
        v.dedup();
        v
    }

    /// Recomputes the set from `candidates` (which include this node, `me`). Returns
    /// whether the published addresses changed.
    pub fn update(
        &mut self,
        me: &str,
        candidates: &[Candidate],
        now_ms: u64,
        policy: &SetPolicy,
    ) -> bool {
        let before = self.addresses();
        let majority = sees_majority(candidates, policy);
        let first_fill = self.published.is_empty();
        let mut next = self.published.clone();
        for c in candidates {
            let Some(addr) = c.addr else { continue };
            let wanted = c.live && c.healthy;
            let listed = next.contains_key(&c.id);
            if wanted == listed {
                self.pending.remove(&c.id);
                if wanted {
                    next.insert(c.id.clone(), addr);
                }
                continue;
            }
            let since = self.since(&c.id, wanted, now_ms);
            let settled = now_ms.saturating_sub(since) >= policy.hold_down_ms;
            let own_drain = c.id == me && !wanted;
            // Live but not healthy is a deliberate drain, not a flap: no hold-down.
            let drain = c.live && !c.healthy;
            if wanted && (settled || first_fill) {
                next.insert(c.id.clone(), addr);
                self.pending.remove(&c.id);
            } else if !wanted && (own_drain || ((settled || drain) && majority)) {
                next.remove(&c.id);
                self.pending.remove(&c.id);
            }
        }
        // Members that left the view altogether follow the same withdrawal rule.
        let present: HashSet<&str> = candidates.iter().map(|c| c.id.as_str()).collect();
        let gone: Vec<String> = next
            .keys()
            .filter(|id| !present.contains(&id.as_str()))
            .cloned()
            .collect();
        for id in gone {
            let since = self.since(&id, false, now_ms);
            if majority && now_ms.saturating_sub(since) >= policy.hold_down_ms {
                next.remove(&id);
                self.pending.remove(&id);
            }
        }
        if !next.is_empty() {
            self.published = next;
        }
        self.addresses() != before
    }

    /// Since when `id` has wanted the state `wanted` (starting now if it just changed).
    fn since(&mut self, id: &str, wanted: bool, now_ms: u64) -> u64 {
        let e = self
            .pending
            .entry(id.to_string())
            .or_insert((wanted, now_ms));
        if e.0 != wanted {
            *e = (wanted, now_ms);
        }
        e.1
    }
}

/// Whether the live members are a majority of the known ones (live, or seen within
/// `forget_after_ms`).
pub fn sees_majority(candidates: &[Candidate], policy: &SetPolicy) -> bool {
    let known = candidates
        .iter()
        .filter(|c| c.live || c.last_seen_ms < policy.forget_after_ms)
        .count();
    let live = candidates.iter().filter(|c| c.live).count();
    live * 2 > known
}

/// The one member that pushes the set to an external server (RFC 2136): the smallest id
/// among the live, healthy members that publish an address — the same answer on every node
/// once gossip has converged. None on the minority side of a partition, so two sides never
/// overwrite each other's view; when the publisher dies or drains the next id takes over.
pub fn publisher<'a>(candidates: &'a [Candidate], policy: &SetPolicy) -> Option<&'a str> {
    if !sees_majority(candidates, policy) {
        return None;
    }
    candidates
        .iter()
        .filter(|c| c.live && c.healthy && c.addr.is_some())
        .map(|c| c.id.as_str())
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: SetPolicy = SetPolicy {
        forget_after_ms: 30_000,
        hold_down_ms: 1_000,
    };

    fn node(i: u8, live: bool, healthy: bool, last_seen_ms: u64) -> Candidate {
        Candidate {
            id: format!("mx{i}"),
            addr: Some(IpAddr::from([127, 0, 0, i])),
            live,
            healthy,
            last_seen_ms,
        }
    }

    fn ips(set: &DnsSet) -> Vec<u8> {
        set.addresses()
            .iter()
            .map(|a| match a {
                IpAddr::V4(v4) => v4.octets()[3],
                IpAddr::V6(_) => 0,
            })
            .collect()
    }

    fn healthy3() -> Vec<Candidate> {
        (1..=3).map(|i| node(i, true, true, 0)).collect()
    }

    #[test]
    fn first_fill_lists_every_healthy_live_node_at_once() {
        let mut s = DnsSet::default();
        assert!(s.update("mx1", &healthy3(), 0, &P));
        assert_eq!(ips(&s), vec![1, 2, 3]);
    }

    #[test]
    fn a_dead_node_leaves_after_the_hold_down_when_a_majority_is_seen() {
        let mut s = DnsSet::default();
        s.update("mx1", &healthy3(), 0, &P);
        let view = vec![
            node(1, true, true, 0),
            node(2, true, true, 0),
            node(3, false, true, 2_000),
        ];
        assert!(
            !s.update("mx1", &view, 10_000, &P),
            "not before the hold-down"
        );
        assert!(!s.update("mx1", &view, 10_500, &P));
        assert!(s.update("mx1", &view, 11_000, &P));
        assert_eq!(ips(&s), vec![1, 2]);
    }

    #[test]
    fn the_minority_side_never_withdraws_but_a_forgotten_majority_does_not_bind() {
        let mut s = DnsSet::default();
        s.update("mx1", &healthy3(), 0, &P);
        // mx1 alone: 1 live of 3 known — a minority, so nothing is withdrawn.
        let alone = |seen| {
            vec![
                node(1, true, true, 0),
                node(2, false, true, seen),
                node(3, false, true, seen),
            ]
        };
        for t in (1_000..20_000).step_by(500) {
            s.update("mx1", &alone(t), t, &P);
            assert_eq!(
                ips(&s),
                vec![1, 2, 3],
                "withdrawn at {t} ms on the minority side"
            );
        }
        // After forget_after_ms the dead nodes no longer count: one of one is a majority.
        s.update("mx1", &alone(31_000), 31_000, &P);
        s.update("mx1", &alone(32_000), 32_000, &P);
        assert_eq!(ips(&s), vec![1], "all but one dead → 1");
    }

    #[test]
    fn draining_leaves_and_own_draining_leaves_at_once() {
        let mut s = DnsSet::default();
        s.update("mx1", &healthy3(), 0, &P);
        let draining2 = vec![
            node(1, true, true, 0),
            node(2, true, false, 0),
            node(3, true, true, 0),
        ];
        s.update("mx1", &draining2, 100, &P);
        assert_eq!(
            ips(&s),
            vec![1, 3],
            "another node's drain applies at once (it is deliberate, not a flap)"
        );
        let draining_me = vec![
            node(1, true, false, 0),
            node(2, true, false, 0),
            node(3, true, true, 0),
        ];
        s.update("mx1", &draining_me, 1_300, &P);
        assert_eq!(ips(&s), vec![3], "this node's own drain applies at once");
        // Without a majority, another node's drain is not applied either.
        let mut m = DnsSet::default();
        m.update("mx1", &healthy3(), 0, &P);
        let minority = vec![
            node(1, true, true, 0),
            node(2, true, false, 0),
            node(3, false, true, 2_000),
            node(4, false, true, 2_000),
        ];
        m.update("mx1", &minority, 5_000, &P);
        assert_eq!(
            ips(&m),
            vec![1, 2, 3],
            "a minority leaves the records alone"
        );
    }

    #[test]
    fn never_empty_keeps_the_last_good_set() {
        let mut s = DnsSet::default();
        s.update("mx1", &healthy3(), 0, &P);
        let none_healthy: Vec<Candidate> = (1..=3).map(|i| node(i, true, false, 0)).collect();
        for t in (0..10_000).step_by(500) {
            s.update("mx1", &none_healthy, t, &P);
            assert!(!s.addresses().is_empty(), "published empty at {t} ms");
        }
    }

    #[test]
    fn a_flapping_node_does_not_churn_the_set() {
        let mut s = DnsSet::default();
        s.update("mx1", &healthy3(), 0, &P);
        let mut changes = 0;
        for k in 1..40u64 {
            let up = k % 2 == 0;
            let view = vec![
                node(1, true, true, 0),
                node(2, true, true, 0),
                node(3, up, true, 0),
            ];
            if s.update("mx1", &view, k * 400, &P) {
                changes += 1;
            }
        }
        assert_eq!(
            changes, 0,
            "a node flapping faster than the hold-down never moves the set"
        );
        assert_eq!(ips(&s), vec![1, 2, 3]);
    }

    #[test]
    fn a_recovered_node_returns_after_the_hold_down() {
        let mut s = DnsSet::default();
        s.update("mx1", &healthy3(), 0, &P);
        let down = vec![
            node(1, true, true, 0),
            node(2, true, true, 0),
            node(3, false, true, 2_000),
        ];
        s.update("mx1", &down, 5_000, &P);
        s.update("mx1", &down, 6_000, &P);
        assert_eq!(ips(&s), vec![1, 2]);
        s.update("mx1", &healthy3(), 7_000, &P);
        assert_eq!(ips(&s), vec![1, 2]);
        s.update("mx1", &healthy3(), 8_000, &P);
        assert_eq!(ips(&s), vec![1, 2, 3]);
    }

    #[test]
    fn members_without_a_dns_address_are_never_listed() {
        let mut s = DnsSet::default();
        let mut view = healthy3();
        view[1].addr = None;
        s.update("mx1", &view, 0, &P);
        assert_eq!(ips(&s), vec![1, 3]);
    }

    #[test]
    fn publisher_is_the_smallest_live_healthy_id_on_the_majority_side() {
        let all = [
            node(3, true, true, 0),
            node(1, true, true, 0),
            node(2, true, true, 0),
        ];
        assert_eq!(publisher(&all, &P), Some("mx1"));
        // mx1 dies: mx2 takes over; mx1 draining: likewise.
        let dead = [
            node(1, false, true, 2_000),
            node(2, true, true, 0),
            node(3, true, true, 0),
        ];
        assert_eq!(publisher(&dead, &P), Some("mx2"));
        let draining = [
            node(1, true, false, 0),
            node(2, true, true, 0),
            node(3, true, true, 0),
        ];
        assert_eq!(publisher(&draining, &P), Some("mx2"));
        // The minority side of a partition has no publisher at all.
        let minority = [
            node(1, true, true, 0),
            node(2, false, true, 2_000),
            node(3, false, true, 2_000),
        ];
        assert_eq!(publisher(&minority, &P), None);
        // Once the dead are forgotten, a lone survivor publishes.
        let lone = [
            node(1, false, true, 40_000),
            node(2, false, true, 40_000),
            node(3, true, true, 0),
        ];
        assert_eq!(publisher(&lone, &P), Some("mx3"));
        // A member without an address never publishes.
        let mut no_addr = all.clone();
        no_addr[1].addr = None;
        assert_eq!(publisher(&no_addr, &P), Some("mx2"));
    }
}
