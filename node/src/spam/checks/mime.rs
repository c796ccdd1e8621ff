//! MIME structure: HTML without a text alternative, alternatives that say different
//! things, transfer encodings that do not fit, MIME without MIME-Version, an empty body.

use super::{Hits, header_values};
use crate::filter::MessageFacts;
use crate::spam::symbols::*;

/// Alternatives sharing fewer words than this (percent, Jaccard) differ wildly.
pub const ALTERNATIVE_OVERLAP_MIN_PERCENT: u8 = 30;

/// Adds the MIME symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    let parts = &facts.content.parts;
    let body = |ct: &str| parts.iter().any(|p| !p.attachment && p.content_type == ct);
    if body("text/html") && !body("text/plain") {
        hits.add(MIME_HTML_ONLY, "");
        if facts.content.html.roots == 0 {
            hits.add(MIME_HTML_ONLY_NO_HTML_TAG, "");
        }
    }
    let overlap = facts.content.alternative_overlap_percent;
    if let Some(percent) = overlap.filter(|p| *p < ALTERNATIVE_OVERLAP_MIN_PERCENT) {
        let detail = format!("{percent}% of words shared");
        hits.add(MIME_ALTERNATIVE_DIFFERS, detail);
    }
    if let Some(bad) = parts.iter().find(|p| p.encoding_problem) {
        let detail = format!("{} as {:?}", bad.content_type, bad.transfer_encoding);
        hits.add(MIME_BAD_TRANSFER_ENCODING, detail);
    }
    // Old mailers label plain text without MIME-Version; multipart or HTML needs it.
    let needs_version = parts
        .first()
        .is_some_and(|root| root.content_type != "text/plain");
    if needs_version && header_values(facts, "MIME-Version").next().is_none() {
        hits.add(MIME_NO_VERSION, "");
    }
    let no_text = facts.body_text.trim().is_empty() && facts.content.html.text_chars == 0;
    if !parts.is_empty() && no_text && facts.attachments.is_empty() {
        hits.add(BODY_EMPTY, "");
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{facts_of, names};
    use super::*;

    const ALTERNATIVE: &str = "MIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n\
        --b\nContent-Type: text/plain\n\nPLAIN\n--b\nContent-Type: text/html\n\n<p>HTML</p>\n--b--\n";

    fn alternative(plain: &str, html: &str) -> MessageFacts {
        facts_of(&ALTERNATIVE.replace("PLAIN", plain).replace("HTML", html))
    }

    #[test]
    fn matching_alternatives_are_clean() {
        let words = "the meeting moved to friday at noon in room twelve see you there";
        assert!(names(check, &alternative(words, words)).is_empty());
    }

    #[test]
    fn alternatives_that_differ() {
        let facts = alternative(
            "hello friend",
            "cheap pills online pharmacy discount meds order today best prices guaranteed",
        );
        assert_eq!(names(check, &facts), [MIME_ALTERNATIVE_DIFFERS]);
    }

    #[test]
    fn html_only() {
        let facts = facts_of("MIME-Version: 1.0\nContent-Type: text/html\n\n<p>Buy now</p>\n");
        assert_eq!(
            names(check, &facts),
            [MIME_HTML_ONLY, MIME_HTML_ONLY_NO_HTML_TAG]
        );
        let whole = facts_of(
            "MIME-Version: 1.0\nContent-Type: text/html\n\n<html><body><p>Lunch?</p></body></html>\n",
        );
        assert_eq!(names(check, &whole), [MIME_HTML_ONLY]);
    }

    #[test]
    fn bad_transfer_encoding_and_no_version() {
        let facts = facts_of(
            "Content-Type: text/html\nContent-Transfer-Encoding: x-unknown\n\n<p>body</p>\n",
        );
        assert_eq!(
            names(check, &facts),
            [
                MIME_HTML_ONLY,
                MIME_HTML_ONLY_NO_HTML_TAG,
                MIME_BAD_TRANSFER_ENCODING,
                MIME_NO_VERSION
            ]
        );
        let plain = facts_of("Content-Type: text/plain; charset=us-ascii\n\nbody\n");
        assert!(
            names(check, &plain).is_empty(),
            "plain text needs no MIME-Version"
        );
    }

    #[test]
    fn empty_body() {
        assert_eq!(names(check, &facts_of("Subject: x\n\n\n")), [BODY_EMPTY]);
        assert!(names(check, &facts_of("Subject: x\n\nhello\n")).is_empty());
    }
}
