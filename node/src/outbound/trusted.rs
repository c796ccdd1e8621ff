//! `[relay] trusted_networks`: client networks that may relay to any domain without AUTH.

use std::net::IpAddr;

use ipnet::IpNet;

/// Most entries accepted in `trusted_networks` (a linear scan per connection stays cheap).
pub const TRUSTED_NETWORKS_MAX: usize = 1024;

/// A parsed `trusted_networks` list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedNetworks {
    nets: Vec<IpNet>,
}

impl TrustedNetworks {
    /// Parses CIDRs (`10.0.0.0/8`, `2001:db8::/32`) or bare addresses (a /32 or /128).
    /// The error names the entry at fault.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        if entries.len() > TRUSTED_NETWORKS_MAX {
            return Err(format!(
                "{} entries; at most {TRUSTED_NETWORKS_MAX}",
                entries.len()
            ));
        }
        let nets = entries
            .iter()
            .map(|e| parse_one(e.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(TrustedNetworks { nets })
    }

    /// Whether `ip` lies in one of the networks. An IPv4-mapped IPv6 address
    /// (`::ffff:10.1.2.3`) is checked as the IPv4 address it carries.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|net| net.contains(&ip))
    }

    /// No network is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }
}

fn parse_one(entry: &str) -> Result<IpNet, String> {
    let entry = entry.trim();
    if let Ok(net) = entry.parse::<IpNet>() {
        return Ok(net.trunc());
    }
    entry
        .parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{entry:?} is neither a CIDR (10.0.0.0/8) nor an IP address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidrs_and_bare_addresses_match_what_they_cover() {
        let t = TrustedNetworks::parse(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]).unwrap();
        assert!(t.contains(ip("10.200.3.4")));
        assert!(!t.contains(ip("11.0.0.1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("2001:db8:1::5")));
        assert!(!t.contains(ip("2001:db9::1")));
        assert!(t.contains(ip("::ffff:10.1.2.3")), "IPv4-mapped IPv6");
    }

    #[test]
    fn host_bits_are_ignored_and_empty_trusts_nobody() {
        let t = TrustedNetworks::parse(&["10.1.2.3/16"]).unwrap();
        assert!(t.contains(ip("10.1.99.1")));
        let none = TrustedNetworks::parse::<&str>(&[]).unwrap();
        assert!(none.is_empty());
        assert!(!none.contains(ip("127.0.0.1")));
    }

    #[test]
    fn a_bad_entry_is_named() {
        let err = TrustedNetworks::parse(&["10.0.0.0/8", "10.0.0.0/33"]).unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
        let err = TrustedNetworks::parse(&["example.com"]).unwrap_err();
        assert!(err.contains("example.com"), "{err}");
        let many = vec!["10.0.0.1"; TRUSTED_NETWORKS_MAX + 1];
        assert!(TrustedNetworks::parse(&many).is_err());
    }
}
