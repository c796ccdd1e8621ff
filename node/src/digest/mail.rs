//! The digest message for one recipient — pure: items, links and dates in, RFC 5322 bytes
//! (CRLF) out. Plain text only: a digest lists held mail, it never shows its content.
//! Text taken from held mail (sender, subject, reason) is cut to [`FIELD_CHARS_MAX`] and
//! cleaned of control characters, and goes into the body only, never into a header.

use base64::Engine;

/// Characters of a sender, subject or reason shown at most.
pub const FIELD_CHARS_MAX: usize = 160;
/// Body line length the base64 encoding wraps at.
const BASE64_LINE: usize = 76;

/// One held message as the digest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Quarantine id.
    pub id: String,
    /// Envelope sender.
    pub sender: String,
    /// Subject.
    pub subject: String,
    /// When it was received, ms since the epoch.
    pub received_ms: u64,
    /// Why it was held.
    pub reason: String,
}

/// The links of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemLinks {
    /// Release.
    pub release: String,
    /// Release and always allow the sender.
    pub allow: String,
    /// Delete.
    pub delete: String,
}

/// Everything one digest says.
#[derive(Debug, Clone)]
pub struct Digest<'a> {
    /// The recipient.
    pub to: &'a str,
    /// The digest's sender address.
    pub from: &'a str,
    /// `Message-ID` (without brackets).
    pub message_id: &'a str,
    /// `Date:` (RFC 5322 form).
    pub date: &'a str,
    /// Listed items with their links, newest first.
    pub items: &'a [(Item, ItemLinks)],
    /// Held messages not listed (beyond the per-digest bound).
    pub more: usize,
    /// The portal link ("show all").
    pub show_all: &'a str,
    /// When the links stop working (RFC 5322 form).
    pub links_expire: &'a str,
    /// The period boundary this digest covers up to, ms (header [`PERIOD_HEADER`]).
    pub period_ms: u64,
}

/// The header naming the period a digest covers (for operators and the simulator).
pub const PERIOD_HEADER: &str = "X-Mxmesh-Digest-Period";

/// The digest's subject.
pub fn subject(count: usize) -> String {
    match count {
        1 => "Quarantine digest: 1 new message held for you".to_string(),
        n => format!("Quarantine digest: {n} new messages held for you"),
    }
}

/// The whole message.
pub fn build(d: &Digest<'_>) -> Vec<u8> {
    let total = d.items.len() + d.more;
    let body = body_text(d, total);
    let (encoding, body) = match body.is_ascii() {
        true => ("7bit", body.replace('\n', "\r\n")),
        false => (
            "base64",
            wrapped_base64(body.replace('\n', "\r\n").as_bytes()),
        ),
    };
    let headers = [
        format!("From: Quarantine <{}>", d.from),
        format!("To: <{}>", clean(d.to)),
        format!("Subject: {}", subject(total)),
        format!("Date: {}", d.date),
        format!("Message-ID: <{}>", d.message_id),
        "MIME-Version: 1.0".to_string(),
        "Content-Type: text/plain; charset=utf-8".to_string(),
        format!("Content-Transfer-Encoding: {encoding}"),
        "Auto-Submitted: auto-generated".to_string(),
        "X-Auto-Response-Suppress: All".to_string(),
        format!("{PERIOD_HEADER}: {}", d.period_ms),
    ];
    let mut out = headers.join("\r\n");
    out.push_str("\r\n\r\n");
    out.push_str(&body);
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.into_bytes()
}

fn body_text(d: &Digest<'_>, total: usize) -> String {
    let mut t = format!(
        "{total} new message{} to {} {} held in quarantine since your last digest.\n\
         Nothing was delivered. Each link asks before it acts.\n\n",
        if total == 1 { "" } else { "s" },
        clean(d.to),
        if total == 1 { "was" } else { "were" },
    );
    for (n, (item, links)) in d.items.iter().enumerate() {
        t.push_str(&format!(
            "{}. {}\n   From:    {}\n   Date:    {}\n   Reason:  {}\n   Release: {}\n   Release and always allow this sender: {}\n   Delete:  {}\n\n",
            n + 1,
            shown(&item.subject, "(no subject)"),
            shown(&item.sender, "(no sender)"),
            crate::clock::rfc5322_date(item.received_ms),
            shown(&item.reason, "-"),
            links.release,
            links.allow,
            links.delete,
        ));
    }
    if d.more > 0 {
        t.push_str(&format!("... and {} more, not listed here.\n\n", d.more));
    }
    t.push_str(&format!(
        "All your quarantined mail: {}\n\nThese links work until {}.\n",
        d.show_all, d.links_expire
    ));
    t
}

/// `text` cleaned and cut, or `empty` when there is nothing.
fn shown(text: &str, empty: &str) -> String {
    let c = clean(text);
    match c.trim().is_empty() {
        true => empty.to_string(),
        false => c,
    }
}

/// Control characters out, at most [`FIELD_CHARS_MAX`] characters.
fn clean(text: &str) -> String {
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(FIELD_CHARS_MAX)
        .collect();
    if text.chars().count() > FIELD_CHARS_MAX {
        out.push('…');
    }
    out
}

fn wrapped_base64(bytes: &[u8]) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(BASE64_LINE)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    lines.join("\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(subject: &str) -> (Item, ItemLinks) {
        (
            Item {
                id: "01J0ABC".into(),
                sender: "win@prize.test".into(),
                subject: subject.into(),
                received_ms: 1_768_460_400_000,
                reason: "deny list entry 01J0XYZ".into(),
            },
            ItemLinks {
                release: "https://mx.example.com/q/r".into(),
                allow: "https://mx.example.com/q/a".into(),
                delete: "https://mx.example.com/q/d".into(),
            },
        )
    }

    fn digest<'a>(items: &'a [(Item, ItemLinks)], more: usize) -> Digest<'a> {
        Digest {
            to: "alice@example.com",
            from: "quarantine@example.com",
            message_id: "01J0DIGEST@mx1.example.com",
            date: "Thu, 15 Jan 2026 08:00:00 +0000",
            items,
            more,
            show_all: "https://mx.example.com/q/s",
            links_expire: "Thu, 22 Jan 2026 08:00:00 +0000",
            period_ms: 1_768_464_000_000,
        }
    }

    #[test]
    fn the_digest_lists_each_item_with_its_links() {
        let items = [item("PRIZE!!!"), item("Invoice")];
        let raw = String::from_utf8(build(&digest(&items, 3))).unwrap();
        assert!(
            raw.contains("Subject: Quarantine digest: 5 new messages held for you\r\n"),
            "{raw}"
        );
        assert!(raw.contains("Content-Transfer-Encoding: 7bit"));
        assert!(raw.contains("X-Mxmesh-Digest-Period: 1768464000000\r\n"));
        for needle in [
            "PRIZE!!!",
            "Invoice",
            "win@prize.test",
            "deny list entry",
            "/q/r",
            "/q/a",
            "/q/d",
            "/q/s",
            "3 more",
        ] {
            assert!(raw.contains(needle), "{needle}: {raw}");
        }
        assert!(!raw.replace("\r\n", "").contains('\n'), "CRLF only");
        let parsed = mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .unwrap();
        assert_eq!(
            parsed.to().unwrap().first().unwrap().address(),
            Some("alice@example.com")
        );
    }

    #[test]
    fn hostile_text_stays_in_the_body_and_non_ascii_is_encoded() {
        let items = [item("Hi\r\nBcc: victim@example.org\r\n\r\nüñí")];
        let raw = build(&digest(&items, 0));
        let text = String::from_utf8(raw.clone()).unwrap();
        assert!(text.contains("Content-Transfer-Encoding: base64"));
        assert!(!text.contains("Bcc:"), "no header injection");
        let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
        let body = parsed.body_text(0).unwrap();
        assert!(
            body.contains("Hi  Bcc: victim@example.org    üñí"),
            "{body}"
        );
        assert_eq!(subject(1), "Quarantine digest: 1 new message held for you");
    }
}
