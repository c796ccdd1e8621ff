//! Delivery by MX (RFC 5321 §5): the recipients of one message in one outside domain go
//! to the domain's mail exchangers, tried in preference order, each of a host's addresses
//! in turn, until one holds a transaction. Used for DSNs to senders outside our domains,
//! and built to serve outbound mail the same way.
//!
//! - A null MX (RFC 7505) means no attempt at all: `556 5.1.10`, permanent.
//! - MX hosts from our own name on are dropped (RFC 5321 §5.1); if none is left the
//!   mail would loop: `550 5.4.6`, permanent.
//! - A domain that does not exist is permanent (`550 5.1.2`); a DNS failure is temporary.
//! - A host that cannot be reached, greets with a refusal or answers MAIL with a 4xx is
//!   skipped for the next one; a 5xx for the whole session, or any per-recipient answer,
//!   ends the attempt (the next host would be asked the same question).
//! - At most [`DELIVERY_TARGETS_MAX`] addresses are tried per attempt.
//!
//! STARTTLS is opportunistic and connections are reused per address, both by
//! [`super::deliver`]; concurrency per destination is bounded by
//! [`super::destination::DestinationLimits`].

use std::time::Duration;

use super::deliver::{self, Attempt, ConnectionCache, Outcome};
use super::mx::{self, LookupError, MxResolver};
use super::mx_order::Plan;

/// The port of delivery by MX.
pub const SMTP_PORT: u16 = 25;
/// Addresses (over all hosts) tried in one attempt at most.
pub const DELIVERY_TARGETS_MAX: usize = 12;
/// The prefix of a queue entry's `relay_to` that means "deliver by MX to this domain".
pub const MX_ROUTE_PREFIX: &str = "mx:";

/// The queue route of delivery by MX to `domain`.
pub fn route(domain: &str) -> String {
    format!(
        "{MX_ROUTE_PREFIX}{}",
        domain.trim_end_matches('.').to_ascii_lowercase()
    )
}

/// The domain of a queue route made by [`route`], if it is one.
pub fn domain_of(route: &str) -> Option<&str> {
    route.strip_prefix(MX_ROUTE_PREFIX)
}

/// One message's recipients in one outside domain.
pub struct MxAttempt<'a> {
    /// The recipients' domain.
    pub domain: &'a str,
    /// Our EHLO name, also our name among the MX hosts (loop detection).
    pub helo: &'a str,
    /// The reverse-path, `""` for the null sender.
    pub sender: &'a str,
    /// The forward-paths, all in `domain`.
    pub recipients: &'a [String],
    /// The message, CRLF line endings.
    pub body: &'a [u8],
    /// Bound on connecting and on each reply.
    pub timeout: Duration,
    /// The port to connect to ([`SMTP_PORT`] in production).
    pub port: u16,
}

/// Delivers by MX; one outcome per recipient, same order.
pub async fn deliver(
    a: &MxAttempt<'_>,
    resolver: &MxResolver,
    cache: &ConnectionCache,
) -> Vec<Outcome> {
    match attempt(a, resolver, cache).await {
        Ok(outcomes) => outcomes,
        Err(e) => vec![e; a.recipients.len()],
    }
}

async fn attempt(
    a: &MxAttempt<'_>,
    resolver: &MxResolver,
    cache: &ConnectionCache,
) -> Result<Vec<Outcome>, Outcome> {
    let plan = if mx::literal(a.domain).is_some() {
        Plan::Hosts(vec![a.domain.to_string()])
    } else {
        resolver
            .plan(a.domain, a.helo)
            .await
            .map_err(|e| e.outcome())?
    };
    let hosts = match plan {
        Plan::NullMx => {
            return Err(Outcome::Permanent(format!(
                "556 5.1.10 {} publishes a null MX: it accepts no mail",
                a.domain
            )));
        }
        Plan::Hosts(hosts) if hosts.is_empty() => {
            return Err(Outcome::Permanent(format!(
                "550 5.4.6 {}: the mail exchangers loop back to this host",
                a.domain
            )));
        }
        Plan::Hosts(hosts) => hosts,
    };
    let mut tried = 0;
    let mut last = Outcome::Temporary(format!("451 4.4.4 {}: no mail exchanger address", a.domain));
    let mut every_host_missing = true;
    for host in &hosts {
        let addrs = match resolver.addresses(host).await {
            Ok(addrs) => addrs,
            Err(LookupError::NoSuchDomain(_)) => continue,
            Err(e) => {
                every_host_missing = false;
                last = e.outcome();
                continue;
            }
        };
        every_host_missing &= addrs.is_empty();
        for ip in addrs {
            if tried >= DELIVERY_TARGETS_MAX {
                return Err(last);
            }
            tried += 1;
            let target = std::net::SocketAddr::new(ip, a.port).to_string();
            let one = Attempt {
                relay_to: &target,
                server_name: mx::literal(host).is_none().then_some(host.as_str()),
                helo: a.helo,
                sender: a.sender,
                recipients: a.recipients,
                body: a.body,
                timeout: a.timeout,
            };
            match deliver::deliver_to(&one, cache).await {
                Ok(outcomes) => return Ok(outcomes),
                Err(e @ Outcome::Permanent(_)) => return Err(e),
                Err(e) => {
                    tracing::info!(domain = a.domain, host = %host, address = %target, error = ?e, "relay: mail exchanger failed; trying the next");
                    last = e;
                }
            }
        }
    }
    if every_host_missing {
        // RFC 5321 §5.1: no MX and no address, or MX hosts that do not exist.
        return Err(Outcome::Permanent(format!(
            "550 5.1.2 {}: no mail exchanger with an address",
            a.domain
        )));
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_name_the_domain() {
        assert_eq!(route("Example.NET."), "mx:example.net");
        assert_eq!(domain_of("mx:example.net"), Some("example.net"));
        assert_eq!(domain_of("10.0.0.5:25"), None);
    }

    #[tokio::test]
    async fn an_address_literal_is_delivered_to_directly() {
        // Port 9 (discard) on loopback refuses: the attempt is a temporary failure on
        // that one address, with no DNS asked (the resolver points nowhere).
        let resolver = MxResolver::new(Some("127.0.0.1:9".parse().unwrap()));
        let cache = ConnectionCache::default();
        let a = MxAttempt {
            domain: "[127.0.0.1]",
            helo: "mx1.example.com",
            sender: "",
            recipients: &["postmaster@[127.0.0.1]".to_string()],
            body: b"Subject: x\r\n\r\nx\r\n",
            timeout: Duration::from_secs(2),
            port: 9,
        };
        let out = deliver(&a, &resolver, &cache).await;
        assert!(
            matches!(&out[0], Outcome::Temporary(why) if why.contains("127.0.0.1:9")),
            "{out:?}"
        );
    }
}
