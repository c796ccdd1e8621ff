//! This node's message counters: atomics on the hot path, persisted now and then so they
//! survive restarts (they only grow, which is what lets the mesh merge them by max).
//! [`series`] keeps their per-minute history for the graphs.

pub mod series;

use std::sync::atomic::{AtomicU64, Ordering};

use mxmesh_crdt::counters::Counters;

use crate::store::{Batch, Cf, Store, StoreError};

const META_KEY: &[u8] = b"counters";

/// Live counters of this node.
#[derive(Default)]
pub struct Stats {
    /// Messages received (end of DATA reached).
    pub received: AtomicU64,
    /// Verdicts `accept`.
    pub accepted: AtomicU64,
    /// Verdicts `tag`.
    pub tagged: AtomicU64,
    /// Verdicts `quarantine`.
    pub quarantined: AtomicU64,
    /// Verdicts `reject`.
    pub rejected: AtomicU64,
    /// Verdicts `tempfail`.
    pub tempfailed: AtomicU64,
    /// Messages relayed downstream.
    pub relayed: AtomicU64,
    /// Relay attempts deferred for a retry.
    pub deferred: AtomicU64,
    /// Messages bounced to the sender (DSN).
    pub bounced: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Stats {
    /// Loads the persisted counters (zero when none).
    pub fn load(store: &Store) -> Result<Stats, StoreError> {
        let s = Stats::default();
        if let Some(bytes) = store.get(Cf::Meta, META_KEY)?
            && let Ok(c) = serde_json::from_slice::<Counters>(&bytes)
        {
            s.received.store(c.received, Ordering::Relaxed);
            s.accepted.store(c.accepted, Ordering::Relaxed);
            s.tagged.store(c.tagged, Ordering::Relaxed);
            s.quarantined.store(c.quarantined, Ordering::Relaxed);
            s.rejected.store(c.rejected, Ordering::Relaxed);
            s.tempfailed.store(c.tempfailed, Ordering::Relaxed);
            s.relayed.store(c.relayed, Ordering::Relaxed);
            s.deferred.store(c.deferred, Ordering::Relaxed);
            s.bounced.store(c.bounced, Ordering::Relaxed);
        }
        Ok(s)
    }

    /// A consistent-enough copy for the API and the mesh.
    pub fn snapshot(&self) -> Counters {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Counters {
            received: g(&self.received),
            accepted: g(&self.accepted),
            tagged: g(&self.tagged),
            quarantined: g(&self.quarantined),
            rejected: g(&self.rejected),
            tempfailed: g(&self.tempfailed),
            relayed: g(&self.relayed),
            deferred: g(&self.deferred),
            bounced: g(&self.bounced),
        }
    }

    /// Writes the counters (unsynced: a crash loses at most the last interval's counts).
    pub async fn persist(&self, store: &Store) -> Result<(), StoreError> {
        let mut b = Batch::new();
        b.put(
            Cf::Meta,
            META_KEY,
            serde_json::to_vec(&self.snapshot()).unwrap_or_default(),
        );
        store.commit_relaxed(b).await
    }
}
