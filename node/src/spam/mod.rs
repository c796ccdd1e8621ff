//! Spam scoring: named symbols with weights, their sum as the score, and the verdict the
//! cluster's thresholds give it. Pure: no I/O and no clock (the time of arrival is a
//! parameter); everything read is in [`MessageFacts`].
//!
//! Layout: [`symbols`] (the table of every symbol with its default weight — the one place
//! weights are set), `checks` (one function per family: auth, blocklists, headers,
//! Received chain, MIME, HTML, URLs, body wording, bulk-mail traits, ratware (forged mail clients), attachments, lists and Bayes bands), [`settings`]
//! (thresholds and weight overrides, validated), [`header`] (the `X-Spam-*` headers).

pub mod header;
pub mod settings;
pub mod symbol_names;
pub mod symbols;

mod checks;

use mxmesh_crdt::qindex::{ENTRY_SYMBOLS_MAX, SymbolWeight};

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

    /// The symbols by weight, heaviest first, then by name: the order of `X-Spam-Symbols`
    /// and of the verdict's record.
    pub fn by_weight(&self) -> Vec<&Symbol> {
        let mut symbols: Vec<&Symbol> = self.symbols.iter().collect();
        symbols.sort_by(|a, b| b.weight.total_cmp(&a.weight).then(a.name.cmp(b.name)));
        symbols
    }

    /// The symbols as the verdict's record keeps them (quarantine entry, trace event): name
    /// and weight, heaviest first, at most [`ENTRY_SYMBOLS_MAX`] (the lightest left out).
    pub fn recorded_symbols(&self) -> Vec<SymbolWeight> {
        let record = |s: &&Symbol| SymbolWeight {
            name: s.name.to_string(),
            weight: s.weight,
        };
        let heaviest = self.by_weight();
        heaviest
            .iter()
            .take(ENTRY_SYMBOLS_MAX)
            .map(record)
            .collect()
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
    fn the_record_keeps_the_heaviest_symbols_first() {
        let symbol = |name: &'static str, weight: f64| Symbol {
            name,
            weight,
            detail: String::new(),
        };
        let mut score = Score {
            total: 0.0,
            symbols: vec![
                symbol("SPF_PASS", -0.2),
                symbol("URL_IP_ADDRESS", 2.0),
                symbol("SUBJECT_ALL_CAPS", 2.0),
                symbol("HTML_LINK_TEXT_MISMATCH", 2.5),
            ],
        };
        let names: Vec<String> = score
            .recorded_symbols()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(
            names,
            [
                "HTML_LINK_TEXT_MISMATCH",
                "SUBJECT_ALL_CAPS",
                "URL_IP_ADDRESS",
                "SPF_PASS"
            ]
        );
        score.symbols = (0..ENTRY_SYMBOLS_MAX + 3)
            .map(|n| symbol(symbols::SYMBOLS[n].name, n as f64))
            .collect();
        let kept = score.recorded_symbols();
        assert_eq!(kept.len(), ENTRY_SYMBOLS_MAX);
        assert_eq!(
            kept[0].weight,
            (ENTRY_SYMBOLS_MAX + 2) as f64,
            "heaviest first"
        );
        assert!(
            kept.iter().all(|s| s.weight >= 3.0),
            "the lightest are left out"
        );
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
