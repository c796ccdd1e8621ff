//! chitchat carried over the mesh transport (QUIC with mutual TLS).
//!
//! chitchat 0.13 lets a program bring its own `Transport`/`Socket`, but keeps the wire
//! codec of `ChitchatEnvelope` crate-private. [`EnvelopeCodec`] therefore encodes and
//! decodes envelopes with chitchat's own public `UdpSocket` over a private loopback pair
//! (127.0.0.1, ephemeral ports, this process only): the bytes chitchat would have put on
//! the wire are captured and carried over QUIC instead, one stream per gossip message.
//!
//! Every inbound gossip message arrives with the sender's identity from its certificate.
//! A message whose sender's certificate does not name the node id it claims (in our frame)
//! is dropped, and [`Verified`] records which `(node id, address)` pairs have been proven
//! by a direct authenticated exchange (or by the node's signed claim, `super::claim`); the
//! membership view shows only those, so a node gossiping under another node's id never
//! appears as a member.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use chitchat::transport::{RecvOutcome, SendOutcome, Socket, Transport as ChitchatTransport};
use chitchat::{ChitchatEnvelope, transport::UdpSocket as ChitchatUdpSocket};
use tokio::sync::mpsc;

use super::transport::{MessageKind, Peer, Transport, TransportError};

/// Gossip messages waiting for chitchat; beyond this, new ones are dropped (gossip is
/// lossy by design and catches up on the next round).
pub const GOSSIP_INBOX_MAX: usize = 1024;
/// Bytes of gossip waiting for chitchat, at most (a 1,000-node digest is ≈ 50 KB, so
/// [`GOSSIP_INBOX_MAX`] messages alone could hold 50 MB); beyond this, new ones are dropped.
pub const GOSSIP_INBOX_BYTES_MAX: usize = 4 << 20;
/// Time allowed for the loopback codec to hand back an envelope.
const CODEC_TIMEOUT: Duration = Duration::from_millis(200);
/// chitchat's wire magic number (little endian), checked before decoding.
const CHITCHAT_MAGIC: [u8; 2] = 45_139u16.to_le_bytes();
/// Largest gossip message (chitchat sizes its messages for one UDP datagram).
pub const GOSSIP_MESSAGE_BYTES_MAX: usize = 65_507;
/// Our frame in front of chitchat's bytes: the sender's claimed node id.
const CLAIM_LEN_MAX: usize = 64;

/// Which (node id, address) pairs a direct, authenticated exchange has proven.
#[derive(Default, Debug)]
pub struct Verified {
    /// Node id → the addresses proven for it (looked up by `&str`, without allocating).
    pairs: Mutex<HashMap<String, HashSet<SocketAddr>>>,
    count: AtomicUsize,
}

/// Pairs remembered at most (a cluster of this many nodes is far beyond the design).
pub const VERIFIED_PAIRS_MAX: usize = 100_000;

impl Verified {
    pub fn record(&self, peer: &Peer) {
        let mut p = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        if self.count.load(Ordering::Relaxed) >= VERIFIED_PAIRS_MAX {
            return;
        }
        if let Some(addrs) = p.get_mut(peer.node_id.as_str()) {
            if addrs.insert(peer.addr) {
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        p.insert(peer.node_id.clone(), HashSet::from([peer.addr]));
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn is_verified(&self, node_id: &str, addr: SocketAddr) -> bool {
        let p = self.pairs.lock().unwrap_or_else(|e| e.into_inner());
        p.get(node_id).is_some_and(|a| a.contains(&addr))
    }
}

/// Encodes and decodes chitchat envelopes (see the module docs for why this way).
///
/// Loopback datagrams are delivered inside the sending syscall, so each step normally
/// completes without waiting: encoding captures with a blocking read (bounded by
/// [`CODEC_TIMEOUT`]), and decoding polls chitchat's socket once before it waits. Only when
/// the kernel has not delivered yet does the codec wait on the runtime, holding a simulated
/// clock still meanwhile ([`crate::rt::hold_for_real_io`]).
pub struct EnvelopeCodec {
    encoder: ChitchatUdpSocket,
    encoder_addr: SocketAddr,
    capture: std::net::UdpSocket,
    capture_addr: SocketAddr,
    injector: std::net::UdpSocket,
    injector_addr: SocketAddr,
    decoder: ChitchatUdpSocket,
    decoder_addr: SocketAddr,
    capture_buf: Vec<u8>,
}

impl EnvelopeCodec {
    pub async fn new() -> anyhow::Result<EnvelopeCodec> {
        let loopback: SocketAddr = "127.0.0.1:0".parse()?;
        let encoder = ChitchatUdpSocket::open(loopback).await?;
        let capture = std::net::UdpSocket::bind(loopback)?;
        capture.set_read_timeout(Some(CODEC_TIMEOUT))?;
        let injector = std::net::UdpSocket::bind(loopback)?;
        let decoder = ChitchatUdpSocket::open(loopback).await?;
        Ok(EnvelopeCodec {
            encoder_addr: encoder.local_addr()?,
            encoder,
            capture_addr: capture.local_addr()?,
            capture,
            injector_addr: injector.local_addr()?,
            injector,
            decoder_addr: decoder.local_addr()?,
            decoder,
            capture_buf: vec![0u8; GOSSIP_MESSAGE_BYTES_MAX + 1],
        })
    }

    /// The bytes chitchat puts on the wire for `envelope`.
    pub async fn encode(&mut self, envelope: ChitchatEnvelope) -> anyhow::Result<Vec<u8>> {
        let capture_addr = self.capture_addr;
        at_once_or_held(self.encoder.send(capture_addr, envelope)).await?;
        loop {
            let (n, src) = self
                .capture
                .recv_from(&mut self.capture_buf)
                .map_err(|e| anyhow::anyhow!("gossip codec: encoding did not come back: {e}"))?;
            if src == self.encoder_addr {
                return Ok(self.capture_buf[..n].to_vec());
            }
        }
    }

    /// The envelope in `bytes`, or an error for anything chitchat would not accept.
    pub async fn decode(&mut self, bytes: &[u8]) -> anyhow::Result<ChitchatEnvelope> {
        if bytes.len() > GOSSIP_MESSAGE_BYTES_MAX || !bytes.starts_with(&CHITCHAT_MAGIC) {
            anyhow::bail!("not a chitchat message");
        }
        self.injector.send_to(bytes, self.decoder_addr)?;
        let from = self.injector_addr;
        let decoder = &mut self.decoder;
        let decode = async {
            loop {
                let out = decoder.recv().await?;
                if out.from_addr == from {
                    return anyhow::Ok(out.envelope);
                }
            }
        };
        tokio::time::timeout(CODEC_TIMEOUT, at_once_or_held(decode))
            .await
            .map_err(|_| anyhow::anyhow!("gossip codec: undecodable chitchat message"))?
    }
}

/// Polls `fut` once; if it is not done (the kernel has not delivered yet), waits for it
/// with a simulated clock held still, so no timer fires because of kernel latency.
async fn at_once_or_held<F: std::future::Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    if let std::task::Poll::Ready(out) = futures::poll!(fut.as_mut()) {
        return out;
    }
    let _hold = crate::rt::hold_for_real_io();
    fut.await
}

/// Wraps chitchat's bytes with the sender's claimed id: `len:u8 id bytes`.
pub fn frame(claimed_id: &str, chitchat_bytes: &[u8]) -> Bytes {
    let id = claimed_id.as_bytes();
    let mut out = Vec::with_capacity(1 + id.len() + chitchat_bytes.len());
    out.push(id.len().min(CLAIM_LEN_MAX) as u8);
    out.extend_from_slice(&id[..id.len().min(CLAIM_LEN_MAX)]);
    out.extend_from_slice(chitchat_bytes);
    Bytes::from(out)
}

/// Splits a gossip frame; `None` when malformed.
pub fn unframe(body: &[u8]) -> Option<(&str, &[u8])> {
    let (&len, rest) = body.split_first()?;
    let len = usize::from(len);
    if len == 0 || len > CLAIM_LEN_MAX || rest.len() < len {
        return None;
    }
    let id = std::str::from_utf8(&rest[..len]).ok()?;
    Some((id, &rest[len..]))
}

/// Where inbound gossip goes: the mesh handler pushes, the chitchat socket pulls.
#[derive(Clone)]
pub struct GossipInbox {
    tx: mpsc::Sender<(Peer, Bytes)>,
    verified: Arc<Verified>,
    queued_bytes: Arc<AtomicUsize>,
}

impl GossipInbox {
    /// Accepts a gossip frame from an authenticated peer. Frames whose claimed id is not
    /// the certificate's are dropped: they change nothing.
    pub fn deliver(&self, from: Peer, body: Bytes) -> Result<(), &'static str> {
        let Some((claimed, _)) = unframe(&body) else {
            return Err("malformed gossip frame");
        };
        if claimed != from.node_id {
            tracing::warn!(cert = %from.node_id, claimed, addr = %from.addr, "gossip under another node's id dropped");
            return Err("claimed node id does not match the certificate");
        }
        self.verified.record(&from);
        let len = body.len();
        if self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len > GOSSIP_INBOX_BYTES_MAX {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            return Err("gossip inbox full (bytes)");
        }
        self.tx.try_send((from, body)).map_err(|_| {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
            "gossip inbox full"
        })
    }
}
/// The receiving end of a [`GossipInbox`], handed to [`MeshGossipTransport::new`].
pub struct GossipReceiver {
    rx: mpsc::Receiver<(Peer, Bytes)>,
    queued_bytes: Arc<AtomicUsize>,
}

impl GossipReceiver {
    async fn recv(&mut self) -> Option<(Peer, Bytes)> {
        let (from, body) = self.rx.recv().await?;
        self.queued_bytes.fetch_sub(body.len(), Ordering::Relaxed);
        Some((from, body))
    }
}

/// The inbox the mesh handler feeds and the receiver chitchat's socket reads.
pub fn gossip_channel(verified: Arc<Verified>) -> (GossipInbox, GossipReceiver) {
    let (tx, rx) = mpsc::channel(GOSSIP_INBOX_MAX);
    let queued_bytes = Arc::new(AtomicUsize::new(0));
    let inbox = GossipInbox {
        tx,
        verified,
        queued_bytes: queued_bytes.clone(),
    };
    (inbox, GossipReceiver { rx, queued_bytes })
}

/// chitchat's transport, over the mesh transport.
pub struct MeshGossipTransport {
    transport: Arc<dyn Transport>,
    inbox: Mutex<Option<GossipReceiver>>,
    bytes_sent: Arc<AtomicU64>,
}

impl MeshGossipTransport {
    /// `bytes_sent` counts the gossip payload handed to the transport (before QUIC framing
    /// and encryption), for the `mxmesh_gossip_bytes_sent_total` metric.
    pub fn new(
        transport: Arc<dyn Transport>,
        receiver: GossipReceiver,
        bytes_sent: Arc<AtomicU64>,
    ) -> MeshGossipTransport {
        MeshGossipTransport {
            transport,
            inbox: Mutex::new(Some(receiver)),
            bytes_sent,
        }
    }
}
#[async_trait]
impl ChitchatTransport for MeshGossipTransport {
    async fn open(&self, _listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        let inbox = self
            .inbox
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| anyhow::anyhow!("the gossip socket is already open"))?;
        Ok(Box::new(GossipSocket {
            transport: self.transport.clone(),
            inbox,
            codec: EnvelopeCodec::new().await?,
            bytes_sent: self.bytes_sent.clone(),
        }))
    }
}

struct GossipSocket {
    transport: Arc<dyn Transport>,
    inbox: GossipReceiver,
    codec: EnvelopeCodec,
    bytes_sent: Arc<AtomicU64>,
}

#[async_trait]
impl Socket for GossipSocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.transport.local_addr())
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: ChitchatEnvelope,
    ) -> anyhow::Result<SendOutcome> {
        let bytes = self.codec.encode(envelope).await?;
        let body = frame(self.transport.local_node_id(), &bytes);
        let num_bytes_sent = body.len();
        self.bytes_sent
            .fetch_add(num_bytes_sent as u64, Ordering::Relaxed);
        // Gossip is lossy by design: an unreachable peer is not a broken transport. The send
        // runs in its own task so one slow peer never stalls the gossip loop.
        let transport = self.transport.clone();
        tokio::spawn(async move {
            if let Err(e) = transport.send(to, MessageKind::GOSSIP, body).await
                && !matches!(e, TransportError::Closed)
            {
                tracing::debug!(%to, error = %e, "gossip not delivered");
            }
        });
        Ok(SendOutcome { num_bytes_sent })
    }

    async fn recv(&mut self) -> anyhow::Result<RecvOutcome> {
        loop {
            let (from, body) = self
                .inbox
                .recv()
                .await
                .ok_or_else(|| anyhow::anyhow!("gossip inbox closed"))?;
            let Some((_, chitchat_bytes)) = unframe(&body) else {
                continue;
            };
            match self.codec.decode(chitchat_bytes).await {
                Ok(envelope) => {
                    return Ok(RecvOutcome {
                        from_addr: from.addr,
                        envelope,
                        num_bytes_received: body.len(),
                    });
                }
                Err(e) => {
                    tracing::debug!(from = %from.node_id, error = %e, "gossip message dropped")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_refuse_garbage() {
        let f = frame("mx1", b"abc");
        assert_eq!(unframe(&f), Some(("mx1", &b"abc"[..])));
        assert_eq!(unframe(b""), None);
        assert_eq!(unframe(&[0]), None);
        assert_eq!(unframe(&[5, b'a']), None);
        assert_eq!(unframe(&[200; 300]), None);
    }
    #[test]
    fn gossip_claiming_another_nodes_id_changes_nothing() {
        let verified = Arc::new(Verified::default());
        let (inbox, mut rx) = gossip_channel(verified.clone());
        let peer = Peer {
            node_id: "mx9".into(),
            addr: "127.0.0.9:7946".parse().unwrap(),
        };
        assert!(inbox.deliver(peer.clone(), frame("mx2", b"x")).is_err());
        assert!(rx.rx.try_recv().is_err(), "nothing reaches chitchat");
        assert!(!verified.is_verified("mx2", peer.addr));
        assert!(!verified.is_verified("mx9", peer.addr));
        assert!(inbox.deliver(peer.clone(), frame("mx9", b"x")).is_ok());
        assert!(verified.is_verified("mx9", peer.addr));
        assert!(rx.rx.try_recv().is_ok());
    }

    #[test]
    fn the_inbox_is_bounded_in_bytes_and_frees_what_chitchat_took() {
        let (inbox, mut rx) = gossip_channel(Arc::new(Verified::default()));
        let peer = Peer {
            node_id: "mx2".into(),
            addr: "127.0.0.2:7946".parse().unwrap(),
        };
        let big = frame("mx2", &vec![0u8; GOSSIP_INBOX_BYTES_MAX / 2]);
        assert!(inbox.deliver(peer.clone(), big.clone()).is_ok());
        assert_eq!(
            inbox.deliver(peer.clone(), big.clone()),
            Err("gossip inbox full (bytes)")
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert!(rt.block_on(rx.recv()).is_some());
        assert!(
            inbox.deliver(peer, big).is_ok(),
            "room again once chitchat took one"
        );
    }

    #[tokio::test]
    async fn codec_round_trips_a_real_envelope() {
        let mut c = EnvelopeCodec::new().await.unwrap();
        let env = ChitchatEnvelope {
            version: chitchat::ProtocolVersion::V0,
            message: chitchat::ChitchatMessage::BadCluster,
        };
        let bytes = c.encode(env).await.unwrap();
        assert!(bytes.starts_with(&CHITCHAT_MAGIC));
        let back = c.decode(&bytes).await.unwrap();
        assert_eq!(back.message, chitchat::ChitchatMessage::BadCluster);
    }

    #[tokio::test]
    async fn codec_refuses_garbage_quickly() {
        let mut c = EnvelopeCodec::new().await.unwrap();
        assert!(c.decode(b"not chitchat").await.is_err());
        let mut fake = CHITCHAT_MAGIC.to_vec();
        fake.extend_from_slice(&[9, 9, 9, 9]);
        assert!(c.decode(&fake).await.is_err());
    }
}
