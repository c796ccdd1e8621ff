//! What happened to the relay queue, for whoever keeps shadows of it (queue copies,
//! `cluster::custody::shadow`): entries added and entries that left (relayed, bounced, or
//! handed to another node). A bounded buffer: when it is full the oldest change is dropped
//! and counted, and the reader's periodic rescan of the queue finds what it missed.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// Changes the feed buffers at most before dropping the oldest.
pub const FEED_CHANGES_MAX: usize = 65_536;

/// One change of the relay queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueChange {
    /// Entry `id` was committed to the queue at `at_ms` (node clock).
    Added {
        /// The queue entry's id.
        id: String,
        /// When it was committed.
        at_ms: u64,
    },
    /// Entry `id` left the queue (its deletion is committed).
    Left {
        /// The queue entry's id.
        id: String,
    },
}

/// The bounded change buffer with its wake-up.
#[derive(Default)]
pub struct QueueFeed {
    changes: Mutex<VecDeque<QueueChange>>,
    wake: Notify,
    dropped: AtomicU64,
}

impl QueueFeed {
    /// Appends a change and wakes the reader.
    pub fn push(&self, change: QueueChange) {
        {
            let mut q = self.changes.lock().unwrap_or_else(|p| p.into_inner());
            if q.len() >= FEED_CHANGES_MAX {
                q.pop_front();
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(change);
        }
        self.wake.notify_one();
    }

    /// Takes up to `max` changes, oldest first.
    pub fn take(&self, max: usize) -> Vec<QueueChange> {
        let mut q = self.changes.lock().unwrap_or_else(|p| p.into_inner());
        let n = q.len().min(max);
        q.drain(..n).collect()
    }

    /// Changes waiting.
    pub fn len(&self) -> usize {
        self.changes.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no change waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Resolves once a change was pushed since the last wake-up.
    pub async fn changed(&self) {
        self.wake.notified().await
    }

    /// Changes dropped because the buffer was full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_feed_drops_the_oldest_change_and_counts_it() {
        let feed = QueueFeed::default();
        for i in 0..=FEED_CHANGES_MAX {
            feed.push(QueueChange::Left { id: i.to_string() });
        }
        assert_eq!(feed.len(), FEED_CHANGES_MAX);
        assert_eq!(feed.dropped(), 1);
        assert_eq!(
            feed.take(2),
            [
                QueueChange::Left { id: "1".into() },
                QueueChange::Left { id: "2".into() }
            ]
        );
    }
}
