//! Custody of quarantined messages beyond this node's own disk: copies of other nodes'
//! messages held here (`Cf::Copies`), the copy holders recorded on own entries, adopting a
//! message (from a retiring owner, or from a held copy when the owner was forgotten) and
//! handing one over. Every change is a synced commit before it is answered or mirrored
//! into the index.

use std::future::Future;
use std::sync::atomic::Ordering;

use super::{Entry, Quarantine, QuarantineError, Status};
use crate::store::{Batch, Cf, StoreError};
use crate::trace;

/// Copies one listing of held copies returns at most.
pub const HELD_COPIES_MAX: usize = 10_000;

fn entry_key(id: &str) -> Vec<u8> {
    format!("e/{id}").into_bytes()
}

fn raw_key(id: &str) -> Vec<u8> {
    format!("r/{id}").into_bytes()
}

impl Quarantine {
    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.node
    }

    /// While set, direct releases and deletes are refused (the node is handing its
    /// quarantine over; see `cluster::custody::retire`).
    pub fn set_retiring(&self, on: bool) {
        self.retiring.store(on, Ordering::SeqCst);
    }

    /// Whether this node is handing its quarantine over.
    pub fn retiring(&self) -> bool {
        self.retiring.load(Ordering::SeqCst)
    }

    /// Records a trace event about message `id` (synced), e.g. a request that failed.
    pub async fn note(&self, id: &str, what: &str, detail: &str) -> Result<(), StoreError> {
        let event = trace::TraceEvent {
            time_ms: self.clock.now_ms(),
            node: self.node.clone(),
            message_id: id.to_string(),
            event: what.to_string(),
            sender: String::new(),
            recipients: Vec::new(),
            detail: detail.to_string(),
            score: None,
            symbols: Vec::new(),
        };
        let mut b = Batch::new();
        trace::record(&mut b, &event);
        self.store.commit(b).await
    }

    /// Stores a copy of another node's quarantined message (synced before it returns).
    /// Storing the same copy again changes nothing.
    pub async fn hold_copy(&self, entry: &Entry, raw: &[u8]) -> Result<(), QuarantineError> {
        if entry.meta.node == self.node {
            return Err(QuarantineError::Index(format!(
                "copy of message {}: it is this node's own message",
                entry.meta.id
            )));
        }
        let id = &entry.meta.id;
        let mut b = Batch::new();
        b.put(Cf::Copies, entry_key(id), entry.encode());
        b.put(Cf::Copies, raw_key(id), raw);
        self.store.commit(b).await?;
        Ok(())
    }

    /// The entry of a copy held here.
    pub fn copy_entry(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .store
            .get(Cf::Copies, &entry_key(id))?
            .and_then(|b| Entry::decode(&b)))
    }

    /// The bytes of a copy held here.
    pub fn copy_raw(&self, id: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(Cf::Copies, &raw_key(id))
    }

    /// The copies held here, at most [`HELD_COPIES_MAX`].
    pub fn held_copies(&self) -> Result<Vec<Entry>, StoreError> {
        let mut out = Vec::new();
        self.store.scan(Cf::Copies, b"e/", |k, v| {
            if !k.starts_with(b"e/") {
                return false;
            }
            if let Some(e) = Entry::decode(v) {
                out.push(e);
            }
            out.len() < HELD_COPIES_MAX
        })?;
        Ok(out)
    }

    /// Drops a copy held here (its message left quarantine, or this node adopted it).
    pub async fn drop_copy(&self, id: &str) -> Result<(), StoreError> {
        let mut b = Batch::new();
        b.delete(Cf::Copies, entry_key(id));
        b.delete(Cf::Copies, raw_key(id));
        self.store.commit(b).await
    }

    /// Records that `holder` keeps a durable copy of own message `id`; the entry (with its
    /// holders) is committed and then mirrored into the index.
    pub async fn record_copy(&self, id: &str, holder: &str) -> Result<Entry, QuarantineError> {
        let _guard = self.mutate.lock().await;
        let mut e = self.live(id)?;
        if e.meta.copies.iter().any(|h| h == holder) {
            return Ok(e);
        }
        if e.meta.copies.len() >= mxmesh_crdt::qindex::COPIES_MAX {
            return Err(QuarantineError::Index(format!(
                "message {id}: already {} copy holders",
                e.meta.copies.len()
            )));
        }
        e.meta.copies.push(holder.to_string());
        let mut b = Batch::new();
        b.put(Cf::Quarantine, id.as_bytes(), e.encode());
        self.store.commit(b).await?;
        self.index.own_upsert(&e);
        Ok(e)
    }

    /// Takes message `entry` over from node `from` as this node's own: stored with this
    /// node as owner and `from` as the previous one, synced, then indexed (the new entry
    /// supersedes `from`'s everywhere). A copy held here is dropped in the same batch.
    /// Adopting a message this node already holds as its own changes nothing.
    pub async fn adopt(
        &self,
        entry: &Entry,
        raw: &[u8],
        from: &str,
    ) -> Result<Entry, QuarantineError> {
        let _guard = self.mutate.lock().await;
        let id = &entry.meta.id;
        if let Some(mine) = self.get(id)? {
            return Ok(mine);
        }
        if entry.meta.status != Status::Quarantined {
            return Err(QuarantineError::Gone {
                id: id.clone(),
                status: entry.meta.status,
            });
        }
        let now = self.clock.now_ms();
        let mut adopted = entry.clone();
        adopted.meta.node = self.node.clone();
        adopted.meta.adopted_from = Some(from.to_string());
        adopted.meta.copies.retain(|h| h != &self.node && h != from);
        adopted.meta.pending = None;
        adopted.meta.seq = 0;
        let mut b = Batch::new();
        Quarantine::stage(&mut b, &adopted, raw);
        b.delete(Cf::Copies, entry_key(id));
        b.delete(Cf::Copies, raw_key(id));
        trace::record(&mut b, &self.event(&adopted, "adopted", from, now));
        self.store.commit(b).await?;
        self.added(&adopted);
        Ok(adopted)
    }

    /// Hands own message `id` to node `to`: `send` delivers the entry and bytes and
    /// returns once `to` holds them durably; then the entry here becomes a `moved`
    /// tombstone and its bytes go, in one synced batch. Releases and deletes of the
    /// message wait meanwhile, so it is never released here after `to` took it.
    pub async fn hand_over<F, Fut>(
        &self,
        id: &str,
        to: &str,
        send: F,
    ) -> Result<Entry, QuarantineError>
    where
        F: FnOnce(Entry, Vec<u8>) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let _guard = self.mutate.lock().await;
        let mut e = self.live(id)?;
        let raw = self.raw(id)?;
        send(e.clone(), raw)
            .await
            .map_err(|why| QuarantineError::HandOver {
                id: id.to_string(),
                to: to.to_string(),
                why,
            })?;
        let now = self.clock.now_ms();
        e.meta.status = Status::Moved;
        e.meta.status_ms = now;
        let mut b = Batch::new();
        b.put(Cf::Quarantine, id.as_bytes(), e.encode());
        b.delete(Cf::Messages, id.as_bytes());
        trace::record(&mut b, &self.event(&e, "moved", to, now));
        self.store.commit(b).await?;
        self.removed(1);
        self.index.own_status(id, Status::Moved, now);
        Ok(e)
    }
}
