//! URLs of the body: numeric hosts, user info that disguises the host, link shorteners.

use super::Hits;
use crate::filter::MessageFacts;
use crate::message::urls::registrable_domain;
use crate::spam::symbols::*;

/// Link-shortening services (registrable domains) that hide where a link goes.
pub const SHORTENERS: &[&str] = &[
    "bit.ly",
    "buff.ly",
    "cutt.ly",
    "goo.gl",
    "is.gd",
    "ow.ly",
    "rebrand.ly",
    "shorturl.at",
    "t.co",
    "t.ly",
    "tiny.cc",
    "tinyurl.com",
    "rb.gy",
    "s.id",
    "v.gd",
];

/// Adds the URL symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    for url in &facts.content.urls {
        if url.host_is_ip {
            hits.add(URL_IP_ADDRESS, url.host.as_str());
        }
        if url.userinfo {
            hits.add(URL_USERINFO, url.host.as_str());
        }
        if SHORTENERS.contains(&registrable_domain(&url.host)) {
            hits.add(URL_SHORTENER, url.host.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{facts_of, names};
    use super::*;

    #[test]
    fn url_symbols() {
        let clean = facts_of("Subject: x\n\nsee https://www.example.com/page\n");
        assert!(names(check, &clean).is_empty());
        let bad = facts_of(
            "Subject: x\n\nhttp://192.0.2.9/login http://www.bank.test@evil.test/ https://bit.ly/abc\n",
        );
        assert_eq!(
            names(check, &bad),
            [URL_IP_ADDRESS, URL_USERINFO, URL_SHORTENER]
        );
    }
}
