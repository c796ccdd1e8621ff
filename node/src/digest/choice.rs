//! Which node sends a recipient's digest for one period — pure, so every node computes the
//! same answer from the same view, and the simulator and unit tests can check it.
//!
//! **Rendezvous order.** For a recipient and a period, every known member (live or not;
//! departed nodes excluded by the caller) gets the score `xxh3(recipient, period, id)`;
//! sorted by score, highest first, that is the recipient's order of senders. The first
//! *eligible* member (live and healthy) sends; while a member before it is eligible, a node
//! leaves the recipient alone. The first member sends at once; a member at rank `i > 0`
//! only from `period + i × takeover_ms` on (by its own clock), so the nodes before it had
//! their turn and their watermark (the replicated "digest sent up to" mark) had time to
//! arrive.
//!
//! **Whole mesh**: every node sees the same members eligible and the same first one: one
//! digest per recipient per period. **A node down**: its recipients fall to the next
//! member in their order once the failure detector marks it dead: nobody is missed. The
//! one duplicate left: a sender that dies after sending but before its watermark left it
//! (a sync interval); the next one sends again (at least once over at most once).
//! **Partition**: only a side that sees a majority of the known members live sends (the
//! same rule as the DNS set); each recipient's first eligible member *on that side* sends.
//! The minority side sends nothing, so two sides never send the same period twice; with
//! no majority anywhere (a 2–2 split, say) no digest goes out until the heal, and then the
//! period's digests go out late, once, listing what both sides hold.

use xxhash_rust::xxh3::xxh3_64;

/// One member as the choice sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Node id.
    pub id: String,
    /// Held live by the failure detector.
    pub live: bool,
    /// Publishes health `ok` (not draining, store writable).
    pub healthy: bool,
}

impl Member {
    /// Live and healthy: may send.
    pub fn eligible(&self) -> bool {
        self.live && self.healthy
    }
}

/// What this node sees of the mesh, the same for every recipient of one pass.
#[derive(Debug, Clone)]
pub struct View {
    /// This node's id.
    pub me: String,
    /// Every known member, this node included.
    pub members: Vec<Member>,
    /// How long each rank waits for the ranks before it, ms.
    pub takeover_ms: u64,
}

/// What this node does about one recipient's digest for one period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its watermark reached the period: somebody sent it.
    Done,
    /// This node sends it now.
    Send,
    /// This node is the first eligible member but its turn starts at `at_ms`.
    NotYet { at_ms: u64 },
    /// An eligible member ranks before this node: that one sends.
    Other(String),
    /// This side of the mesh sees no majority live: nobody here sends.
    NoMajority,
}

impl View {
    /// Whether the live members are more than half of the known ones.
    pub fn sees_majority(&self) -> bool {
        let live = self.members.iter().filter(|m| m.live).count();
        live * 2 > self.members.len()
    }

    /// Decides for `recipient` and the period ending at `period_ms`, whose digest has gone
    /// out up to `watermark_ms` (0: never).
    pub fn decide(
        &self,
        recipient: &str,
        period_ms: u64,
        watermark_ms: u64,
        now_ms: u64,
    ) -> Decision {
        if watermark_ms >= period_ms {
            return Decision::Done;
        }
        if !self.sees_majority() {
            return Decision::NoMajority;
        }
        let ranked = order(recipient, period_ms, &self.members);
        let Some((rank, first)) = ranked.iter().enumerate().find(|(_, m)| m.eligible()) else {
            return Decision::NoMajority;
        };
        if first.id != self.me {
            return Decision::Other(first.id.clone());
        }
        if rank == 0 {
            // The first in the order never waits, whatever this node's clock says.
            return Decision::Send;
        }
        let turn = (rank as u64).saturating_mul(self.takeover_ms);
        let at_ms = period_ms.saturating_add(turn);
        match now_ms >= at_ms {
            true => Decision::Send,
            false => Decision::NotYet { at_ms },
        }
    }
}

/// The members in `recipient`'s rendezvous order for the period `period_ms`.
pub fn order<'a>(recipient: &str, period_ms: u64, members: &'a [Member]) -> Vec<&'a Member> {
    let mut scored: Vec<(u64, &Member)> = members
        .iter()
        .map(|m| (score(recipient, period_ms, &m.id), m))
        .collect();
    scored.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
    scored.into_iter().map(|(_, m)| m).collect()
}

/// The rendezvous score of `node` for `recipient` in a period (stable across versions:
/// every node of a mixed-version mesh must agree).
fn score(recipient: &str, period_ms: u64, node: &str) -> u64 {
    let key = format!("{}\n{period_ms}\n{node}", recipient.to_ascii_lowercase());
    xxh3_64(key.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERIOD: u64 = 1_768_460_400_000;
    const TAKEOVER: u64 = 30_000;

    fn members(spec: &[(&str, bool)]) -> Vec<Member> {
        spec.iter()
            .map(|(id, live)| Member {
                id: id.to_string(),
                live: *live,
                healthy: true,
            })
            .collect()
    }

    fn view_of(me: &str, members: &[Member]) -> View {
        View {
            me: me.into(),
            members: members.to_vec(),
            takeover_ms: TAKEOVER,
        }
    }

    fn recipients() -> Vec<String> {
        (0..500).map(|i| format!("user{i}@example.com")).collect()
    }

    /// The nodes among `views` that send `rcpt`'s digest at `now_ms`.
    fn senders(views: &[View], rcpt: &str, now_ms: u64) -> Vec<String> {
        views
            .iter()
            .filter(|v| v.decide(rcpt, PERIOD, 0, now_ms) == Decision::Send)
            .map(|v| v.me.clone())
            .collect()
    }

    #[test]
    fn a_whole_mesh_sends_each_digest_exactly_once_and_spreads_the_work() {
        let all = members(&[("mx1", true), ("mx2", true), ("mx3", true)]);
        let views: Vec<View> = ["mx1", "mx2", "mx3"]
            .iter()
            .map(|me| view_of(me, &all))
            .collect();
        let mut per_node = std::collections::BTreeMap::<String, usize>::new();
        for rcpt in recipients() {
            let s = senders(&views, &rcpt, PERIOD);
            assert_eq!(s.len(), 1, "{rcpt}: {s:?}");
            *per_node.entry(s[0].clone()).or_default() += 1;
        }
        assert_eq!(per_node.len(), 3, "every node sends some: {per_node:?}");
        assert!(per_node.values().all(|n| *n > 100), "{per_node:?}");
    }

    #[test]
    fn a_dead_nodes_recipients_fall_to_the_next_one_after_its_turn() {
        let all = members(&[("mx1", false), ("mx2", true), ("mx3", true)]);
        let views: Vec<View> = ["mx2", "mx3"].iter().map(|me| view_of(me, &all)).collect();
        for rcpt in recipients() {
            let first = order(&rcpt, PERIOD, &all)[0].id.clone();
            let late = senders(&views, &rcpt, PERIOD + 2 * TAKEOVER);
            assert_eq!(late.len(), 1, "{rcpt}: nobody missed, none twice: {late:?}");
            if first == "mx1" {
                assert!(
                    senders(&views, &rcpt, PERIOD).is_empty(),
                    "waits for mx1's turn"
                );
            }
        }
    }

    #[test]
    fn a_done_recipient_is_left_alone() {
        let all = members(&[("mx1", true)]);
        let v = view_of("mx1", &all);
        assert_eq!(
            v.decide("a@example.com", PERIOD, PERIOD, PERIOD),
            Decision::Done
        );
        assert_eq!(
            v.decide("a@example.com", PERIOD, PERIOD - 1, PERIOD),
            Decision::Send
        );
    }

    #[test]
    fn in_a_partition_only_the_majority_side_sends_and_each_digest_once() {
        // mx1, mx2 | mx3: each side sees the other side dead.
        let left = members(&[("mx1", true), ("mx2", true), ("mx3", false)]);
        let right = members(&[("mx1", false), ("mx2", false), ("mx3", true)]);
        let views = vec![
            view_of("mx1", &left),
            view_of("mx2", &left),
            view_of("mx3", &right),
        ];
        for rcpt in recipients() {
            let s = senders(&views, &rcpt, PERIOD + 3 * TAKEOVER);
            assert_eq!(s.len(), 1, "{rcpt}: {s:?}");
            assert_ne!(s[0], "mx3", "the minority never sends");
        }
        // A 2–2 split: nobody sends until the heal.
        let a = members(&[("a", true), ("b", true), ("c", false), ("d", false)]);
        let b = members(&[("a", false), ("b", false), ("c", true), ("d", true)]);
        let views = vec![
            view_of("a", &a),
            view_of("b", &a),
            view_of("c", &b),
            view_of("d", &b),
        ];
        for rcpt in recipients() {
            assert!(senders(&views, &rcpt, PERIOD + 10 * TAKEOVER).is_empty());
        }
    }

    #[test]
    fn an_unhealthy_node_passes_its_turn() {
        let mut all = members(&[("mx1", true), ("mx2", true)]);
        all[0].healthy = false;
        let views = vec![view_of("mx1", &all), view_of("mx2", &all)];
        for rcpt in recipients() {
            assert_eq!(
                senders(&views, &rcpt, PERIOD + TAKEOVER),
                vec!["mx2".to_string()]
            );
        }
    }

    #[test]
    fn the_order_is_stable_and_depends_on_recipient_and_period() {
        let all = members(&[("mx1", true), ("mx2", true), ("mx3", true)]);
        let a = order("a@example.com", PERIOD, &all);
        assert_eq!(
            a,
            order("A@Example.com", PERIOD, &all),
            "case does not matter"
        );
        let firsts: std::collections::BTreeSet<&str> = (0..50)
            .map(|day| {
                order("a@example.com", PERIOD + day * 86_400_000, &all)[0]
                    .id
                    .as_str()
            })
            .collect();
        assert_eq!(firsts.len(), 3, "the sender rotates over periods");
    }
}
