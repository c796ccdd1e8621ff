//! The epidemic (push gossip) model behind Serf's convergence simulator, pure: each
//! interval every informed node sends the news to `fanout` peers chosen at random; each
//! message arrives with probability `1 - loss`. With `i` of `n` nodes informed, an
//! uninformed node escapes all `fanout · (1 - loss) · i` arriving messages with
//! probability `(1 - 1/(n-1))^(fanout · (1 - loss) · i)`, so the expected informed count
//! after one more interval is
//!
//! ```text
//! i' = i + (n - i) · (1 - (1 - 1/(n-1))^(fanout · (1 - loss) · i))
//! ```
//!
//! starting from one informed node. [`rounds_to`] gives the intervals until an expected
//! fraction is informed; "every node" means fewer than half a node is still expected to be
//! uninformed.

/// Intervals the model iterates at most (it converges in O(log n) for any loss < 1).
const ROUNDS_MAX: u32 = 10_000;

/// The model's inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gossip {
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Peers each informed node sends to per interval.
    pub fanout: u32,
    /// Probability that one message is lost, in [0, 1).
    pub loss: f64,
}

impl Gossip {
    /// Expected informed nodes after one more interval, from `informed`.
    pub fn step(&self, informed: f64) -> f64 {
        let n = self.nodes as f64;
        if self.nodes < 2 {
            return n;
        }
        let arriving = f64::from(self.fanout) * (1.0 - self.loss) * informed;
        let escape = (1.0 - 1.0 / (n - 1.0)).powf(arriving);
        (informed + (n - informed) * (1.0 - escape)).min(n)
    }

    /// Intervals until the expected informed fraction reaches `fraction` (1.0: every node,
    /// i.e. less than half a node left); `None` when the model never gets there.
    pub fn rounds_to(&self, fraction: f64) -> Option<u32> {
        let n = self.nodes.max(1) as f64;
        let everyone = n - 0.5;
        let target = (fraction * n).min(everyone);
        let mut informed = 1.0_f64.min(n);
        for round in 0..=ROUNDS_MAX {
            if informed >= target {
                return Some(round);
            }
            informed = self.step(informed);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(nodes: usize, loss: f64) -> Gossip {
        Gossip {
            nodes,
            fanout: 3,
            loss,
        }
    }

    #[test]
    fn one_node_is_informed_at_once() {
        assert_eq!(g(1, 0.0).rounds_to(1.0), Some(0));
    }

    #[test]
    fn first_step_matches_the_formula() {
        // 1 informed of 5, fanout 3: escape = (3/4)^3, so 1 + 4 · (1 - 27/64).
        let next = g(5, 0.0).step(1.0);
        assert!(
            (next - (1.0 + 4.0 * (1.0 - 27.0 / 64.0))).abs() < 1e-12,
            "{next}"
        );
    }

    #[test]
    fn informed_rises_monotonically_to_everyone() {
        let m = g(1000, 0.0);
        let mut informed = 1.0;
        for _ in 0..30 {
            let next = m.step(informed);
            assert!(next >= informed && next <= 1000.0, "{informed} → {next}");
            informed = next;
        }
        assert!(informed > 999.99, "{informed}");
    }

    #[test]
    fn rounds_grow_logarithmically_with_nodes() {
        let r = |n| g(n, 0.0).rounds_to(1.0).unwrap();
        assert!(
            r(10) < r(100) && r(100) < r(1000),
            "{} {} {}",
            r(10),
            r(100),
            r(1000)
        );
        // Doubling the fanout's reach (×10 nodes) costs a few rounds, not ten times more.
        assert!(r(1000) <= 2 * r(100), "{} {}", r(100), r(1000));
        assert!(r(1000) <= 12, "{}", r(1000));
    }

    #[test]
    fn loss_slows_convergence() {
        let clean = g(500, 0.0).rounds_to(0.99).unwrap();
        let lossy = g(500, 0.5).rounds_to(0.99).unwrap();
        assert!(lossy > clean, "{clean} {lossy}");
    }

    #[test]
    fn half_is_reached_before_everyone_and_99_percent_never_after() {
        for n in [5, 100] {
            let m = g(n, 0.1);
            assert!(m.rounds_to(0.5).unwrap() < m.rounds_to(1.0).unwrap());
            assert!(m.rounds_to(0.99).unwrap() <= m.rounds_to(1.0).unwrap());
        }
    }
}
