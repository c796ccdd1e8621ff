//! The mesh: how nodes talk to each other (README, `[mesh]`; ARCHITECTURE.md), as a
//! library. It knows transport, gossip, membership, identity claims, fan-out and the sync
//! engines; it knows nothing of mail. The application plugs in through [`app::MeshApp`]
//! (what to publish, its replicated types, its RPC answers); this node's application is
//! the `cluster` module.
//!
//! Only this module knows quinn and chitchat. Layers, each knowing only the one below:
//!
//! - [`transport`]: the seam. [`Transport`] (request/response and one-way messages), the
//!   [`Handler`] that serves inbound ones, and [`Peer`], the sender's *authenticated* identity.
//! - [`frame`]: the wire format of one message (versioned header + bounded body), pure.
//! - [`tls`]: mutual TLS that trusts the cluster CA and nothing else; the node id of a peer
//!   comes from its certificate (see `crate::ca` for issuing).
//! - [`quic`]: the real transport over quinn (`quic_peers` caches outbound connections,
//!   `quic_server` serves inbound streams, `quic_streams` moves frames over streams).
//! - [`memory`]: the deterministic in-memory twin, with links that can be cut; used by tests
//!   and the partition simulator.
//! - [`gossip`]: chitchat carried over the transport; identity checks on gossip.
//! - [`members`]: the membership view from chitchat state and verified identities.
//! - [`claim`]: signed identity claims, so that a node can list a peer it has not talked to.
//! - [`app`]: the application seam — [`app::MeshApp`], and [`app::PullSync`] /
//!   [`app::SessionSync`], one of which each replicated type implements.
//! - [`sync`]: the engines that run those exchanges; [`fanout`]: the bounded set of peers
//!   one round talks to.
//! - [`service`]: [`Mesh`], the running mesh of a node: gossip, published state, the loops.
//!
//! Invariant: a message's sender is whoever the transport authenticated, never an id found
//! in a payload.

pub mod app;
pub mod claim;
pub mod fanout;
pub mod frame;
pub mod gossip;
pub mod members;
pub mod memory;
pub mod quic;
mod quic_peers;
mod quic_server;
mod quic_streams;
pub mod service;
mod sync;
pub mod tls;
mod tls_verify;
pub mod transport;

#[cfg(test)]
mod contract_tests;
#[cfg(test)]
mod quic_tests;
#[cfg(test)]
mod test_harness;

pub use app::{Job, MeshApp, PullSync, Replica, Replicated, SessionSync, SyncSpec};
pub use memory::{MemoryNetwork, MemoryTransport};
pub use quic::{QuicError, QuicTransport};
pub use service::{MemberRequestError, Mesh, SyncTraffic, self_check};
pub use sync::TrafficTotals;
pub use tls::{Identity, TlsError};
pub use transport::{
    BoxFuture, ErrorCode, Handler, MessageKind, Peer, RemoteError, Transport, TransportError,
    handler_fn,
};
