//! Everything the verdict may look at, gathered beforehand by the message parser and the
//! fact prefetchers (DNS, SPF/DKIM/DMARC, DNSBL, virus scan). The filter reads nothing else.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

pub use super::content::{ContentFacts, HtmlFacts, Mailbox, PartFacts, UrlFact};

/// The facts about one message.
#[derive(Debug, Clone, PartialEq)]
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
    /// What the parser found for the spam checks: decoded From, MIME parts, HTML, URLs.
    pub content: ContentFacts,
    /// URIBL answers: one entry per (zone, domain of a body URL) that is listed.
    pub uribl: Vec<UriblListing>,
    /// The DMARC policy that applied to the From domain (`none`, `quarantine`,
    /// `reject`), when DMARC found a record.
    pub dmarc_policy: Option<String>,
    /// The Bayesian spam probability (0..1), `None` when the classifier did not vote.
    pub bayes: Option<f64>,
    /// The fraction (0..1) of the message's plain words that no learned ham contained
    /// ([`crate::bayes::Verdict::unfamiliar`]), `None` when not measured.
    pub bayes_unfamiliar: Option<f64>,
    /// Allow/deny list entries that matched this message.
    pub lists: Vec<ListHit>,
    /// Which way the mail goes (rule field `direction`).
    pub direction: Direction,
    /// The user the client authenticated as (rule field `auth_user`).
    pub auth_user: Option<String>,
    /// What reverse DNS says of the client (the `client` symbols read it).
    pub reverse_name: ReverseName,
}

/// What reverse DNS says of the client: a forward-confirmed name (a PTR name whose own
/// addresses include the client's), none, or not known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReverseName {
    /// Not looked up: no resolver, the lookup failed, or the client is not public.
    #[default]
    NotChecked,
    /// The address has no PTR name, or none of its names resolves back to it.
    Missing,
    /// The forward-confirmed name, lowercase, without a trailing dot.
    Name(String),
}

impl ReverseName {
    /// As the caller supplied it (`POST /api/v1/classify?hostname=`, like an MTA's
    /// Received line): `unknown` or empty means none; any other text is the name.
    pub fn given(text: &str) -> ReverseName {
        let name = text.trim().trim_end_matches('.').to_ascii_lowercase();
        match name.as_str() {
            "" | "unknown" => ReverseName::Missing,
            _ => ReverseName::Name(name),
        }
    }
}

/// Whether `ip` is an address of the public internet as far as the client checks care:
/// not loopback, private (RFC 1918, IPv6 unique local), link-local or unspecified. Mail
/// from such clients comes from inside the organisation; its HELO and reverse name are
/// not judged.
pub fn is_public_client(ip: IpAddr) -> bool {
    match crate::filter::canonical_ip(ip) {
        IpAddr::V4(v4) => {
            !(v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified())
        }
        IpAddr::V6(v6) => {
            let unique_local = (v6.segments()[0] & 0xfe00) == 0xfc00;
            let link_local = (v6.segments()[0] & 0xffc0) == 0xfe80;
            !(v6.is_loopback() || v6.is_unspecified() || unique_local || link_local)
        }
    }
}

/// Which way a message goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Direction {
    /// From outside to our domains (the default).
    #[default]
    Inbound,
    /// From a trusted network or an authenticated user, to any domain.
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`, as rules compare it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// A domain of a URL in the body that a URIBL zone lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriblListing {
    /// The zone (lowercase, no trailing dot).
    pub zone: String,
    /// The domain queried (lowercase).
    pub domain: String,
    /// The A records returned (e.g. `127.0.0.2`).
    pub records: Vec<String>,
}

/// Which list an entry is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListKind {
    /// Mail matching it is wanted: a large negative weight.
    Allow,
    /// Mail matching it is unwanted: a large positive weight.
    Deny,
}

/// What a list entry matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListTarget {
    /// The sender's whole address (envelope or From header).
    Sender,
    /// The sender's domain.
    Domain,
    /// The client's IP address or network.
    ClientIp,
}

/// One allow/deny list entry that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListHit {
    /// Allow or deny.
    pub kind: ListKind,
    /// What matched.
    pub target: ListTarget,
    /// The entry as written on the list (for the symbol's detail).
    pub entry: String,
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
    /// A password-protected (encrypted) entry of a zip archive.
    pub encrypted: bool,
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
            content: ContentFacts::default(),
            uribl: Vec::new(),
            dmarc_policy: None,
            bayes: None,
            bayes_unfamiliar: None,
            lists: Vec::new(),
            direction: Direction::Inbound,
            auth_user: None,
            reverse_name: ReverseName::NotChecked,
        }
    }
}
