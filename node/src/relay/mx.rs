//! MX lookups for delivery by MX (RFC 5321 §5.1): the resolver (`[relay] resolver`, else
//! `[filter] resolver`, else the system's), a domain's plan (see [`super::mx_order`]) and
//! each host's addresses.
//!
//! The resolver is built at the first lookup, so a node that never delivers by MX never
//! reads `/etc/resolv.conf`; a resolver that cannot be built is a temporary failure
//! (retried, then bounced at the queue lifetime) with the reason in the queue entry.

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;
use std::time::Duration;

use mail_auth::hickory_resolver::TokioResolver;
use mail_auth::hickory_resolver::proto::rr::RData;

use super::deliver::Outcome;
use super::mx_order::{self, MxRecord, Plan};

/// Bound on one MX or address lookup.
pub const MX_DNS_TIMEOUT: Duration = Duration::from_secs(5);
/// Addresses of one host tried per attempt at most.
pub const ADDRESSES_PER_HOST_MAX: usize = 4;

/// Why a lookup gave no plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The domain does not exist (NXDOMAIN): a permanent failure.
    NoSuchDomain(String),
    /// The server failed or timed out: try again later.
    Temporary(String),
}

impl LookupError {
    /// The per-recipient outcome this error means.
    pub fn outcome(&self) -> Outcome {
        match self {
            LookupError::NoSuchDomain(d) => {
                Outcome::Permanent(format!("550 5.1.2 {d}: the domain does not exist"))
            }
            LookupError::Temporary(why) => Outcome::Temporary(format!("451 4.4.3 {why}")),
        }
    }
}

/// The resolver of delivery by MX, built on first use.
pub struct MxResolver {
    server: Option<SocketAddr>,
    resolver: OnceLock<Result<TokioResolver, String>>,
}

impl MxResolver {
    /// A resolver asking `server`, or the system's resolvers when None.
    pub fn new(server: Option<SocketAddr>) -> MxResolver {
        MxResolver {
            server,
            resolver: OnceLock::new(),
        }
    }

    fn get(&self) -> Result<&TokioResolver, LookupError> {
        self.resolver
            .get_or_init(|| {
                crate::facts::dns::authenticator(self.server, MX_DNS_TIMEOUT).map(|a| a.0)
            })
            .as_ref()
            .map_err(|e| LookupError::Temporary(e.clone()))
    }

    /// The hosts to try for `domain`, in order, or a null MX; `me` is our host name.
    pub async fn plan(&self, domain: &str, me: &str) -> Result<Plan, LookupError> {
        let resolver = self.get()?;
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let records = match resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some(MxRecord {
                        preference: mx.preference,
                        exchange: mx_order::normalize(&mx.exchange.to_ascii()),
                    }),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => {
                return Err(LookupError::NoSuchDomain(domain.to_string()));
            }
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => {
                return Err(LookupError::Temporary(format!(
                    "MX lookup for {domain}: {e}"
                )));
            }
        };
        let me = mx_order::normalize(me);
        Ok(mx_order::order(domain, &records, &me, &mut rand::rng()))
    }

    /// The addresses of `host` (A, then AAAA when there is no A), at most
    /// [`ADDRESSES_PER_HOST_MAX`]. An address literal or IP is itself.
    pub async fn addresses(&self, host: &str) -> Result<Vec<IpAddr>, LookupError> {
        if let Some(ip) = literal(host) {
            return Ok(vec![ip]);
        }
        let resolver = self.get()?;
        let fqdn = format!("{}.", host.trim_end_matches('.'));
        match resolver.lookup_ip(fqdn.as_str()).await {
            Ok(lookup) => Ok(lookup.iter().take(ADDRESSES_PER_HOST_MAX).collect()),
            Err(e) if e.is_nx_domain() => Err(LookupError::NoSuchDomain(host.to_string())),
            Err(e) if e.is_no_records_found() => Ok(Vec::new()),
            Err(e) => Err(LookupError::Temporary(format!(
                "address lookup for {host}: {e}"
            ))),
        }
    }
}

/// The IP of an address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`) or a bare IP.
pub fn literal(host: &str) -> Option<IpAddr> {
    let inner = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let inner = inner
        .strip_prefix("IPv6:")
        .or_else(|| inner.strip_prefix("ipv6:"))
        .unwrap_or(inner);
    inner.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_literals_are_their_own_address() {
        assert_eq!(literal("[192.0.2.1]"), Some("192.0.2.1".parse().unwrap()));
        assert_eq!(
            literal("[IPv6:2001:db8::1]"),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(literal("mx.example.com"), None);
    }

    #[test]
    fn lookup_errors_map_to_outcomes() {
        assert!(matches!(
            LookupError::NoSuchDomain("x.test".into()).outcome(),
            Outcome::Permanent(s) if s.starts_with("550 5.1.2")
        ));
        assert!(matches!(
            LookupError::Temporary("timeout".into()).outcome(),
            Outcome::Temporary(_)
        ));
    }
}
