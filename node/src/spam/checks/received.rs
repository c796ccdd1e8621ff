//! The Received chain: absent (the client came through no mail server), too long,
//! undated, or dated out of order (a header claiming to be older than the one below it
//! by hours is forged or from a broken clock).

use super::headers::parse_date_ms;
use super::{Hits, header_values};
use crate::filter::MessageFacts;
use crate::spam::symbols::*;

/// Received headers beyond this many are a loop or padding.
pub const RECEIVED_MAX: usize = 30;
/// Received headers examined at most.
const RECEIVED_EXAMINED_MAX: usize = 64;
/// A hop may be dated this much after the hop above it (clocks and zones are off).
pub const RECEIVED_SKEW_MS: i64 = 6 * 3600 * 1000;

/// Adds the Received symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    let all: Vec<&str> = header_values(facts, "Received").collect();
    if all.is_empty() {
        return hits.add(RECEIVED_MISSING, "");
    }
    if all.len() > RECEIVED_MAX {
        hits.add(RECEIVED_TOO_MANY, format!("{} Received headers", all.len()));
    }
    let mut newer: Option<i64> = None;
    for (index, value) in all.iter().take(RECEIVED_EXAMINED_MAX).enumerate() {
        let Some(date) = received_date_ms(value) else {
            hits.add(RECEIVED_MALFORMED, format!("Received #{}", index + 1));
            continue;
        };
        if newer.is_some_and(|newer| date > newer + RECEIVED_SKEW_MS) {
            hits.add(
                RECEIVED_DATES_DISORDERED,
                format!("Received #{}", index + 1),
            );
        }
        newer = Some(date);
    }
}

/// The date of a Received header: what follows its last `;`.
fn received_date_ms(value: &str) -> Option<i64> {
    parse_date_ms(value.rsplit_once(';')?.1)
}

/// When a stored message arrived, as well as its headers tell: the date of the newest
/// (topmost) Received header that has one, else its Date header; in ms since the epoch.
/// For replaying old mail (a corpus) as if it were arriving now — live mail is scored
/// against the node's clock instead.
pub fn arrival_estimate_ms(facts: &MessageFacts) -> Option<u64> {
    header_values(facts, "Received")
        .take(RECEIVED_EXAMINED_MAX)
        .find_map(received_date_ms)
        .or_else(|| header_values(facts, "Date").find_map(parse_date_ms))
        .and_then(|ms| u64::try_from(ms).ok())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{facts_of, names};
    use super::*;

    const HOP_NEW: &str = "Received: from b by c; Wed, 10 Jan 2024 12:00:00 +0000\n";
    const HOP_OLD: &str = "Received: from a by b; Wed, 10 Jan 2024 11:00:00 +0000\n";
    const HOP_LATE: &str = "Received: from a by b; Thu, 11 Jan 2024 11:00:00 +0000\n";

    #[test]
    fn an_ordered_chain_is_clean() {
        let facts = facts_of(&format!("{HOP_NEW}{HOP_OLD}Subject: x\n\nbody\n"));
        assert!(names(check, &facts).is_empty());
        assert_eq!(arrival_estimate_ms(&facts), Some(1_704_888_000_000));
    }

    #[test]
    fn anomalies() {
        let none = facts_of("Subject: x\n\nbody\n");
        assert_eq!(names(check, &none), [RECEIVED_MISSING]);
        assert_eq!(arrival_estimate_ms(&none), None);
        let dated = facts_of("Date: Wed, 10 Jan 2024 12:00:00 +0000\nSubject: x\n\nbody\n");
        assert_eq!(arrival_estimate_ms(&dated), Some(1_704_888_000_000));
        let forged = facts_of(&format!("{HOP_NEW}{HOP_LATE}Subject: x\n\nbody\n"));
        assert_eq!(names(check, &forged), [RECEIVED_DATES_DISORDERED]);
        let undated = facts_of(&format!(
            "{HOP_NEW}Received: from a by b\nSubject: x\n\nbody\n"
        ));
        assert_eq!(names(check, &undated), [RECEIVED_MALFORMED]);
        let long = facts_of(&format!(
            "{}Subject: x\n\nbody\n",
            HOP_NEW.repeat(RECEIVED_MAX + 1)
        ));
        assert_eq!(names(check, &long), [RECEIVED_TOO_MANY]);
    }
}
