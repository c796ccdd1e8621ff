//! What each rule field reads from the facts. Text fields may hold several values
//! (`to`, a repeated header, one per attachment, DNSBL records); a match on them holds
//! when any value matches.

use std::net::IpAddr;

use mxmesh_crdt::rule::Field;

use super::facts::MessageFacts;

/// The text values of `field` (empty for the non-text fields `size` and `client_ip`).
///
/// Scalar text fields always give their one value, even `""` (so `from equals ""` finds
/// the null sender); optional results (`spf`, `virus`, …) give none when absent.
pub(crate) fn text_values<'a>(field: &Field, facts: &'a MessageFacts) -> Vec<&'a str> {
    match field {
        Field::From => vec![facts.from.as_str()],
        Field::To => facts.to.iter().map(String::as_str).collect(),
        Field::Header(name) => header_values(name, facts),
        Field::Subject => vec![facts.subject.as_str()],
        Field::Body => vec![facts.body_text.as_str()],
        Field::AttachmentName => facts.attachments.iter().map(|a| a.name.as_str()).collect(),
        Field::AttachmentExt => facts.attachments.iter().map(|a| a.ext.as_str()).collect(),
        Field::AttachmentType => facts
            .attachments
            .iter()
            .map(|a| a.detected_type.as_str())
            .collect(),
        Field::Helo => vec![facts.helo.as_str()],
        Field::Dnsbl(zone) => dnsbl_records(zone, facts),
        Field::Spf => facts.spf.as_deref().into_iter().collect(),
        Field::Dkim => facts.dkim.as_deref().into_iter().collect(),
        Field::Dmarc => facts.dmarc.as_deref().into_iter().collect(),
        Field::Virus => facts.virus.as_deref().into_iter().collect(),
        Field::ArchiveBomb => vec![if facts.archive_bomb { "true" } else { "false" }],
        Field::Direction => vec![facts.direction.as_str()],
        Field::AuthUser => facts.auth_user.as_deref().into_iter().collect(),
        Field::Size | Field::ClientIp | Field::Score | Field::Symbol | Field::Bayes => Vec::new(),
    }
}

/// Whether `field` is present: a header occurs, the bomb flag is set, or any text value
/// is non-empty (a recipient, an attachment's name/ext/type, a DNSBL listing, a result).
pub(crate) fn exists(field: &Field, facts: &MessageFacts) -> bool {
    match field {
        Field::Header(name) => !header_values(name, facts).is_empty(),
        Field::ArchiveBomb => facts.archive_bomb,
        Field::Bayes => facts.bayes.is_some(),
        Field::Size | Field::ClientIp | Field::Score => true,
        _ => text_values(field, facts)
            .iter()
            .any(|value| !value.is_empty()),
    }
}

/// The client address, with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as seen by a
/// dual-stack listener) turned back into IPv4.
pub(crate) fn client_ip(facts: &MessageFacts) -> IpAddr {
    canonical_ip(facts.client_ip)
}

/// An IPv4-mapped IPv6 address as IPv4; any other address unchanged.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// Every value of header `name` (name compared case-insensitively), in message order.
fn header_values<'a>(name: &str, facts: &'a MessageFacts) -> Vec<&'a str> {
    facts
        .headers
        .iter()
        .filter(|(header, _)| header.trim().eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
        .collect()
}

/// The A records zone `zone` (already lowercase, no trailing dot) returned.
fn dnsbl_records<'a>(zone: &str, facts: &'a MessageFacts) -> Vec<&'a str> {
    facts
        .dnsbl
        .iter()
        .filter(|(name, _)| {
            name.strip_suffix('.')
                .unwrap_or(name)
                .eq_ignore_ascii_case(zone)
        })
        .flat_map(|(_, records)| records.iter().map(String::as_str))
        .collect()
}
