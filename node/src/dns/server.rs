//! The embedded authoritative server (hickory): one zone whose origin is `[dns] name`,
//! with SOA and NS at the origin and the A/AAAA set of the healthy nodes, replaced as a
//! whole whenever the published set changes. Names outside the zone get REFUSED, and so
//! do other classes and zone transfers ([`super::guard`]).
//!
//! hickory-server is built without its DNSSEC feature: with it, its catalog asks every
//! zone for NSEC proofs after each answer and, for an unsigned zone like this one, logs
//! `WARN unexpected lookup skip` per query. The zone is not signed, so nothing is lost.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

use super::guard::Guarded;
use crate::config::DnsSection;

/// Time allowed for a TCP DNS client.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses buffered per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;
/// With port 0, tries to find one port free for both UDP and TCP.
const ANY_PORT_ATTEMPTS: usize = 16;

type Zone = InMemoryZoneHandler;

/// A running DNS server for one name.
pub struct DnsServer {
    server: Server<Guarded>,
    zone: Arc<Zone>,
    name: Name,
    ttl: u32,
    local_addr: SocketAddr,
}

impl DnsServer {
    /// Binds UDP and TCP on `[dns] listen` and serves the zone `[dns] name`. `ns_host` is
    /// this node's host name, used in the SOA and NS records.
    pub async fn start(
        listen: SocketAddr,
        cfg: &DnsSection,
        ns_host: &str,
    ) -> anyhow::Result<DnsServer> {
        let name =
            Name::from_ascii(&cfg.name).with_context(|| format!("dns.name {:?}", cfg.name))?;
        let ns = Name::from_ascii(format!("{}.", ns_host.trim_end_matches('.')))
            .with_context(|| format!("smtp.hostname {ns_host:?} is not a DNS name"))?;
        let hostmaster = Name::from_ascii("hostmaster")?.append_domain(&name)?;
        let zone = Arc::new(Zone::empty(
            name.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        ));
        let soa = SOA::new(ns.clone(), hostmaster, 1, 3600, 600, 86_400, cfg.ttl);
        zone.upsert(
            Record::from_rdata(name.clone(), cfg.ttl, RData::SOA(soa)),
            1,
        )
        .await;
        zone.upsert(
            Record::from_rdata(name.clone(), cfg.ttl, RData::NS(NS(ns))),
            1,
        )
        .await;
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&name),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let mut server = Server::new(Guarded(catalog));
        let (udp, tcp) = bind_both(listen).await?;
        let local_addr = udp.local_addr().context("dns.listen: bound UDP address")?;
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, TCP_RESPONSE_BUFFER);
        Ok(DnsServer {
            server,
            zone,
            name,
            ttl: cfg.ttl,
            local_addr,
        })
    }

    /// The address served, UDP and TCP (the config may say port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the A and AAAA sets of the name with `ips`.
    pub async fn publish(&self, ips: &[IpAddr]) {
        let mut records = self.zone.records_mut().await;
        for rtype in [RecordType::A, RecordType::AAAA] {
            let mut set = RecordSet::with_ttl(self.name.clone(), rtype, self.ttl);
            for ip in ips {
                match (rtype, ip) {
                    (RecordType::A, IpAddr::V4(v4)) => {
                        set.add_rdata(RData::A(A(*v4)));
                    }
                    (RecordType::AAAA, IpAddr::V6(v6)) => {
                        set.add_rdata(RData::AAAA(AAAA(*v6)));
                    }
                    _ => {}
                }
            }
            let key = RrKey::new(LowerName::new(&self.name), rtype);
            if set.is_empty() {
                records.remove(&key);
            } else {
                records.insert(key, Arc::new(set));
            }
        }
    }

    /// Stops answering.
    pub async fn stop(mut self) {
        if let Err(e) = self.server.shutdown_gracefully().await {
            tracing::warn!(error = %e, "DNS server shutdown");
        }
    }
}

/// Binds UDP and TCP on `listen`. With port 0 the kernel picks the UDP port and TCP takes
/// the same one; when that port is taken for TCP, another is tried (bounded).
async fn bind_both(
    listen: SocketAddr,
) -> anyhow::Result<(tokio::net::UdpSocket, tokio::net::TcpListener)> {
    let attempts = if listen.port() == 0 {
        ANY_PORT_ATTEMPTS
    } else {
        1
    };
    let mut last = None;
    for _ in 0..attempts {
        let udp = tokio::net::UdpSocket::bind(listen)
            .await
            .with_context(|| format!("dns.listen {listen} (UDP)"))?;
        let port = udp.local_addr().context("dns.listen: bound UDP address")?;
        match tokio::net::TcpListener::bind(port).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some((port, e)),
        }
    }
    let (port, e) = last.expect("at least one attempt");
    Err(anyhow::Error::new(e).context(format!("dns.listen {listen} (TCP on {port})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn port_zero_serves_udp_and_tcp_on_one_reported_port() {
        let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let cfg = DnsSection {
            listen: Some(listen),
            name: "mx.example.com.".into(),
            publish_address: "127.0.0.1".parse().unwrap(),
            ttl: 5,
            rfc2136: None,
        };
        let server = DnsServer::start(listen, &cfg, "mx1.example.com")
            .await
            .unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        tokio::net::TcpStream::connect(addr).await.unwrap();
        assert!(
            tokio::net::UdpSocket::bind(addr).await.is_err(),
            "the UDP port is the server's"
        );
        // Taken for both: a second server on that exact port fails and names it.
        let err = DnsServer::start(addr, &cfg, "mx1.example.com")
            .await
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("dns.listen"), "{err:#}");
        server.stop().await;
    }
}
