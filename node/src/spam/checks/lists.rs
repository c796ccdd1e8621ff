//! Allow/deny list hits (matched before scoring, given in the facts) and the Bayes
//! probability in bands (computed by the classifier, given in the facts).

use super::Hits;
use crate::filter::{ListKind, ListTarget, MessageFacts};
use crate::spam::symbols::*;

/// Upper bounds of the Bayes bands (probability below the bound), then the last band.
const BAYES_BANDS: &[(f64, &str)] = &[
    (0.01, BAYES_00),
    (0.05, BAYES_05),
    (0.20, BAYES_20),
    (0.40, BAYES_40),
    (0.60, BAYES_50),
    (0.80, BAYES_60),
    (0.95, BAYES_80),
    (0.99, BAYES_95),
];

/// Fraction of a message's plain words unknown to the learned ham above which
/// `BAYES_UNFAMILIAR` fires. Chosen on the TRAIN half of the SpamAssassin corpus
/// (BENCHMARKS.md §8, "Unfamiliar to the learned ham"): no TRAIN ham went above 0.76.
const UNFAMILIAR_ABOVE: f64 = 0.8;

/// Adds the list symbols, the Bayes band and `BAYES_UNFAMILIAR`.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    for hit in &facts.lists {
        let name = match (hit.kind, hit.target) {
            (ListKind::Allow, ListTarget::Sender) => ALLOWLIST_SENDER,
            (ListKind::Allow, ListTarget::Domain) => ALLOWLIST_DOMAIN,
            (ListKind::Allow, ListTarget::ClientIp) => ALLOWLIST_IP,
            (ListKind::Deny, ListTarget::Sender) => DENYLIST_SENDER,
            (ListKind::Deny, ListTarget::Domain) => DENYLIST_DOMAIN,
            (ListKind::Deny, ListTarget::ClientIp) => DENYLIST_IP,
        };
        hits.add(name, hit.entry.as_str());
    }
    if let Some(p) = facts.bayes.filter(|p| (0.0..=1.0).contains(p)) {
        hits.add(bayes_band(p), format!("{p:.4}"));
        if let Some(u) = facts
            .bayes_unfamiliar
            .filter(|u| *u > UNFAMILIAR_ABOVE && *u <= 1.0)
        {
            hits.add(BAYES_UNFAMILIAR, format!("{u:.2}"));
        }
    }
}

/// The band symbol of probability `p` (0..=1).
pub fn bayes_band(p: f64) -> &'static str {
    BAYES_BANDS
        .iter()
        .find(|(below, _)| p < *below)
        .map_or(BAYES_99, |(_, name)| name)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::names;
    use super::*;
    use crate::filter::ListHit;

    #[test]
    fn bayes_bands() {
        let cases = [
            (0.0, BAYES_00),
            (0.009, BAYES_00),
            (0.01, BAYES_05),
            (0.1, BAYES_20),
            (0.3, BAYES_40),
            (0.5, BAYES_50),
            (0.7, BAYES_60),
            (0.9, BAYES_80),
            (0.97, BAYES_95),
            (0.99, BAYES_99),
            (1.0, BAYES_99),
        ];
        for (p, band) in cases {
            assert_eq!(bayes_band(p), band, "{p}");
        }
        let voted = MessageFacts {
            bayes: Some(0.995),
            ..MessageFacts::default()
        };
        assert_eq!(names(check, &voted), [BAYES_99]);
        assert!(
            names(check, &MessageFacts::default()).is_empty(),
            "no vote, no band"
        );
        let nonsense = MessageFacts {
            bayes: Some(f64::NAN),
            ..MessageFacts::default()
        };
        assert!(names(check, &nonsense).is_empty());
    }

    #[test]
    fn unfamiliar_fires_above_the_bound_with_a_vote() {
        let facts = |bayes, unfamiliar| MessageFacts {
            bayes,
            bayes_unfamiliar: unfamiliar,
            ..MessageFacts::default()
        };
        assert_eq!(
            names(check, &facts(Some(0.1), Some(0.9))),
            [BAYES_20, BAYES_UNFAMILIAR]
        );
        assert_eq!(names(check, &facts(Some(0.1), Some(0.8))), [BAYES_20]);
        assert_eq!(names(check, &facts(Some(0.1), None)), [BAYES_20]);
        assert_eq!(names(check, &facts(Some(0.1), Some(f64::NAN))), [BAYES_20]);
        assert!(names(check, &facts(None, Some(0.9))).is_empty());
    }

    #[test]
    fn list_hits() {
        let hit = |kind, target, entry: &str| ListHit {
            kind,
            target,
            entry: entry.into(),
        };
        let facts = MessageFacts {
            lists: vec![
                hit(ListKind::Allow, ListTarget::Domain, "partner.test"),
                hit(ListKind::Deny, ListTarget::ClientIp, "203.0.113.0/24"),
                hit(ListKind::Deny, ListTarget::Sender, "x@spam.test"),
            ],
            ..MessageFacts::default()
        };
        assert_eq!(
            names(check, &facts),
            [ALLOWLIST_DOMAIN, DENYLIST_IP, DENYLIST_SENDER]
        );
    }
}
