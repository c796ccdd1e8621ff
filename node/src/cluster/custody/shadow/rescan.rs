//! The owner's periodic rescan of its queue shadows (every [`super::RECONCILE_INTERVAL_MS`]):
//! holder records of entries that left (their drops were missed) and queue entries with
//! fewer live holders than asked (their changes were missed, or a holder left the mesh),
//! and the drops of relayed forgotten owners' shadows not yet taken by every member.

use super::super::Custody;
use super::super::settings::CustodyBook;
use super::{RECONCILE_SCAN_MAX, SHADOW_BATCH_MAX, active, drop_left, holders_of, push};
use crate::store::Cf;

/// The periodic rescan: holder records of entries that left (their drops were missed) and
/// queue entries with fewer live holders than asked (their changes were missed, or a holder
/// left the mesh).
pub(super) async fn reconcile(custody: &Custody, book: &CustodyBook) {
    let store = &custody.inner.store;
    let mut gone = Vec::new();
    let scanned = store.scan(Cf::Copies, b"qh/", |k, _| {
        let Some(id) = k.strip_prefix(b"qh/") else {
            return false;
        };
        let id = String::from_utf8_lossy(id).to_string();
        if matches!(store.get(Cf::Queue, id.as_bytes()), Ok(None)) {
            gone.push(id);
        }
        gone.len() < RECONCILE_SCAN_MAX
    });
    if let Err(e) = scanned {
        return tracing::warn!(error = %e, "queue shadows: rescan failed");
    }
    drop_left(custody, book, &gone).await;
    let relayed = super::relayed::left_queue(store, RECONCILE_SCAN_MAX);
    super::relayed::drop_elsewhere(custody, book, &relayed).await;
    if active(custody, book) {
        let ids = unshadowed(custody, book);
        for chunk in ids.chunks(SHADOW_BATCH_MAX) {
            let chunk = chunk.iter().map(|id| (id.clone(), None)).collect();
            push(custody, book, chunk).await;
        }
    }
}

/// Queue entries with fewer live holders than asked, from the rescan's cursor on (it
/// wraps around at the end of the queue).
fn unshadowed(custody: &Custody, book: &CustodyBook) -> Vec<String> {
    let store = &custody.inner.store;
    let wanted = book.quarantine.copies.saturating_sub(1) as usize;
    let mut cursor = custody
        .inner
        .shadows
        .cursor
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let mut out = Vec::new();
    let mut visited = 0;
    let mut last = Vec::new();
    let from = cursor.clone();
    let _ = store.scan(Cf::Queue, &from, |k, _| {
        visited += 1;
        if k == from.as_slice() {
            return true;
        }
        last = k.to_vec();
        let id = String::from_utf8_lossy(k).to_string();
        let live = holders_of(store, &id)
            .iter()
            .filter(|h| !book.is_departed(h))
            .count();
        if live < wanted {
            out.push(id);
        }
        visited < RECONCILE_SCAN_MAX
    });
    *cursor = if visited < RECONCILE_SCAN_MAX {
        Vec::new()
    } else {
        last
    };
    out
}
