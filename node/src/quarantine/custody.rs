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
        let items = [(entry.clone(), raw.to_vec())];
        let mut adopted = self.adopt_batch(&items, from).await?;
        adopted.pop().ok_or_else(|| {
            QuarantineError::Index(format!("message {}: not adopted", entry.meta.id))
        })
    }

    /// [`Quarantine::adopt`] of several messages of `from` in one synced batch (a retire's
    /// hand-over): all are committed or none. Answers this node's entry for each item, in
    /// order; messages already own here are left as they are, and an id given twice is
    /// adopted once. A message that is not quarantined refuses the whole batch.
    pub async fn adopt_batch(
        &self,
        items: &[(Entry, Vec<u8>)],
        from: &str,
    ) -> Result<Vec<Entry>, QuarantineError> {
        let _guard = self.mutate.lock().await;
        let now = self.clock.now_ms();
        let mut b = Batch::new();
        let mut out = Vec::with_capacity(items.len());
        let mut new: Vec<Entry> = Vec::new();
        for (entry, raw) in items {
            let id = &entry.meta.id;
            if let Some(mine) = self.get(id)? {
                out.push(mine);
                continue;
            }
            if let Some(staged) = new.iter().find(|e| &e.meta.id == id) {
                out.push(staged.clone());
                continue;
            }
            if entry.meta.status != Status::Quarantined {
                return Err(QuarantineError::Gone {
                    id: id.clone(),
                    status: entry.meta.status,
                });
            }
            let adopted = self.adopted(entry, from);
            Quarantine::stage(&mut b, &adopted, raw);
            b.delete(Cf::Copies, entry_key(id));
            b.delete(Cf::Copies, raw_key(id));
            trace::record(&mut b, &self.event(&adopted, "adopted", from, now));
            out.push(adopted.clone());
            new.push(adopted);
        }
        if !new.is_empty() {
            self.store.commit(b).await?;
        }
        new.iter().for_each(|e| self.added(e));
        Ok(out)
    }

    /// `entry` as this node's own, adopted from `from`.
    fn adopted(&self, entry: &Entry, from: &str) -> Entry {
        let mut adopted = entry.clone();
        adopted.meta.node = self.node.clone();
        adopted.meta.adopted_from = Some(from.to_string());
        adopted.meta.copies.retain(|h| h != &self.node && h != from);
        adopted.meta.pending = None;
        adopted.meta.seq = 0;
        adopted
    }

    /// Hands own messages `ids` to node `to` in one call: `send` delivers their entries and
    /// bytes and returns once `to` holds them durably; then each entry that is still
    /// quarantined here becomes a `moved` tombstone and its bytes go, in one synced batch.
    /// Answers the ids moved. Ids no longer quarantined here are skipped (and not sent).
    ///
    /// Only while this node is retiring ([`Quarantine::set_retiring`]): releases and deletes
    /// are refused then, so the mutation lock is not held during `send` (several hand-overs
    /// may be in flight) and a message is never released here after `to` took it. Retention
    /// may still expire one meanwhile; it is then not marked (`to` keeps it, and expires it by
    /// the same received time).
    pub async fn hand_over_batch<F, Fut>(
        &self,
        ids: &[String],
        to: &str,
        send: F,
    ) -> Result<Vec<String>, QuarantineError>
    where
        F: FnOnce(Vec<(Entry, Vec<u8>)>) -> Fut,
        Fut: Future<Output = Result<(), String>>,
    {
        let items = {
            let _guard = self.mutate.lock().await;
            if !self.retiring() {
                return Err(QuarantineError::HandOver {
                    id: ids.first().cloned().unwrap_or_default(),
                    to: to.to_string(),
                    why: format!("node {} is not retiring", self.node),
                });
            }
            self.live_with_bytes(ids)?
        };
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let sent: Vec<String> = items.iter().map(|(e, _)| e.meta.id.clone()).collect();
        send(items).await.map_err(|why| QuarantineError::HandOver {
            id: match sent.len() {
                1 => sent[0].clone(),
                n => format!("{} (and {} more)", sent[0], n - 1),
            },
            to: to.to_string(),
            why,
        })?;
        self.mark_moved(&sent, to).await
    }

    /// The entries and bytes of those of `ids` still quarantined here.
    fn live_with_bytes(&self, ids: &[String]) -> Result<Vec<(Entry, Vec<u8>)>, QuarantineError> {
        let mut items = Vec::with_capacity(ids.len());
        for id in ids {
            let e = match self.live(id) {
                Ok(e) => e,
                Err(QuarantineError::NotFound(_) | QuarantineError::Gone { .. }) => continue,
                Err(e) => return Err(e),
            };
            match self.store.get(Cf::Messages, id.as_bytes())? {
                Some(raw) => items.push((e, raw)),
                None => tracing::error!(%id, "quarantined message has no bytes; not handed over"),
            }
        }
        Ok(items)
    }

    /// Marks those of `ids` still quarantined here `moved` (to `to`) and drops their bytes,
    /// in one synced batch; answers the ids marked.
    async fn mark_moved(&self, ids: &[String], to: &str) -> Result<Vec<String>, QuarantineError> {
        let _guard = self.mutate.lock().await;
        let now = self.clock.now_ms();
        let mut b = Batch::new();
        let mut moved = Vec::with_capacity(ids.len());
        for id in ids {
            let Ok(mut e) = self.live(id) else {
                continue;
            };
            e.meta.status = Status::Moved;
            e.meta.status_ms = now;
            b.put(Cf::Quarantine, id.as_bytes(), e.encode());
            b.delete(Cf::Messages, id.as_bytes());
            trace::record(&mut b, &self.event(&e, "moved", to, now));
            moved.push(id.clone());
        }
        if moved.is_empty() {
            return Ok(moved);
        }
        self.store.commit(b).await?;
        self.removed(moved.len());
        for id in &moved {
            self.index.own_status(id, Status::Moved, now);
        }
        Ok(moved)
    }
}

#[cfg(test)]
#[path = "custody_tests.rs"]
mod tests;
