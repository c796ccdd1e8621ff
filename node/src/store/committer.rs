//! Group commit: one thread owns the write path so concurrent sessions share one WAL sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::DB;
use tokio::sync::{mpsc, oneshot};

use super::{Batch, StoreError, WriteHealth};

/// Commits waiting for the committer thread; senders wait (backpressure) beyond this.
pub const COMMIT_QUEUE_MAX: usize = 4096;
/// Batches written under one sync.
pub const COMMIT_GROUP_MAX: usize = 256;

enum Request {
    Commit {
        batch: Batch,
        sync: bool,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
    Stop,
}

/// Sends batches to the committer thread.
#[derive(Clone)]
pub struct Handle {
    tx: mpsc::Sender<Request>,
    stats: Arc<CommitStats>,
    closed: Arc<std::sync::atomic::AtomicBool>,
}

/// How well grouping works: syncs against batches.
#[derive(Default)]
pub struct CommitStats {
    /// Synced group writes (one sync each, however many batches they held).
    pub syncs: AtomicU64,
    /// Batches committed (each group write counts all of its batches).
    pub batches: AtomicU64,
}

impl Handle {
    pub async fn commit(&self, batch: Batch, sync: bool) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Request::Commit { batch, sync, done })
            .await
            .map_err(|_| StoreError::Closed)?;
        wait.await.map_err(|_| StoreError::Closed)?
    }

    /// Asks the committer thread to finish the queued requests and exit.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Release);
        let _ = self.tx.try_send(Request::Stop);
    }

    #[allow(dead_code)]
    pub fn stats(&self) -> (u64, u64) {
        (
            self.stats.syncs.load(Ordering::Relaxed),
            self.stats.batches.load(Ordering::Relaxed),
        )
    }
}

/// A commit waiting in a group.
struct Pending {
    batch: Batch,
    sync: bool,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Starts the committer thread; it ends on [`Handle::close`] or when every handle is gone.
pub fn spawn(db: Arc<DB>, health: Arc<WriteHealth>) -> (Handle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(COMMIT_QUEUE_MAX);
    let stats = Arc::new(CommitStats::default());
    let thread_stats = stats.clone();
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let thread_closed = closed.clone();
    let thread = std::thread::Builder::new()
        .name("store-commit".into())
        .spawn(move || run(db, rx, thread_stats, thread_closed, health))
        .expect("spawning the store committer thread");
    (Handle { tx, stats, closed }, thread)
}

fn run(
    db: Arc<DB>,
    mut rx: mpsc::Receiver<Request>,
    stats: Arc<CommitStats>,
    closed: Arc<std::sync::atomic::AtomicBool>,
    health: Arc<WriteHealth>,
) {
    let mut group: Vec<Pending> = Vec::with_capacity(COMMIT_GROUP_MAX);
    let mut stop = false;
    while !stop {
        match rx.blocking_recv() {
            Some(Request::Commit { batch, sync, done }) => {
                group.push(Pending { batch, sync, done })
            }
            Some(Request::Stop) | None => break,
        }
        while group.len() < COMMIT_GROUP_MAX {
            match rx.try_recv() {
                Ok(Request::Commit { batch, sync, done }) => {
                    group.push(Pending { batch, sync, done })
                }
                Ok(Request::Stop) => {
                    stop = true;
                    break;
                }
                Err(_) => break,
            }
        }
        write_group(&db, &mut group, &stats, &health);
        if closed.load(Ordering::Acquire) && rx.is_empty() {
            break;
        }
    }
}

/// Writes the whole group as ONE RocksDB write batch: synced when any member asked for a
/// sync, and all-or-nothing, so a failed write never leaves part of a group visible.
fn write_group(db: &DB, group: &mut Vec<Pending>, stats: &CommitStats, health: &WriteHealth) {
    let sync = group.iter().any(|r| r.sync);
    let mut merged = Batch::new();
    let mut waiters = Vec::with_capacity(group.len());
    for req in group.drain(..) {
        merged.ops.extend(req.batch.ops);
        waiters.push(req.done);
    }
    let result = super::write(db, merged, sync);
    health.record(&result);
    stats
        .batches
        .fetch_add(waiters.len() as u64, Ordering::Relaxed);
    if sync {
        stats.syncs.fetch_add(1, Ordering::Relaxed);
    }
    for done in waiters {
        let _ = done.send(result.clone());
    }
}
