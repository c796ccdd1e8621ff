//! The quarantine index as a pull-style replicated type: the asker sends its version
//! vector, the answerer the entries it lacks (bounded), until nothing changes.

use std::collections::BTreeMap;
use std::time::Duration;

use super::keys;
use crate::clock::Clock;
use crate::mesh::{MessageKind, Peer, PullSync, RemoteError, Replicated, SyncSpec};
use crate::quarantine::Quarantine;

/// How often the quarantine index is reconciled with each live peer.
pub const INDEX_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Index entries one anti-entropy answer carries at most.
pub const INDEX_DELTA_ITEMS_MAX: usize = 10_000;
/// Anti-entropy rounds with one peer per interval.
pub const INDEX_SYNC_ROUNDS_MAX: usize = 200;
/// Peers one index-sync round reconciles with at most.
pub const INDEX_SYNC_PEERS_MAX: usize = 4;

/// This node's copy of the quarantine index, synced.
pub struct IndexSync {
    quarantine: Quarantine,
    clock: Clock,
}

impl IndexSync {
    /// Syncs the index of `quarantine`; `clock` dates what it applies.
    pub fn new(quarantine: Quarantine, clock: Clock) -> IndexSync {
        IndexSync { quarantine, clock }
    }
}

impl Replicated for IndexSync {
    fn spec(&self) -> SyncSpec {
        SyncSpec {
            name: "index",
            kind: MessageKind::INDEX_SYNC,
            interval: INDEX_SYNC_INTERVAL,
            peers_max: INDEX_SYNC_PEERS_MAX,
            rounds_max: INDEX_SYNC_ROUNDS_MAX,
            digest_key: None,
        }
    }

    fn published(&self) -> Vec<(&'static str, String)> {
        vec![(
            keys::QINDEX_SEQ,
            self.quarantine.index().own_high_water().to_string(),
        )]
    }
}

impl PullSync for IndexSync {
    fn request(&self) -> anyhow::Result<Vec<u8>> {
        Ok(serde_json::to_vec(
            &self.quarantine.index().version_vector(),
        )?)
    }

    fn serve(&self, _from: &Peer, request: &[u8]) -> Result<Vec<u8>, RemoteError> {
        let theirs = decode_version_vector(request)?;
        let delta = self
            .quarantine
            .index()
            .delta_since(&theirs, INDEX_DELTA_ITEMS_MAX);
        serde_json::to_vec(&delta).map_err(|e| RemoteError::handler(format!("index sync: {e}")))
    }

    fn apply(&self, answer: &[u8]) -> anyhow::Result<bool> {
        let delta = serde_json::from_slice(answer)?;
        let report = self.quarantine.index().apply(delta, self.clock.now_ms())?;
        if !report.changed() && self.quarantine.is_restoring() {
            // Caught up with a peer: settle the restored own log (it writes the store, so
            // not here).
            let quarantine = self.quarantine.clone();
            tokio::spawn(async move { quarantine.settle_restored("caught up with a peer").await });
        }
        Ok(report.changed())
    }
}

/// Reads the asker's version vector from an `INDEX_SYNC` request body.
pub fn decode_version_vector(body: &[u8]) -> Result<BTreeMap<String, u64>, RemoteError> {
    serde_json::from_slice(body)
        .map_err(|e| RemoteError::handler(format!("index sync: bad version vector: {e}")))
}
