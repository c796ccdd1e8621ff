//! The application seam: what a program built on the mesh plugs in. The mesh runs the
//! loops (publishing, one sync loop per replicated type, periodic jobs), picks the peers
//! (live members, a bounded fan-out window per round), bounds the rounds, and routes
//! inbound messages; the application says what to publish, what each replicated type
//! exchanges, and how to answer an `RPC`. The mesh interprets none of it.
//!
//! A replicated type is one implementation of [`PullSync`] or [`SessionSync`] (plus its
//! CRDT), handed to the mesh in [`MeshApp::replicas`]:
//!
//! - **pull** (version vectors): the asker sends what it has, the answerer what the asker
//!   lacks, until an answer changes nothing or [`SyncSpec::rounds_max`] is reached. Fits
//!   per-owner logs (the quarantine index).
//! - **session** (a conversation): both sides keep a session per peer and exchange
//!   messages until neither has anything to say. Fits automerge documents (the rule book).
//!
//! Either kind may publish a digest of its copy ([`Replicated::digest`]); the mesh then
//! syncs only with peers whose published digest differs from ours.

use std::time::Duration;

use bytes::Bytes;

use super::transport::{BoxFuture, MessageKind, Peer, RemoteError};

/// What the application supplies to a running mesh. Held weakly by the mesh: when the
/// application is dropped, the mesh's loops end and inbound messages are refused.
pub trait MeshApp: Send + Sync + 'static {
    /// Key-values this node publishes in gossip besides the mesh's own
    /// ([`super::members::keys`]) and its replicas'; read every gossip interval (only
    /// changes are sent).
    fn published(&self) -> Vec<(String, String)>;

    /// The replicated types; the mesh runs one sync loop for each, in this order. Read
    /// once, when the mesh starts.
    fn replicas(&self) -> Vec<Replica>;

    /// Answers an `RPC` message from an authenticated peer. Refusals the asker should
    /// see use codes from [`super::ErrorCode::APPLICATION_MIN`] up.
    fn rpc(
        self: std::sync::Arc<Self>,
        from: Peer,
        body: Bytes,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>>;

    /// Work to run on a fixed tick while the mesh runs (started after the sync loops,
    /// stopped with the mesh). Read once, when the mesh starts.
    fn jobs(&self) -> Vec<Job> {
        Vec::new()
    }

    /// One run of the job named `name` (from [`MeshApp::jobs`]).
    fn run_job(&self, name: &'static str) -> BoxFuture<'_, ()> {
        let _ = name;
        Box::pin(async {})
    }
}

/// A job of [`MeshApp::jobs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Job {
    /// Passed back to [`MeshApp::run_job`].
    pub name: &'static str,
    /// Time between two runs (the first runs at once).
    pub interval: Duration,
}

/// How the mesh schedules one replicated type's sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSpec {
    /// For logs and for the self-check switch ([`super::self_check::set_sync_broken`]).
    pub name: &'static str,
    /// The message kind its exchanges travel on (one per replicated type).
    pub kind: MessageKind,
    /// Time between two sync rounds.
    pub interval: Duration,
    /// Peers one round talks to at most (a window that moves with the round).
    pub peers_max: usize,
    /// Request/response exchanges one sync with one peer takes at most.
    pub rounds_max: usize,
    /// The gossip key under which each node publishes [`Replicated::digest`]; `None` when
    /// the type has no digest (then every live peer is a candidate every round).
    pub digest_key: Option<&'static str>,
}

/// What every replicated type tells the mesh.
pub trait Replicated: Send + Sync + 'static {
    /// Its schedule and channel.
    fn spec(&self) -> SyncSpec;

    /// A digest of this node's copy, published under [`SyncSpec::digest_key`]: a peer
    /// publishing the same one is not synced with. `None` without a digest key.
    fn digest(&self) -> Option<String> {
        None
    }

    /// Other key-values this type publishes (e.g. its own position), after the digest.
    fn published(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// A pull-style replicated type (see the module docs).
pub trait PullSync: Replicated {
    /// The asker's side of one exchange: what this node has (its version vector).
    fn request(&self) -> anyhow::Result<Vec<u8>>;

    /// The answerer's side: what the asker, having `request`, lacks.
    fn serve(&self, from: &Peer, request: &[u8]) -> Result<Vec<u8>, RemoteError>;

    /// Applies an answer; `true` when it changed this node's copy (then the mesh asks
    /// again, up to [`SyncSpec::rounds_max`]).
    fn apply(&self, answer: &[u8]) -> anyhow::Result<bool>;
}

/// A session-style replicated type (see the module docs). The mesh keeps one session per
/// peer and direction, and resets a session whose exchange failed.
pub trait SessionSync: Replicated {
    /// One side's state of the conversation with one peer.
    type Session: Default + Send + 'static;

    /// The next message for the peer; `None` or empty when there is nothing to say.
    fn generate(&self, session: &mut Self::Session) -> Option<Vec<u8>>;

    /// Takes in a message from the peer; an error names what was refused.
    fn receive<'a>(
        &'a self,
        session: &'a mut Self::Session,
        message: &'a [u8],
    ) -> BoxFuture<'a, anyhow::Result<()>>;

    /// Forgets what the session knows of the peer (after a failed exchange, or a
    /// conversation that did not quiet down within [`SyncSpec::rounds_max`]); the next
    /// exchange should ask the peer to start over as well.
    fn reset(session: &mut Self::Session);
}

/// One replicated type as handed to the mesh ([`Replica::pull`], [`Replica::session`]).
/// The mesh holds the type weakly: the application owns it.
pub struct Replica(pub(super) std::sync::Arc<dyn super::sync::Engine>);

impl Replica {
    /// A pull-style type.
    pub fn pull<P: PullSync>(replica: &std::sync::Arc<P>) -> Replica {
        Replica(std::sync::Arc::new(super::sync::PullEngine::new(replica)))
    }

    /// A session-style type.
    pub fn session<S: SessionSync>(replica: &std::sync::Arc<S>) -> Replica {
        Replica(std::sync::Arc::new(super::sync::SessionEngine::new(
            replica,
        )))
    }
}
