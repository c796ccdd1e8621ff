//! Group commit: one thread owns the write path so concurrent sessions share one WAL sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use rocksdb::DB;
use tokio::sync::{mpsc, oneshot};

use super::{Batch, StoreError};

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
    pub syncs: AtomicU64,
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
pub fn spawn(db: Arc<DB>) -> (Handle, std::thread::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(COMMIT_QUEUE_MAX);
    let stats = Arc::new(CommitStats::default());
    let thread_stats = stats.clone();
    let thread = std::thread::Builder::new()
        .name("store-commit".into())
        .spawn(move || run(db, rx, thread_stats))
        .expect("spawning the store committer thread");
    let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
    (Handle { tx, stats, closed }, thread)
}

fn run(db: Arc<DB>, mut rx: mpsc::Receiver<Request>, stats: Arc<CommitStats>) {
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
        write_group(&db, &mut group, &stats);
    }
}

/// A finished commit: who to tell, whether it asked for a sync, and the result.
type Outcome = (
    oneshot::Sender<Result<(), StoreError>>,
    bool,
    Result<(), StoreError>,
);

/// Writes every batch of the group; the last one that needs a sync carries it for all.
fn write_group(db: &DB, group: &mut Vec<Pending>, stats: &CommitStats) {
    let last_sync = group.iter().rposition(|r| r.sync);
    let mut results: Vec<Outcome> = Vec::with_capacity(group.len());
    for (i, req) in group.drain(..).enumerate() {
        let sync_here = Some(i) == last_sync;
        let result = super::write(db, req.batch, sync_here);
        results.push((req.done, req.sync, result));
    }
    stats
        .batches
        .fetch_add(results.len() as u64, Ordering::Relaxed);
    if let Some(i) = last_sync {
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        // If the sync itself failed, nothing before it in the group is known durable.
        if let Some(Err(e)) = results.get(i).map(|r| r.2.clone()) {
            for r in results.iter_mut().filter(|r| r.1) {
                if r.2.is_ok() {
                    r.2 = Err(e.clone());
                }
            }
        }
    }
    for (done, _, result) in results {
        let _ = done.send(result);
    }
}
