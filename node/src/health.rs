//! Whether this node takes traffic: the one place that says `ok`, `draining` or
//! `store_error`. The SMTP sessions, the admin API, the DNS helper and the published mesh
//! state all read it; SIGTERM and the drain API set it.
//!
//! Two switches make `draining`. The operator's (the drain API) is kept in the store, so a
//! drained node stays drained across restarts until it is undrained. The stop switch
//! (SIGTERM) lives in memory only: a node stopped for an upgrade comes back taking traffic.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::store::{Batch, Cf, Store, StoreError};

/// `Cf::Meta` key of the operator's drain switch: present (value `1`) while drained.
const DRAINED_KEY: &[u8] = b"drained";

/// This node's health. Cheap to clone; clones share the switches.
#[derive(Clone)]
pub struct Health {
    /// Taken out of new traffic by an operator (the drain API); persisted.
    drained: Arc<AtomicBool>,
    /// Stopping (SIGTERM): finishing what it has, taking nothing new; not persisted.
    stopping: Arc<AtomicBool>,
    store: Store,
}

/// The drain switch changed at once but could not be stored: a restart would bring the
/// previous state back.
#[derive(Debug, thiserror::Error)]
#[error(
    "{state} now, but the store could not record it ({source}): a restart would bring back the previous state"
)]
pub struct DrainNotStored {
    /// `drained` or `undrained`.
    pub state: &'static str,
    /// The failed write.
    pub source: StoreError,
}

impl Health {
    /// Reads the operator's drain switch from `store`, which is then watched for failing
    /// writes.
    pub fn load(store: Store) -> Result<Health, StoreError> {
        let drained = store.get(Cf::Meta, DRAINED_KEY)?.is_some();
        if drained {
            tracing::warn!(
                "this node was drained and stays drained: SMTP answers 421 and it is out of DNS until it is undrained (mxctl node undrain ID)"
            );
        }
        Ok(Health {
            drained: Arc::new(AtomicBool::new(drained)),
            stopping: Arc::new(AtomicBool::new(false)),
            store,
        })
    }

    /// `ok`, `draining`, or `store_error` while store writes fail (mail gets 451 then, so
    /// the node also leaves the DNS set until writes work again).
    pub fn get(&self) -> &'static str {
        if self.is_draining() {
            "draining"
        } else if self.store.write_error().is_some() {
            "store_error"
        } else {
            "ok"
        }
    }

    /// Whether the node refuses new sessions: drained by an operator, or stopping.
    pub fn is_draining(&self) -> bool {
        self.drained.load(Ordering::Relaxed) || self.stopping.load(Ordering::Relaxed)
    }

    /// Whether an operator drained the node (the persisted switch).
    pub fn is_drained(&self) -> bool {
        self.drained.load(Ordering::Relaxed)
    }

    /// The node is stopping: no new sessions from now on (not persisted).
    pub fn set_stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Drains (`true`) or undrains the node at once, and records it with a synced write
    /// so that it outlasts a restart. The switch changes even when the write fails (an
    /// operator draining a node with a failing disk still wants it out of traffic); the
    /// error says so.
    pub async fn set_drained(&self, on: bool) -> Result<(), DrainNotStored> {
        self.drained.store(on, Ordering::SeqCst);
        let mut batch = Batch::new();
        if on {
            batch.put(Cf::Meta, DRAINED_KEY, b"1".to_vec());
        } else {
            batch.delete(Cf::Meta, DRAINED_KEY);
        }
        self.store
            .commit(batch)
            .await
            .map_err(|source| DrainNotStored {
                state: if on { "drained" } else { "undrained" },
                source,
            })?;
        tracing::info!(drained = on, "drain switch recorded");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_drain_switch_outlasts_a_reopen_and_the_stop_switch_does_not() {
        let dir = tempfile::tempdir().unwrap();
        {
            let h = Health::load(Store::open(dir.path()).unwrap()).unwrap();
            assert_eq!(h.get(), "ok");
            h.set_drained(true).await.unwrap();
            assert!(h.is_draining() && h.is_drained());
            assert_eq!(h.get(), "draining");
        }
        {
            let h = Health::load(Store::open(dir.path()).unwrap()).unwrap();
            assert_eq!(h.get(), "draining", "drained across a reopen");
            h.set_drained(false).await.unwrap();
            assert_eq!(h.get(), "ok");
            h.set_stopping();
            assert!(h.is_draining() && !h.is_drained());
        }
        let h = Health::load(Store::open(dir.path()).unwrap()).unwrap();
        assert_eq!(h.get(), "ok", "undrained, and stopping is not remembered");
    }
}
