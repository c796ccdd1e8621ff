//! The digest ledger: a replicated [`OwnedMap`] (each node writes only its own entries,
//! synced as `DIGEST_SYNC`) with two kinds of keys:
//!
//! - `r:<recipient>` → the period boundary (ms) up to which a digest went out: the
//!   recipient's watermark, the highest over all nodes;
//! - `run` → the time of the latest `POST /api/v1/digest/run`, which every node treats as
//!   an extra period boundary.
//!
//! A node's own entries are also in `Cf::Meta` under [`STORE_PREFIX`], written with the
//! digest's relay entries in one synced batch, and restored at start, so a restarted node
//! never sends a period it already sent.

use std::sync::Arc;

use mxmesh_crdt::owned::{Item, OwnedMap};

use crate::clock::Clock;
use crate::cluster::owned::{SharedMap, read, write};
use crate::store::{Batch, Cf, Store, StoreError};

/// Own entries per node at most (recipients with a watermark, plus `run`).
pub const LEDGER_ENTRIES_MAX: usize = 200_000;
/// How long a watermark is kept after it was written: a recipient without one gets a
/// digest of the last period only.
pub const WATERMARK_KEEP_MS: u64 = 35 * 86_400_000;
/// `Cf::Meta` key prefix of own ledger entries.
const STORE_PREFIX: &str = "digest/";
/// The key of the latest run request.
const RUN_KEY: &str = "run";

/// This node's view of the ledger, and the store keeping its own entries.
#[derive(Clone)]
pub struct Ledger {
    node_id: String,
    map: SharedMap<u64>,
    store: Store,
    clock: Clock,
}

impl Ledger {
    /// Loads this node's own entries from `store` (expired ones are skipped).
    pub fn load(node_id: String, store: Store, clock: Clock) -> Result<Ledger, StoreError> {
        let mut map = OwnedMap::new(LEDGER_ENTRIES_MAX);
        let now = clock.now_ms();
        store.scan(Cf::Meta, STORE_PREFIX.as_bytes(), |key, value| {
            let Some(key) = key.strip_prefix(STORE_PREFIX.as_bytes()) else {
                return false;
            };
            let key = String::from_utf8_lossy(key).into_owned();
            match serde_json::from_slice::<Item<u64>>(value) {
                Ok(item) if item.expires_ms > now => {
                    if let Err(e) = map.restore(&node_id, &key, item) {
                        tracing::warn!(key, error = %e, "digest ledger entry not restored");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(key, error = %e, "digest ledger entry unreadable"),
            }
            true
        })?;
        Ok(Ledger {
            node_id,
            map: Arc::new(std::sync::RwLock::new(map)),
            store,
            clock,
        })
    }

    /// The replicated map (for the mesh's sync).
    pub fn map(&self) -> SharedMap<u64> {
        self.map.clone()
    }

    /// The period up to which `recipient`'s digest went out, 0 when none is known.
    pub fn watermark(&self, recipient: &str, now_ms: u64) -> u64 {
        self.highest(&recipient_key(recipient), now_ms)
    }

    /// The latest run request, 0 when none.
    pub fn run_requested(&self, now_ms: u64) -> u64 {
        self.highest(RUN_KEY, now_ms)
    }

    fn highest(&self, key: &str, now_ms: u64) -> u64 {
        read(&self.map)
            .values(key, now_ms)
            .map(|(_, item)| item.value)
            .max()
            .unwrap_or(0)
    }

    /// Records a run request at `at_ms` (synced), which every node picks up.
    pub async fn request_run(&self, at_ms: u64) -> Result<(), StoreError> {
        let expires = at_ms.saturating_add(WATERMARK_KEEP_MS);
        self.commit_own(&[RUN_KEY.to_string()], at_ms, expires, Batch::new())
            .await
    }

    /// Records that the digests of `recipients` went out up to `period_ms`, in one synced
    /// write with `batch` (the digests' relay entries). On a failed write the map is put
    /// back, so the recipients are tried again.
    pub async fn record_sent(
        &self,
        recipients: &[String],
        period_ms: u64,
        batch: Batch,
    ) -> Result<(), StoreError> {
        let keys: Vec<String> = recipients.iter().map(|r| recipient_key(r)).collect();
        let expires = period_ms.saturating_add(WATERMARK_KEEP_MS);
        self.commit_own(&keys, period_ms, expires, batch).await
    }

    /// Own entries held (for metrics and the status).
    pub fn own_entries(&self) -> usize {
        read(&self.map).len_of(&self.node_id)
    }

    /// Drops expired entries from memory (the store's own rows are overwritten in place
    /// and skipped when expired at load).
    pub fn purge(&self) {
        write(&self.map).expire(self.clock.now_ms());
    }

    async fn commit_own(
        &self,
        keys: &[String],
        value: u64,
        expires_ms: u64,
        mut batch: Batch,
    ) -> Result<(), StoreError> {
        let now = self.clock.now_ms();
        let mut before = Vec::with_capacity(keys.len());
        {
            let mut map = write(&self.map);
            for key in keys {
                before.push(map.get(&self.node_id, key, now).cloned());
                let item = map
                    .put_own(&self.node_id, key, value, expires_ms, now)
                    .map_err(|e| StoreError::Write(format!("digest ledger: {e}")))?;
                let bytes =
                    serde_json::to_vec(&item).map_err(|e| StoreError::Write(e.to_string()))?;
                batch.put(Cf::Meta, format!("{STORE_PREFIX}{key}").into_bytes(), bytes);
            }
        }
        let result = self.store.commit(batch).await;
        if result.is_err() {
            self.put_back(keys, &before, now);
        }
        result
    }

    /// Undoes own writes the store refused: the old value again, under a newer stamp.
    fn put_back(&self, keys: &[String], before: &[Option<Item<u64>>], now: u64) {
        let mut map = write(&self.map);
        for (key, old) in keys.iter().zip(before) {
            let (value, expires) = old
                .as_ref()
                .map_or((0, now + 1), |i| (i.value, i.expires_ms));
            if let Err(e) = map.put_own(&self.node_id, key, value, expires, now) {
                tracing::warn!(key, error = %e, "digest ledger entry not put back");
            }
        }
    }
}

/// The ledger key of `recipient`'s watermark.
fn recipient_key(recipient: &str) -> String {
    format!("r:{}", recipient.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watermarks_persist_and_the_highest_owner_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let clock = Clock::system();
        let now = clock.now_ms();
        let ledger = Ledger::load("mx1".into(), store.clone(), clock.clone()).unwrap();
        assert_eq!(ledger.watermark("a@example.com", now), 0);
        ledger
            .record_sent(&["A@example.com".into()], now - 10, Batch::new())
            .await
            .unwrap();
        ledger.request_run(now - 5).await.unwrap();
        assert_eq!(ledger.watermark("a@example.com", now), now - 10);
        // Another node's higher mark, as a sync would bring it.
        let peer = Ledger::load(
            "mx2".into(),
            Store::open(&dir.path().join("2")).unwrap(),
            clock.clone(),
        )
        .unwrap();
        peer.record_sent(&["a@example.com".into()], now - 1, Batch::new())
            .await
            .unwrap();
        let delta = read(&peer.map).delta_since(&Default::default(), 100, now);
        write(&ledger.map).apply(delta, now).unwrap();
        assert_eq!(ledger.watermark("a@example.com", now), now - 1);
        drop(ledger);
        drop(peer);
        let again = Ledger::load("mx1".into(), store, clock).unwrap();
        assert_eq!(
            again.watermark("a@example.com", now),
            now - 10,
            "own entries restored"
        );
        assert_eq!(again.run_requested(now), now - 5);
    }
}
