//! What the message parser extracts for the spam checks beyond the rule fields: the
//! decoded From mailboxes, the MIME part structure, statistics of the HTML, and the URLs
//! of the body with their domains and link texts. Filled by `message::facts`, each list
//! bounded there by a named limit.

/// Content facts of one message (all empty for a message that did not parse).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentFacts {
    /// The mailboxes of the From header(s), decoded (encoded words resolved).
    pub from: Vec<Mailbox>,
    /// Every MIME part in document order (multipart containers included).
    pub parts: Vec<PartFacts>,
    /// Statistics over the HTML parts.
    pub html: HtmlFacts,
    /// URLs in the text and HTML parts, in order of appearance, without repeats.
    pub urls: Vec<UrlFact>,
    /// Share of the words of the text/plain alternative also found in the text/html one
    /// and back (Jaccard index in percent), when the message has both alternatives.
    pub alternative_overlap_percent: Option<u8>,
}

/// One mailbox of an address header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, decoded (`""` when none).
    pub name: String,
    /// The address as written (`""` when the header had none).
    pub address: String,
}

/// One MIME part.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartFacts {
    /// `type/subtype`, lowercase, as claimed (`text/plain` when absent).
    pub content_type: String,
    /// The Content-Transfer-Encoding as claimed, lowercase (`""` when absent).
    pub transfer_encoding: String,
    /// The decoder met bytes that do not fit the claimed encoding (bad base64, 8-bit
    /// bytes in a 7bit part, an unknown encoding).
    pub encoding_problem: bool,
    /// The part is an attachment (not a body text).
    pub attachment: bool,
}

/// What the HTML parts contain, summed over all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HtmlFacts {
    /// HTML body parts.
    pub parts: u32,
    /// Characters of visible text (white space excluded).
    pub text_chars: u32,
    /// Characters of text inside elements styled invisible (`display:none`,
    /// `visibility:hidden`, `opacity:0`, the `hidden` attribute).
    pub hidden_chars: u32,
    /// Characters of visible text in a tiny font (`font-size` below 4 px or pt, or
    /// `<font size="0">`).
    pub tiny_chars: u32,
    /// `<img>` tags.
    pub images: u32,
    /// `<form>` tags (a form in a mail asks the reader to type data into it).
    pub forms: u32,
    /// `<html>` start tags (mail clients write one per HTML part; generators often not).
    pub roots: u32,
    /// Characters of visible text in a large font (`font-size` of 24 px / 18 pt or more,
    /// or `<font size>` 5 and up, `+2` and up).
    pub large_chars: u32,
    /// Whether the scan stopped at a bound (the counts cover the part seen).
    pub truncated: bool,
}

/// One URL of the body.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UrlFact {
    /// The host, lowercase, without port or user info (an IP address stays as written).
    pub host: String,
    /// Whether the host is an IP address literal.
    pub host_is_ip: bool,
    /// Whether the URL has user info before the host (`http://bank.example@evil.test/`).
    pub userinfo: bool,
    /// For an HTML link, its visible text (trimmed, bounded); `None` for a bare URL.
    pub link_text: Option<String>,
}
