//! Which peers one round of anti-entropy (rule sync, index sync) talks to: at most a
//! bound, so a node's work per round does not grow with the mesh (all-peers rounds are
//! O(N²) mesh-wide). Pure and without a random generator: the window of peers starts at
//! an offset hashed from the node's id and the round, so different nodes and rounds pick
//! different peers, and the same inputs pick the same ones.

use std::hash::{DefaultHasher, Hash, Hasher};

/// Up to `max` consecutive items of `candidates` (wrapping), from an offset derived from
/// `me` and `round`; all of them, in order, when there are no more than `max`.
pub fn window<'a, T>(candidates: &'a [T], me: &str, round: u64, max: usize) -> Vec<&'a T> {
    if candidates.len() <= max {
        return candidates.iter().collect();
    }
    let mut h = DefaultHasher::new();
    (me, round).hash(&mut h);
    let start = (h.finish() % candidates.len() as u64) as usize;
    candidates.iter().cycle().skip(start).take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_candidates_are_all_taken_in_order() {
        let c = [1, 2, 3];
        assert_eq!(window(&c, "mx1", 7, 4), vec![&1, &2, &3]);
        assert!(window::<u8>(&[], "mx1", 0, 4).is_empty());
    }

    #[test]
    fn many_candidates_give_a_bounded_distinct_window() {
        let c: Vec<u32> = (0..1000).collect();
        let w = window(&c, "mx1", 3, 4);
        assert_eq!(w.len(), 4);
        let mut d: Vec<_> = w.clone();
        d.dedup();
        assert_eq!(d.len(), 4);
        assert_eq!(w, window(&c, "mx1", 3, 4), "same inputs, same window");
    }

    #[test]
    fn rounds_and_nodes_spread_over_the_peers() {
        let c: Vec<u32> = (0..100).collect();
        let mut seen = std::collections::HashSet::new();
        for round in 0..200 {
            seen.extend(window(&c, "mx1", round, 4).into_iter().copied());
        }
        assert!(
            seen.len() > 90,
            "one node reaches most peers over rounds: {}",
            seen.len()
        );
        let starts: std::collections::HashSet<u32> = (0..20)
            .map(|i| *window(&c, &format!("mx{i}"), 0, 1)[0])
            .collect();
        assert!(
            starts.len() > 10,
            "nodes start at different peers: {starts:?}"
        );
    }
}
