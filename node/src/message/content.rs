//! The content facts the spam checks read: decoded From mailboxes, the MIME parts with
//! their claimed types and encodings, HTML statistics, the URLs of the body, and how much
//! the text and HTML alternatives have in common. Every list is bounded.

use std::collections::BTreeSet;

use mail_parser::{Message, MessagePart, MimeHeaders, PartType};

use super::html::{self, Scan};
use super::urls;
use crate::filter::{ContentFacts, Mailbox, PartFacts};

/// MIME parts described at most.
pub const PARTS_MAX: usize = 256;
/// Mailboxes of the From header(s) kept at most.
pub const FROM_MAILBOXES_MAX: usize = 16;
/// Words of each alternative compared at most.
pub const WORDS_COMPARED_MAX: usize = 2000;
/// Words the HTML alternative needs before the two alternatives are compared.
pub const WORDS_COMPARED_MIN: usize = 10;
/// Bytes of a base64 part checked for characters outside the alphabet.
const BASE64_CHECKED_BYTES_MAX: usize = 64 * 1024;
/// The transfer encodings RFC 2045 §6.1 defines.
const KNOWN_ENCODINGS: &[&str] = &["7bit", "8bit", "binary", "quoted-printable", "base64"];

/// Everything of [`ContentFacts`] for `msg`; `plain_text` is the decoded text of the
/// text/plain body parts (for URLs and the comparison with the HTML).
pub fn content(msg: &Message<'_>, raw: &[u8], plain_text: &str) -> ContentFacts {
    let mut scan = Scan::default();
    for part in msg.html_bodies() {
        if let PartType::Html(html) = &part.body {
            html::scan(html, &mut scan);
        }
    }
    let mut url_facts = Vec::new();
    for link in &scan.links {
        urls::from_link(&link.href, &link.text, &mut url_facts);
    }
    urls::from_text(plain_text, &mut url_facts);
    let alternative_overlap_percent =
        (has_plain_part(msg) && scan.stats.parts > 0).then(|| overlap(plain_text, &scan.text));
    ContentFacts {
        from: from_mailboxes(msg),
        parts: parts(msg, raw),
        html: scan.stats,
        urls: url_facts,
        alternative_overlap_percent: alternative_overlap_percent.flatten(),
    }
}

/// The decoded text of the text/plain body parts only (HTML converted to text excluded).
pub fn plain_text(msg: &Message<'_>, max_bytes: usize) -> String {
    let mut out = String::new();
    for part in msg.text_bodies() {
        if let PartType::Text(text) = &part.body {
            if out.len() + text.len() > max_bytes {
                break;
            }
            out.push_str(text);
            out.push('\n');
        }
    }
    out
}

fn has_plain_part(msg: &Message<'_>) -> bool {
    msg.text_bodies()
        .any(|part| matches!(part.body, PartType::Text(_)))
}

fn from_mailboxes(msg: &Message<'_>) -> Vec<Mailbox> {
    let Some(from) = msg.from() else {
        return Vec::new();
    };
    from.iter()
        .take(FROM_MAILBOXES_MAX)
        .map(|addr| Mailbox {
            name: addr.name().unwrap_or_default().trim().to_string(),
            address: addr.address().unwrap_or_default().trim().to_string(),
        })
        .collect()
}

fn parts(msg: &Message<'_>, raw: &[u8]) -> Vec<PartFacts> {
    let attachments: BTreeSet<u32> = msg.attachments.iter().copied().collect();
    msg.parts
        .iter()
        .enumerate()
        .take(PARTS_MAX)
        .map(|(index, part)| part_facts(part, raw, attachments.contains(&(index as u32))))
        .collect()
}

fn part_facts(part: &MessagePart<'_>, raw: &[u8], attachment: bool) -> PartFacts {
    let content_type = part.content_type().map_or_else(
        || "text/plain".to_string(),
        |ct| {
            let subtype = ct.subtype().unwrap_or_default();
            format!("{}/{subtype}", ct.ctype()).to_ascii_lowercase()
        },
    );
    let transfer_encoding = part
        .content_transfer_encoding()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let body = raw
        .get(part.offset_body as usize..part.offset_end as usize)
        .unwrap_or_default();
    let encoding_problem =
        part.is_encoding_problem || encoding_mismatch(&content_type, &transfer_encoding, body);
    PartFacts {
        content_type,
        transfer_encoding,
        encoding_problem,
        attachment,
    }
}

/// Whether the claimed transfer encoding does not fit: an unknown name, an encoding
/// other than 7bit/8bit/binary on a multipart (RFC 2045 §6.4), 8-bit bytes under an
/// explicit `7bit`, or base64 with characters outside its alphabet.
fn encoding_mismatch(content_type: &str, encoding: &str, body: &[u8]) -> bool {
    if encoding.is_empty() {
        return false;
    }
    if !KNOWN_ENCODINGS.contains(&encoding) {
        return true;
    }
    let multipart = content_type.starts_with("multipart/");
    match encoding {
        "quoted-printable" | "base64" if multipart => true,
        "7bit" if !multipart => body.iter().any(|&b| b >= 0x80),
        "base64" => body
            .iter()
            .take(BASE64_CHECKED_BYTES_MAX)
            .any(|&b| !(b.is_ascii_alphanumeric() || b"+/=\r\n\t ".contains(&b))),
        _ => false,
    }
}

/// Jaccard index in percent of the word sets of the two alternatives; `None` when the
/// HTML has too few words to compare.
fn overlap(plain: &str, html_text: &str) -> Option<u8> {
    let plain = words(plain);
    let html = words(html_text);
    if html.len() < WORDS_COMPARED_MIN {
        return None;
    }
    let common = plain.intersection(&html).count();
    let union = plain.union(&html).count().max(1);
    Some((common * 100 / union) as u8)
}

/// Lowercase words of three or more letters or digits, the first [`WORDS_COMPARED_MAX`].
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .take(WORDS_COMPARED_MAX)
        .map(str::to_lowercase)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_that_do_not_fit() {
        assert!(!encoding_mismatch("text/plain", "", b"\xff"));
        assert!(encoding_mismatch("text/plain", "x-uuencode", b""));
        assert!(encoding_mismatch("multipart/mixed", "base64", b""));
        assert!(encoding_mismatch(
            "text/plain",
            "7bit",
            "caf\u{e9}".as_bytes()
        ));
        assert!(!encoding_mismatch(
            "text/plain",
            "8bit",
            "caf\u{e9}".as_bytes()
        ));
        assert!(encoding_mismatch(
            "application/pdf",
            "base64",
            b"QUJD\r\n!!!!\r\n"
        ));
        assert!(!encoding_mismatch(
            "application/pdf",
            "base64",
            b"QUJD\r\nREVG==\r\n"
        ));
    }

    #[test]
    fn alternatives_are_compared_by_words() {
        let html = "one two three four five six seven eight nine ten eleven";
        assert_eq!(overlap(html, html), Some(100));
        assert_eq!(overlap("", html), Some(0));
        assert_eq!(overlap("anything", "too few words"), None);
    }
}
