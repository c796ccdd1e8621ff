//! The automerge sync protocol between two replicas, one [`SyncSession`] per peer.

use automerge::sync::{Message, State, SyncDoc};

use super::{RuleBook, RuleBookError};

/// Largest sync message accepted, in bytes. A first sync carries the whole change log,
/// so this bounds the size of a rule book's history that can reach a new replica in one
/// message; larger messages are refused before they are decoded.
pub const SYNC_MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The state of a sync with one peer over a reliable, in-order stream.
///
/// Loop: each side calls [`SyncSession::generate`] and sends what it returns, and feeds
/// every message it receives to [`SyncSession::receive`], until neither side generates
/// anything. After any error from `receive` the caller must [`SyncSession::reset`] the
/// session (or drop it) and start over: the peer's view it holds may be inconsistent.
///
/// A new (or reset) session's first message asks the peer to forget which changes it has
/// already sent on its side of the conversation: a peer that restarted may have lost
/// changes it received but had not stored, and a peer that still believes them delivered
/// would never send them again (the two sides then exchange heads forever).
#[derive(Debug)]
pub struct SyncSession {
    state: State,
}

impl Default for SyncSession {
    fn default() -> Self {
        SyncSession {
            state: fresh_state(),
        }
    }
}

/// A sync state whose first message restarts the peer's side of the conversation.
fn fresh_state() -> State {
    State {
        needs_reset: true,
        ..State::new()
    }
}

impl SyncSession {
    /// A session that knows nothing of the peer yet.
    pub fn new() -> Self {
        SyncSession::default()
    }

    /// Forgets what is known of the peer; the next exchange starts from scratch, and asks
    /// the peer to start from scratch too.
    pub fn reset(&mut self) {
        self.state = fresh_state();
    }

    /// The next message for the peer, or `None` when it is up to date or a reply is awaited.
    ///
    /// A message can exceed [`SYNC_MESSAGE_BYTES_MAX`] only when the book's history does;
    /// the peer then refuses it.
    pub fn generate(&mut self, book: &RuleBook) -> Option<Vec<u8>> {
        book.doc
            .generate_sync_message(&mut self.state)
            .map(Message::encode)
    }

    /// Applies a message from the peer to `book`. Malformed or oversized input is an error,
    /// never a panic; reset the session after an error.
    pub fn receive(&mut self, book: &mut RuleBook, message: &[u8]) -> Result<(), RuleBookError> {
        if message.len() > SYNC_MESSAGE_BYTES_MAX {
            return Err(RuleBookError::SyncMessageTooLarge {
                size: message.len(),
                max: SYNC_MESSAGE_BYTES_MAX,
            });
        }
        let message =
            Message::decode(message).map_err(|error| RuleBookError::SyncDecode(Box::new(error)))?;
        book.doc
            .receive_sync_message(&mut self.state, message)
            .map_err(|error| RuleBookError::SyncApply(Box::new(error)))
    }
}
