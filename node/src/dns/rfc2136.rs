//! The RFC 2136 publisher: keeps `[dns] name`'s A/AAAA set on an external authoritative
//! server (BIND, Knot, PowerDNS…) with TSIG-signed dynamic updates.
//!
//! Every update replaces the whole set in one message — delete the A and AAAA RRsets, add
//! the current addresses — which the server applies atomically, so sending it twice
//! changes nothing (idempotent) and a missed update is repaired by the next one. Only the
//! node [`super::set::publisher`] names sends updates; the others stay quiet.

use std::net::IpAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_proto::op::update_message::{UpdateMessage as _, delete_rrset};
use hickory_proto::op::{Message, Query, ResponseCode};
use hickory_proto::rr::rdata::tsig::{TsigAlgorithm, TsigError};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType, TSigner};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::config::{DnsSection, Rfc2136Section, read_tsig_secret};

/// Time allowed for one update: connect, send, answer.
pub const UPDATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Allowed clock difference between us and the server, in seconds (RFC 8945 suggests 300).
const TSIG_FUDGE_SECS: u16 = 300;
/// Largest answer read from the server; an UPDATE answer is a few hundred bytes.
const ANSWER_MAX_BYTES: usize = 16 * 1024;

/// Why an update did not take effect. The messages name what the operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The server cannot be reached (connect or I/O).
    #[error("cannot reach the DNS server {server}: {detail}")]
    Connect { server: String, detail: String },
    /// No answer within `UPDATE_TIMEOUT`.
    #[error("the DNS server {server} did not answer within {}s", UPDATE_TIMEOUT.as_secs())]
    Timeout { server: String },
    #[error("the DNS server {server} refused the update ({}{}): {hint}", rcode_name(*rcode),
        tsig.map(|t| format!(", TSIG error {}", tsig_error_name(t))).unwrap_or_default())]
    /// The server answered with an error rcode (and a TSIG error, if any).
    Refused {
        server: String,
        rcode: ResponseCode,
        tsig: Option<TsigError>,
        hint: String,
    },
    /// Anything else: an answer that does not decode or match, or signing failed.
    #[error("the DNS server {server} sent an answer we cannot trust: {detail}")]
    BadAnswer { server: String, detail: String },
}

/// Signs and sends the updates for one name.
pub struct Publisher {
    server: String,
    zone: Name,
    name: Name,
    ttl: u32,
    signer: TSigner,
    secret_file: String,
}

impl Publisher {
    /// Reads the TSIG secret and checks the names (`mxmesh check` has validated them).
    pub fn new(dns: &DnsSection, cfg: &Rfc2136Section) -> anyhow::Result<Publisher> {
        let name = Name::from_ascii(&dns.name)?;
        let zone = Name::from_ascii(&cfg.zone)?;
        anyhow::ensure!(
            zone.zone_of(&name),
            "dns.rfc2136.zone {} does not contain dns.name {}",
            cfg.zone,
            dns.name
        );
        let key = read_tsig_secret(&cfg.tsig_secret_file).map_err(anyhow::Error::msg)?;
        let algorithm = TsigAlgorithm::from_name(Name::from_ascii(&cfg.tsig_algorithm)?);
        let signer = TSigner::new(
            key,
            algorithm,
            Name::from_ascii(&cfg.tsig_name)?,
            TSIG_FUDGE_SECS,
        )?;
        Ok(Publisher {
            server: cfg.server.clone(),
            zone,
            name,
            ttl: dns.ttl,
            signer,
            secret_file: cfg.tsig_secret_file.display().to_string(),
        })
    }

    /// The server this publisher updates.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// The unsigned UPDATE that makes the name's A and AAAA sets exactly `ips`.
    pub fn update_message(&self, ips: &[IpAddr]) -> Message {
        let a = Record::update0(self.name.clone(), 0, RecordType::A);
        let mut msg = delete_rrset(a, self.zone.clone(), false);
        let aaaa = Record::update0(self.name.clone(), 0, RecordType::AAAA);
        msg.add_update(delete_rrset(aaaa, self.zone.clone(), false).authorities[0].clone());
        msg.add_updates(ips.iter().map(|ip| {
            let rdata = match ip {
                IpAddr::V4(v4) => RData::A(A(*v4)),
                IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
            };
            Record::from_rdata(self.name.clone(), self.ttl, rdata)
        }));
        msg
    }

    /// The A and AAAA addresses the server holds for the name now, sorted.
    pub async fn current(&self) -> Result<Vec<IpAddr>, PushError> {
        let mut ips = Vec::new();
        for rtype in [RecordType::A, RecordType::AAAA] {
            let mut query = Message::query();
            query.metadata.recursion_desired = false;
            query.add_query(Query::query(self.name.clone(), rtype));
            let request = query
                .to_vec()
                .map_err(|e| self.bad(format!("cannot encode a query: {e}")))?;
            let answer = self.exchange_within(&request).await?;
            let reply = Message::from_vec(&answer)
                .map_err(|e| self.bad(format!("undecodable answer: {e}")))?;
            if reply.id != query.id {
                return Err(self.bad(format!("answer id {} for query {}", reply.id, query.id)));
            }
            if !matches!(
                reply.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            ) {
                return Err(self.bad(format!("{rtype} query answered {}", reply.response_code)));
            }
            ips.extend(reply.answers.iter().filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                _ => None,
            }));
        }
        ips.sort();
        ips.dedup();
        Ok(ips)
    }

    /// Makes the server's set exactly `ips` (sorted), asking first and updating only when
    /// it differs. Returns whether an update was sent.
    pub async fn sync(&self, ips: &[IpAddr]) -> Result<bool, PushError> {
        match self.current().await {
            Ok(current) if current == ips => return Ok(false),
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "cannot read the current set; updating anyway"),
        }
        self.push(ips).await.map(|()| true)
    }

    /// Makes the server's set exactly `ips`; Ok once the server has confirmed with a
    /// correctly signed NOERROR.
    pub async fn push(&self, ips: &[IpAddr]) -> Result<(), PushError> {
        let mut msg = self.update_message(ips);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut verifier = msg
            .finalize(&self.signer, now)
            .map_err(|e| self.bad(format!("cannot sign the update: {e}")))?
            .ok_or_else(|| self.bad("the signer made no verifier".into()))?;
        let request = msg
            .to_vec()
            .map_err(|e| self.bad(format!("cannot encode the update: {e}")))?;
        let answer = self.exchange_within(&request).await?;
        let reply =
            Message::from_vec(&answer).map_err(|e| self.bad(format!("undecodable answer: {e}")))?;
        if reply.id != msg.id {
            return Err(self.bad(format!("answer id {} for query {}", reply.id, msg.id)));
        }
        if reply.response_code != ResponseCode::NoError {
            let tsig = reply.signature().and_then(|s| s.data.error);
            return Err(PushError::Refused {
                server: self.server.clone(),
                rcode: reply.response_code,
                tsig,
                hint: self.hint(reply.response_code, tsig),
            });
        }
        verifier
            .verify(&answer)
            .map_err(|e| self.bad(format!("NOERROR without a valid TSIG signature: {e}")))?;
        Ok(())
    }

    async fn exchange_within(&self, request: &[u8]) -> Result<Vec<u8>, PushError> {
        tokio::time::timeout(UPDATE_TIMEOUT, self.exchange(request))
            .await
            .map_err(|_| PushError::Timeout {
                server: self.server.clone(),
            })?
    }

    /// One request and its answer over TCP (RFC 1035 §4.2.2 length prefix).
    async fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, PushError> {
        let io = |e: std::io::Error| PushError::Connect {
            server: self.server.clone(),
            detail: e.to_string(),
        };
        let mut stream = TcpStream::connect(&self.server).await.map_err(io)?;
        let len = u16::try_from(request.len()).map_err(|_| self.bad("update too large".into()))?;
        let mut framed = Vec::with_capacity(request.len() + 2);
        framed.extend_from_slice(&len.to_be_bytes());
        framed.extend_from_slice(request);
        stream.write_all(&framed).await.map_err(io)?;
        let len = usize::from(stream.read_u16().await.map_err(io)?);
        if len > ANSWER_MAX_BYTES {
            return Err(self.bad(format!("answer of {len} bytes")));
        }
        let mut answer = vec![0; len];
        stream.read_exact(&mut answer).await.map_err(io)?;
        Ok(answer)
    }

    fn bad(&self, detail: String) -> PushError {
        PushError::BadAnswer {
            server: self.server.clone(),
            detail,
        }
    }

    /// What the operator should look at for a refusal.
    fn hint(&self, rcode: ResponseCode, tsig: Option<TsigError>) -> String {
        let key = self.signer.signer_name();
        match (rcode, tsig) {
            (_, Some(TsigError::BadSig)) => format!(
                "the server knows key {key} but the secret in {} does not match its secret",
                self.secret_file
            ),
            (_, Some(TsigError::BadKey)) => format!(
                "the server has no key named {key} with algorithm {}; check dns.rfc2136.tsig_name \
                 and tsig_algorithm against the server's key statement",
                self.signer.algorithm().to_name()
            ),
            (_, Some(TsigError::BadTime)) => {
                format!("our clock and the server's differ by more than {TSIG_FUDGE_SECS}s")
            }
            (ResponseCode::Refused, _) => format!(
                "the server's update-policy does not let key {key} change {} A/AAAA in zone {}",
                self.name, self.zone
            ),
            (ResponseCode::NotAuth, _) | (ResponseCode::NotZone, _) => format!(
                "the server is not the primary for zone {} (dns.rfc2136.zone / server)",
                self.zone
            ),
            _ => "see the DNS server's log".into(),
        }
    }
}

/// The RFC 1035/2136 mnemonic, as dig and BIND's logs print it.
fn rcode_name(rcode: ResponseCode) -> String {
    let name = match rcode {
        ResponseCode::FormErr => "FORMERR",
        ResponseCode::ServFail => "SERVFAIL",
        ResponseCode::NXDomain => "NXDOMAIN",
        ResponseCode::NotImp => "NOTIMP",
        ResponseCode::Refused => "REFUSED",
        ResponseCode::YXDomain => "YXDOMAIN",
        ResponseCode::YXRRSet => "YXRRSET",
        ResponseCode::NXRRSet => "NXRRSET",
        ResponseCode::NotAuth => "NOTAUTH",
        ResponseCode::NotZone => "NOTZONE",
        other => return format!("rcode {}", u16::from(other)),
    };
    name.to_string()
}

fn tsig_error_name(e: TsigError) -> &'static str {
    match e {
        TsigError::BadSig => "BADSIG",
        TsigError::BadKey => "BADKEY",
        TsigError::BadTime => "BADTIME",
        TsigError::BadTrunc => "BADTRUNC",
        TsigError::Unknown(_) => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rfc2136Section;

    fn publisher() -> (Publisher, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("mxmesh-rfc2136-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("k");
        std::fs::write(&key, "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0IQ==").unwrap();
        let dns = DnsSection {
            listen: None,
            name: "mx.example.com.".into(),
            publish_address: "127.0.0.1".parse().unwrap(),
            ttl: 30,
            rfc2136: None,
        };
        let cfg = Rfc2136Section {
            server: "127.0.0.1:1".into(),
            zone: "example.com.".into(),
            tsig_name: "mxmesh.".into(),
            tsig_algorithm: "hmac-sha256".into(),
            tsig_secret_file: key,
        };
        (Publisher::new(&dns, &cfg).unwrap(), dir)
    }

    #[test]
    fn update_replaces_both_sets_with_exactly_the_addresses() {
        let (p, dir) = publisher();
        let ips: Vec<IpAddr> = vec!["127.0.0.1".parse().unwrap(), "::2".parse().unwrap()];
        let msg = p.update_message(&ips);
        assert_eq!(msg.zones()[0].name().to_string(), "example.com.");
        let ups = msg.updates();
        assert_eq!(ups.len(), 4, "{ups:?}");
        assert!(matches!(ups[0].data, RData::Update0(RecordType::A)));
        assert!(matches!(ups[1].data, RData::Update0(RecordType::AAAA)));
        assert_eq!(ups[2].data, RData::A(A([127, 0, 0, 1].into())));
        assert_eq!(ups[3].data, RData::AAAA(AAAA("::2".parse().unwrap())));
        assert!(ups[2..].iter().all(|r| r.ttl == 30));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn unreachable_server_is_named() {
        let (p, dir) = publisher();
        let err = p.push(&["127.0.0.1".parse().unwrap()]).await.unwrap_err();
        assert!(matches!(err, PushError::Connect { .. }), "{err}");
        assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
