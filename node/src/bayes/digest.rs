//! The normalised digest that identifies a learned message mesh-wide.
//!
//! SHA-256 over, in this order, each field length-prefixed (u64 big-endian) after the
//! domain tag `mxmesh-bayes-digest-v1`:
//!
//! 1. the From addresses, lowercased, comma-joined;
//! 2. the decoded subject, whitespace runs collapsed to one space and trimmed;
//! 3. the Date as Unix seconds when it parses, else its raw value whitespace-collapsed;
//! 4. the Message-ID without angle brackets;
//! 5. every leaf MIME part in order: its content type, then its decoded content — text
//!    with line endings normalised to LF, trailing whitespace cut from each line and
//!    trailing blank lines dropped; other content byte for byte.
//!
//! What it leaves out is what changes while the *same* message travels or is stored:
//! trace headers (`Received`, `Return-Path`, `Delivered-To`, authentication results), the
//! recipients of one copy (To/Cc), header folding, CRLF vs LF, the transfer encoding a
//! relay may have changed (quoted-printable vs 8bit vs base64 decode to the same content)
//! and MIME boundary strings. What it keeps is what makes two messages different: who,
//! when, which Message-ID, and what they say. Two copies of one campaign sent to two users
//! usually differ in Message-ID or Date and count twice, as two spam messages received.
//!
//! A message that does not parse at all is identified by its bytes with line endings
//! normalised.

use mail_parser::{Message, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

/// Bytes of a message's content hashed at most per part; a larger part is hashed up to
/// this bound plus its full length (large attachments cost no more than this to digest).
const PART_HASH_MAX_BYTES: usize = 8 * 1024 * 1024;

/// The normalised digest of a raw message.
pub fn digest(raw: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"mxmesh-bayes-digest-v1");
    match super::parser().parse(raw) {
        Some(msg) => message_fields(&msg, &mut h),
        None => field(&mut h, &normalise_lines(&String::from_utf8_lossy(raw))),
    }
    h.finalize().into()
}

/// The digest as 64 lowercase hex digits (the form the API shows).
pub fn digest_hex(raw: &[u8]) -> String {
    hex::encode(digest(raw))
}

fn message_fields(msg: &Message<'_>, h: &mut Sha256) {
    let from: Vec<String> = msg
        .from()
        .map(|a| {
            a.iter()
                .filter_map(|a| a.address.as_deref())
                .map(str::to_lowercase)
                .collect()
        })
        .unwrap_or_default();
    field(h, from.join(",").as_bytes());
    field(
        h,
        collapse_whitespace(msg.subject().unwrap_or_default()).as_bytes(),
    );
    let date = match msg.date() {
        Some(d) => d.to_timestamp().to_string(),
        None => collapse_whitespace(msg.header_raw("Date").unwrap_or_default()),
    };
    field(h, date.as_bytes());
    field(h, msg.message_id().unwrap_or_default().as_bytes());
    for part in &msg.parts {
        let ct = part
            .content_type()
            .map(|ct| format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default()))
            .unwrap_or_default()
            .to_lowercase();
        match &part.body {
            PartType::Multipart(_) => continue,
            PartType::Text(t) | PartType::Html(t) => {
                field(h, ct.as_bytes());
                field(h, &normalise_lines(t));
            }
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                field(h, ct.as_bytes());
                bounded_field(h, b);
            }
            PartType::Message(m) => {
                field(h, ct.as_bytes());
                bounded_field(h, &m.raw_message);
            }
        }
    }
}

/// One length-prefixed field, so fields cannot run into each other.
fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(bytes);
}

fn bounded_field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u64).to_be_bytes());
    h.update(&bytes[..bytes.len().min(PART_HASH_MAX_BYTES)]);
}

fn collapse_whitespace(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// LF line endings, no trailing whitespace on a line, no trailing blank lines.
fn normalise_lines(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for line in text.split('\n') {
        out.extend_from_slice(line.trim_end().as_bytes());
        out.push(b'\n');
    }
    while out.last() == Some(&b'\n') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: &str = "Received: from a.example (a.example [192.0.2.1])\n\tby mx1.example; Mon, 1 Jan 2024 10:00:00 +0000\n\
From: Alice <Alice@Example.com>\nTo: bob@example.org\nSubject: Lunch\n tomorrow?\n\
Date: Mon, 1 Jan 2024 10:00:00 +0000\nMessage-ID: <abc@example.com>\n\n\
Shall we meet at noon?   \nAlice\n\n";

    fn with_crlf(s: &str) -> String {
        s.replace('\n', "\r\n")
    }

    #[test]
    fn trace_headers_recipients_and_line_endings_do_not_matter() {
        let base = digest(MESSAGE.as_bytes());
        let other_path = MESSAGE.replace(
            "Received: from a.example (a.example [192.0.2.1])\n\tby mx1.example;",
            "Received: from b.example ([198.51.100.9]) by mx2.example;\nReceived: by x; ",
        );
        let other_rcpt = MESSAGE.replace("To: bob@example.org", "To: carol@example.net");
        let unfolded = MESSAGE.replace("Lunch\n tomorrow?", "Lunch tomorrow?");
        for variant in [
            other_path.clone(),
            with_crlf(MESSAGE),
            with_crlf(&other_path),
            other_rcpt,
            unfolded,
        ] {
            assert_eq!(digest(variant.as_bytes()), base, "{variant:?}");
        }
    }

    #[test]
    fn transfer_encoding_does_not_matter() {
        let plain = "From: a@example.com\nSubject: x\nMessage-ID: <1@x>\nContent-Type: text/plain; charset=utf-8\n\nCaf\u{e9} ok\n";
        let qp = "From: a@example.com\nSubject: x\nMessage-ID: <1@x>\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\nCaf=C3=A9 ok\n";
        assert_eq!(digest(plain.as_bytes()), digest(qp.as_bytes()));
    }

    #[test]
    fn a_different_body_subject_or_sender_differs() {
        let base = digest(MESSAGE.as_bytes());
        for variant in [
            MESSAGE.replace("at noon", "at one"),
            MESSAGE.replace("Lunch", "Dinner"),
            MESSAGE.replace("Alice@Example.com", "eve@example.com"),
            MESSAGE.replace("<abc@", "<abd@"),
        ] {
            assert_ne!(digest(variant.as_bytes()), base, "{variant:?}");
        }
    }

    #[test]
    fn garbage_and_empty_input_get_a_digest() {
        assert_ne!(digest(b""), digest(b"\x00\xff garbage"));
        assert_eq!(digest_hex(b"x").len(), 64);
    }
}
