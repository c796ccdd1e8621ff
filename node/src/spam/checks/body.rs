//! The body's wording: stock phrases of bulk mail and of advance-fee fraud (one is
//! common, several together are not), and text written mostly in capitals.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use super::Hits;
use crate::filter::MessageFacts;
use crate::spam::symbols::*;

/// Distinct phrases for `BODY_SPAM_PHRASES`.
pub const PHRASES_FEW: usize = 2;
/// Distinct phrases for `BODY_SPAM_PHRASES_MANY`.
pub const PHRASES_MANY: usize = 4;
/// Letters the body needs before "mostly capitals" means shouting.
pub const CAPS_LETTERS_MIN: usize = 200;
/// Share of capitals (percent) that makes a body shout.
pub const CAPS_PERCENT_MIN: usize = 50;
/// Bytes of body text examined at most.
const TEXT_EXAMINED_BYTES_MAX: usize = 256 * 1024;

/// Stock phrases of bulk and fraudulent mail, matched on word boundaries, any case.
const PHRASES: &[&str] = &[
    "act now",
    "apply now",
    "as seen on",
    "be your own boss",
    "cash bonus",
    "click below",
    "click here",
    "dear friend",
    "double your",
    "earn extra",
    "extra income",
    "financial freedom",
    "for free",
    "free gift",
    "free trial",
    "full refund",
    "get paid",
    "limited time",
    "lose weight",
    "lowest price",
    "make money",
    "million dollars",
    "money back",
    "no cost",
    "no obligation",
    "once in a lifetime",
    "order now",
    "risk free",
    "risk-free",
    "satisfaction guaranteed",
    "special promotion",
    "this is not spam",
    "to be removed",
    "removal instructions",
    "work from home",
    "you are a winner",
    "you have been selected",
    "you will not be charged",
    "100% free",
    "100% guaranteed",
    "100% satisfied",
];

/// Stock phrases of advance-fee fraud ("419"): a stranger, a fortune, a secret, a fee.
const FRAUD_PHRASES: &[&str] = &[
    "bank account",
    "beneficiary",
    "business proposal",
    "confidential business",
    "foreign partner",
    "huge sum",
    "late husband",
    "million united states dollars",
    "million us dollars",
    "next of kin",
    "our mutual benefit",
    "please reply urgently",
    "strictly confidential",
    "transfer of the fund",
    "transfer the fund",
    "transfer the sum",
    "urgent assistance",
    "winning number",
];

/// A regex finding any of `phrases` as whole words, any case; the phrase is group 1.
fn any_phrase(phrases: &[&str]) -> Regex {
    let alternatives: Vec<String> = phrases.iter().map(|p| regex::escape(p)).collect();
    // ASCII word boundaries: they do not consume the space between two phrases, and keep
    // the regex on its fast engines.
    Regex::new(&format!(
        r"(?i)(?-u:\b)({})(?-u:\b)",
        alternatives.join("|")
    ))
    .expect("static regex")
}

static PHRASE: LazyLock<Regex> = LazyLock::new(|| any_phrase(PHRASES));
static FRAUD_PHRASE: LazyLock<Regex> = LazyLock::new(|| any_phrase(FRAUD_PHRASES));
/// Every phrase of [`PHRASES`] and [`FRAUD_PHRASES`] in one regex: it matches exactly when
/// one of the two does. Text without any stock phrase (most mail) is read once, by the
/// regex's plain forward search (a `RegexSet`'s overlapping search cost about four times
/// as many instructions per byte); only text it matches is searched again, per list, for
/// the distinct phrases.
static ANY_PHRASE: LazyLock<Regex> =
    LazyLock::new(|| any_phrase(&[PHRASES, FRAUD_PHRASES].concat()));

/// The decoded body text the checks read: at most [`TEXT_EXAMINED_BYTES_MAX`] bytes, cut
/// at a character boundary.
pub(super) fn examined_text(facts: &MessageFacts) -> &str {
    let text = facts.body_text.as_str();
    let mut cut = text.len().min(TEXT_EXAMINED_BYTES_MAX);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    &text[..cut]
}

/// Adds the body symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    let text = examined_text(facts);
    let texts = [facts.subject.as_str(), text];
    let list = |found: &BTreeSet<String>| found.iter().cloned().collect::<Vec<_>>().join(", ");
    if texts.iter().any(|t| ANY_PHRASE.is_match(t)) {
        let found = distinct(&PHRASE, &texts);
        if found.len() >= PHRASES_FEW {
            hits.add(BODY_SPAM_PHRASES, list(&found));
        }
        if found.len() >= PHRASES_MANY {
            hits.add(BODY_SPAM_PHRASES_MANY, list(&found));
        }
        let fraud = distinct(&FRAUD_PHRASE, &texts);
        if fraud.len() >= PHRASES_FEW {
            hits.add(BODY_ADVANCE_FEE, list(&fraud));
        }
    }
    let (total, upper) = letters_and_capitals(text);
    if total >= CAPS_LETTERS_MIN && upper * 100 >= total * CAPS_PERCENT_MIN {
        hits.add(BODY_MOSTLY_CAPS, format!("{upper} of {total} letters"));
    }
}

/// Bytes counted with `u8` counters before they are added up (at most 255 each).
const COUNT_CHUNK_BYTES: usize = 255;

/// The letters of `text` and how many of them are capitals; ASCII text (most mail) is
/// counted byte by byte, which gives the same counts as the `char` methods.
fn letters_and_capitals(text: &str) -> (usize, usize) {
    if text.is_ascii() {
        // Byte counters per chunk, without branches: the compiler counts 16 or 32 bytes
        // at once (a `usize` per byte was not vectorised: ~13 instructions per byte).
        return text
            .as_bytes()
            .chunks(COUNT_CHUNK_BYTES)
            .fold((0, 0), |(total, upper), chunk| {
                let (t, u) = chunk.iter().fold((0u8, 0u8), |(t, u), &b| {
                    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
                    let capital = b.wrapping_sub(b'A') < 26;
                    (t + u8::from(letter), u + u8::from(capital))
                });
                (total + usize::from(t), upper + usize::from(u))
            });
    }
    let letters = text.chars().filter(|c| c.is_alphabetic());
    letters.fold((0, 0), |(t, u), c| {
        (t + 1, u + usize::from(c.is_uppercase()))
    })
}

/// The distinct phrases (lowercase) `regex` finds in `texts`.
fn distinct(regex: &Regex, texts: &[&str]) -> BTreeSet<String> {
    texts
        .iter()
        .flat_map(|t| regex.captures_iter(t))
        .map(|c| c[1].to_lowercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::test_support::names;
    use super::*;

    fn body(text: &str) -> MessageFacts {
        MessageFacts {
            body_text: text.into(),
            ..MessageFacts::default()
        }
    }

    #[test]
    fn ordinary_prose_is_clean() {
        let text = "Hi all, the build is green again. Click the link in the wiki to \
                    order the new keys; no cost centre needed. Free at noon?";
        assert!(names(check, &body(text)).is_empty());
    }

    #[test]
    fn stock_phrases() {
        let two = body("Dear friend, this offer is RISK FREE.");
        assert_eq!(names(check, &two), [BODY_SPAM_PHRASES]);
        let many = body("Dear friend! Act now: 100% free, no obligation, click here.");
        assert_eq!(
            names(check, &many),
            [BODY_SPAM_PHRASES, BODY_SPAM_PHRASES_MANY]
        );
        let adjacent = body("act now click here");
        assert_eq!(names(check, &adjacent), [BODY_SPAM_PHRASES]);
        let repeated = body("click here click here click here");
        assert!(
            names(check, &repeated).is_empty(),
            "one phrase, however often"
        );
    }

    #[test]
    fn advance_fee_fraud() {
        let fraud = body("I am the next of kin... STRICTLY CONFIDENTIAL ... a huge sum");
        assert_eq!(names(check, &fraud), [BODY_ADVANCE_FEE]);
        assert!(names(check, &body("Update your bank account details.")).is_empty());
    }

    #[test]
    fn phrases_in_the_subject_count_with_the_body() {
        let facts = MessageFacts {
            subject: "Act now".into(),
            body_text: "and CLICK HERE".into(),
            ..MessageFacts::default()
        };
        assert_eq!(names(check, &facts), [BODY_SPAM_PHRASES]);
        let fraud = MessageFacts {
            subject: "Strictly confidential".into(),
            body_text: "from the next of kin".into(),
            ..MessageFacts::default()
        };
        assert_eq!(names(check, &fraud), [BODY_ADVANCE_FEE]);
    }

    #[test]
    fn both_lists_fire_together() {
        let both = body("Dear friend, act now: the next of kin needs urgent assistance.");
        assert_eq!(names(check, &both), [BODY_SPAM_PHRASES, BODY_ADVANCE_FEE]);
    }

    #[test]
    fn the_combined_regex_matches_exactly_when_one_list_does() {
        let texts = PHRASES
            .iter()
            .chain(FRAUD_PHRASES)
            .map(|p| format!("so, {p}!"));
        let clean = ["Lunch on Friday?", "", "the minutes of the meeting"];
        for t in texts.chain(clean.iter().map(|c| c.to_string())) {
            let either = PHRASE.is_match(&t) || FRAUD_PHRASE.is_match(&t);
            assert_eq!(ANY_PHRASE.is_match(&t), either, "{t:?}");
        }
        let upper = format!("{} AND {}", PHRASES[0], FRAUD_PHRASES[0]).to_uppercase();
        assert!(ANY_PHRASE.is_match(&upper), "any case: {upper}");
    }

    #[test]
    fn ascii_counting_agrees_with_the_char_methods() {
        let by_chars = |t: &str| {
            let letters = t.chars().filter(|c| c.is_alphabetic());
            letters.fold((0, 0), |(n, u), c| {
                (n + 1, u + usize::from(c.is_uppercase()))
            })
        };
        for text in [
            "",
            "OK thanks, 42 TIMES!",
            "XXXXXXXX\r\nxx yy ZZ",
            "ÉCOLE Straße ÅNGSTRÖM ok",
            "mixed ASCII and ΑΘΗΝΑ",
        ] {
            assert_eq!(letters_and_capitals(text), by_chars(text), "{text:?}");
        }
        // Longer than one counting chunk, every ASCII byte many times.
        let every_ascii_byte: String = (0u8..128).cycle().take(1000).map(char::from).collect();
        assert_eq!(
            letters_and_capitals(&every_ascii_byte),
            by_chars(&every_ascii_byte)
        );
    }

    #[test]
    fn shouting_body() {
        let caps = body(&"THIS IS THE OPPORTUNITY OF A LIFETIME. ".repeat(10));
        assert_eq!(names(check, &caps), [BODY_MOSTLY_CAPS]);
        let short = body("OK THANKS");
        assert!(names(check, &short).is_empty());
    }
}
