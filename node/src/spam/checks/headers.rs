//! Header anomalies: Message-ID, Date (against the time of arrival), From (missing,
//! malformed, repeated, a display name that shows another domain's address), To,
//! Subject (missing, shouting), and encoded words used to hide text or broken.

use std::sync::LazyLock;

use base64::Engine;
use mail_parser::DateTime;
use regex::Regex;

use super::{Context, Hits, header_values};
use crate::filter::MessageFacts;
use crate::message::urls::registrable_domain;
use crate::spam::symbols::*;

/// A Date later than arrival by more than this is in the future (clock skew allowed).
pub const DATE_FUTURE_MS: u64 = 12 * 3600 * 1000;
/// A Date earlier than arrival by more than this is in the past (queues and retries allowed).
pub const DATE_PAST_MS: u64 = 4 * 24 * 3600 * 1000;
/// Letters a subject needs before "all capitals" means shouting.
pub const CAPS_LETTERS_MIN: usize = 10;
/// Encoded words examined per header at most.
const ENCODED_WORDS_MAX: usize = 32;

/// An address inside a display name.
static ADDRESS_IN_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)[a-z0-9._%+-]+@((?:[a-z0-9-]+\.)+[a-z]{2,})").expect("static regex")
});
/// An RFC 2047 encoded word: charset, encoding, text.
static ENCODED_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=").expect("static regex"));

/// Adds the header symbols.
pub fn check(facts: &MessageFacts, ctx: Context, hits: &mut Hits) {
    message_id(facts, hits);
    date(facts, ctx, hits);
    from(facts, hits);
    if header_values(facts, "To").next().is_none() && header_values(facts, "Cc").next().is_none() {
        hits.add(MISSING_TO, "");
    }
    subject(facts, hits);
    encoded_words(facts, hits);
}

fn message_id(facts: &MessageFacts, hits: &mut Hits) {
    let Some(id) = header_values(facts, "Message-ID").next() else {
        return hits.add(MISSING_MESSAGE_ID, "");
    };
    if !valid_message_id(id) {
        hits.add(INVALID_MESSAGE_ID, id);
    }
}

/// `<left@right>` with no white space or brackets inside (a trailing comment allowed).
fn valid_message_id(value: &str) -> bool {
    let value = value.trim();
    let Some(inner) = value.strip_prefix('<').and_then(|v| v.split('>').next()) else {
        return false;
    };
    let bad =
        |part: &str| part.is_empty() || part.contains(|c: char| c.is_whitespace() || c == '<');
    match inner.rsplit_once('@') {
        Some((left, right)) => value.contains('>') && !bad(left) && !bad(right),
        None => false,
    }
}

fn date(facts: &MessageFacts, ctx: Context, hits: &mut Hits) {
    let Some(value) = header_values(facts, "Date").next() else {
        return hits.add(MISSING_DATE, "");
    };
    let Some(date_ms) = parse_date_ms(value) else {
        return hits.add(INVALID_DATE, value);
    };
    let now = ctx.now_ms as i64;
    if date_ms > now.saturating_add(DATE_FUTURE_MS as i64) {
        hits.add(DATE_IN_FUTURE, value);
    } else if date_ms < now.saturating_sub(DATE_PAST_MS as i64) {
        hits.add(DATE_IN_PAST, value);
    }
}

/// An RFC 5322 date (as mail-parser reads it, obsolete forms included) in ms since the
/// epoch; `None` when it does not parse or names an impossible time.
pub fn parse_date_ms(value: &str) -> Option<i64> {
    let date = DateTime::parse_rfc822(value.trim()).filter(DateTime::is_valid)?;
    Some(date.to_timestamp().saturating_mul(1000))
}

fn from(facts: &MessageFacts, hits: &mut Hits) {
    let count = header_values(facts, "From").count();
    if count > 1 {
        hits.add(MULTIPLE_FROM, format!("{count} From headers"));
    }
    let mailbox = facts.content.from.first();
    let Some(mailbox) = mailbox.filter(|m| !m.address.is_empty()) else {
        return hits.add(MISSING_FROM, "");
    };
    let Some(domain) = address_domain(&mailbox.address) else {
        return hits.add(INVALID_FROM, mailbox.address.as_str());
    };
    let own = registrable_domain(&domain).to_string();
    let Some(shown_domain) = address_ending(&mailbox.name) else {
        return;
    };
    if registrable_domain(&shown_domain) != own {
        let detail = format!("\"{}\" <{}>", mailbox.name, mailbox.address);
        hits.add(FROM_NAME_SPOOFS_ADDRESS, detail);
    }
}

/// The domain (lowercase) of an address that ends a display name (`PayPal
/// service@paypal.com`, `"service@paypal.com"`). Names that go on after the address
/// (`'alice@example.com' via Group`, `alice@example.com [list]`) are how forwarders and
/// mailing lists rewrite From, and are not counted.
fn address_ending(name: &str) -> Option<String> {
    let trimmed = name.trim_end_matches(|c: char| c.is_whitespace() || "\"'<>()".contains(c));
    let last = ADDRESS_IN_NAME.captures_iter(trimmed).last()?;
    let whole = last.get(0)?;
    (whole.end() == trimmed.len()).then(|| last[1].to_ascii_lowercase())
}

/// The domain of `local@domain.tld` (lowercase), when the address has that form.
fn address_domain(address: &str) -> Option<String> {
    let (local, domain) = address.rsplit_once('@')?;
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    };
    let ok = !local.is_empty()
        && !local.contains(char::is_whitespace)
        && domain.contains('.')
        && domain.split('.').all(label_ok);
    ok.then_some(domain)
}

fn subject(facts: &MessageFacts, hits: &mut Hits) {
    let subject = facts.subject.trim();
    if subject.is_empty() {
        return hits.add(MISSING_SUBJECT, "");
    }
    let letters: Vec<char> = subject.chars().filter(|c| c.is_alphabetic()).collect();
    let cased = letters
        .iter()
        .filter(|c| c.is_uppercase() || c.is_lowercase());
    if cased.clone().count() >= CAPS_LETTERS_MIN && cased.clone().all(|c| c.is_uppercase()) {
        hits.add(SUBJECT_ALL_CAPS, subject);
    }
    if ["!!!", "???", "$$$"]
        .iter()
        .any(|run| subject.contains(run))
    {
        hits.add(SUBJECT_EXCESS_PUNCTUATION, subject);
    }
}

fn encoded_words(facts: &MessageFacts, hits: &mut Hits) {
    let raw_subject = header_values(facts, "Subject").next().unwrap_or_default();
    let raw_from = header_values(facts, "From").next().unwrap_or_default();
    for (header, raw) in [("Subject", raw_subject), ("From", raw_from)] {
        if !raw.is_ascii() {
            hits.add(HEADER_8BIT_UNENCODED, header);
        }
        for word in ENCODED_WORD.captures_iter(raw).take(ENCODED_WORDS_MAX) {
            if word[2].eq_ignore_ascii_case("b") && base64_is_plain_ascii(&word[3]) {
                hits.add(ENCODED_WORD_ASCII, format!("{header}: {}", &word[0]));
            }
        }
    }
    let from_name = facts.content.from.first().map(|m| m.name.as_str());
    let undecoded = |decoded: &str| decoded.contains("=?") && decoded.contains("?=");
    if undecoded(&facts.subject) || from_name.is_some_and(undecoded) {
        hits.add(ENCODED_WORD_MALFORMED, facts.subject.as_str());
    }
}

/// Whether base64 `text` decodes to printable ASCII only (needless encoding that hides
/// words from simple filters).
fn base64_is_plain_ascii(text: &str) -> bool {
    let engine = &base64::engine::general_purpose::STANDARD;
    let trimmed = text.trim_end_matches('=');
    let decoded = engine
        .decode(text)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(trimmed));
    decoded.is_ok_and(|bytes| !bytes.is_empty() && bytes.iter().all(|b| (0x20..0x7f).contains(b)))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{NOW_MS, clean_with, facts_of};
    use super::*;

    fn names_of(raw: &str) -> Vec<&'static str> {
        let mut hits = Hits::default();
        check(&facts_of(raw), Context { now_ms: NOW_MS }, &mut hits);
        hits.into_vec().into_iter().map(|(n, _)| n).collect()
    }

    #[test]
    fn a_clean_message_has_no_header_symbols() {
        assert_eq!(names_of(&clean_with("", "Hello Bob\n")), Vec::<&str>::new());
    }

    #[test]
    fn missing_headers() {
        let raw = "X-Nothing: here\n\nbody\n";
        assert_eq!(
            names_of(raw),
            [
                MISSING_MESSAGE_ID,
                MISSING_DATE,
                MISSING_FROM,
                MISSING_TO,
                MISSING_SUBJECT
            ]
        );
    }

    #[test]
    fn malformed_message_id_date_and_from() {
        let raw = "Message-ID: no-brackets@x\nDate: the day after tomorrow\n\
                   From: someone <nobody>\nTo: b@example.com\nSubject: hi there\n\nbody\n";
        assert_eq!(
            names_of(raw),
            [INVALID_MESSAGE_ID, INVALID_DATE, INVALID_FROM]
        );
        assert!(valid_message_id("<a.b@c> (comment)"));
        assert!(!valid_message_id("<a b@c>"));
        assert!(!valid_message_id("<@c>"));
    }

    #[test]
    fn dates_against_arrival() {
        let future =
            clean_with("", "x\n").replace("Wed, 10 Jan 2024 11:58", "Thu, 11 Jan 2024 03:00");
        assert_eq!(names_of(&future), [DATE_IN_FUTURE]);
        let past = clean_with("", "x\n").replace("Wed, 10 Jan 2024 11:58", "Fri, 5 Jan 2024 11:58");
        assert_eq!(names_of(&past), [DATE_IN_PAST]);
        let skewed =
            clean_with("", "x\n").replace("Wed, 10 Jan 2024 11:58", "Wed, 10 Jan 2024 20:00");
        assert!(names_of(&skewed).is_empty(), "8 hours ahead is clock skew");
    }

    #[test]
    fn display_name_spoofing() {
        let spoof = clean_with("", "x\n").replace(
            "From: Alice <alice@sender.test>",
            "From: \"service@paypal.com\" <phish@evil.test>",
        );
        assert_eq!(names_of(&spoof), [FROM_NAME_SPOOFS_ADDRESS]);
        let same = clean_with("", "x\n").replace(
            "From: Alice <alice@sender.test>",
            "From: \"alice@mail.sender.test\" <alice@sender.test>",
        );
        assert!(names_of(&same).is_empty());
        let forwarded = clean_with("", "x\n").replace(
            "From: Alice <alice@sender.test>",
            "From: \"'bob@other.test' via Friends\" <friends@groups.test>",
        );
        assert!(
            names_of(&forwarded).is_empty(),
            "a mailing list's rewritten From"
        );
        let named = clean_with("", "x\n").replace(
            "From: Alice <alice@sender.test>",
            "From: \"PayPal service@paypal.com\" <phish@evil.test>",
        );
        assert_eq!(names_of(&named), [FROM_NAME_SPOOFS_ADDRESS]);
        let two = clean_with("From: other@sender.test\n", "x\n");
        assert_eq!(names_of(&two), [MULTIPLE_FROM]);
    }

    #[test]
    fn subject_shouting_and_punctuation() {
        let caps = clean_with("", "x\n").replace("Lunch on Friday", "FREE MONEY FOR YOU NOW");
        assert_eq!(names_of(&caps), [SUBJECT_ALL_CAPS]);
        let short = clean_with("", "x\n").replace("Lunch on Friday", "FYI: RE ASAP");
        assert!(names_of(&short).is_empty(), "fewer than ten letters");
        let bang = clean_with("", "x\n").replace("Lunch on Friday", "Act now!!!");
        assert_eq!(names_of(&bang), [SUBJECT_EXCESS_PUNCTUATION]);
    }

    #[test]
    fn encoded_word_abuse() {
        // "Viagra offer" in base64: nothing needed encoding.
        let hidden =
            clean_with("", "x\n").replace("Lunch on Friday", "=?utf-8?B?VmlhZ3JhIG9mZmVy?=");
        assert_eq!(names_of(&hidden), [ENCODED_WORD_ASCII]);
        // "Café" needs its encoding.
        let needed = clean_with("", "x\n").replace("Lunch on Friday", "=?utf-8?B?Q2Fmw6k=?=");
        assert!(names_of(&needed).is_empty());
        let broken = clean_with("", "x\n").replace("Lunch on Friday", "=?bogus-charset?X?abc?=");
        assert_eq!(names_of(&broken), [ENCODED_WORD_MALFORMED]);
        let raw8 = clean_with("", "x\n").replace("Lunch on Friday", "Caf\u{e9} today");
        assert_eq!(names_of(&raw8), [HEADER_8BIT_UNENCODED]);
    }
}
