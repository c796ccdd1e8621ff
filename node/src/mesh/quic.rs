//! [`QuicTransport`]: the mesh over QUIC (quinn) with mutual TLS against the cluster CA.
//!
//! One quinn endpoint is both server and client. Outbound, there is one cached connection
//! per peer address (`quic_peers`); a failed dial puts that address in exponential backoff
//! ([`RECONNECT_BACKOFF_MIN`] doubling to [`RECONNECT_BACKOFF_MAX`]) during which requests to
//! it fail at once, without touching other peers. Each request is one bidirectional stream
//! (request frame, then response frame); each one-way message one unidirectional stream.
//! Inbound streams are served by `quic_server`. Every read is bounded in size and time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use quinn::{Connection, Endpoint, TransportConfig, VarInt};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::frame::{self, FrameHeader};
use super::quic_peers::{Connected, Peers};
use super::quic_server::{self, ServerSide};
use super::quic_streams::{ReadFrameError, read_body, read_header, write_frame};
use super::tls::{self, Identity, TlsError};
use super::transport::{BoxFuture, Handler, MessageKind, Peer, Transport, TransportError};

/// Concurrent streams a peer may open on one connection, per direction (quinn flow control).
pub const STREAMS_PER_CONNECTION_MAX: u32 = 64;
/// Inbound streams served at once over all connections; more wait (backpressure).
pub const INBOUND_STREAMS_MAX: usize = 1024;
/// Inbound connections at once; further handshakes are refused.
pub const INBOUND_CONNECTIONS_MAX: usize = 1024;
/// Peer addresses with outbound state (connection or backoff) kept at once.
pub const PEER_SLOTS_MAX: usize = 4096;
/// First delay before redialling an address whose dial failed.
pub const RECONNECT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest delay before redialling.
pub const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A connection silent for this long is dead (keep-alives keep healthy ones busy).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(3);
/// Longest TLS handshake, inbound or outbound.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest time to read one inbound frame, or to write one response.
pub const STREAM_IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a handler may take before the request is answered with TIMEOUT.
pub const HANDLER_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest a one-way `send` may take (connect and write).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest `close` waits for in-flight inbound messages, then for peers to see the close.
pub const CLOSE_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// QUIC application close codes.
pub(crate) const CLOSE_SHUTDOWN: u32 = 0;
pub(crate) const CLOSE_BAD_PEER: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The mesh listen address cannot be bound.
    #[error("mesh listen address {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The mesh certificates cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// The QUIC transport. Cheap to clone; all clones share one endpoint. Call
/// [`Transport::close`] to stop it; the port is released once every clone is dropped.
#[derive(Clone)]
pub struct QuicTransport {
    inner: Arc<Inner>,
}

struct Inner {
    endpoint: Endpoint,
    local_addr: SocketAddr,
    node_id: String,
    peers: Peers,
    inbound_streams: Arc<Semaphore>,
    shutdown: watch::Sender<bool>,
    closed: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Without this the accept loop would keep the socket alive forever.
        self.endpoint
            .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"dropped");
    }
}

impl QuicTransport {
    /// Binds `listen` (UDP) and starts serving inbound messages with `handler`. The returned
    /// task ends after [`Transport::close`] (or when every clone is dropped).
    pub fn bind(
        listen: SocketAddr,
        identity: &Identity,
        handler: Arc<dyn Handler>,
    ) -> Result<(QuicTransport, JoinHandle<()>), QuicError> {
        let transport_config = Arc::new(transport_config());
        let mut server_config = quinn::ServerConfig::with_crypto(tls::server_config(identity)?);
        server_config.transport_config(transport_config.clone());
        let mut client_config = tls::client_config(identity)?;
        client_config.transport_config(transport_config);

        let bind_error = |source| QuicError::Bind {
            addr: listen,
            source,
        };
        let mut endpoint = Endpoint::server(server_config, listen).map_err(bind_error)?;
        endpoint.set_default_client_config(client_config);
        let local_addr = endpoint.local_addr().map_err(bind_error)?;

        let (shutdown, shutdown_rx) = watch::channel(false);
        let inner = Arc::new(Inner {
            endpoint: endpoint.clone(),
            local_addr,
            node_id: identity.node_id.clone(),
            peers: Peers::default(),
            inbound_streams: Arc::new(Semaphore::new(INBOUND_STREAMS_MAX)),
            shutdown,
            closed: AtomicBool::new(false),
        });
        let server = ServerSide {
            endpoint,
            handler,
            inbound_streams: inner.inbound_streams.clone(),
            shutdown: shutdown_rx,
        };
        let task = tokio::spawn(quic_server::accept_loop(server));
        tracing::debug!(addr = %local_addr, node = %identity.node_id, "mesh endpoint bound");
        Ok((QuicTransport { inner }, task))
    }

    fn check_open(&self) -> Result<(), TransportError> {
        match self.inner.closed.load(Ordering::Acquire) {
            true => Err(TransportError::Closed),
            false => Ok(()),
        }
    }

    /// The cached connection to `to`, or a new one within [`HANDSHAKE_TIMEOUT`].
    async fn connection(&self, to: SocketAddr) -> Result<Connected, TransportError> {
        let dial = || async move {
            tokio::time::timeout(HANDSHAKE_TIMEOUT, self.dial(to))
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::Unreachable {
                        addr: to,
                        reason: format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
                    })
                })
        };
        self.inner.peers.connection(to, dial).await
    }

    async fn dial(&self, to: SocketAddr) -> Result<Connected, TransportError> {
        let unreachable = |reason: String| TransportError::Unreachable { addr: to, reason };
        let connecting = self
            .inner
            .endpoint
            .connect(to, tls::DIAL_SERVER_NAME)
            .map_err(|e| unreachable(e.to_string()))?;
        let conn = connecting.await.map_err(|e| unreachable(e.to_string()))?;
        let node_id = tls::peer_node_id(&conn).map_err(|e| {
            conn.close(VarInt::from_u32(CLOSE_BAD_PEER), b"bad certificate");
            unreachable(e.to_string())
        })?;
        tracing::debug!(peer = %to, node = %node_id, "mesh connection established");
        Ok((conn, node_id))
    }

    async fn request_inner(
        &self,
        to: SocketAddr,
        header: FrameHeader,
        body: Bytes,
        timeout: Duration,
    ) -> Result<(Peer, Bytes), TransportError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || TransportError::Timeout { addr: to, timeout };
        let (conn, node_id) = tokio::time::timeout_at(deadline, self.connection(to))
            .await
            .map_err(|_| timed_out())??;
        let exchanged = tokio::time::timeout_at(deadline, exchange(&conn, to, header, body)).await;
        match exchanged {
            Ok(Ok(body)) => Ok((Peer { node_id, addr: to }, body)),
            Ok(Err(e @ TransportError::Remote { .. })) => Err(e),
            Ok(Err(e)) => {
                self.inner.peers.forget(to, &conn);
                Err(e)
            }
            Err(_) => {
                self.inner.peers.forget(to, &conn);
                Err(timed_out())
            }
        }
    }

    async fn send_inner(
        &self,
        to: SocketAddr,
        header: FrameHeader,
        body: Bytes,
    ) -> Result<(), TransportError> {
        let (conn, _) = self.connection(to).await?;
        let lost = |reason: String| TransportError::ConnectionLost { addr: to, reason };
        let result = async {
            let mut send = conn.open_uni().await.map_err(|e| lost(e.to_string()))?;
            write_frame(&mut send, header, body)
                .await
                .map_err(|e| lost(e.to_string()))
        }
        .await;
        if result.is_err() {
            self.inner.peers.forget(to, &conn);
        }
        result
    }
}

/// One request on a new bidirectional stream: write the frame, read the answer.
async fn exchange(
    conn: &Connection,
    to: SocketAddr,
    header: FrameHeader,
    body: Bytes,
) -> Result<Bytes, TransportError> {
    let lost = |reason: String| TransportError::ConnectionLost { addr: to, reason };
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| lost(e.to_string()))?;
    match write_frame(&mut send, header, body).await {
        // Stopped: the peer answered without reading everything (e.g. an error); read it.
        Ok(()) | Err(quinn::WriteError::Stopped(_)) => {}
        Err(e) => return Err(lost(e.to_string())),
    }
    let protocol = |reason: String| TransportError::Protocol { addr: to, reason };
    let read_error = |e: ReadFrameError| match e {
        ReadFrameError::Read(reason) => lost(reason),
        other => protocol(other.to_string()),
    };
    let answer = read_header(&mut recv).await.map_err(read_error)?;
    if !answer.is_response() {
        return Err(protocol("answer is not a response frame".into()));
    }
    if answer.is_error() {
        let body = read_body(
            &mut recv,
            answer.body_len().min(frame::ERROR_BODY_BYTES_MAX),
        )
        .await
        .map_err(read_error)?;
        let error = frame::decode_error(&body);
        return Err(TransportError::Remote { addr: to, error });
    }
    if answer.version != frame::FRAME_VERSION {
        return Err(protocol(format!(
            "answer has frame version {}",
            answer.version
        )));
    }
    read_body(&mut recv, answer.body_len())
        .await
        .map_err(read_error)
}

fn transport_config() -> TransportConfig {
    let mut config = TransportConfig::default();
    config
        .max_concurrent_bidi_streams(VarInt::from_u32(STREAMS_PER_CONNECTION_MAX))
        .max_concurrent_uni_streams(VarInt::from_u32(STREAMS_PER_CONNECTION_MAX))
        .keep_alive_interval(Some(KEEP_ALIVE_INTERVAL));
    let idle = quinn::IdleTimeout::try_from(IDLE_TIMEOUT).expect("10 s is a valid idle timeout");
    config.max_idle_timeout(Some(idle));
    config
}

impl Transport for QuicTransport {
    fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    fn local_node_id(&self) -> &str {
        &self.inner.node_id
    }

    fn request(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(Peer, Bytes), TransportError>> {
        Box::pin(async move {
            self.check_open()?;
            let header = request_header(kind, &body)?;
            self.request_inner(to, header, body, timeout).await
        })
    }

    fn send(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        body: Bytes,
    ) -> BoxFuture<'_, Result<(), TransportError>> {
        Box::pin(async move {
            self.check_open()?;
            let header = request_header(kind, &body)?;
            tokio::time::timeout(SEND_TIMEOUT, self.send_inner(to, header, body))
                .await
                .unwrap_or(Err(TransportError::Timeout {
                    addr: to,
                    timeout: SEND_TIMEOUT,
                }))
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if self.inner.closed.swap(true, Ordering::AcqRel) {
                return;
            }
            let _ = self.inner.shutdown.send(true);
            // Every permit back means every inbound message in flight has been answered.
            let all = u32::try_from(INBOUND_STREAMS_MAX).unwrap_or(u32::MAX);
            let drained = tokio::time::timeout(
                CLOSE_DRAIN_TIMEOUT,
                self.inner.inbound_streams.acquire_many(all),
            )
            .await;
            if drained.is_err() {
                tracing::warn!(
                    "mesh close: inbound messages still running after {CLOSE_DRAIN_TIMEOUT:?}"
                );
            }
            self.inner.inbound_streams.close();
            self.inner
                .endpoint
                .close(VarInt::from_u32(CLOSE_SHUTDOWN), b"shutdown");
            self.inner.peers.clear();
            let _ =
                tokio::time::timeout(CLOSE_DRAIN_TIMEOUT, self.inner.endpoint.wait_idle()).await;
            tracing::debug!(addr = %self.inner.local_addr, "mesh endpoint closed");
        })
    }
}

fn request_header(kind: MessageKind, body: &Bytes) -> Result<FrameHeader, TransportError> {
    FrameHeader::request(kind, body.len()).map_err(|_| TransportError::TooLarge {
        len: body.len(),
        max: frame::FRAME_BODY_BYTES_MAX,
    })
}
