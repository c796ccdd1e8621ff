//! Queue copies (shadow redundancy, README "Queue copies"): with `copies` ≥ 2 every entry
//! of this node's relay queue is also held by `copies − 1` peers until it leaves the queue
//! (relayed, bounced, or handed over); then the owner tells them to drop it. The holders
//! are made one at a time, each told the ones before it, so when the owner is forgotten
//! exactly one holder relays the entry ([`held::fate`]).
//!
//! The owner's worker ([`run`]) follows the relay's change feed: a new entry gets its
//! shadows at once (batched per holder, one synced write on the holder per batch); an entry
//! that left has its shadows dropped. The owner keeps `qh/<id>` (the holders) in
//! `Cf::Copies`, written relaxed: losing it only makes the owner shadow again (the holder
//! overwrites) or leaves a shadow that the owner's next rescan drops. A rescan every
//! [`RECONCILE_INTERVAL_MS`] finds what the bounded feed dropped and replaces departed holders.
//! An entry this node relays for a forgotten owner has its shadows on the later holders
//! dropped when it leaves the queue ([`relayed`]).
//!
//! The single-copy window is from the commit before `250` to the holder's answer
//! ([`window`]); with `sync_queue_copies` the `250` waits for that answer (at most
//! [`SYNC_SHADOW_WAIT`], then it is answered anyway and counted).

pub mod held;
pub mod relayed;
mod rescan;
pub mod window;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use super::settings::CustodyBook;
use super::{Custody, copies, encode_raw};
use crate::cluster::rpc::{self, RpcRequest};
use crate::relay::feed::QueueChange;
use crate::relay::queue::QueueEntry;
use crate::store::{Batch, Cf, Store, StoreError};

/// Changes of the relay queue one step of the worker takes at most.
pub const SHADOW_BATCH_MAX: usize = 256;
/// Batches one step takes at most before it looks at the rest of its work.
const STEP_BATCHES_MAX: usize = 16;
/// Payload of one `hold_shadows` call at most (the mesh frame is 16 MiB).
pub const SHADOW_CALL_BYTES_MAX: usize = 8 * 1024 * 1024;
/// Shadows one `hold_shadows` call carries at most (also the holder's bound on input).
pub const SHADOWS_PER_CALL_MAX: usize = 1024;

/// The holder's check of a call's size: at most [`SHADOWS_PER_CALL_MAX`] `items` (shadows or
/// ids) in call `op`, else 400 naming the call and the count.
pub(crate) fn within_call_bound(op: &str, items: usize, what: &str) -> Result<(), (u16, String)> {
    if items > SHADOWS_PER_CALL_MAX {
        return Err((
            400,
            format!("{op}: {items} {what} (at most {SHADOWS_PER_CALL_MAX})"),
        ));
    }
    Ok(())
}
/// How often the worker wakes without a change (holder sweep, rescan check).
pub const SHADOW_TICK: Duration = Duration::from_millis(250);
/// How often the owner rescans its queue and its holder records.
pub const RECONCILE_INTERVAL_MS: u64 = 10_000;
/// Keys one rescan visits at most (the next one continues from there).
pub const RECONCILE_SCAN_MAX: usize = 10_000;
/// Longest a `250` waits for its shadow with `sync_queue_copies`.
pub const SYNC_SHADOW_WAIT: Duration = Duration::from_secs(5);
/// Messages waiting for their shadow before `250` at most (more are answered at once).
pub const WAITERS_MAX: usize = 10_000;
/// Queue entries (and held shadows) a `/metrics` count looks at at most.
pub const UNDER_COPIED_SCAN_MAX: usize = 100_000;

/// One shadow on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShadowItem {
    /// The owner's queue entry.
    pub entry: Box<QueueEntry>,
    /// Holders that took a shadow of it before, in order.
    #[serde(default)]
    pub before: Vec<String>,
    /// The message bytes, base64.
    pub body: String,
}

/// The worker's state shared with the SMTP path and `/metrics`.
#[derive(Default)]
pub struct ShadowState {
    waiters: Mutex<HashMap<String, Vec<oneshot::Sender<bool>>>>,
    /// Recent single-copy windows.
    pub windows: window::Windows,
    bytes_sent: AtomicU64,
    sync_missed: AtomicU64,
    /// Where the next rescan of the queue starts.
    cursor: Mutex<Vec<u8>>,
    last_reconcile_ms: AtomicU64,
}

impl ShadowState {
    /// Payload bytes of the shadows holders took (base64 bytes plus entry, JSON).
    pub fn bytes_sent(&self) -> u64 {
        self.bytes_sent.load(Ordering::Relaxed)
    }

    /// `250`s answered with `sync_queue_copies` before a peer held the shadow.
    pub fn sync_missed(&self) -> u64 {
        self.sync_missed.load(Ordering::Relaxed)
    }

    fn complete(&self, id: &str, held: bool) {
        let waiting = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        for w in waiting.into_iter().flatten() {
            let _ = w.send(held);
        }
    }
}

fn holders_key(id: &str) -> Vec<u8> {
    format!("qh/{id}").into_bytes()
}

/// The holders recorded for own queue entry `id` (none when unreadable).
pub(super) fn holders_of(store: &Store, id: &str) -> Vec<String> {
    match store.get(Cf::Copies, &holders_key(id)) {
        Ok(Some(b)) => serde_json::from_slice(&b).unwrap_or_default(),
        _ => Vec::new(),
    }
}

pub(super) fn active(custody: &Custody, book: &CustodyBook) -> bool {
    book.quarantine.copies >= 2 && custody.mesh().is_some() && !custody.departed()
}

impl Custody {
    /// With `sync_queue_copies` on (and shadows made): a receiver that says whether a peer
    /// holds queue entry `id`'s shadow; register it before the entry is queued.
    pub fn shadow_waiter(&self, id: &str) -> Option<oneshot::Receiver<bool>> {
        let book = self.book();
        if !book.quarantine.sync_queue_copies || !active(self, &book) {
            return None;
        }
        let mut w = self
            .inner
            .shadows
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if w.len() >= WAITERS_MAX {
            self.inner
                .shadows
                .sync_missed
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        let (tx, rx) = oneshot::channel();
        w.entry(id.to_string()).or_default().push(tx);
        Some(rx)
    }

    /// Waits (at most [`SYNC_SHADOW_WAIT`]) for a waiter from [`Custody::shadow_waiter`].
    pub async fn wait_shadow(&self, id: &str, waiter: oneshot::Receiver<bool>) {
        let held = tokio::time::timeout(SYNC_SHADOW_WAIT, waiter).await;
        if !matches!(held, Ok(Ok(true))) {
            self.inner
                .shadows
                .sync_missed
                .fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%id, "queue shadow not held before 250; answered anyway");
        }
    }

    /// The worker's shared state.
    pub fn shadows(&self) -> &ShadowState {
        &self.inner.shadows
    }

    /// The shadows of `owner`'s queue entries held here, at most
    /// [`held::SWEEP_SHADOWS_MAX`].
    pub fn shadows_held_of(&self, owner: &str) -> Result<Vec<held::HeldShadow>, StoreError> {
        held::held_of(&self.inner.store, owner, held::SWEEP_SHADOWS_MAX)
    }

    /// Shadows of other nodes' queue entries held here, counted up to
    /// [`UNDER_COPIED_SCAN_MAX`] (the `/metrics` gauge).
    pub fn shadows_held(&self) -> usize {
        let mut n = 0;
        let _ = self.inner.store.scan(Cf::Copies, b"qs/", |k, _| {
            if !k.starts_with(b"qs/") {
                return false;
            }
            n += 1;
            n < UNDER_COPIED_SCAN_MAX
        });
        n
    }

    /// The holders recorded for own queue entry `id`.
    pub fn shadow_holders(&self, id: &str) -> Vec<String> {
        holders_of(&self.inner.store, id)
    }

    /// Own relay queue entries with fewer live shadow holders than `copies − 1` (0 with
    /// `copies` = 1): the `/metrics` gauge of queued messages inside their single-copy
    /// window. Looks at [`UNDER_COPIED_SCAN_MAX`] entries at most.
    pub fn queue_under_copied(&self) -> usize {
        let book = self.book();
        let wanted = book.quarantine.copies.saturating_sub(1) as usize;
        if wanted == 0 {
            return 0;
        }
        let store = &self.inner.store;
        let (mut seen, mut under) = (0, 0);
        let _ = store.scan(Cf::Queue, b"", |k, _| {
            seen += 1;
            let id = String::from_utf8_lossy(k);
            let holders = holders_of(store, &id);
            if holders.iter().filter(|h| !book.is_departed(h)).count() < wanted {
                under += 1;
            }
            seen < UNDER_COPIED_SCAN_MAX
        });
        under
    }
}

/// The worker: follows the relay's changes until `shutdown` turns true.
pub async fn run(custody: Custody, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = custody.inner.relay.feed().changed() => {}
            _ = tokio::time::sleep(SHADOW_TICK) => {}
            _ = shutdown.changed() => {}
        }
        if *shutdown.borrow() {
            break;
        }
        step(&custody).await;
    }
}

/// One step: the waiting changes, then (when due) the rescan, then the holder's sweep.
pub async fn step(custody: &Custody) {
    let book = custody.book();
    for _ in 0..STEP_BATCHES_MAX {
        let changes = custody.inner.relay.feed().take(SHADOW_BATCH_MAX);
        if changes.is_empty() {
            break;
        }
        apply(custody, &book, changes).await;
    }
    if custody.mesh().is_none() || custody.departed() {
        return;
    }
    let now = custody.inner.clock.now_ms();
    let last = custody
        .inner
        .shadows
        .last_reconcile_ms
        .load(Ordering::Relaxed);
    if now.saturating_sub(last) >= RECONCILE_INTERVAL_MS {
        custody
            .inner
            .shadows
            .last_reconcile_ms
            .store(now, Ordering::Relaxed);
        rescan::reconcile(custody, &book).await;
    }
    held::sweep(custody, &book).await;
}

async fn apply(custody: &Custody, book: &CustodyBook, changes: Vec<QueueChange>) {
    let mut added = Vec::new();
    let mut left = Vec::new();
    for c in changes {
        match c {
            QueueChange::Added { id, at_ms } => added.push((id, Some(at_ms))),
            QueueChange::Left { id } => left.push(id),
        }
    }
    match active(custody, book) {
        true => push(custody, book, added).await,
        false => added
            .iter()
            .for_each(|(id, _)| custody.inner.shadows.complete(id, false)),
    }
    if custody.mesh().is_some() {
        drop_left(custody, book, &left).await;
        relayed::drop_elsewhere(custody, book, &left).await;
    }
}

/// An own queue entry on its way to its shadows.
struct Pending {
    entry: QueueEntry,
    body: Vec<u8>,
    queued_ms: Option<u64>,
    holders: Vec<String>,
    recorded: usize,
}

/// Makes the missing shadows of own entries `ids` (with when each was queued, if known).
pub(super) async fn push(custody: &Custody, book: &CustodyBook, ids: Vec<(String, Option<u64>)>) {
    let wanted = book.quarantine.copies.saturating_sub(1) as usize;
    let live = |holders: &[String]| holders.iter().filter(|h| !book.is_departed(h)).count();
    let mut todo = load(custody, ids);
    for _ in 0..wanted {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, p) in todo.iter().enumerate() {
            if live(&p.holders) >= wanted {
                continue;
            }
            let next = copies::candidates(custody, &p.entry.id, &p.holders).await;
            if let Some(to) = next.into_iter().next() {
                groups.entry(to).or_default().push(i);
            }
        }
        if groups.is_empty() {
            break;
        }
        let sends = groups
            .into_iter()
            .map(|(to, idx)| send_group(custody, to, idx, &todo));
        for (to, took) in futures::future::join_all(sends).await {
            took.into_iter()
                .for_each(|i| todo[i].holders.push(to.clone()));
        }
    }
    record(custody, &todo).await;
    let now = custody.inner.clock.now_ms();
    for p in &todo {
        let held = live(&p.holders) >= wanted;
        if let (true, true, Some(at)) = (held, p.holders.len() > p.recorded, p.queued_ms) {
            custody.inner.shadows.windows.record(now.saturating_sub(at));
        }
        custody.inner.shadows.complete(&p.entry.id, held);
    }
}

/// Reads the entries still queued; the others need no shadow (their waiters are told so).
fn load(custody: &Custody, ids: Vec<(String, Option<u64>)>) -> Vec<Pending> {
    let relay = &custody.inner.relay;
    let mut todo = Vec::new();
    for (id, queued_ms) in ids {
        match relay.stored(&id) {
            Ok(Some((entry, body))) => {
                let holders = holders_of(&custody.inner.store, &id);
                let recorded = holders.len();
                todo.push(Pending {
                    entry,
                    body,
                    queued_ms,
                    holders,
                    recorded,
                });
            }
            Ok(None) => custody.inner.shadows.complete(&id, true),
            Err(e) => {
                tracing::warn!(%id, error = %e, "queue shadow: entry unreadable; rescan retries");
                custody.inner.shadows.complete(&id, false);
            }
        }
    }
    todo
}

/// Sends the shadows `idx` of `todo` to `to`, in calls bounded by count and bytes; answers
/// the indices `to` took.
async fn send_group(
    custody: &Custody,
    to: String,
    idx: Vec<usize>,
    todo: &[Pending],
) -> (String, Vec<usize>) {
    let mut took = Vec::new();
    let mut call: Vec<(usize, ShadowItem)> = Vec::new();
    let mut bytes = 0;
    for i in idx {
        let p = &todo[i];
        let item = ShadowItem {
            entry: Box::new(p.entry.clone()),
            before: p.holders.clone(),
            body: encode_raw(&p.body),
        };
        let size = item.body.len() + 1024;
        if !call.is_empty()
            && (bytes + size > SHADOW_CALL_BYTES_MAX || call.len() >= SHADOWS_PER_CALL_MAX)
        {
            took.extend(send_call(custody, &to, std::mem::take(&mut call)).await);
            bytes = 0;
        }
        bytes += size;
        call.push((i, item));
    }
    if !call.is_empty() {
        took.extend(send_call(custody, &to, call).await);
    }
    (to, took)
}

async fn send_call(custody: &Custody, to: &str, call: Vec<(usize, ShadowItem)>) -> Vec<usize> {
    let (idx, shadows): (Vec<usize>, Vec<ShadowItem>) = call.into_iter().unzip();
    let req = RpcRequest::HoldShadows { shadows };
    let bytes = serde_json::to_vec(&req).map_or(0, |b| b.len() as u64);
    let mesh = custody.mesh();
    match rpc::call(mesh.as_deref(), to, &req).await {
        Ok(_) => {
            let sent = &custody.inner.shadows.bytes_sent;
            sent.fetch_add(bytes, Ordering::Relaxed);
            idx
        }
        Err(e) => {
            tracing::warn!(holder = %to, error = %e, "queue shadows not taken; retried");
            Vec::new()
        }
    }
}

/// Records the holders of the entries that got new ones (relaxed: see the module doc).
async fn record(custody: &Custody, todo: &[Pending]) {
    let mut b = Batch::new();
    for p in todo.iter().filter(|p| p.holders.len() > p.recorded) {
        let holders = serde_json::to_vec(&p.holders).unwrap_or_default();
        b.put(Cf::Copies, holders_key(&p.entry.id), holders);
    }
    if b.is_empty() {
        return;
    }
    if let Err(e) = custody.inner.store.commit_relaxed(b).await {
        tracing::warn!(error = %e, "queue shadow holders not recorded; the rescan shadows again");
    }
}

/// Tells the holders of entries `ids` (which left this node's queue) to drop their shadows;
/// forgets an entry's holders once every one still a member answered.
pub(super) async fn drop_left(custody: &Custody, book: &CustodyBook, ids: &[String]) {
    let store = &custody.inner.store;
    let mut by_holder: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut known: Vec<(String, Vec<String>)> = Vec::new();
    for id in ids {
        let holders = holders_of(store, id);
        if holders.is_empty() {
            continue;
        }
        for h in holders.iter().filter(|h| !book.is_departed(h)) {
            by_holder.entry(h.clone()).or_default().push(id.clone());
        }
        known.push((id.clone(), holders));
    }
    let calls = by_holder.into_iter().map(|(holder, ids)| async move {
        let mesh = custody.mesh();
        let mut ok = true;
        for chunk in ids.chunks(SHADOWS_PER_CALL_MAX) {
            let req = RpcRequest::DropShadows {
                ids: chunk.to_vec(),
            };
            ok &= rpc::call(mesh.as_deref(), &holder, &req).await.is_ok();
        }
        (holder, ok)
    });
    let failed: Vec<String> = futures::future::join_all(calls)
        .await
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(h, _)| h)
        .collect();
    let mut b = Batch::new();
    for (id, holders) in known {
        if !holders.iter().any(|h| failed.contains(h)) {
            b.delete(Cf::Copies, holders_key(&id));
        }
    }
    if !b.is_empty()
        && let Err(e) = store.commit_relaxed(b).await
    {
        tracing::warn!(error = %e, "queue shadow holder records not removed");
    }
}
