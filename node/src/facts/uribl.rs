//! URIBL/SURBL-style checks: are the domains of the body's URLs listed in a zone? One A
//! query per (domain, zone) — `example.com.zone.` for a name, the reversed address for
//! a numeric host (as DNSBL) — all at once over the one resolver, each bounded by its
//! timeout and all of them by the message's DNS deadline (see `facts`).
//!
//! A listing is an answer in 127.0.0.0/8 other than 127.0.0.1 and 127.255.255.0/24:
//! URIBL answers 127.0.0.1 to queries it refuses (e.g. from public resolvers) and
//! Spamhaus uses 127.255.255.x for errors, so those are failures, not listings.

use std::net::IpAddr;

use mail_auth::MessageAuthenticator;

use super::dnsbl::{self, Listing};
use crate::filter::MessageFacts;
use crate::message::urls::registrable_domain;

/// Distinct URL domains queried per message at most (the first ones in the body).
pub const URIBL_DOMAINS_MAX: usize = 16;
/// Queries (domains × zones) per message at most.
pub const URIBL_QUERIES_MAX: usize = 64;

/// What one (zone, domain) query said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The zone asked.
    pub zone: String,
    /// The domain (or address) asked about.
    pub domain: String,
    /// Its listing.
    pub listing: Listing,
}

/// The registrable domains (and numeric hosts) of the body's URLs, in order, without
/// repeats, at most [`URIBL_DOMAINS_MAX`].
pub fn domains(facts: &MessageFacts) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for url in &facts.content.urls {
        let domain = registrable_domain(&url.host).to_string();
        if out.len() >= URIBL_DOMAINS_MAX {
            break;
        }
        if !out.contains(&domain) {
            out.push(domain);
        }
    }
    out
}

/// The query name of `domain` in `zone`, fully qualified.
pub fn query_name(domain: &str, zone: &str) -> String {
    match domain.parse::<IpAddr>() {
        Ok(ip) => dnsbl::query_name(ip, zone),
        Err(_) => format!("{domain}.{}.", zone.trim_end_matches('.')),
    }
}

/// Asks every zone about every domain (bounded by [`URIBL_QUERIES_MAX`]).
pub async fn check(
    resolver: &MessageAuthenticator,
    domains: &[String],
    zones: &[String],
) -> Vec<Answer> {
    let pairs = zones
        .iter()
        .flat_map(|zone| domains.iter().map(move |domain| (zone, domain)))
        .take(URIBL_QUERIES_MAX);
    let queries = pairs.map(|(zone, domain)| async move {
        let listing = lookup(resolver, &query_name(domain, zone)).await;
        Answer {
            zone: zone.clone(),
            domain: domain.clone(),
            listing,
        }
    });
    futures::future::join_all(queries).await
}

async fn lookup(resolver: &MessageAuthenticator, name: &str) -> Listing {
    match dnsbl::lookup(resolver, name).await {
        Listing::Listed(records) => classify(name, records),
        other => other,
    }
}

/// A listing, or a failure for the refusal and error codes (see the module doc).
fn classify(name: &str, records: Vec<String>) -> Listing {
    let refused = records
        .iter()
        .find(|r| r.as_str() == "127.0.0.1" || r.starts_with("127.255.255."));
    if let Some(code) = refused {
        return Listing::Failed(format!("{name}: the zone refused the query ({code})"));
    }
    if records.iter().all(|r| r.starts_with("127.")) {
        Listing::Listed(records)
    } else {
        Listing::Failed(format!(
            "{name}: answer outside 127.0.0.0/8 ({})",
            records.join(",")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::UrlFact;

    fn url(host: &str) -> UrlFact {
        UrlFact {
            host: host.into(),
            host_is_ip: host.parse::<IpAddr>().is_ok(),
            ..UrlFact::default()
        }
    }

    #[test]
    fn domains_are_registrable_distinct_and_bounded() {
        let mut facts = MessageFacts::default();
        facts.content.urls = vec![
            url("www.a.example"),
            url("mail.a.example"),
            url("192.0.2.5"),
        ];
        assert_eq!(domains(&facts), ["a.example", "192.0.2.5"]);
        facts.content.urls = (0..40).map(|i| url(&format!("h{i}.example"))).collect();
        assert_eq!(domains(&facts).len(), URIBL_DOMAINS_MAX);
    }

    #[test]
    fn query_names() {
        assert_eq!(
            query_name("evil.test", "uribl.test."),
            "evil.test.uribl.test."
        );
        assert_eq!(
            query_name("192.0.2.5", "uribl.test"),
            "5.2.0.192.uribl.test."
        );
    }

    #[test]
    fn refusal_codes_are_not_listings() {
        let listed = classify("x", vec!["127.0.0.2".into()]);
        assert_eq!(listed, Listing::Listed(vec!["127.0.0.2".into()]));
        assert!(matches!(
            classify("x", vec!["127.0.0.1".into()]),
            Listing::Failed(_)
        ));
        assert!(matches!(
            classify("x", vec!["127.255.255.254".into()]),
            Listing::Failed(_)
        ));
        assert!(matches!(
            classify("x", vec!["192.0.2.1".into()]),
            Listing::Failed(_)
        ));
    }
}
