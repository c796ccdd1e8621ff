//! Traits of unsolicited bulk mail that say nothing about the offer itself: an opt-out
//! footer on mail that no list manager sent (wanted bulk mail carries `List-Unsubscribe`),
//! recipients hidden or listed by the dozen in the headers, a subject padded with spaces
//! to a tracking number (a "hash buster" that makes every copy differ), and forms to fill
//! in inside the mail.

use std::sync::LazyLock;

use regex::Regex;

use super::{Hits, header_values};
use crate::filter::MessageFacts;
use crate::spam::symbols::*;

/// Addresses in To and Cc together from which a message is sent to "many" visibly.
pub const VISIBLE_RECIPIENTS_MIN: usize = 8;
/// White space before the last word of the subject that counts as padding.
pub const SUBJECT_PADDING_MIN: usize = 8;
/// Characters of visible HTML text in a large font that make a message shout.
pub const LARGE_TEXT_CHARS_MIN: u32 = 50;
/// Address separators counted in To/Cc at most (a bound on the count loop).
const RECIPIENTS_COUNTED_MAX: usize = 1000;

/// The wording of an opt-out footer, any case.
static OPT_OUT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(?-u:\b)(unsubscribe|opt[- ]?out|to be removed|to remove (?:yourself|your (?:e-?mail|name|address))|removed? (?:you )?from (?:our|this|the|future) (?:mailing|e-?mail|distribution|list|mailings)|no longer (?:wish|want) to receive|you (?:are receiving|received|have received) this)(?-u:\b)",
    )
    .expect("static regex")
});

/// Adds the bulk-mail symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    opt_out_without_list(facts, hits);
    recipients(facts, hits);
    padded_subject(facts, hits);
    let html = &facts.content.html;
    if html.forms > 0 {
        hits.add(HTML_FORM, format!("{} forms", html.forms));
    }
    if html.large_chars >= LARGE_TEXT_CHARS_MIN {
        let detail = format!("{} characters", html.large_chars);
        hits.add(HTML_LARGE_TEXT, detail);
    }
}

/// `BULK_OPT_OUT_NO_LIST`: the body tells how to stop the mail, yet no list manager's
/// `List-Unsubscribe` or `List-Id` header says the reader subscribed to a list.
fn opt_out_without_list(facts: &MessageFacts, hits: &mut Hits) {
    let listed = ["List-Unsubscribe", "List-Id"]
        .iter()
        .any(|name| header_values(facts, name).next().is_some());
    if listed {
        return;
    }
    let text = super::body::examined_text(facts);
    if let Some(found) = OPT_OUT.find(text) {
        hits.add(BULK_OPT_OUT_NO_LIST, found.as_str());
    }
}

/// `TO_UNDISCLOSED` and `TO_MANY_RECIPIENTS` (addresses counted by their `@`).
fn recipients(facts: &MessageFacts, hits: &mut Hits) {
    let to: Vec<&str> = header_values(facts, "To").collect();
    if to.iter().any(|v| {
        let lower = v.to_ascii_lowercase();
        lower.contains("undisclosed") || lower.contains("recipient list not shown")
    }) {
        hits.add(TO_UNDISCLOSED, to.join(", "));
    }
    let addresses = to
        .iter()
        .copied()
        .chain(header_values(facts, "Cc"))
        .flat_map(|v| v.match_indices('@'))
        .take(RECIPIENTS_COUNTED_MAX)
        .count();
    if addresses >= VISIBLE_RECIPIENTS_MIN {
        hits.add(TO_MANY_RECIPIENTS, format!("{addresses} addresses"));
    }
}

/// `SUBJECT_PADDED_ID`: the subject ends in a word with a digit, made only of letters,
/// digits, `.`, `-` and `_`, after at least [`SUBJECT_PADDING_MIN`] white space
/// characters.
fn padded_subject(facts: &MessageFacts, hits: &mut Hits) {
    let subject = facts.subject.trim_end();
    let Some((at, space)) = subject.char_indices().rfind(|(_, c)| c.is_whitespace()) else {
        return;
    };
    let space_end = at + space.len_utf8();
    let last = &subject[space_end..];
    let before = subject[..space_end].trim_end();
    let padding = subject[before.len()..space_end].chars().count();
    let id_like = last.chars().any(|c| c.is_ascii_digit())
        && last
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c));
    if !before.is_empty() && padding >= SUBJECT_PADDING_MIN && id_like {
        hits.add(SUBJECT_PADDED_ID, last);
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{clean_with, facts_of, names};
    use super::*;

    fn names_of(raw: &str) -> Vec<&'static str> {
        names(check, &facts_of(raw))
    }

    #[test]
    fn ordinary_mail_is_clean() {
        let raw = clean_with("", "See you at noon; I will remove the old keys.\n");
        assert!(names_of(&raw).is_empty());
    }

    #[test]
    fn opt_out_footer_without_a_list_header() {
        let footer = "Great deals inside.\nTo be removed from our mailing list, reply REMOVE.\n";
        assert_eq!(names_of(&clean_with("", footer)), [BULK_OPT_OUT_NO_LIST]);
        let other = "Click to unsubscribe.\n";
        assert_eq!(names_of(&clean_with("", other)), [BULK_OPT_OUT_NO_LIST]);
        let listed = clean_with(
            "List-Unsubscribe: <mailto:leave@lists.sender.test>\n",
            footer,
        );
        assert!(names_of(&listed).is_empty(), "a list the reader joined");
        let list_id = clean_with("List-Id: <dev.lists.sender.test>\n", other);
        assert!(names_of(&list_id).is_empty());
    }

    #[test]
    fn hidden_and_many_recipients() {
        let hidden =
            clean_with("", "x\n").replace("To: bob@example.com", "To: undisclosed-recipients:;");
        assert_eq!(names_of(&hidden), [TO_UNDISCLOSED]);
        let many: Vec<String> = (0..VISIBLE_RECIPIENTS_MIN)
            .map(|n| format!("user{n}@example.com"))
            .collect();
        let crowd = clean_with("", "x\n")
            .replace("To: bob@example.com", &format!("To: {}", many.join(", ")));
        assert_eq!(names_of(&crowd), [TO_MANY_RECIPIENTS]);
        let few = clean_with("Cc: carol@example.com, dave@example.com\n", "x\n");
        assert!(names_of(&few).is_empty());
    }

    #[test]
    fn subject_padded_to_a_tracking_number() {
        let padded = clean_with("", "x\n").replace(
            "Subject: Lunch on Friday",
            "Subject: Lose 12 lbs in 30 days                        11.150",
        );
        assert_eq!(names_of(&padded), [SUBJECT_PADDED_ID]);
        let word = clean_with("", "x\n").replace(
            "Subject: Lunch on Friday",
            "Subject: Lunch on            Friday",
        );
        assert!(names_of(&word).is_empty(), "the last word has no digit");
        let ticket = clean_with("", "x\n").replace(
            "Subject: Lunch on Friday",
            "Subject: Re: bug 12345 fixed in 1.2",
        );
        assert!(names_of(&ticket).is_empty(), "no padding");
        let wide = clean_with("", "x\n").replace(
            "Subject: Lunch on Friday",
            "Subject: \u{65e5}\u{672c}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}A1",
        );
        assert_eq!(names_of(&wide), [SUBJECT_PADDED_ID], "wide spaces count");
    }

    #[test]
    fn html_forms_and_large_text() {
        let html = |body: &str| {
            facts_of(&format!(
                "MIME-Version: 1.0\nContent-Type: text/html\n\n{body}\n"
            ))
        };
        let form = html("<form action=\"http://x.test/\"><input name=\"card\"></form>");
        assert_eq!(names(check, &form), [HTML_FORM]);
        let shout = format!("<font size=\"+3\">{}</font>", "BUY NOW ".repeat(10));
        assert_eq!(names(check, &html(&shout)), [HTML_LARGE_TEXT]);
        let css = format!(
            "<p style=\"font-size: 36px\">{}</p>",
            "Limited offer ".repeat(5)
        );
        assert_eq!(names(check, &html(&css)), [HTML_LARGE_TEXT]);
        let heading = "<font size=\"5\">Weekly news</font><p>An ordinary paragraph.</p>";
        assert!(names(check, &html(heading)).is_empty(), "a short heading");
        let normal = format!("<font size=\"3\">{}</font>", "plain words ".repeat(10));
        assert!(names(check, &html(&normal)).is_empty());
    }
}
