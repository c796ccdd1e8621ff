//! A parsed view of one message (mail-parser) turned into the facts the filter reads.
//!
//! Parsing is bounded by the SMTP size limit upstream; here we bound what we copy out of
//! the message (header count, text bytes, attachments), so a hostile message cannot make
//! the facts larger than these named limits.
//!
//! Everything here is pure (bytes in, facts out): [`archive`] (zip contents and bombs),
//! [`auth_results`] (the RFC 8601 header written on relayed mail).

pub mod archive;
pub mod auth_results;

pub mod content;
pub mod html;
pub mod urls;
pub mod view;

use std::net::IpAddr;

use mail_parser::{MessageParser, MimeHeaders};

use crate::filter::{AttachmentFacts, MessageFacts, ReverseName};
use archive::{ArchiveLimits, Inspector};

/// Headers copied into the facts at most.
pub const HEADERS_MAX: usize = 1000;
/// Decoded body text the filter sees at most.
pub const BODY_TEXT_MAX_BYTES: usize = 1024 * 1024;
/// Attachments described at most (archive entries included).
pub const ATTACHMENTS_MAX: usize = 256;
/// The detected type of a zip archive, whose entries are inspected.
const ZIP_TYPE: &str = "application/zip";

/// The envelope side of the facts, known before parsing.
pub struct EnvelopeFacts<'a> {
    /// The envelope sender (`MAIL FROM`).
    pub from: &'a str,
    /// The envelope recipients (`RCPT TO`).
    pub to: &'a [String],
    /// The name the client gave in HELO/EHLO.
    pub helo: &'a str,
    /// The client's IP address.
    pub client_ip: IpAddr,
    /// The client's reverse name when the caller knows it (`"unknown"` = none); `None`:
    /// the facts phase looks it up.
    pub reverse_name: Option<&'a str>,
}

/// Parses `raw` and gathers everything the verdict may look at without I/O: headers,
/// text, attachments with their true types, and the entries of zip attachments (listed as
/// attachments after them; a limit crossed sets `archive_bomb`). A message mail-parser
/// cannot parse at all still gets envelope facts and its size.
pub fn facts(raw: &[u8], env: &EnvelopeFacts<'_>, limits: &ArchiveLimits) -> MessageFacts {
    facts_parsed(raw, parse(raw).as_ref(), env, limits)
}

/// Parses `raw` once for everything the verdict reads: the facts ([`facts_parsed`]) and
/// the Bayes tokens ([`crate::cluster::bayes::Bayes::verdict_parsed`]). The MIME
/// headers, Subject, From, Date and Message-ID are parsed, every other header is kept raw
/// (the facts read headers raw; parsing `Received` would be the largest cost).
pub fn parse(raw: &[u8]) -> Option<mail_parser::Message<'_>> {
    crate::bayes::parse(raw)
}

/// [`facts`] of `raw` already parsed by [`parse`] (`parsed` is its result).
pub fn facts_parsed(
    raw: &[u8],
    parsed: Option<&mail_parser::Message<'_>>,
    env: &EnvelopeFacts<'_>,
    limits: &ArchiveLimits,
) -> MessageFacts {
    let mut f = MessageFacts {
        from: env.from.to_string(),
        to: env.to.to_vec(),
        helo: env.helo.to_string(),
        client_ip: env.client_ip,
        reverse_name: env.reverse_name.map(ReverseName::given).unwrap_or_default(),
        size: raw.len() as u64,
        ..MessageFacts::default()
    };
    let Some(msg) = parsed else {
        return f;
    };
    f.headers = msg
        .headers_raw()
        .take(HEADERS_MAX)
        .map(|(name, value)| (name.to_string(), unfold(value)))
        .collect();
    f.subject = msg.subject().unwrap_or_default().to_string();
    f.body_text = body_text(msg);
    let plain = content::plain_text(msg, BODY_TEXT_MAX_BYTES);
    f.content = content::content(msg, raw, &plain);
    let mut inspector = Inspector::new(*limits);
    f.attachments = msg
        .attachments()
        .take(ATTACHMENTS_MAX)
        .map(|part| {
            let facts = attachment_facts(part);
            if facts.detected_type == ZIP_TYPE {
                inspector.inspect(part.contents());
            }
            facts
        })
        .collect();
    let room = ATTACHMENTS_MAX - f.attachments.len();
    f.attachments
        .extend(inspector.entries.into_iter().take(room).map(|entry| {
            let ext = extension(&entry.name);
            AttachmentFacts {
                name: entry.name,
                ext,
                detected_type: entry.detected_type,
                encrypted: entry.encrypted,
            }
        }));
    f.archive_bomb = inspector.bomb.is_some();
    f
}

/// The subject as decoded by mail-parser (for quarantine listings).
pub fn subject(raw: &[u8]) -> String {
    MessageParser::default()
        .parse_headers(raw)
        .and_then(|m| m.subject().map(str::to_string))
        .unwrap_or_default()
}

fn body_text(msg: &mail_parser::Message<'_>) -> String {
    let mut out = String::new();
    for i in 0..msg.text_body_count() {
        if let Some(t) = msg.body_text(i) {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&t);
        }
        if out.len() >= BODY_TEXT_MAX_BYTES {
            let mut cut = BODY_TEXT_MAX_BYTES;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
            break;
        }
    }
    out
}

fn attachment_facts(part: &mail_parser::MessagePart<'_>) -> AttachmentFacts {
    let name = part.attachment_name().unwrap_or_default().to_string();
    let ext = extension(&name);
    AttachmentFacts {
        name,
        ext,
        detected_type: detect_type(part.contents()),
        encrypted: false,
    }
}

/// The extension of a file name: lowercase, without the dot, `""` when none.
pub fn extension(name: &str) -> String {
    let file = name.rsplit(['/', '\\']).next().unwrap_or(name);
    file.rsplit_once('.')
        .map(|(_, e)| e.trim().to_ascii_lowercase())
        .unwrap_or_default()
}

/// The content type from the bytes themselves, never from the claimed header.
pub fn detect_type(bytes: &[u8]) -> String {
    if let Some(t) = infer::get(bytes) {
        return t.mime_type().to_string();
    }
    if std::str::from_utf8(bytes).is_ok() {
        "text/plain".to_string()
    } else {
        "application/octet-stream".to_string()
    }
}

/// Removes header folding (CRLF followed by white space) and surrounding space.
pub(crate) fn unfold(value: &str) -> String {
    value
        .replace("\r\n", "")
        .replace('\n', "")
        .trim()
        .to_string()
}

#[cfg(test)]
mod hostile_tests;

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: ArchiveLimits = ArchiveLimits {
        depth_max: 3,
        entries_max: 100,
        expanded_bytes_max: 1 << 20,
        ratio_max: 100,
    };

    fn env() -> EnvelopeFacts<'static> {
        EnvelopeFacts {
            from: "a@sender.test",
            to: &[],
            helo: "client.test",
            client_ip: "192.0.2.1".parse().unwrap(),
            reverse_name: None,
        }
    }

    /// Messages that use every part of the parse the facts and the tokens read.
    const PARSE_ONCE_SAMPLES: &[&str] = &[
        concat!(
            "Received: from a (a [192.0.2.1]) by b; Tue, 1 Dec 2026 10:00:00 +0000\r\n",
            "From: =?utf-8?q?Ren=C3=A9?= <rene@sender.test>, b@other.test\r\n",
            "To: x@example.com\r\nCc: y@example.com\r\n",
            "Subject: =?utf-8?q?Caf=C3=A9_offer?= act now\r\n",
            "Date: Tue, 1 Dec 2026 10:00:00 +0000\r\nMessage-ID: <m1@sender.test>\r\n",
            "X-Mailer: BulkMailer 2.0\r\nMIME-Version: 1.0\r\n",
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n",
            "--b\r\nContent-Type: multipart/alternative; boundary=\"c\"\r\n\r\n",
            "--c\r\nContent-Type: text/plain; charset=utf-8\r\n",
            "Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            "Click here: http://192.0.2.7/x caf=C3=A9\r\n",
            "--c\r\nContent-Type: text/html\r\n\r\n",
            "<p>Click <a href=\"http://bad.test/\">https://bank.test/</a></p><form></form>\r\n",
            "--c--\r\n",
            "--b\r\nContent-Type: message/rfc822\r\n\r\n",
            "From: inner@sender.test\r\nSubject: inner\r\n\r\ninner body\r\n",
            "--b\r\nContent-Type: application/octet-stream\r\n",
            "Content-Disposition: attachment; filename=\"run.exe\"\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n",
            "--b--\r\n"
        ),
        "Subject: plain\r\n\r\nno MIME at all\r\n",
        "not a message",
    ];

    #[test]
    fn the_shared_parse_gives_the_facts_of_a_full_parse() {
        for raw in PARSE_ONCE_SAMPLES {
            let raw = raw.as_bytes();
            let full = MessageParser::default().parse(raw);
            let by_full_parse = facts_parsed(raw, full.as_ref(), &env(), &LIMITS);
            assert_eq!(facts(raw, &env(), &LIMITS), by_full_parse);
        }
    }

    #[test]
    fn the_shared_parse_gives_bayes_the_tokens_of_its_own_parse() {
        for raw in PARSE_ONCE_SAMPLES {
            let raw = raw.as_bytes();
            let tokens = crate::bayes::tokenize_parsed(raw, parse(raw).as_ref());
            assert_eq!(tokens, crate::bayes::tokenize(raw));
        }
        assert!(!crate::bayes::tokenize(PARSE_ONCE_SAMPLES[0].as_bytes()).is_empty());
    }

    #[test]
    fn facts_from_a_multipart_message() {
        let raw = concat!(
            "From: A <a@sender.test>\r\n",
            "Subject: =?utf-8?q?Caf=C3=A9_offer?=\r\n",
            "X-Folded: one\r\n two\r\n",
            "MIME-Version: 1.0\r\n",
            "Content-Type: multipart/mixed; boundary=\"b\"\r\n",
            "\r\n",
            "--b\r\n",
            "Content-Type: text/plain\r\n\r\n",
            "Hello body\r\n",
            "--b\r\n",
            "Content-Type: text/plain; name=\"invoice.txt\"\r\n",
            "Content-Disposition: attachment; filename=\"invoice.PDF\"\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\n",
            "TVqQAAMAAAAEAAAA//8AALgAAAAAAAAAQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAgAAAAA==\r\n",
            "--b--\r\n"
        );
        let f = facts(raw.as_bytes(), &env(), &LIMITS);
        assert_eq!(f.subject, "Café offer");
        assert!(f.body_text.contains("Hello body"));
        assert!(
            f.headers
                .iter()
                .any(|(n, v)| n == "X-Folded" && v == "one two")
        );
        assert_eq!(f.attachments.len(), 1);
        assert_eq!(f.attachments[0].name, "invoice.PDF");
        assert_eq!(f.attachments[0].ext, "pdf");
        // The bytes are a Windows executable whatever the name and header claim.
        assert_eq!(
            f.attachments[0].detected_type,
            "application/vnd.microsoft.portable-executable"
        );
        assert_eq!(f.size, raw.len() as u64);
    }

    /// Found by fuzzing (fuzz/corpus/message_pipeline/regression-nested-rfc822-part-id):
    /// mail-parser's debug_assert! on this input panicked dev builds. The workspace turns
    /// mail-parser's debug assertions off, so every build parses it as release does.
    #[test]
    fn nested_rfc822_with_a_broken_boundary_does_not_panic() {
        let raw = concat!(
            "Fr.0\r\n",
            "Content-Type: multipart/mixed; boundary=\"XX\"\r\n",
            "\r\n",
            "--XX\r\r\n",
            "Content-Type: message/rfc822\r\n",
            "\r\n",
            "S\r\n",
            "Content-Type: message/rfc822\r\n",
            "\n\n",
            "--XX--\r\n"
        );
        let f = facts(raw.as_bytes(), &env(), &LIMITS);
        assert_eq!(f.from, "a@sender.test");
        assert_eq!(f.size, raw.len() as u64);
    }

    /// A zip of `files` (stored), built with the zip crate.
    fn zip_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, data) in files {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.finish().unwrap().into_inner()
    }

    fn with_zip(zip: &[u8]) -> Vec<u8> {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(zip);
        format!(
            "From: a@sender.test\r\nSubject: zip\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
             Content-Type: application/zip\r\nContent-Disposition: attachment; filename=\"files.zip\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{b64}\r\n--b--\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn zip_entries_are_attachments_too() {
        let zip = zip_of(&[("dir/Setup.EXE", b"MZ\x90\x00\x03\x00"), ("a.txt", b"hi")]);
        let f = facts(&with_zip(&zip), &env(), &LIMITS);
        let seen: Vec<(&str, &str, &str)> = f
            .attachments
            .iter()
            .map(|a| (a.name.as_str(), a.ext.as_str(), a.detected_type.as_str()))
            .collect();
        assert_eq!(
            seen,
            [
                ("files.zip", "zip", "application/zip"),
                (
                    "dir/Setup.EXE",
                    "exe",
                    "application/vnd.microsoft.portable-executable"
                ),
                ("a.txt", "txt", "text/plain"),
            ]
        );
        assert!(!f.archive_bomb);
        let few = ArchiveLimits {
            entries_max: 1,
            ..LIMITS
        };
        assert!(facts(&with_zip(&zip), &env(), &few).archive_bomb);
    }

    #[test]
    fn garbage_still_has_envelope_facts() {
        let f = facts(b"", &env(), &LIMITS);
        assert_eq!(f.from, "a@sender.test");
        assert_eq!(f.size, 0);
    }
}
