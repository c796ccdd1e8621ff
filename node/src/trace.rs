//! Where each message went on this node: an append-only event log for `/api/v1/trace`.

use mxmesh_crdt::qindex::SymbolWeight;
use serde::{Deserialize, Serialize};

use crate::store::{Batch, Cf, Store, StoreError};

/// Events one trace query returns at most.
pub const TRACE_RESULTS_MAX: usize = 1000;
/// Events one trace query examines at most (newest first).
pub const TRACE_SCAN_MAX: usize = 200_000;

/// One thing that happened to a message.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TraceEvent {
    /// When it happened, in milliseconds since the epoch.
    pub time_ms: u64,
    /// The id of the node where it happened.
    pub node: String,
    /// The message's id.
    pub message_id: String,
    /// received, accepted, tagged, quarantined, rejected, tempfailed, relayed, deferred,
    /// bounced, released, deleted, expired.
    pub event: String,
    /// The envelope sender (`MAIL FROM`).
    pub sender: String,
    /// The recipients the event is about.
    pub recipients: Vec<String>,
    /// Free text: the reply, the rule or the reason (empty when there is nothing to add).
    pub detail: String,
    /// The spam score the verdict was made with (the verdict events: accepted, tagged,
    /// quarantined, rejected, tempfailed by a rule or threshold); absent on other events
    /// and in events stored before scores were recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// The symbols of that score, heaviest first, at most
    /// [`ENTRY_SYMBOLS_MAX`](mxmesh_crdt::qindex::ENTRY_SYMBOLS_MAX).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<SymbolWeight>,
}

/// A trace query.
#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    /// Only events whose sender contains this (case-insensitive).
    pub sender: Option<String>,
    /// Only events with a recipient that contains this (case-insensitive).
    pub rcpt: Option<String>,
    /// Only events at or after this time (milliseconds since the epoch).
    pub since_ms: Option<u64>,
    /// Only events of this message id (exact), and of the parts of it released for some of
    /// its recipients (relayed as `{id}.{position}`).
    pub message_id: Option<String>,
}

impl TraceQuery {
    fn matches(&self, e: &TraceEvent) -> bool {
        let has = |hay: &str, needle: &str| {
            hay.to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase())
        };
        self.sender.as_ref().is_none_or(|s| has(&e.sender, s))
            && self
                .rcpt
                .as_ref()
                .is_none_or(|r| e.recipients.iter().any(|x| has(x, r)))
            && self.since_ms.is_none_or(|t| e.time_ms >= t)
            && self
                .message_id
                .as_ref()
                .is_none_or(|id| of_message(&e.message_id, id))
    }
}

/// Whether `event_id` is message `id` or a part of it released for some recipients
/// (`{id}.{position}`).
fn of_message(event_id: &str, id: &str) -> bool {
    match event_id.strip_prefix(id) {
        Some("") => true,
        Some(rest) => rest
            .strip_prefix('.')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())),
        None => false,
    }
}

/// Adds an event to a batch that is being committed anyway.
pub fn record(batch: &mut Batch, event: &TraceEvent) {
    let key = ulid::Ulid::from_parts(event.time_ms, rand::random::<u128>()).to_string();
    batch.put(
        Cf::Trace,
        key,
        serde_json::to_vec(event).unwrap_or_default(),
    );
}

/// Writes events on their own (relaxed: losing the last few on a crash loses no mail).
pub async fn emit(store: &Store, events: &[TraceEvent]) -> Result<(), StoreError> {
    let mut b = Batch::new();
    for e in events {
        record(&mut b, e);
    }
    store.commit_relaxed(b).await
}

/// Newest-first events matching `q`.
pub fn query(store: &Store, q: &TraceQuery) -> Result<Vec<TraceEvent>, StoreError> {
    let mut out = Vec::new();
    let mut scanned = 0usize;
    store.scan_rev(Cf::Trace, |_, v| {
        scanned += 1;
        if let Ok(e) = serde_json::from_slice::<TraceEvent>(v) {
            if q.since_ms.is_some_and(|t| e.time_ms < t) {
                return false;
            }
            if q.matches(&e) {
                out.push(e);
            }
        }
        out.len() < TRACE_RESULTS_MAX && scanned < TRACE_SCAN_MAX
    })?;
    Ok(out)
}

/// Deletes events older than `before_ms` (oldest first). Returns how many.
pub async fn trim(store: &Store, before_ms: u64) -> Result<usize, StoreError> {
    let mut b = Batch::new();
    let mut n = 0usize;
    store.scan(Cf::Trace, b"", |k, v| {
        let old = serde_json::from_slice::<TraceEvent>(v)
            .map(|e| e.time_ms < before_ms)
            .unwrap_or(true);
        if old {
            b.delete(Cf::Trace, k.to_vec());
            n += 1;
        }
        old && n < 100_000
    })?;
    if !b.is_empty() {
        store.commit_relaxed(b).await?;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_id_finds_the_parts_released_per_recipient() {
        assert!(of_message("01A", "01A"));
        assert!(of_message("01A.1", "01A"));
        assert!(of_message("01A.12", "01A"));
        assert!(!of_message("01AB", "01A"));
        assert!(!of_message("01A.", "01A"));
        assert!(!of_message("01A.x", "01A"));
        assert!(!of_message("01", "01A"));
    }

    #[test]
    fn events_stored_before_scores_still_read() {
        let old = br#"{"time_ms":5,"node":"mx1","message_id":"01A","event":"quarantined","sender":"s@example.org","recipients":["u@example.com"],"detail":"spam score 12.5 reached the quarantine threshold 10"}"#;
        let e: TraceEvent = serde_json::from_slice(old).expect("an old event reads");
        assert_eq!((e.score, e.symbols.len()), (None, 0));
        let scored = TraceEvent {
            score: Some(12.5),
            symbols: vec![SymbolWeight {
                name: "URL_IP_ADDRESS".into(),
                weight: 2.0,
            }],
            ..e
        };
        let bytes = serde_json::to_vec(&scored).unwrap();
        assert_eq!(
            serde_json::from_slice::<TraceEvent>(&bytes).unwrap(),
            scored
        );
    }
}
