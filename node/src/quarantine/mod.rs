//! This node's quarantine: raw message + metadata in the store, search, release (through
//! the relay queue), delete, retention expiry.
//!
//! Each node is the only writer of its own entries; that is the property the mesh-wide
//! index relies on. Released and deleted entries stay as tombstones (status changed, body
//! gone) until retention, so a repeated release is refused rather than delivered twice.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use mxmesh_crdt::qindex::IndexEntry;
use serde::{Deserialize, Serialize};

use crate::clock::Clock;
use crate::store::{Batch, Cf, Store, StoreError};
use crate::trace::{self, TraceEvent};

pub mod custody;
mod decide;
pub mod index;
mod query;
pub mod restore;
pub use index::MeshIndex;
pub use query::Query;

/// Every stored entry (tombstones included), oldest first; read once at open.
fn all_entries(store: &Store) -> Result<Vec<Entry>, StoreError> {
    let mut out = Vec::new();
    store.scan(Cf::Quarantine, b"", |_, v| {
        if let Some(e) = Entry::decode(v) {
            out.push(e);
        }
        true
    })?;
    Ok(out)
}

/// Items one listing returns at most.
pub const LIST_LIMIT_MAX: usize = 1000;
/// Items one listing returns when no limit is asked.
pub const LIST_LIMIT_DEFAULT: usize = 100;
/// Entries one listing examines at most before it returns a cursor.
pub const LIST_SCAN_MAX: usize = 100_000;

/// Where an entry stands: the index's status (the store never holds `expired`: retention
/// removes the record).
pub use mxmesh_crdt::qindex::EntryStatus as Status;

/// One quarantined message as stored: its index entry (the one metadata type, shared with
/// the mesh-wide index) and what only the owner needs. The bytes live in `Cf::Messages`
/// under the same id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Id, owner, envelope, subject, size, reason, status. Its `pending` and `seq` belong
    /// to the index and are not kept here.
    #[serde(flatten)]
    pub meta: IndexEntry,
    /// Trace header prepended when the message is released (Received: …).
    pub prepend: String,
}

impl Entry {
    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("quarantine entries always serialise")
    }
    fn decode(b: &[u8]) -> Option<Entry> {
        serde_json::from_slice(b).ok()
    }
}

/// Why an operation on an entry did not happen.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("no quarantined message with id {0}")]
    NotFound(String),
    #[error("message {id} was already {status:?}")]
    Gone { id: String, status: Status },
    /// The message is no longer held for this recipient (released or deleted for it).
    #[error("message {id} was already {status} for {rcpt}")]
    RecipientGone {
        id: String,
        rcpt: String,
        status: Status,
    },
    /// The address is not a recipient of the message.
    #[error("message {id} was not sent to {rcpt}")]
    NotRecipient { id: String, rcpt: String },
    #[error(
        "message {id} has a {action} pending, requested by {admin}@{requested_by} (request {request_id}); it is carried out first"
    )]
    Pending {
        id: String,
        action: String,
        admin: String,
        requested_by: String,
        request_id: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("quarantine index: {0}")]
    Index(String),
    /// This node is retiring: its messages are moving to other nodes.
    #[error(
        "message {id}: node {node} is retiring and hands its quarantine over; retry in a moment (the message will be listed under its new owner)"
    )]
    Retiring { id: String, node: String },
    /// A hand-over to another node failed; the message stays here.
    #[error("message {id}: hand-over to node {to} failed: {why}")]
    HandOver { id: String, to: String, why: String },
}

/// The quarantine of this node. Cheap to clone.
#[derive(Clone)]
pub struct Quarantine {
    store: Store,
    node: String,
    /// Serialises release, delete and expiry: each checks an entry's status and then
    /// commits a change to it, which must not interleave with another such change.
    mutate: Arc<tokio::sync::Mutex<()>>,
    /// Entries with status quarantined (kept current, so nobody scans to count).
    live: Arc<AtomicUsize>,
    /// This node's copy of the mesh-wide index.
    index: Arc<MeshIndex>,
    clock: Clock,
    /// Set while the node hands its quarantine over (see [`Quarantine::set_retiring`]).
    retiring: Arc<std::sync::atomic::AtomicBool>,
    /// False while a restored store's own log is not settled ([`restore`]).
    settled: Arc<tokio::sync::watch::Sender<bool>>,
}

/// Entries one retention pass removes at most (the next pass continues).
pub const EXPIRE_BATCH_MAX: usize = 10_000;

impl Quarantine {
    /// Opens this node's quarantine; counts the live entries once.
    pub fn new(store: Store, node: String, clock: Clock) -> Result<Quarantine, QuarantineError> {
        let own = all_entries(&store)?;
        let live = own
            .iter()
            .filter(|e| e.meta.status == Status::Quarantined)
            .count();
        let (index, settled) = restore::start_index(&store, &node, &own, clock.now_ms())?;
        Ok(Quarantine {
            settled: Arc::new(tokio::sync::watch::Sender::new(settled)),
            store,
            node,
            mutate: Arc::new(tokio::sync::Mutex::new(())),
            live: Arc::new(AtomicUsize::new(live)),
            index: Arc::new(index),
            clock,
            retiring: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        })
    }

    /// The mesh-wide index (this node's copy).
    pub fn index(&self) -> &MeshIndex {
        &self.index
    }

    /// Entries with status quarantined.
    pub fn live_entries(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }

    /// Tells the counter that a staged entry was committed.
    pub fn added(&self, entry: &Entry) {
        self.live.fetch_add(1, Ordering::Relaxed);
        self.index.own_upsert(entry);
    }

    fn removed(&self, n: usize) {
        let _ = self
            .live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }

    /// Adds a new entry and its bytes to a batch the caller commits.
    pub fn stage(batch: &mut Batch, entry: &Entry, raw: &[u8]) {
        batch.put(Cf::Quarantine, entry.meta.id.as_bytes(), entry.encode());
        batch.put(Cf::Messages, entry.meta.id.as_bytes(), raw);
    }

    pub fn get(&self, id: &str) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .store
            .get(Cf::Quarantine, id.as_bytes())?
            .and_then(|b| Entry::decode(&b)))
    }

    /// The raw message of a quarantined (not released or deleted) entry.
    pub fn raw(&self, id: &str) -> Result<Vec<u8>, QuarantineError> {
        let e = self.live(id)?;
        self.store
            .get(Cf::Messages, e.meta.id.as_bytes())?
            .ok_or_else(|| QuarantineError::NotFound(id.to_string()))
    }

    /// Requests are served in the order they were made: a direct release or delete (no
    /// `request`) of an entry with an undone request, recorded while this node was out of
    /// reach, is refused; the owner carries that request out first (`cluster::requests`).
    fn no_older_request(&self, id: &str, request: Option<&str>) -> Result<(), QuarantineError> {
        let Some(p) = self.index.get(id).and_then(|e| e.pending) else {
            return Ok(());
        };
        if request == Some(p.request_id.as_str()) {
            return Ok(());
        }
        Err(QuarantineError::Pending {
            id: id.into(),
            action: format!("{:?}", p.action).to_lowercase(),
            admin: p.admin,
            requested_by: p.requested_by,
            request_id: p.request_id,
        })
    }

    fn not_retiring(&self, id: &str) -> Result<(), QuarantineError> {
        match self.retiring() {
            true => Err(QuarantineError::Retiring {
                id: id.to_string(),
                node: self.node.clone(),
            }),
            false => Ok(()),
        }
    }

    fn live(&self, id: &str) -> Result<Entry, QuarantineError> {
        let e = self
            .get(id)?
            .ok_or_else(|| QuarantineError::NotFound(id.to_string()))?;
        if e.meta.status != Status::Quarantined {
            return Err(QuarantineError::Gone {
                id: id.into(),
                status: e.meta.status,
            });
        }
        Ok(e)
    }

    /// Newest first; returns the items and the cursor for the next page.
    pub fn list(&self, q: &Query) -> Result<(Vec<Entry>, Option<String>), StoreError> {
        let limit = q.limit.clamp(1, LIST_LIMIT_MAX);
        let mut items = Vec::new();
        let mut scanned = 0usize;
        let mut next = None;
        let visit = |k: &[u8], v: &[u8]| {
            scanned += 1;
            if let Some(e) = Entry::decode(v)
                && q.matches(&e)
            {
                items.push(e);
            }
            if items.len() >= limit || scanned >= LIST_SCAN_MAX {
                next = Some(String::from_utf8_lossy(k).into_owned());
                return false;
            }
            true
        };
        match &q.cursor {
            Some(c) => self
                .store
                .scan_rev_before(Cf::Quarantine, c.as_bytes(), visit)?,
            None => self.store.scan_rev(Cf::Quarantine, visit)?,
        }
        Ok((items, next))
    }

    /// Removes entries (and tombstones) received before `before_ms`. Returns how many.
    pub async fn expire(&self, before_ms: u64) -> Result<usize, StoreError> {
        let _guard = self.mutate.lock().await;
        if self.is_restoring() {
            return Ok(0);
        }
        let mut b = Batch::new();
        let mut expired = Vec::new();
        let mut removed = 0usize;
        self.store.scan(Cf::Quarantine, b"", |k, v| {
            match Entry::decode(v) {
                Some(e) if e.meta.received_ms < before_ms => {
                    removed += 1;
                    b.delete(Cf::Quarantine, k.to_vec());
                    if e.meta.status == Status::Quarantined {
                        b.delete(Cf::Messages, k.to_vec());
                        expired.push(e);
                    }
                }
                Some(_) => return false,
                None => {}
            }
            removed < EXPIRE_BATCH_MAX
        })?;
        let now = self.clock.now_ms();
        for e in &expired {
            trace::record(&mut b, &self.event(e, "expired", "retention", now));
        }
        let n = expired.len();
        if !b.is_empty() {
            self.store.commit(b).await?;
        }
        self.removed(n);
        for e in &expired {
            self.index.own_expired(&e.meta.id, now);
        }
        self.index.own_purge(before_ms);
        Ok(n)
    }

    /// Mirrors a committed status change into the index; when it carried out a request
    /// from another node, the request is answered in the same step.
    fn mirror(&self, e: &Entry, request: Option<&str>, now: u64) {
        match request {
            Some(rid) => {
                if let Err(err) = self.index.finish_intent(rid, now) {
                    tracing::warn!(request = rid, error = %err, "quarantine index: request not answered");
                }
            }
            None => self.index.own_upsert(e),
        }
    }

    /// [`Quarantine::event`] naming `recipients` (those a release or delete acted for).
    fn event_for(
        &self,
        e: &Entry,
        recipients: &[String],
        what: &str,
        detail: &str,
        now: u64,
    ) -> TraceEvent {
        TraceEvent {
            recipients: recipients.to_vec(),
            ..self.event(e, what, detail, now)
        }
    }

    fn event(&self, e: &Entry, what: &str, detail: &str, now: u64) -> TraceEvent {
        TraceEvent {
            time_ms: now,
            node: self.node.clone(),
            message_id: e.meta.id.clone(),
            event: what.into(),
            sender: e.meta.sender.clone(),
            recipients: e.meta.recipients.clone(),
            detail: detail.into(),
            score: None,
            symbols: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn entry(id: &str, received_ms: u64, subject: &str) -> Entry {
        Entry {
            meta: IndexEntry {
                id: id.into(),
                node: "mx1".into(),
                received_ms,
                sender: "s@example.org".into(),
                recipients: vec!["u@example.com".into()],
                subject: subject.into(),
                size: 3,
                reason: "test".into(),
                rule_id: None,
                score: None,
                symbols: Default::default(),
                status: Status::Quarantined,
                status_ms: received_ms,
                pending: None,
                seq: 0,
                copies: Vec::new(),
                adopted_from: None,
                recipients_released: Vec::new(),
                recipients_deleted: Vec::new(),
            },
            prepend: String::new(),
        }
    }

    #[test]
    fn stored_entries_of_every_version_read_back() {
        // As stored before the entry shared the index's type: no `seq`, no `pending`.
        let old = br#"{"id":"01A","node":"mx1","received_ms":5,"sender":"s@example.org","recipients":["u@example.com"],"subject":"x","size":3,"reason":"test","rule_id":null,"status":"released","status_ms":7,"prepend":"Received: x\r\n"}"#;
        let e = Entry::decode(old).expect("an old record reads");
        assert_eq!(
            (e.meta.status, e.meta.status_ms, e.prepend.as_str()),
            (Status::Released, 7, "Received: x\r\n")
        );
        assert_eq!(
            (e.meta.score, e.meta.symbols.len()),
            (None, 0),
            "no score then"
        );
        let mut mine = entry("01B", 1, "s");
        mine.meta.score = Some(12.5);
        mine.meta.symbols = vec![mxmesh_crdt::qindex::SymbolWeight {
            name: "URL_IP_ADDRESS".into(),
            weight: 2.0,
        }]
        .into();
        assert_eq!(Entry::decode(&mine.encode()), Some(mine));
    }

    /// The past life's clock, and the restarted node's, 1000 s behind it.
    const PAST_LIFE_MS: u64 = 2_000_000_000;
    const STEPPED_BACK_MS: u64 = PAST_LIFE_MS - 1_000_000;

    #[test]
    fn a_node_whose_clock_stepped_back_over_a_wiped_restart_reissues_above_its_past_life() {
        use mxmesh_crdt::qindex::{IndexQuery, QuarantineIndex};
        let past = index::MeshIndex::rebuild("mx1", &[], PAST_LIFE_MS).unwrap();
        past.own_upsert(&entry("01OLD", 1, "old"));
        let mut peer = QuarantineIndex::new();
        peer.apply(past.delta_since(&Default::default(), 1000))
            .unwrap();
        let now = index::MeshIndex::rebuild("mx1", &[], STEPPED_BACK_MS).unwrap();
        now.own_upsert(&entry("01NEW", 2, "new"));
        now.apply(
            peer.delta_since(&now.version_vector(), 1000),
            STEPPED_BACK_MS,
        )
        .unwrap();
        peer.apply(now.delta_since(&peer.version_vector(), 1000))
            .unwrap();
        let ids: Vec<String> = peer
            .search(&IndexQuery::default())
            .0
            .into_iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(
            ids,
            ["01NEW"],
            "the new life's entry reaches the peer, the old one goes"
        );
        let mine: Vec<String> = now
            .search(&IndexQuery::default())
            .0
            .into_iter()
            .map(|e| e.id.clone())
            .collect();
        assert_eq!(mine, ["01NEW"], "the past life's entry is not adopted");
    }

    async fn quarantine_with(entries: &[Entry]) -> (tempfile::TempDir, Quarantine) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Batch::new();
        for e in entries {
            Quarantine::stage(&mut b, e, b"raw");
        }
        store.commit(b).await.unwrap();
        (
            dir,
            Quarantine::new(store, "mx1".into(), Clock::system()).unwrap(),
        )
    }

    #[tokio::test]
    async fn retention_removes_old_entries_and_their_bytes() {
        let (_d, q) =
            quarantine_with(&[entry("01A", 1_000, "old"), entry("01B", 5_000, "new")]).await;
        assert_eq!(q.expire(2_000).await.unwrap(), 1);
        assert!(q.get("01A").unwrap().is_none());
        assert!(matches!(q.raw("01A"), Err(QuarantineError::NotFound(_))));
        assert_eq!(q.raw("01B").unwrap(), b"raw");
        assert_eq!(q.live_entries(), 1);
    }

    #[tokio::test]
    async fn listing_is_newest_first_with_a_cursor() {
        let es: Vec<Entry> = (0..5)
            .map(|i| entry(&format!("01{i}"), 1000 + i, &format!("s{i}")))
            .collect();
        let (_d, q) = quarantine_with(&es).await;
        let page = |cursor: Option<String>| {
            q.list(&Query {
                limit: 2,
                cursor,
                ..Query::default()
            })
            .unwrap()
        };
        let (a, next) = page(None);
        assert_eq!(
            a.iter().map(|e| e.meta.id.as_str()).collect::<Vec<_>>(),
            ["014", "013"]
        );
        let (b, next) = page(next);
        assert_eq!(
            b.iter().map(|e| e.meta.id.as_str()).collect::<Vec<_>>(),
            ["012", "011"]
        );
        let (c, _) = page(next);
        assert_eq!(
            c.iter().map(|e| e.meta.id.as_str()).collect::<Vec<_>>(),
            ["010"]
        );
        let (hits, _) = q
            .list(&Query {
                subject: Some("S3".into()),
                limit: 10,
                ..Query::default()
            })
            .unwrap();
        assert_eq!(hits.len(), 1, "search is case-insensitive");
    }

    #[tokio::test]
    async fn delete_leaves_a_tombstone() {
        let (_d, q) = quarantine_with(&[entry("01A", 1_000, "x")]).await;
        q.delete("01A", "admin", None).await.unwrap();
        assert_eq!(q.get("01A").unwrap().unwrap().meta.status, Status::Deleted);
        assert!(matches!(
            q.delete("01A", "admin", None).await,
            Err(QuarantineError::Gone { .. })
        ));
    }

    #[tokio::test]
    async fn a_direct_request_waits_for_an_older_deferred_one() {
        use mxmesh_crdt::qindex::{IntentAction, PendingAction, QuarantineIndex};
        let (_dir, q) = quarantine_with(&[entry("01A", 1, "held")]).await;
        q.index().own_upsert(&q.get("01A").unwrap().unwrap());
        // mx2 learns the entry and records a release while mx1 is out of reach.
        let mut mx2 = QuarantineIndex::new();
        mx2.apply(q.index().delta_since(&Default::default(), 1000))
            .unwrap();
        let pending = PendingAction {
            action: IntentAction::Release,
            requested_by: "mx2".into(),
            admin: "ops".into(),
            requested_ms: 5,
            request_id: "01REQ".into(),
            recipient: None,
        };
        mx2.request("mx2", "01A", pending).unwrap();
        q.index()
            .apply(mx2.delta_since(&q.index().version_vector(), 1000), 10)
            .unwrap();
        // A direct delete now is refused (409) and names the pending request …
        let err = q.delete("01A", "admin", None).await.unwrap_err();
        assert!(matches!(err, QuarantineError::Pending { .. }), "{err}");
        assert!(err.to_string().contains("01REQ"), "{err}");
        assert_eq!(
            q.get("01A").unwrap().unwrap().meta.status,
            Status::Quarantined
        );
        // … while carrying out that request itself goes through.
        q.delete("01A", "ops", Some("01REQ")).await.unwrap();
        assert_eq!(q.get("01A").unwrap().unwrap().meta.status, Status::Deleted);
    }

    #[tokio::test]
    async fn a_restored_store_takes_the_mesh_s_statuses_before_it_serves() {
        use mxmesh_crdt::qindex::QuarantineIndex;
        // The past life: 01A and 01B quarantined (the backup), then 01A released and 01L
        // quarantined; a peer holds that log.
        let past = index::MeshIndex::rebuild("mx1", &[], PAST_LIFE_MS).unwrap();
        for e in [
            entry("01A", 1, "a"),
            entry("01B", 2, "b"),
            entry("01L", 3, "l"),
        ] {
            past.own_upsert(&e);
        }
        past.own_status("01A", Status::Released, PAST_LIFE_MS + 1);
        let mut peer = QuarantineIndex::new();
        peer.apply(past.delta_since(&Default::default(), 1000))
            .unwrap();
        // The restored store holds the backup: 01A and 01B quarantined.
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let mut b = Batch::new();
        for e in [entry("01A", 1, "a"), entry("01B", 2, "b")] {
            Quarantine::stage(&mut b, &e, b"raw");
        }
        store.commit(b).await.unwrap();
        crate::store::backup::mark_restored(&store, 1)
            .await
            .unwrap();
        let q = Quarantine::new(store.clone(), "mx1".into(), Clock::system()).unwrap();
        assert!(q.is_restoring());
        assert!(
            q.index().get("01A").is_none(),
            "nothing own is served before the merge"
        );
        q.added(&entry("01N", 4, "arrived while restoring"));
        q.index()
            .apply(
                peer.delta_since(&q.index().version_vector(), 1000),
                PAST_LIFE_MS,
            )
            .unwrap();
        q.settle_restored("test").await;
        assert!(!q.is_restoring());
        assert_eq!(store.restored_mark().unwrap(), None, "the mark is cleared");
        let status = |id: &str| q.index().get(id).map(|e| e.status);
        assert_eq!(status("01A"), Some(Status::Released));
        assert_eq!(status("01B"), Some(Status::Quarantined));
        assert_eq!(status("01L"), Some(Status::Deleted), "lost with the disk");
        assert_eq!(status("01N"), Some(Status::Quarantined));
        let stored = q.get("01A").unwrap().unwrap();
        assert_eq!(
            stored.meta.status,
            Status::Released,
            "the store follows the mesh"
        );
        assert_eq!(
            store.get(Cf::Messages, b"01A").unwrap(),
            None,
            "its bytes are gone"
        );
        assert!(matches!(
            q.delete("01A", "admin", None).await,
            Err(QuarantineError::Gone { .. })
        ));
        // The peer takes the re-issued log: the release survives there too.
        peer.apply(q.index().delta_since(&peer.version_vector(), 1000))
            .unwrap();
        assert_eq!(peer.get("01A").map(|e| e.status), Some(Status::Released));
        assert_eq!(peer.get("01L").map(|e| e.status), Some(Status::Deleted));
    }
}
