//! Spam scoring: named symbols with weights, their sum as the score, and the verdict the
//! cluster's thresholds give it. Pure: no I/O and no clock (the time of arrival is a
//! parameter); everything read is in [`MessageFacts`].
//!
//! Layout: [`symbols`] (the table of every symbol with its default weight — the one place
//! weights are set), `checks` (one function per family: auth, blocklists, headers,
//! Received chain, MIME, HTML, URLs, attachments, lists and Bayes bands), [`settings`]
//! (thresholds and weight overrides, validated), [`header`] (the `X-Spam-*` headers).

pub mod header;
pub mod settings;
pub mod symbols;

mod checks;

use crate::filter::MessageFacts;

pub use checks::DETAIL_BYTES_MAX;
pub use checks::arrival_estimate_ms;
pub use settings::{SettingsError, SpamSettings, verdict_for};

/// One symbol that fired.
#[derive(Debug, Clone, PartialEq)]
pub struct Symbol {
    /// Its name (see [`symbols::SYMBOLS`]).
    pub name: &'static str,
    /// Its weight for this message: the default, or the cluster's override.
    pub weight: f64,
    /// What made it fire (an address, a domain, a header value), bounded.
    pub detail: String,
}

/// The score of one message.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Score {
    /// The sum of the weights, rounded to 1/1000.
    pub total: f64,
    /// The symbols that fired, in check order.
    pub symbols: Vec<Symbol>,
}

impl Score {
    /// Whether symbol `name` fired.
    pub fn has(&self, name: &str) -> bool {
        self.symbols.iter().any(|s| s.name == name)
    }
}

/// Scores `facts` with the weights of `settings`; `now_ms` is the time of arrival (the
/// reference for the Date checks).
pub fn score(facts: &MessageFacts, settings: &SpamSettings, now_ms: u64) -> Score {
    let mut hits = checks::Hits::default();
    checks::run(facts, checks::Context { now_ms }, &mut hits);
    let symbols: Vec<Symbol> = hits
        .into_vec()
        .into_iter()
        .map(|(name, detail)| Symbol {
            name,
            weight: settings.weight(name),
            detail,
        })
        .collect();
    let total = symbols.iter().map(|s| s.weight).sum::<f64>();
    Score {
        total: (total * 1000.0).round() / 1000.0,
        symbols,
    }
}

#[cfg(test)]
mod tests {
    use super::checks::test_support::{NOW_MS, facts_of};
    use super::*;

    const SPAMMY: &str = "Received: from bot (unknown [203.0.113.9])\n\tby mx.example.com; Wed, 10 Jan 2024 11:59:00 +0000\n\
        From: \"support@bank.example\" <win@prize.test>\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n\
        Subject: YOU HAVE WON A PRIZE!!!\nMIME-Version: 1.0\nContent-Type: text/html\n\n\
        <p>Claim at <a href=\"http://192.0.2.66/claim\">https://bank.example/claim</a></p>\n";

    #[test]
    fn the_score_is_the_sum_of_the_weights() {
        let facts = facts_of(SPAMMY);
        let score = score(&facts, &SpamSettings::default(), NOW_MS);
        let names: Vec<&str> = score.symbols.iter().map(|s| s.name).collect();
        for expected in [
            symbols::MISSING_MESSAGE_ID,
            symbols::DATE_IN_PAST,
            symbols::FROM_NAME_SPOOFS_ADDRESS,
            symbols::SUBJECT_ALL_CAPS,
            symbols::SUBJECT_EXCESS_PUNCTUATION,
            symbols::MIME_HTML_ONLY,
            symbols::HTML_LINK_TEXT_MISMATCH,
            symbols::URL_IP_ADDRESS,
        ] {
            assert!(
                names.contains(&expected),
                "{expected} missing from {names:?}"
            );
        }
        let sum: f64 = score.symbols.iter().map(|s| s.weight).sum();
        assert!((score.total - sum).abs() < 0.001);
        assert!(score.total >= SpamSettings::default().quarantine.unwrap());
    }

    #[test]
    fn overrides_change_the_weight() {
        let facts = facts_of(SPAMMY);
        let mut settings = SpamSettings::default();
        settings.weights.insert(symbols::URL_IP_ADDRESS.into(), 7.0);
        let base = score(&facts, &SpamSettings::default(), NOW_MS);
        let changed = score(&facts, &settings, NOW_MS);
        let default_weight = symbols::lookup(symbols::URL_IP_ADDRESS).unwrap().weight;
        assert!((changed.total - base.total - (7.0 - default_weight)).abs() < 0.001);
    }
}
