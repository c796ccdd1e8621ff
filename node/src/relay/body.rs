//! The bytes the relay sends downstream for one message, prepared in one place for both
//! ways into the queue: mail accepted or tagged on arrival (`inbound`) and mail released
//! from quarantine. Pure: bytes in, bytes out.
//!
//! Layout of the result: this node's trace headers (`Received:`, and
//! `Authentication-Results` when checked), then the tag's verdict header when tagged, then
//! the message itself with every `Authentication-Results` that claims our authserv-id
//! removed (downstream trusts ours, so none may come from outside, RFC 8601 §5) and, when
//! tagged, the Subject prefixed.

use crate::message::auth_results;

/// How a tagged message is marked.
#[derive(Debug, Clone, Copy)]
pub struct Tag<'a> {
    /// The verdict header, CRLF-terminated, placed after this node's trace headers.
    pub header: &'a str,
    /// Put in front of the first Subject's value (a Subject is added when absent); `None`
    /// or empty leaves the Subject alone.
    pub subject_prefix: Option<&'a str>,
}

/// The relay body: `prepend` (this node's trace headers), the tag's header, then `raw`
/// with forged `Authentication-Results` claiming `authserv_id` removed (none removed when
/// `None`) and the tag's Subject prefix applied.
pub fn prepare(
    prepend: &str,
    raw: &[u8],
    authserv_id: Option<&str>,
    tag: Option<Tag<'_>>,
) -> Vec<u8> {
    // Only this node writes X-Spam-* headers (they are in `prepend`); any that came with
    // the message go, as do forged Authentication-Results claiming our authserv-id.
    let raw = crate::spam::header::strip_incoming(raw);
    let message = match authserv_id {
        Some(ours) => auth_results::strip_forged(&raw, ours).into_owned().into(),
        None => raw,
    };
    let mut body = prepend.as_bytes().to_vec();
    match tag {
        Some(tag) => {
            body.extend_from_slice(tag.header.as_bytes());
            body.extend_from_slice(&with_subject_prefix(&message, tag.subject_prefix));
        }
        None => body.extend_from_slice(&message),
    }
    body
}

/// Puts `prefix` in front of the first Subject header's value (adds one when absent).
fn with_subject_prefix(raw: &[u8], prefix: Option<&str>) -> Vec<u8> {
    let Some(prefix) = prefix.filter(|p| !p.is_empty()) else {
        return raw.to_vec();
    };
    let header_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(raw.len());
    let mut line_start = 0;
    while line_start < header_end {
        let line_end = raw[line_start..header_end]
            .iter()
            .position(|&c| c == b'\n')
            .map(|p| line_start + p + 1)
            .unwrap_or(header_end);
        let line = &raw[line_start..line_end];
        if line.len() >= 8 && line[..8].eq_ignore_ascii_case(b"subject:") {
            let mut out = raw[..line_start + 8].to_vec();
            out.push(b' ');
            out.extend_from_slice(prefix.as_bytes());
            let rest = &raw[line_start + 8..];
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            if !rest.starts_with(b"\r\n") {
                out.push(b' ');
            }
            out.extend_from_slice(rest);
            return out;
        }
        line_start = line_end;
    }
    let mut out = format!("Subject: {prefix}\r\n").into_bytes();
    out.extend_from_slice(raw);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_prefix_goes_in_front() {
        let raw = b"From: a\r\nSubject: hello\r\n\r\nSubject: body\r\n";
        let out = with_subject_prefix(raw, Some("[SPAM]"));
        assert_eq!(
            out,
            b"From: a\r\nSubject: [SPAM] hello\r\n\r\nSubject: body\r\n".to_vec()
        );
        let out = with_subject_prefix(b"From: a\r\n\r\nx\r\n", Some("[SPAM]"));
        assert_eq!(out, b"Subject: [SPAM]\r\nFrom: a\r\n\r\nx\r\n".to_vec());
        assert_eq!(with_subject_prefix(raw, None), raw.to_vec());
    }

    const FORGED: &[u8] =
        b"Authentication-Results: mx.example; spf=pass\r\nFrom: a\r\nSubject: hi\r\n\r\nbody\r\n";

    #[test]
    fn untagged_body_is_prepend_then_message_without_forged_results() {
        let out = prepare("Received: x\r\n", FORGED, Some("mx.example"), None);
        assert_eq!(
            out,
            b"Received: x\r\nFrom: a\r\nSubject: hi\r\n\r\nbody\r\n".to_vec()
        );
    }

    #[test]
    fn without_authserv_id_the_message_is_kept_whole() {
        let out = prepare("Received: x\r\n", FORGED, None, None);
        let mut expected = b"Received: x\r\n".to_vec();
        expected.extend_from_slice(FORGED);
        assert_eq!(out, expected);
    }

    #[test]
    fn tagged_body_has_the_verdict_header_and_prefixed_subject() {
        let tag = Tag {
            header: "X-Mxmesh-Verdict: tag\r\n",
            subject_prefix: Some("[SPAM]"),
        };
        let out = prepare("Received: x\r\n", FORGED, Some("mx.example"), Some(tag));
        assert_eq!(
            out,
            b"Received: x\r\nX-Mxmesh-Verdict: tag\r\nFrom: a\r\nSubject: [SPAM] hi\r\n\r\nbody\r\n"
                .to_vec()
        );
    }
}
