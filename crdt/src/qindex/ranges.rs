//! Sets of sequence numbers held as disjoint inclusive ranges: what a replica knows of a log.

use std::collections::BTreeMap;

/// Disjoint, non-adjacent inclusive ranges `start..=end` of seqs (seqs start at 1), keyed by
/// start. Union is the only operation, so merging is commutative, associative and idempotent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Ranges {
    by_start: BTreeMap<u64, u64>,
}

impl Ranges {
    /// Adds `start..=end` (nothing if `start > end`), merging with overlapping or adjacent
    /// ranges.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start > end {
            return;
        }
        let touching: Vec<(u64, u64)> = self
            .by_start
            .range(..=end.saturating_add(1))
            .rev()
            .take_while(|&(_, &e)| e.saturating_add(1) >= start)
            .map(|(&s, &e)| (s, e))
            .collect();
        let (mut start, mut end) = (start, end);
        for (s, e) in touching {
            self.by_start.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.by_start.insert(start, end);
    }

    /// The largest `n` such that every seq in `1..=n` is in the set (0 if 1 is not).
    pub fn contiguous_end(&self) -> u64 {
        match self.by_start.first_key_value() {
            Some((&start, &end)) if start <= 1 => end,
            _ => 0,
        }
    }

    /// The largest seq in the set (0 when empty).
    pub fn max_end(&self) -> u64 {
        self.by_start.last_key_value().map_or(0, |(_, &end)| end)
    }

    /// The ranges in order, as `(start, end)`.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.by_start.iter().map(|(&s, &e)| (s, e))
    }

    /// Number of disjoint ranges.
    pub fn len(&self) -> usize {
        self.by_start.len()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn set_of(ranges: &Ranges) -> Vec<u64> {
        ranges.iter().flat_map(|(s, e)| s..=e).collect()
    }

    #[test]
    fn merges_overlapping_and_adjacent() {
        let mut r = Ranges::default();
        r.insert(5, 7);
        r.insert(1, 2);
        assert_eq!(r.contiguous_end(), 2);
        r.insert(3, 4);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(1, 7)]);
        r.insert(10, 12);
        r.insert(9, 9);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(1, 7), (9, 12)]);
        r.insert(6, 20);
        assert_eq!(r.iter().collect::<Vec<_>>(), vec![(1, 20)]);
        r.insert(4, 2);
        assert_eq!((r.len(), r.max_end()), (1, 20));
    }

    proptest! {
        #[test]
        fn behaves_as_a_set(parts in proptest::collection::vec((1u64..40, 0u64..6), 0..12)) {
            let mut r = Ranges::default();
            let mut expected = std::collections::BTreeSet::new();
            for (start, len) in parts {
                r.insert(start, start + len);
                expected.extend(start..=start + len);
            }
            prop_assert_eq!(set_of(&r), expected.iter().copied().collect::<Vec<_>>());
            let pairs: Vec<(u64, u64)> = r.iter().collect();
            for pair in pairs.windows(2) {
                prop_assert!(pair[0].1 + 1 < pair[1].0, "disjoint and not adjacent");
            }
        }
    }
}
