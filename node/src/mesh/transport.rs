//! The transport seam: request/response and one-way messages between nodes, each carrying
//! the sender's authenticated identity. [`super::quic::QuicTransport`] is the real one;
//! [`super::memory::MemoryTransport`] is its in-memory twin for tests and the simulator. One
//! contract test suite (`contract_tests.rs`) holds both to the same behaviour.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

/// A boxed, sendable future (the crate has no async-trait).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The other end of a message.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Peer {
    /// From the peer's TLS certificate (or its registration, in memory); never from a payload.
    pub node_id: String,
    /// The peer's address as seen on the wire: the dialled address for responses; for requests,
    /// the sender's UDP source address (its listen address when it binds a specific IP).
    pub addr: SocketAddr,
}

/// What a message is about; selects the handler logic. A `u16` on the wire, so that a newer
/// node can add kinds. Kinds from 1 to [`MessageKind::MAX`] are the mesh's channels: the
/// mesh's own (gossip, RPC) and one per replicated type of the application, which picks
/// its number ([`super::app::SyncSpec::kind`]); a kind above is refused by the transport,
/// one below that nobody serves by the handler, both with `UNKNOWN_KIND`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageKind(pub u16);

impl MessageKind {
    /// Membership and liveness (chitchat).
    pub const GOSSIP: MessageKind = MessageKind(1);
    /// Rule book synchronisation (the number the application's rule book uses).
    pub const RULES_SYNC: MessageKind = MessageKind(2);
    /// Quarantine index synchronisation (the number the application's index uses).
    pub const INDEX_SYNC: MessageKind = MessageKind(3);
    /// A call the application answers ([`super::app::MeshApp::rpc`]).
    pub const RPC: MessageKind = MessageKind(4);
    /// Bayes corpus synchronisation (the number the application's corpus uses).
    pub const BAYES_SYNC: MessageKind = MessageKind(5);
    /// The highest kind this build's transport hands to its handler.
    pub const MAX: u16 = 63;

    /// Whether the transport hands this kind to the handler (1 to [`MessageKind::MAX`]).
    pub fn is_known(self) -> bool {
        (1..=Self::MAX).contains(&self.0)
    }

    fn name(self) -> Option<&'static str> {
        Some(match self {
            MessageKind::GOSSIP => "gossip",
            MessageKind::RULES_SYNC => "rules-sync",
            MessageKind::INDEX_SYNC => "index-sync",
            MessageKind::RPC => "rpc",
            MessageKind::BAYES_SYNC => "bayes-sync",
            _ => return None,
        })
    }
}

impl fmt::Debug for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "kind-{}", self.0),
        }
    }
}

/// Why a remote node refused or failed a message (carried in an error frame). Codes below
/// [`ErrorCode::APPLICATION_MIN`] belong to the transport; handlers may use the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The frame's wire version is not one this node speaks.
    pub const UNSUPPORTED_VERSION: ErrorCode = ErrorCode(1);
    /// The message kind is not one this node knows.
    pub const UNKNOWN_KIND: ErrorCode = ErrorCode(2);
    /// The body exceeds `FRAME_BODY_BYTES_MAX`.
    pub const TOO_LARGE: ErrorCode = ErrorCode(3);
    /// The frame could not be read (bad header, truncated, too slow).
    pub const MALFORMED: ErrorCode = ErrorCode(4);
    /// The node is shutting down or overloaded.
    pub const UNAVAILABLE: ErrorCode = ErrorCode(5);
    /// The handler did not answer in time.
    pub const TIMEOUT: ErrorCode = ErrorCode(6);
    /// The handler failed, with no more specific code.
    pub const HANDLER: ErrorCode = ErrorCode(100);
    /// First code free for handlers' own meanings.
    pub const APPLICATION_MIN: ErrorCode = ErrorCode(1000);
}

/// An error answered by the remote node (its handler, or its transport layer).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("error {} from peer: {message}", code.0)]
pub struct RemoteError {
    /// What went wrong, as a wire error code.
    pub code: ErrorCode,
    /// The remote side's explanation.
    pub message: String,
}

impl RemoteError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RemoteError {
        RemoteError {
            code,
            message: message.into(),
        }
    }

    /// A handler failure with the generic [`ErrorCode::HANDLER`] code.
    pub fn handler(message: impl Into<String>) -> RemoteError {
        RemoteError::new(ErrorCode::HANDLER, message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No connection could be made (refused handshake, link down, peer in reconnect backoff).
    #[error("{addr}: unreachable: {reason}")]
    Unreachable { addr: SocketAddr, reason: String },
    /// No answer within the caller's timeout.
    #[error("{addr}: no answer within {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    /// The connection broke while the message was in flight.
    #[error("{addr}: connection lost: {reason}")]
    ConnectionLost { addr: SocketAddr, reason: String },
    /// The peer answered with an error frame.
    #[error("{addr}: {error}")]
    Remote {
        addr: SocketAddr,
        error: RemoteError,
    },
    /// The peer's answer was not a valid frame.
    #[error("{addr}: bad answer: {reason}")]
    Protocol { addr: SocketAddr, reason: String },
    /// Our own message is larger than `FRAME_BODY_BYTES_MAX`; nothing was sent.
    #[error("message of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge { len: usize, max: usize },
    /// This transport was closed.
    #[error("transport closed")]
    Closed,
}

/// Serves inbound messages. For one-way messages (`send`) the returned body is discarded.
pub trait Handler: Send + Sync + 'static {
    fn handle(
        &self,
        from: Peer,
        kind: MessageKind,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>>;
}

/// A [`Handler`] from a closure: `handler_fn(|from, kind, body| Box::pin(async move { … }))`.
pub fn handler_fn<F>(f: F) -> Arc<dyn Handler>
where
    F: Fn(Peer, MessageKind, Bytes) -> BoxFuture<'static, Result<Bytes, RemoteError>>
        + Send
        + Sync
        + 'static,
{
    struct FnHandler<F>(F);
    impl<F> Handler for FnHandler<F>
    where
        F: Fn(Peer, MessageKind, Bytes) -> BoxFuture<'static, Result<Bytes, RemoteError>>
            + Send
            + Sync
            + 'static,
    {
        fn handle(
            &self,
            from: Peer,
            kind: MessageKind,
            body: Bytes,
        ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
            (self.0)(from, kind, body)
        }
    }
    Arc::new(FnHandler(f))
}

/// Messaging between nodes. Implementations authenticate the peer; a [`Peer`] they report
/// is who the peer *is*, not who it says it is.
pub trait Transport: Send + Sync + 'static {
    /// The address this node listens on (what peers dial).
    fn local_addr(&self) -> SocketAddr;

    /// This node's id, as peers see it.
    fn local_node_id(&self) -> &str;

    /// Sends `body` to the node at `to` and waits for its answer, at most `timeout` in all
    /// (including connecting). Returns the responder's authenticated identity with the body.
    fn request(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        body: Bytes,
        timeout: Duration,
    ) -> BoxFuture<'_, Result<(Peer, Bytes), TransportError>>;

    /// One-way message: done when handed to the peer's connection (not when handled). Errors
    /// mean it was certainly not delivered; `Ok` does not prove it was handled.
    fn send(
        &self,
        to: SocketAddr,
        kind: MessageKind,
        body: Bytes,
    ) -> BoxFuture<'_, Result<(), TransportError>>;

    /// Stops accepting, lets in-flight inbound messages finish (bounded), closes connections.
    /// Later calls to `request`/`send` fail with [`TransportError::Closed`].
    fn close(&self) -> BoxFuture<'_, ()>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_print_and_classify() {
        assert_eq!(MessageKind::RULES_SYNC.to_string(), "rules-sync");
        assert_eq!(MessageKind(77).to_string(), "kind-77");
        assert!(MessageKind::RPC.is_known());
        assert!(!MessageKind(0).is_known());
        assert!(!MessageKind(77).is_known());
    }
}
