//! The rule book as a session-style replicated type: automerge sync conversations with the
//! peers whose published rules digest differs from ours.

use std::sync::Arc;
use std::time::Duration;

use mxmesh_crdt::rulebook::SyncSession;

use super::keys;
use crate::mesh::{BoxFuture, MessageKind, Replicated, SessionSync, SyncSpec};
use crate::rules::Rules;

/// How often peers' rule digests are compared with ours.
pub const RULES_SYNC_INTERVAL: Duration = Duration::from_millis(200);
/// Peers one rule-sync round talks to at most (those whose digest differs).
pub const RULES_SYNC_PEERS_MAX: usize = 4;
/// Request/response rounds one rule sync may take.
pub const RULES_SYNC_ROUNDS_MAX: usize = 64;

/// The rule book, synced.
pub struct RulesSync {
    rules: Arc<Rules>,
}

impl RulesSync {
    /// Syncs `rules`.
    pub fn new(rules: Arc<Rules>) -> RulesSync {
        RulesSync { rules }
    }
}

impl Replicated for RulesSync {
    fn spec(&self) -> SyncSpec {
        SyncSpec {
            name: "rules",
            kind: MessageKind::RULES_SYNC,
            interval: RULES_SYNC_INTERVAL,
            peers_max: RULES_SYNC_PEERS_MAX,
            rounds_max: RULES_SYNC_ROUNDS_MAX,
            digest_key: Some(keys::RULES_DIGEST),
        }
    }

    fn digest(&self) -> Option<String> {
        Some(self.rules.digest())
    }
}

impl SessionSync for RulesSync {
    type Session = SyncSession;

    fn generate(&self, session: &mut SyncSession) -> Option<Vec<u8>> {
        self.rules.sync_generate(session)
    }

    fn receive<'a>(
        &'a self,
        session: &'a mut SyncSession,
        message: &'a [u8],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            self.rules.sync_receive(session, message).await?;
            Ok(())
        })
    }

    fn reset(session: &mut SyncSession) {
        session.reset();
    }
}
