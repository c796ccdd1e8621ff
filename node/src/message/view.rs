//! What the console shows of a quarantined message: its headers, its text and the list of
//! its attachments — never its HTML as HTML. A message with only an HTML body shows the
//! text mail-parser extracts from it. Pure and bounded like the facts.

use mail_parser::{MessageParser, MimeHeaders};

use super::{ATTACHMENTS_MAX, HEADERS_MAX, unfold};

/// Text shown at most; longer text is cut (at a character boundary) and marked.
pub const VIEW_TEXT_MAX_BYTES: usize = 256 * 1024;

/// A message as the console shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageView {
    /// Header fields in order, values unfolded (at most [`HEADERS_MAX`]).
    pub headers: Vec<(String, String)>,
    /// The text parts (or text extracted from the HTML part), joined.
    pub text: String,
    /// Whether `text` was cut at [`VIEW_TEXT_MAX_BYTES`].
    pub text_truncated: bool,
    /// Attachments (at most [`ATTACHMENTS_MAX`]).
    pub attachments: Vec<AttachmentView>,
    /// Whether mail-parser could parse the message at all.
    pub parsed: bool,
}

/// One attachment in the list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentView {
    /// Its file name as the message gives it (may be empty).
    pub name: String,
    /// Its declared content type (`type/subtype`).
    pub content_type: String,
    /// Its decoded size in bytes.
    pub size: usize,
}

/// Builds the view of `raw`.
pub fn view(raw: &[u8]) -> MessageView {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return MessageView::default();
    };
    let headers = msg
        .headers_raw()
        .take(HEADERS_MAX)
        .map(|(name, value)| (name.to_string(), unfold(value)))
        .collect();
    let mut text = String::new();
    for i in 0..msg.text_body_count() {
        if let Some(t) = msg.body_text(i) {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&t);
        }
        if text.len() > VIEW_TEXT_MAX_BYTES {
            break;
        }
    }
    let text_truncated = text.len() > VIEW_TEXT_MAX_BYTES;
    if text_truncated {
        let mut cut = VIEW_TEXT_MAX_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    let attachments = msg
        .attachments()
        .take(ATTACHMENTS_MAX)
        .map(|part| AttachmentView {
            name: part.attachment_name().unwrap_or_default().to_string(),
            content_type: part.content_type().map_or_else(String::new, |ct| {
                format!("{}/{}", ct.ctype(), ct.subtype().unwrap_or_default())
            }),
            size: part.contents().len(),
        })
        .collect();
    MessageView {
        headers,
        text,
        text_truncated,
        attachments,
        parsed: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_only_mail_is_shown_as_text_with_its_attachments_listed() {
        let raw = b"From: a@example.org\r\nSubject: hi\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/html\r\n\r\n\
<p>Hello <img src=\"http://tracker.example/x.png\"><b>world</b></p>\r\n--b\r\n\
Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b--\r\n";
        let v = view(raw);
        assert!(v.parsed);
        assert!(
            v.headers
                .iter()
                .any(|(n, val)| n == "Subject" && val.trim() == "hi")
        );
        assert!(v.text.contains("Hello"), "{:?}", v.text);
        assert!(!v.text.contains("<img"), "no markup: {:?}", v.text);
        assert_eq!(v.attachments.len(), 1);
        assert_eq!(v.attachments[0].name, "a.pdf");
        assert_eq!(v.attachments[0].content_type, "application/pdf");
        assert_eq!(v.attachments[0].size, 5);
    }

    #[test]
    fn long_text_is_cut_and_marked() {
        let mut raw = b"Subject: x\r\n\r\n".to_vec();
        raw.extend(std::iter::repeat_n(b'a', VIEW_TEXT_MAX_BYTES + 10));
        let v = view(&raw);
        assert!(v.text_truncated);
        assert_eq!(v.text.len(), VIEW_TEXT_MAX_BYTES);
    }
}
