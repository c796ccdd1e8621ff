//! DNSBL: is the client address listed in a zone? One A query per zone
//! (`4.3.2.1.zone.` for 1.2.3.4, nibbles for IPv6), all zones at once, each bounded by the
//! resolver's timeout.

use std::collections::BTreeMap;
use std::net::IpAddr;

use mail_auth::MessageAuthenticator;

/// What one zone said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listing {
    /// Listed: the A records returned (e.g. `127.0.0.2`).
    Listed(Vec<String>),
    /// NXDOMAIN or no A record.
    NotListed,
    /// The lookup failed or timed out (the message says why).
    Failed(String),
}

/// Asks every zone about `ip`.
pub async fn check(
    resolver: &MessageAuthenticator,
    ip: IpAddr,
    zones: &[String],
) -> BTreeMap<String, Listing> {
    let queries = zones.iter().map(|zone| async move {
        let name = query_name(ip, zone);
        (zone.clone(), lookup(resolver, &name).await)
    });
    futures::future::join_all(queries)
        .await
        .into_iter()
        .collect()
}

/// One A query for `name`: its records, not listed (NXDOMAIN, no A), or failed.
pub(crate) async fn lookup(resolver: &MessageAuthenticator, name: &str) -> Listing {
    match resolver.ipv4_lookup_raw(name).await {
        Ok(entry) if entry.entry.is_empty() => Listing::NotListed,
        Ok(entry) => Listing::Listed(entry.entry.iter().map(ToString::to_string).collect()),
        Err(mail_auth::Error::Dns(mail_auth::DnsError::RecordNotFound(_))) => Listing::NotListed,
        Err(e) => Listing::Failed(format!("{name}: {e}")),
    }
}

/// The DNSBL query name for `ip` in `zone` (RFC 5782 §2.1, §2.4), fully qualified.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let zone = zone.trim_end_matches('.');
    let reversed = match crate::filter::canonical_ip(ip) {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            format!("{d}.{c}.{b}.{a}")
        }
        IpAddr::V6(v6) => {
            let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
            let nibbles: Vec<String> = hex.chars().rev().map(String::from).collect();
            nibbles.join(".")
        }
    };
    format!("{reversed}.{zone}.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names_follow_rfc_5782() {
        let v4: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(query_name(v4, "bl.test."), "99.2.0.192.bl.test.");
        let mapped: IpAddr = "::ffff:192.0.2.99".parse().unwrap();
        assert_eq!(query_name(mapped, "bl.test"), "99.2.0.192.bl.test.");
        let v6: IpAddr = "2001:db8:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(
            query_name(v6, "bl.test"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.test."
        );
    }
}
