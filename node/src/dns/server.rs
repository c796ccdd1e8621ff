//! The embedded authoritative server (hickory): one zone whose origin is `[dns] name`,
//! with SOA and NS at the origin and the A/AAAA set of the healthy nodes, replaced as a
//! whole whenever the published set changes. Names outside the zone get REFUSED.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordSet, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};

use crate::config::DnsSection;

/// Time allowed for a TCP DNS client.
const TCP_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses buffered per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;

type Zone = InMemoryZoneHandler;

/// A running DNS server for one name.
pub struct DnsServer {
    server: Server<Catalog>,
    zone: Arc<Zone>,
    name: Name,
    ttl: u32,
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
            None,
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
        let mut server = Server::new(catalog);
        let udp = tokio::net::UdpSocket::bind(listen)
            .await
            .with_context(|| format!("dns.listen {} (UDP)", listen))?;
        let tcp = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("dns.listen {} (TCP)", listen))?;
        server.register_socket(udp);
        server.register_listener(tcp, TCP_TIMEOUT, TCP_RESPONSE_BUFFER);
        Ok(DnsServer {
            server,
            zone,
            name,
            ttl: cfg.ttl,
        })
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
