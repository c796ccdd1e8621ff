//! Traits of bulk-mailing software ("ratware") in the headers: a message that claims to
//! come from a desktop mail client but lacks what that client always writes, and the
//! highest priority flag that mass mailers set to catch the eye.
//!
//! The forged-client check reads only what the named clients write on every message,
//! never addresses, hosts or dates: Outlook Express and the Outlook versions up to 2007
//! build their messages with Microsoft's MIME library, which always adds an `X-MimeOLE`
//! header and writes Message-IDs of the form `<12 hex $ 8 hex $ 8 hex @ host>`; they
//! always send HTML with a plain-text alternative and name their MIME boundaries
//! `----=_NextPart_…`. Bulk mailers copy the `X-Mailer` line or the Message-ID form but
//! not the rest. Later Outlook versions (`Microsoft Outlook 14.0` and up) no longer write
//! `X-MimeOLE`; they are not named by the mailers judged, and their Message-IDs end in
//! `$@host`, which the form here excludes.

use super::{Hits, header_values};
use crate::filter::MessageFacts;
use crate::spam::symbols::*;

/// What the claimed clients name their MIME boundaries with.
const OUTLOOK_BOUNDARY_PREFIX: &str = "----=_NextPart_";

/// `X-Mailer` texts of the clients judged: Outlook Express and Outlook 97–2007 (Windows).
/// The build string without its comma is a copy no Outlook writes, and counts as a claim.
const OUTLOOK_MAILERS: &[&str] = &[
    "outlook express",
    "microsoft outlook, build",
    "microsoft outlook build",
    "microsoft outlook imo",
    "microsoft outlook cws",
    "microsoft outlook 8.",
    "microsoft outlook 9.",
    "microsoft outlook 10.",
    "microsoft office outlook",
];

/// Adds the ratware symbols.
pub fn check(facts: &MessageFacts, hits: &mut Hits) {
    forged_outlook(facts, hits);
    if let Some(priority) = header_values(facts, "X-Priority").next() {
        let level = priority.trim_start();
        let digits = level.split(|c: char| !c.is_ascii_digit()).next();
        if digits == Some("1") {
            hits.add(X_PRIORITY_HIGHEST, priority.trim());
        }
    }
}

/// `FORGED_MUA_OUTLOOK`: the Message-ID has the MIME library's form but no `X-MimeOLE`
/// header is present; or `X-Mailer` names Outlook Express or an Outlook up to 2007 (not
/// the Macintosh edition), yet the message has no `X-MimeOLE` header, or is HTML without
/// a text alternative, or has a top-level boundary those clients never write.
fn forged_outlook(facts: &MessageFacts, hits: &mut Hits) {
    let mime_ole = header_values(facts, "X-MimeOLE").next().is_some();
    if let Some(id) = header_values(facts, "Message-ID").next()
        && !mime_ole
        && mime_ole_message_id(id)
    {
        let detail = format!("Message-ID {}: no X-MimeOLE header", id.trim());
        return hits.add(FORGED_MUA_OUTLOOK, detail);
    }
    let Some(mailer) = header_values(facts, "X-Mailer").next() else {
        return;
    };
    let lower = mailer.to_ascii_lowercase();
    let claimed = OUTLOOK_MAILERS.iter().any(|m| lower.contains(m));
    if !claimed || lower.contains("macintosh") {
        return;
    }
    let lacks = if !mime_ole {
        "no X-MimeOLE header"
    } else if facts
        .content
        .parts
        .first()
        .is_some_and(|root| root.content_type == "text/html")
    {
        "HTML without a text alternative"
    } else if top_boundary(facts).is_some_and(|b| !b.starts_with(OUTLOOK_BOUNDARY_PREFIX)) {
        "a MIME boundary it never writes"
    } else {
        return;
    };
    hits.add(FORGED_MUA_OUTLOOK, format!("{}: {lacks}", mailer.trim()));
}

/// Whether `id` is `<` 12 hex digits `$` 8 hex `$` 8 hex `@` host `>`, the form of
/// Microsoft's MIME library (Outlook 2010 and later add a `$` before the `@`).
fn mime_ole_message_id(id: &str) -> bool {
    let Some(inner) = id.trim().strip_prefix('<') else {
        return false;
    };
    let Some((left, _host)) = inner.split_once('@') else {
        return false;
    };
    let hex = |g: &str, len: usize| g.len() == len && g.bytes().all(|b| b.is_ascii_hexdigit());
    let mut groups = left.splitn(4, '$');
    match (groups.next(), groups.next(), groups.next(), groups.next()) {
        (Some(a), Some(b), Some(c), None) => hex(a, 12) && hex(b, 8) && hex(c, 8),
        _ => false,
    }
}

/// The `boundary` parameter of the top-level Content-Type, quotes removed.
fn top_boundary(facts: &MessageFacts) -> Option<&str> {
    let value = header_values(facts, "Content-Type").next()?;
    value.split(';').skip(1).find_map(|param| {
        let (name, v) = param.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"'))
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{clean_with, facts_of, names};
    use super::*;

    fn names_of(raw: &str) -> Vec<&'static str> {
        names(check, &facts_of(raw))
    }

    const OE: &str = "X-Mailer: Microsoft Outlook Express 6.00.2600.0000\n";
    const MIMEOLE: &str = "X-MimeOLE: Produced By Microsoft MimeOLE V6.00.2600.0000\n";

    /// An Outlook Express message: multipart/alternative with its own boundary style.
    fn outlook(extra: &str, boundary: &str) -> String {
        let body = format!(
            "--{boundary}\nContent-Type: text/plain\n\nHello\n\
             --{boundary}\nContent-Type: text/html\n\n<p>Hello</p>\n--{boundary}--\n"
        );
        let headers = format!(
            "{extra}MIME-Version: 1.0\nContent-Type: multipart/alternative;\n\tboundary=\"{boundary}\"\n"
        );
        clean_with(&headers, &body)
    }

    #[test]
    fn ordinary_mail_is_clean() {
        assert!(names_of(&clean_with("", "Hello\n")).is_empty());
        let real = outlook(
            &format!("{OE}{MIMEOLE}"),
            "----=_NextPart_000_0007_01C2A1B2.3C4D5E60",
        );
        assert!(names_of(&real).is_empty(), "what Outlook Express writes");
        let modern = clean_with("X-Mailer: Microsoft Outlook 16.0\n", "Hello\n");
        assert!(
            names_of(&modern).is_empty(),
            "later Outlooks are not judged"
        );
        let mac = clean_with(
            "X-Mailer: Microsoft Outlook Express Macintosh Edition - 5.01 (1630)\n",
            "Hello\n",
        );
        assert!(names_of(&mac).is_empty());
    }

    #[test]
    fn outlook_claimed_without_its_traits() {
        let bare = clean_with(OE, "Hello\n");
        assert_eq!(names_of(&bare), [FORGED_MUA_OUTLOOK], "no X-MimeOLE");
        let html = clean_with(
            &format!("{OE}{MIMEOLE}MIME-Version: 1.0\nContent-Type: text/html\n"),
            "<p>Hello</p>\n",
        );
        assert_eq!(names_of(&html), [FORGED_MUA_OUTLOOK], "HTML only");
        let boundary = outlook(&format!("{OE}{MIMEOLE}"), "=_alternative_42");
        assert_eq!(
            names_of(&boundary),
            [FORGED_MUA_OUTLOOK],
            "foreign boundary"
        );
        let office = clean_with(
            "X-Mailer: Microsoft Office Outlook, Build 11.0.5510\n",
            "x\n",
        );
        assert_eq!(names_of(&office), [FORGED_MUA_OUTLOOK]);
        let copied = clean_with("X-Mailer: Microsoft Outlook Build 10.0.2616\n", "x\n");
        assert_eq!(
            names_of(&copied),
            [FORGED_MUA_OUTLOOK],
            "a copied build string"
        );
    }

    #[test]
    fn outlook_message_id_without_its_library_header() {
        let id = "<002a38a20d2c$2885d7c4$1de48cb6@host>";
        let forged = clean_with("", "x\n").replace("<1234@sender.test>", id);
        assert_eq!(names_of(&forged), [FORGED_MUA_OUTLOOK]);
        let real = clean_with(MIMEOLE, "x\n").replace("<1234@sender.test>", id);
        assert!(names_of(&real).is_empty(), "the library's header is there");
        let modern = "<000301d5d3a7$b1e4c5d0$15ae5170$@sender.test>";
        let outlook16 = clean_with("", "x\n").replace("<1234@sender.test>", modern);
        assert!(names_of(&outlook16).is_empty(), "Outlook 2010 and later");
        assert!(!mime_ole_message_id("<0002$2885d7c4$1de48cb6@host>"));
        assert!(!mime_ole_message_id("002a38a20d2c$2885d7c4$1de48cb6@host"));
    }

    #[test]
    fn highest_priority() {
        let high = clean_with("X-Priority: 1 (Highest)\n", "x\n");
        assert_eq!(names_of(&high), [X_PRIORITY_HIGHEST]);
        let plain = clean_with("X-Priority: 1\n", "x\n");
        assert_eq!(names_of(&plain), [X_PRIORITY_HIGHEST]);
        let normal = clean_with("X-Priority: 3 (Normal)\n", "x\n");
        assert!(names_of(&normal).is_empty());
        let ten = clean_with("X-Priority: 10\n", "x\n");
        assert!(names_of(&ten).is_empty());
    }
}
