//! Everything the verdict may look at, gathered beforehand by the message parser and the
//! fact prefetchers (DNS, SPF/DKIM/DMARC, DNSBL, virus scan). The filter reads nothing else.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

/// The facts about one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageFacts {
    /// Envelope sender (MAIL FROM), `""` for the null sender.
    pub from: String,
    /// Envelope recipients (RCPT TO).
    pub to: Vec<String>,
    /// The HELO/EHLO name the client gave.
    pub helo: String,
    /// The connecting client's address.
    pub client_ip: IpAddr,
    /// Message size in bytes, as received.
    pub size: u64,
    /// Headers in order: name as received, value decoded and unfolded. Names repeat.
    pub headers: Vec<(String, String)>,
    /// The decoded subject (`""` when absent).
    pub subject: String,
    /// The decoded text parts, joined by `"\n"`.
    pub body_text: String,
    /// One entry per attachment.
    pub attachments: Vec<AttachmentFacts>,
    /// DNSBL answers: zone → A records returned (empty = not listed). Zones are compared
    /// case-insensitively and without a trailing dot.
    pub dnsbl: BTreeMap<String, Vec<String>>,
    /// SPF result (pass, fail, softfail, neutral, none, temperror, permerror), if checked.
    pub spf: Option<String>,
    /// DKIM result, if checked.
    pub dkim: Option<String>,
    /// DMARC result, if checked.
    pub dmarc: Option<String>,
    /// The virus signature found, if any.
    pub virus: Option<String>,
    /// Whether an attachment is a decompression bomb.
    pub archive_bomb: bool,
}

/// What the filter knows of one attachment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttachmentFacts {
    /// File name as given in the message (`""` when none).
    pub name: String,
    /// Extension of the name: lowercase, without the dot (`""` when none).
    pub ext: String,
    /// Content type detected from the bytes, not the claimed one.
    pub detected_type: String,
}

impl Default for MessageFacts {
    /// Empty facts from the unspecified address `0.0.0.0`.
    fn default() -> Self {
        MessageFacts {
            from: String::new(),
            to: Vec::new(),
            helo: String::new(),
            client_ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            size: 0,
            headers: Vec::new(),
            subject: String::new(),
            body_text: String::new(),
            attachments: Vec::new(),
            dnsbl: BTreeMap::new(),
            spf: None,
            dkim: None,
            dmarc: None,
            virus: None,
            archive_bomb: false,
        }
    }
}
