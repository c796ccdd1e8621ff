//! Reverse- and forward-paths of MAIL and RCPT (RFC 5321 §4.1.2, RFC 6531 §3.3).
//!
//! The grammar is followed strictly where it matters for routing: the domain is whatever
//! follows the `@` that ends the local part, and a second `@` outside a quoted local part
//! (`user@victim@ours`) is a syntax error, never "a mailbox at ours". `%` and `!` are plain
//! local-part characters: we never route on them. Source routes (`<@a,@b:user@d>`) are
//! checked and dropped. Two leniencies: a trailing dot on the domain is accepted and
//! stripped, and non-ASCII is accepted when SMTPUTF8 was requested.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest path, brackets and source route included (RFC 5321 §4.5.3.1.3).
pub const PATH_MAX_BYTES: usize = 256;
/// Longest local part (RFC 5321 §4.5.3.1.1).
pub const LOCAL_PART_MAX_BYTES: usize = 64;
/// Longest domain (RFC 5321 §4.5.3.1.2).
pub const DOMAIN_MAX_BYTES: usize = 255;
/// Longest domain label (RFC 1035 §2.3.4).
pub const LABEL_MAX_BYTES: usize = 63;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// Not `<…>`, or not a valid mailbox inside.
    Syntax,
    /// Over one of the RFC 5321 length limits.
    TooLong,
    /// Non-ASCII without SMTPUTF8.
    NonAscii,
}

/// The domain of a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Domain {
    /// A domain name as given, without a trailing dot.
    Name(String),
    /// An address literal such as `[192.0.2.1]` or `[IPv6:2001:db8::1]`, as given.
    Literal(String),
}

/// A mailbox: local part and domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The local part exactly as given, quotes included; case is significant.
    pub local_part: String,
    /// Where the mailbox lives.
    pub domain: Domain,
}

impl Mailbox {
    /// Whether the domain is one of `accepted` (lowercase names, no trailing dot).
    /// Address literals are never accepted.
    pub fn is_in(&self, accepted: &[String]) -> bool {
        match &self.domain {
            Domain::Name(name) => accepted.iter().any(|d| d.eq_ignore_ascii_case(name)),
            Domain::Literal(_) => false,
        }
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = match &self.domain {
            Domain::Name(name) | Domain::Literal(name) => name,
        };
        write!(f, "{}@{}", self.local_part, domain)
    }
}

/// A parsed path: the null path `<>` or a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Path {
    /// `<>`: the null reverse-path of bounces.
    Null,
    /// `<local@domain>`, source route dropped.
    Mailbox(Mailbox),
}

/// Splits `<path> params` into the bracketed path and the rest.
///
/// `argument` must start with `<`. The closing `>` is the first one outside a quoted
/// string, so `<"a>b"@example.com>` is one path.
pub fn split_path(argument: &str) -> Result<(&str, &str), AddressError> {
    if !argument.starts_with('<') {
        return Err(AddressError::Syntax);
    }
    let end = closing_bracket(argument).ok_or(AddressError::Syntax)?;
    argument
        .split_at_checked(end + 1)
        .ok_or(AddressError::Syntax)
}

/// Byte index of the `>` that closes the path, skipping quoted strings.
fn closing_bracket(argument: &str) -> Option<usize> {
    let mut in_quotes = false;
    let mut escaped = false;
    for (index, byte) in argument.bytes().enumerate() {
        match byte {
            _ if escaped => escaped = false,
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b'>' if !in_quotes => return Some(index),
            _ => {}
        }
    }
    None
}

/// Parses a bracketed path such as `<user@example.com>`, `<>` or `<@relay:user@d>`.
pub fn parse_path(path: &str, smtputf8_allowed: bool) -> Result<Path, AddressError> {
    if path.len() > PATH_MAX_BYTES {
        return Err(AddressError::TooLong);
    }
    if !smtputf8_allowed && !path.is_ascii() {
        return Err(AddressError::NonAscii);
    }
    let inner = path
        .strip_prefix('<')
        .and_then(|rest| rest.strip_suffix('>'))
        .ok_or(AddressError::Syntax)?;
    if inner.is_empty() {
        return Ok(Path::Null);
    }
    let mailbox = strip_source_route(inner)?;
    parse_mailbox(mailbox).map(Path::Mailbox)
}

/// Checks and drops an RFC 5321 `A-d-l ":"` prefix.
fn strip_source_route(inner: &str) -> Result<&str, AddressError> {
    if !inner.starts_with('@') {
        return Ok(inner);
    }
    let (route, mailbox) = inner.split_once(':').ok_or(AddressError::Syntax)?;
    for hop in route.split(',') {
        let domain = hop.strip_prefix('@').ok_or(AddressError::Syntax)?;
        parse_domain_name(domain)?;
    }
    Ok(mailbox)
}

/// Parses `local-part "@" domain`.
pub fn parse_mailbox(text: &str) -> Result<Mailbox, AddressError> {
    let (local_part, domain) = split_local_part(text)?;
    if local_part.len() > LOCAL_PART_MAX_BYTES {
        return Err(AddressError::TooLong);
    }
    let domain = parse_domain(domain)?;
    Ok(Mailbox {
        local_part: local_part.to_owned(),
        domain,
    })
}

/// Splits at the `@` that ends a valid local part; the rest is the domain text.
fn split_local_part(text: &str) -> Result<(&str, &str), AddressError> {
    let local_len = if text.starts_with('"') {
        quoted_string_len(text)?
    } else {
        text.find('@').ok_or(AddressError::Syntax)?
    };
    let (local_part, rest) = text
        .split_at_checked(local_len)
        .ok_or(AddressError::Syntax)?;
    let domain = rest.strip_prefix('@').ok_or(AddressError::Syntax)?;
    if !local_part.starts_with('"') && !is_dot_string(local_part) {
        return Err(AddressError::Syntax);
    }
    Ok((local_part, domain))
}

/// Length in bytes of the quoted string at the start of `text`, both quotes included.
fn quoted_string_len(text: &str) -> Result<usize, AddressError> {
    let mut chars = text.char_indices().skip(1);
    while let Some((index, ch)) = chars.next() {
        match ch {
            '"' => return Ok(index + 1),
            '\\' => match chars.next() {
                Some((_, ' '..='~')) => {}
                _ => return Err(AddressError::Syntax),
            },
            _ if is_qtext(ch) => {}
            _ => return Err(AddressError::Syntax),
        }
    }
    Err(AddressError::Syntax)
}

/// RFC 5321 `qtextSMTP`, extended by RFC 6531 with non-ASCII.
fn is_qtext(ch: char) -> bool {
    matches!(ch, ' ' | '!' | '#'..='[' | ']'..='~') || !ch.is_ascii()
}

/// RFC 5321 `Dot-string`: atoms separated by single dots.
fn is_dot_string(text: &str) -> bool {
    text.split('.')
        .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// RFC 5322 `atext`, extended by RFC 6531 with non-ASCII.
fn is_atext(ch: char) -> bool {
    ch.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(ch) || !ch.is_ascii()
}

/// A domain name or an address literal.
fn parse_domain(text: &str) -> Result<Domain, AddressError> {
    if text.starts_with('[') {
        return parse_address_literal(text);
    }
    parse_domain_name(text).map(|name| Domain::Name(name.to_owned()))
}

/// Validates a domain name; returns it without its trailing dot.
fn parse_domain_name(text: &str) -> Result<&str, AddressError> {
    let name = text.strip_suffix('.').unwrap_or(text);
    if name.len() > DOMAIN_MAX_BYTES {
        return Err(AddressError::TooLong);
    }
    if name.split('.').all(is_label) {
        Ok(name)
    } else {
        Err(AddressError::Syntax)
    }
}

/// RFC 5321 `sub-domain` (letter-digit-hyphen, no hyphen at either end) or a U-label.
fn is_label(label: &str) -> bool {
    let ends_ok = !label.starts_with('-') && !label.ends_with('-');
    let chars_ok = label
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || !ch.is_ascii());
    !label.is_empty() && label.len() <= LABEL_MAX_BYTES && ends_ok && chars_ok
}

/// `[192.0.2.1]` or `[IPv6:2001:db8::1]`; general literals are refused.
fn parse_address_literal(text: &str) -> Result<Domain, AddressError> {
    let inner = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .ok_or(AddressError::Syntax)?;
    let valid = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner
            .get(5..)
            .is_some_and(|ip| ip.parse::<Ipv6Addr>().is_ok()),
        _ => inner.parse::<Ipv4Addr>().is_ok(),
    };
    if valid {
        Ok(Domain::Literal(text.to_owned()))
    } else {
        Err(AddressError::Syntax)
    }
}
