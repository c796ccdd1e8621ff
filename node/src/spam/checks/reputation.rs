//! DNSBL listings of the client and URIBL listings of the body's URL domains (both
//! looked up in the facts phase).

use std::collections::BTreeSet;

use super::Hits;
use crate::filter::MessageFacts;
use crate::spam::symbols::*;

/// Adds the blocklist symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    let listed: Vec<String> = facts
        .dnsbl
        .iter()
        .filter(|(_, records)| !records.is_empty())
        .map(|(zone, records)| format!("{zone}={}", records.join(",")))
        .collect();
    if let Some(first) = listed.first() {
        hits.add(DNSBL_LISTED, format!("{} {first}", facts.client_ip));
    }
    if listed.len() >= 2 {
        hits.add(DNSBL_LISTED_MULTI, listed.join(" "));
    }
    let Some(first) = facts.uribl.first() else {
        return;
    };
    hits.add(
        URIBL_LISTED,
        format!(
            "{} in {}={}",
            first.domain,
            first.zone,
            first.records.join(",")
        ),
    );
    let domains: BTreeSet<&str> = facts.uribl.iter().map(|l| l.domain.as_str()).collect();
    let zones: BTreeSet<&str> = facts.uribl.iter().map(|l| l.zone.as_str()).collect();
    if domains.len() >= 2 || zones.len() >= 2 {
        let all: Vec<String> = facts
            .uribl
            .iter()
            .map(|l| format!("{} in {}", l.domain, l.zone))
            .collect();
        hits.add(URIBL_LISTED_MULTI, all.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::names;
    use super::*;
    use crate::filter::UriblListing;

    fn listing(zone: &str, domain: &str) -> UriblListing {
        UriblListing {
            zone: zone.into(),
            domain: domain.into(),
            records: vec!["127.0.0.2".into()],
        }
    }

    #[test]
    fn dnsbl_listings() {
        let mut facts = MessageFacts::default();
        facts.dnsbl.insert("clean.test".into(), vec![]);
        assert!(names(check, &facts).is_empty());
        facts
            .dnsbl
            .insert("bl.test".into(), vec!["127.0.0.2".into()]);
        assert_eq!(names(check, &facts), [DNSBL_LISTED]);
        facts
            .dnsbl
            .insert("bl2.test".into(), vec!["127.0.0.4".into()]);
        assert_eq!(names(check, &facts), [DNSBL_LISTED, DNSBL_LISTED_MULTI]);
    }

    #[test]
    fn uribl_listings() {
        let mut facts = MessageFacts::default();
        facts.uribl.push(listing("uribl.test", "evil.test"));
        assert_eq!(names(check, &facts), [URIBL_LISTED]);
        facts.uribl.push(listing("uribl.test", "worse.test"));
        assert_eq!(names(check, &facts), [URIBL_LISTED, URIBL_LISTED_MULTI]);
    }
}
