//! Reverse DNS of the client, forward-confirmed (FCrDNS): the PTR names of its address,
//! and of those the first whose own A/AAAA records include the address. An MTA writes
//! `unknown` in its Received line when this fails; the `client` symbols read the result.

use std::net::IpAddr;

use mail_auth::common::cache::NoCache;
use mail_auth::{IpLookupStrategy, MessageAuthenticator, RecordSet};

use crate::filter::ReverseName;

/// PTR names checked forward at most (an address may have many; mail servers have one).
pub const PTR_NAMES_CHECKED_MAX: usize = 2;
/// Addresses of one name compared with the client's at most.
const FORWARD_ADDRESSES_MAX: usize = 16;

/// The client's forward-confirmed reverse name; `Err` says which lookup failed (the caller
/// then leaves the name unchecked). Each query is bounded by the resolver's timeout.
pub async fn lookup(resolver: &MessageAuthenticator, ip: IpAddr) -> Result<ReverseName, String> {
    let ip = crate::filter::canonical_ip(ip);
    let names = match resolver
        .ptr_lookup(ip, None::<&NoCache<IpAddr, RecordSet<Box<str>>>>)
        .await
    {
        Ok(set) => set.rrset.to_vec(),
        Err(e) if not_found(&e) => return Ok(ReverseName::Missing),
        Err(e) => return Err(format!("PTR of {ip}: {e}")),
    };
    let checks = names
        .iter()
        .take(PTR_NAMES_CHECKED_MAX)
        .map(|name| confirms(resolver, name, ip));
    let confirmed = futures::future::join_all(checks).await;
    let mut failure = None;
    for (name, answer) in names.iter().zip(confirmed) {
        match answer {
            Ok(true) => return Ok(ReverseName::given(name)),
            Ok(false) => {}
            Err(e) => failure = Some(e),
        }
    }
    match failure {
        // No name confirmed, and one could not be checked: the answer is not known.
        Some(e) => Err(e),
        None => Ok(ReverseName::Missing),
    }
}

/// Whether `name` resolves to `ip`; `Ok(false)` when it has no address records.
async fn confirms(resolver: &MessageAuthenticator, name: &str, ip: IpAddr) -> Result<bool, String> {
    let strategy = match ip {
        IpAddr::V4(_) => IpLookupStrategy::Ipv4Only,
        IpAddr::V6(_) => IpLookupStrategy::Ipv6Only,
    };
    let fqdn = format!("{}.", name.trim_end_matches('.'));
    match resolver
        .ip_lookup(
            &fqdn,
            strategy,
            FORWARD_ADDRESSES_MAX,
            None::<&NoCache<Box<str>, RecordSet<std::net::Ipv4Addr>>>,
            None::<&NoCache<Box<str>, RecordSet<std::net::Ipv6Addr>>>,
        )
        .await
    {
        Ok(addresses) => Ok(addresses.contains(&ip)),
        Err(e) if not_found(&e) => Ok(false),
        Err(e) => Err(format!("address of {name}: {e}")),
    }
}

/// NXDOMAIN or no record of the type asked: an answer, not a failure.
fn not_found(e: &mail_auth::Error) -> bool {
    matches!(
        e,
        mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))
    )
}
