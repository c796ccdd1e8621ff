//! A node whose store was restored from a backup (`mxmesh restore`) rejoins without
//! resurrecting what was released or deleted after the backup.
//!
//! The store is marked restored (`store::backup`). At start the quarantine's index holds
//! none of this node's entries and issues nothing ([`MeshIndex::restoring`]); index sync
//! adopts what peers know of this node's log, tombstones of its past life included. Once
//! one peer has nothing more to send, or after [`RESTORE_WAIT`] (at once without a mesh),
//! [`Quarantine::settle_restored`] re-issues the merged log above its past life,
//! reconciles the store with it — an entry the mesh knows as released, deleted or expired
//! becomes so in the store too (its bytes are removed, it is never released again) — and
//! clears the mark. Releases and deletes of own entries wait for that (at most
//! [`SETTLE_WAIT_MAX`]); retention skips a pass.
//!
//! Mail quarantined after the backup was lost with the disk: the mesh knew it as
//! quarantined, and the index now shows it `deleted`. A message released or deleted for
//! some of its recipients after the backup takes those decisions into the store too, so a
//! recipient already released to is never released to again.

use std::time::Duration;

use super::{Entry, MeshIndex, Quarantine, QuarantineError, Status, all_entries};
use crate::store::Batch;
use crate::store::Cf;
use crate::trace;

/// How long a restored node waits to catch up with one peer before it settles alone.
pub const RESTORE_WAIT: Duration = Duration::from_secs(10);
/// How long a release or delete of an own entry waits for the own log to settle.
pub const SETTLE_WAIT_MAX: Duration = Duration::from_secs(30);

impl Quarantine {
    /// True until a restored store's own log is settled.
    pub fn is_restoring(&self) -> bool {
        self.index.is_restoring()
    }

    /// Starts settling a restored store: at once without a mesh, else after
    /// [`RESTORE_WAIT`] unless a peer let it settle before. Does nothing otherwise.
    pub fn begin_restore(&self, with_mesh: bool) {
        if !self.is_restoring() {
            return;
        }
        let q = self.clone();
        tokio::spawn(async move {
            if with_mesh {
                tokio::time::sleep(RESTORE_WAIT).await;
                q.settle_restored("no peer caught up with in time").await;
            } else {
                q.settle_restored("no mesh").await;
            }
        });
    }

    /// Settles a restored store's own log now (module documentation).
    pub async fn settle_restored(&self, why: &str) {
        let _guard = self.mutate.lock().await;
        if !self.is_restoring() {
            return;
        }
        if let Err(e) = self.settle_locked(why).await {
            tracing::error!(error = %e, "quarantine: restored store not settled; releases and deletes stay refused");
        }
    }

    async fn settle_locked(&self, why: &str) -> Result<(), QuarantineError> {
        let stored = all_entries(&self.store)?;
        let now = self.clock.now_ms();
        let settled = self
            .index
            .settle_restored(&stored, now)
            .map_err(|e| QuarantineError::Index(e.to_string()))?;
        let mut b = Batch::new();
        let mut stored = stored;
        for decided in &settled.decided {
            // Recipients released or deleted after the backup: never again.
            let Some(e) = stored.iter_mut().find(|e| e.meta.id == decided.id) else {
                continue;
            };
            e.meta.absorb_decisions(decided);
            b.put(Cf::Quarantine, e.meta.id.as_bytes(), e.encode());
        }
        for (id, status) in &settled.close {
            let Some(e) = stored.iter().find(|e| &e.meta.id == id) else {
                continue;
            };
            close(&mut b, e, *status, now);
            trace::record(
                &mut b,
                &self.event(e, status.as_str(), "restore: as the mesh knew it", now),
            );
        }
        if !b.is_empty() {
            self.store.commit(b).await?;
        }
        self.removed(settled.close.len());
        self.store.clear_restored().await?;
        let _ = self.settled.send_replace(true);
        tracing::info!(
            why,
            closed = settled.close.len(),
            lost = settled.lost.len(),
            entries = settled.entries,
            "quarantine: restored store settled with the mesh"
        );
        Ok(())
    }

    /// Waits (at most [`SETTLE_WAIT_MAX`]) until a restored store's own log is settled.
    pub(super) async fn wait_settled(&self) -> Result<(), QuarantineError> {
        let mut rx = self.settled.subscribe();
        match tokio::time::timeout(SETTLE_WAIT_MAX, rx.wait_for(|s| *s)).await {
            Ok(Ok(_)) => Ok(()),
            _ => Err(QuarantineError::Index(
                "this node's quarantine is being restored from a backup and has not rejoined the mesh yet; try again".into(),
            )),
        }
    }
}

/// Makes a stored entry `status` in batch `b`: its bytes go; an expired entry goes
/// entirely (the store never holds `expired`).
fn close(b: &mut Batch, e: &Entry, status: Status, now: u64) {
    let id = e.meta.id.as_bytes();
    b.delete(Cf::Messages, id);
    if status == Status::Expired {
        b.delete(Cf::Quarantine, id);
        return;
    }
    let mut closed = e.clone();
    closed.meta.status = status;
    closed.meta.status_ms = now;
    b.put(Cf::Quarantine, id, closed.encode());
}

/// The index a quarantine starts with: restoring when the store is marked restored.
pub(super) fn start_index(
    store: &crate::store::Store,
    node: &str,
    own: &[Entry],
    now_ms: u64,
) -> Result<(MeshIndex, bool), QuarantineError> {
    match store.restored_mark()? {
        Some(backup_ms) => {
            tracing::warn!(
                backup_ms,
                "quarantine: store restored from a backup; own entries are served once merged with the mesh"
            );
            Ok((MeshIndex::restoring(node), false))
        }
        None => MeshIndex::rebuild(node, own, now_ms)
            .map(|i| (i, true))
            .map_err(|e| QuarantineError::Index(e.to_string())),
    }
}
