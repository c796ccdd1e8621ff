//! An [`OwnedMap`] as a pull-style replicated type: the asker sends its version vector,
//! the answerer the items it lacks (bounded), until an answer changes nothing. The
//! greylist triplets and the rate counters are two of these, each on its own message kind.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mxmesh_crdt::owned::{OwnedDelta, OwnedMap};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::Clock;
use crate::mesh::{MessageKind, Peer, PullSync, RemoteError, Replicated, SyncSpec};

/// Items one answer carries at most.
pub const OWNED_DELTA_ITEMS_MAX: usize = 5_000;
/// Exchanges with one peer per round at most.
pub const OWNED_SYNC_ROUNDS_MAX: usize = 32;
/// Peers one round reconciles with at most.
pub const OWNED_SYNC_PEERS_MAX: usize = 8;

/// The map every reader and writer of one replicated type shares.
pub type SharedMap<V> = Arc<RwLock<OwnedMap<V>>>;

/// Schedule of one [`OwnedSync`].
#[derive(Debug, Clone, Copy)]
pub struct OwnedSpec {
    /// Name in logs and of the self-check switch.
    pub name: &'static str,
    /// Its message kind.
    pub kind: MessageKind,
    /// Time between two rounds.
    pub interval: Duration,
}

/// One [`OwnedMap`], synced.
pub struct OwnedSync<V> {
    map: SharedMap<V>,
    spec: OwnedSpec,
    clock: Clock,
}

impl<V> OwnedSync<V> {
    /// Syncs `map` on `spec`'s channel; `clock` decides what has expired.
    pub fn new(map: SharedMap<V>, spec: OwnedSpec, clock: Clock) -> OwnedSync<V> {
        OwnedSync { map, spec, clock }
    }
}

impl<V: Send + Sync + 'static> Replicated for OwnedSync<V> {
    fn spec(&self) -> SyncSpec {
        SyncSpec {
            name: self.spec.name,
            kind: self.spec.kind,
            interval: self.spec.interval,
            peers_max: OWNED_SYNC_PEERS_MAX,
            rounds_max: OWNED_SYNC_ROUNDS_MAX,
            digest_key: None,
        }
    }
}

impl<V> PullSync for OwnedSync<V>
where
    V: Clone + Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn request(&self) -> anyhow::Result<Vec<u8>> {
        let vv = read(&self.map).version_vector();
        Ok(serde_json::to_vec(&vv)?)
    }

    fn serve(&self, _from: &Peer, request: &[u8]) -> Result<Vec<u8>, RemoteError> {
        let name = self.spec.name;
        let theirs: BTreeMap<String, u64> = serde_json::from_slice(request)
            .map_err(|e| RemoteError::handler(format!("{name} sync: bad version vector: {e}")))?;
        let now = self.clock.now_ms();
        let delta = read(&self.map).delta_since(&theirs, OWNED_DELTA_ITEMS_MAX, now);
        serde_json::to_vec(&delta).map_err(|e| RemoteError::handler(format!("{name} sync: {e}")))
    }

    fn apply(&self, answer: &[u8]) -> anyhow::Result<bool> {
        let delta: OwnedDelta<V> = serde_json::from_slice(answer)?;
        let now = self.clock.now_ms();
        let changed = self
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(delta, now)?;
        Ok(changed)
    }
}

/// Reads `map` (a poisoned lock still reads: the map is never left half-changed).
pub fn read<V>(map: &SharedMap<V>) -> std::sync::RwLockReadGuard<'_, OwnedMap<V>> {
    map.read().unwrap_or_else(|p| p.into_inner())
}

/// Writes `map`.
pub fn write<V>(map: &SharedMap<V>) -> std::sync::RwLockWriteGuard<'_, OwnedMap<V>> {
    map.write().unwrap_or_else(|p| p.into_inner())
}
