//! The learned Bayes corpus of this node ([`mxmesh_crdt::bayes::BayesCorpus`]) as a
//! pull-style replicated type, and the [`Bayes`] handle the admin API and the mail path
//! use: learn, forget, classify, status.
//!
//! Every change is written to the store before it is acknowledged: a learn or forget
//! answers only after its record is synced; a delta applied from a peer is queued to the
//! same writer, in the order the corpus changed, so two writes of one key never land out
//! of order. The corpus is restored from the store at start.
//!
//! A node whose store holds no record of its own (a new node, or one restarted on a wiped
//! store) takes its log back before its first own write
//! ([`BayesCorpus::restore_own`](mxmesh_crdt::bayes::BayesCorpus::restore_own)): whatever
//! records of its past life it has synced back from peers by then are re-issued, with
//! everything new, above a clock-based high-water mark, and its floor rises to the first of
//! them. Without that, a wiped node would number its new records from 1 again, and peers
//! that hold its past life's records under those seqs would never fetch the new ones.
//!
//! A record of this node's own log reaches peers only once it is stored: until then an
//! answer to a peer claims this node's log only up to its last stored record. A node that
//! crashed before a write landed restarts without that record and, its store still holding
//! earlier records of its own (so nothing is taken back), gives its seq to the next one;
//! had a peer already held the lost record, the two would hold different records under one
//! seq, which every replica refuses (the sync between them would stop for good).
//!
//! Sync: the asker sends its version vector, the answerer the records it lacks (at most
//! [`mxmesh_crdt::bayes::DELTA_RECORDS_MAX`] records and
//! [`mxmesh_crdt::bayes::DELTA_TOKENS_MAX`] tokens per answer), until an answer changes
//! nothing. Each node publishes its corpus fingerprint; peers with the same one are
//! skipped.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use mxmesh_crdt::bayes::{
    BayesCorpus, BayesDelta, BayesError, Changes, Class, Contribution, DELTA_RECORDS_MAX, Digest,
    LearnOutcome,
};
use tokio::sync::{mpsc, oneshot};

use super::keys;
use crate::clock::Clock;
use crate::mesh::{MessageKind, Peer, PullSync, RemoteError, Replicated, SyncSpec};
use crate::store::{Store, StoreError};

/// How often the corpus is reconciled with peers whose fingerprint differs.
pub const BAYES_SYNC_INTERVAL: Duration = Duration::from_millis(500);
/// Anti-entropy rounds with one peer per interval.
pub const BAYES_SYNC_ROUNDS_MAX: usize = 64;
/// Peers one sync round reconciles with at most.
pub const BAYES_SYNC_PEERS_MAX: usize = 4;
/// Writes waiting for the store at most; a peer's delta arriving when it is full is
/// refused (and fetched again next round), a learn waits for room.
pub const PERSIST_QUEUE_MAX: usize = 64;
/// The name of this replicated type (logs, the self-check switch `bayes-sync`).
pub const SYNC_NAME: &str = "bayes";

/// Why a learn or forget failed; nothing was acknowledged.
#[derive(Debug, thiserror::Error)]
pub enum BayesOpError {
    /// The corpus refused the operation (a bound, an exhausted clock).
    #[error("bayes corpus: {0}")]
    Corpus(#[from] BayesError),
    /// The store did not take the write.
    #[error("bayes corpus not stored: {0}")]
    Store(#[from] StoreError),
    /// The node is stopping (the writer is gone).
    #[error("bayes corpus writer stopped")]
    Stopped,
}

/// What a learn did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Learned {
    /// The message's normalised digest.
    pub digest: Digest,
    /// Learned, moved from the other class, or already learned as this class.
    pub outcome: LearnOutcome,
}

/// The corpus as `GET /api/v1/bayes` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BayesStatus {
    /// Messages learned as spam, mesh-wide as far as this node knows.
    pub spam_learned: u64,
    /// Messages learned as ham.
    pub ham_learned: u64,
    /// Distinct tokens with a count.
    pub tokens: usize,
    /// Whether the classifier votes (both classes at the minimum).
    pub ready: bool,
    /// The minimum learned per class.
    pub min_learned: u64,
    /// Per node that learned or forgot: its winning learns and records held.
    pub nodes: BTreeMap<String, Contribution>,
}

/// One write for the store writer; `done` hears the result when someone waits for it.
struct Persist {
    changes: Changes,
    done: Option<oneshot::Sender<Result<(), StoreError>>>,
}

/// This node's copy of the corpus (cheap to clone).
#[derive(Clone)]
pub struct Bayes(Arc<Inner>);

struct Inner {
    node_id: String,
    clock: Clock,
    corpus: RwLock<BayesCorpus>,
    /// The fingerprint of the corpus, `None` after a change until asked again.
    fingerprint: Mutex<Option<String>>,
    persist: mpsc::Sender<Persist>,
    /// The store held no record of this node: its first own write takes its log back
    /// first (see the module documentation). Read and cleared under the corpus write lock.
    reclaim: AtomicBool,
    /// The highest seq of this node's own log that the store holds (see the module docs).
    stored_own: Arc<AtomicU64>,
}

impl Bayes {
    /// Restores the corpus from `store` and starts its writer (on the current runtime; it
    /// ends when the last handle is dropped).
    pub fn open(store: Store, node_id: String, clock: Clock) -> anyhow::Result<Bayes> {
        let stored = crate::store::bayes::load(&store)?;
        let corpus = BayesCorpus::restore(stored.floors, stored.records)
            .map_err(|e| anyhow::anyhow!("restoring the bayes corpus: {e}"))?;
        let reclaim = !corpus.records().any(|r| r.owner == node_id);
        let own = corpus.version_vector().get(&node_id).copied();
        let stored_own = Arc::new(AtomicU64::new(own.unwrap_or(0)));
        let (tx, rx) = mpsc::channel(PERSIST_QUEUE_MAX);
        let writer = Writer {
            store,
            node_id: node_id.clone(),
            stored_own: stored_own.clone(),
        };
        tokio::spawn(writer.run(rx));
        Ok(Bayes(Arc::new(Inner {
            node_id,
            clock,
            corpus: RwLock::new(corpus),
            fingerprint: Mutex::new(None),
            persist: tx,
            reclaim: AtomicBool::new(reclaim),
            stored_own,
        })))
    }

    /// Learns `raw` as `class`; answers once the record is stored (nothing is written when
    /// the message is already learned as `class`).
    pub async fn learn(&self, raw: &[u8], class: Class) -> Result<Learned, BayesOpError> {
        let digest = Digest(crate::bayes::digest(raw));
        let tokens = crate::bayes::tokenize(raw);
        let now = self.0.clock.now_ms();
        let node = &self.0.node_id;
        let (outcome, done) = self
            .change(now, |corpus| {
                let report = corpus.learn(node, digest, class, &tokens, now)?;
                Ok((report.outcome, report.changes))
            })
            .await?;
        done.await?;
        Ok(Learned { digest, outcome })
    }

    /// Forgets message `digest` everywhere; answers once the tombstone is stored. Returns
    /// the class it was learned as here, `None` if it was not.
    pub async fn forget(&self, digest: Digest) -> Result<Option<Class>, BayesOpError> {
        let now = self.0.clock.now_ms();
        let node = &self.0.node_id;
        let (was, done) = self
            .change(now, |corpus| {
                let report = corpus.forget(node, digest, now)?;
                Ok((report.was, report.changes))
            })
            .await?;
        done.await?;
        Ok(was)
    }

    /// Runs `op` (an own write at `now_ms`) on the corpus, after taking the node's log back
    /// if it must, and queues the changes, in order, for the writer; the returned waiter
    /// resolves when they are stored.
    async fn change<T>(
        &self,
        now_ms: u64,
        op: impl FnOnce(&mut BayesCorpus) -> Result<(T, Changes), BayesError>,
    ) -> Result<(T, Waiter), BayesOpError> {
        let permit = self
            .0
            .persist
            .reserve()
            .await
            .map_err(|_| BayesOpError::Stopped)?;
        let mut corpus = self.0.corpus.write().unwrap_or_else(|e| e.into_inner());
        let reclaimed = self.reclaim(&mut corpus, now_ms)?;
        let (value, changes) = match op(&mut corpus) {
            Ok(done) => done,
            Err(e) if reclaimed.is_empty() => return Err(e.into()),
            Err(e) => {
                self.forget_fingerprint();
                permit.send(Persist {
                    changes: reclaimed,
                    done: None,
                });
                return Err(e.into());
            }
        };
        let changes = joined(reclaimed, changes);
        if changes.is_empty() {
            return Ok((value, Waiter(None)));
        }
        self.forget_fingerprint();
        let (tx, rx) = oneshot::channel();
        permit.send(Persist {
            changes,
            done: Some(tx),
        });
        Ok((value, Waiter(Some(rx))))
    }

    /// Takes this node's log back ([`BayesCorpus::restore_own`]) when the store held none
    /// of its records and it has not written since: the changes to store (none otherwise).
    /// Called with the corpus write lock held.
    fn reclaim(&self, corpus: &mut BayesCorpus, now_ms: u64) -> Result<Changes, BayesError> {
        if !self.0.reclaim.load(Ordering::Relaxed) {
            return Ok(Changes::default());
        }
        let report = corpus.restore_own(&self.0.node_id, &BayesCorpus::new(), now_ms)?;
        self.0.reclaim.store(false, Ordering::Relaxed);
        if report.reissued > 0 {
            tracing::info!(
                reissued = report.reissued,
                from_seq = report.mark + 1,
                "bayes corpus: own records synced back from peers re-issued above the high-water mark"
            );
        }
        Ok(report.changes)
    }

    /// The probability that `raw` is spam, `None` while either class has fewer than
    /// [`crate::bayes::MIN_LEARNED_PER_CLASS`] messages learned.
    /// Tokenizes only once the classifier is ready (an unready one costs no CPU per message).
    pub fn probability(&self, raw: &[u8]) -> Option<f64> {
        let min = crate::bayes::MIN_LEARNED_PER_CLASS;
        let learned = self
            .0
            .corpus
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .learned();
        if u64::from(learned.spam) < min || u64::from(learned.ham) < min {
            return None;
        }
        let tokens = crate::bayes::tokenize(raw);
        let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
        crate::bayes::classify(&Counts(&corpus), &tokens)
    }

    /// Counts and readiness, and what each node contributes.
    pub fn status(&self) -> BayesStatus {
        let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
        let learned = corpus.learned();
        let min = crate::bayes::MIN_LEARNED_PER_CLASS;
        BayesStatus {
            spam_learned: learned.spam.into(),
            ham_learned: learned.ham.into(),
            tokens: corpus.tokens(),
            ready: u64::from(learned.spam) >= min && u64::from(learned.ham) >= min,
            min_learned: min,
            nodes: corpus.contributions(),
        }
    }

    /// The corpus fingerprint (equal on replicas that classify alike). Locks in the
    /// writers' order (corpus, then the cache), so the cache is never stale.
    pub fn fingerprint(&self) -> String {
        let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
        let mut cached = self.0.fingerprint.lock().unwrap_or_else(|e| e.into_inner());
        cached.get_or_insert_with(|| corpus.fingerprint()).clone()
    }

    /// Drops the cached fingerprint; called with the corpus write lock held.
    fn forget_fingerprint(&self) {
        *self.0.fingerprint.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// Runs `f` on the corpus, read-only: its records, winners and counts (tests, the
    /// simulator's checks).
    pub fn read<T>(&self, f: impl FnOnce(&BayesCorpus) -> T) -> T {
        f(&self.0.corpus.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A recount of the corpus against its kept counts (tests, the simulator).
    pub fn audit(&self) -> Result<(), BayesError> {
        self.0
            .corpus
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .audit()
    }
}

/// `first` then `then`, as one atomic write (deletes, then puts in order, then floors).
fn joined(mut first: Changes, then: Changes) -> Changes {
    first.delete.extend(then.delete);
    first.put.extend(then.put);
    first.floors.extend(then.floors);
    first
}

/// Resolves when a queued write is stored (at once when nothing was queued).
struct Waiter(Option<oneshot::Receiver<Result<(), StoreError>>>);

impl Waiter {
    async fn await_stored(self) -> Result<(), BayesOpError> {
        match self.0 {
            None => Ok(()),
            Some(rx) => rx
                .await
                .map_err(|_| BayesOpError::Stopped)?
                .map_err(Into::into),
        }
    }
}

impl std::future::IntoFuture for Waiter {
    type Output = Result<(), BayesOpError>;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.await_stored())
    }
}

/// The store writer of one node's corpus.
struct Writer {
    store: Store,
    node_id: String,
    stored_own: Arc<AtomicU64>,
}

impl Writer {
    /// Writes queued changes in order, one synced batch each, until every sender is gone;
    /// after each, raises the stored seq of this node's own log to the highest it wrote.
    async fn run(self, mut rx: mpsc::Receiver<Persist>) {
        while let Some(Persist { changes, done }) = rx.recv().await {
            let result = match crate::store::bayes::batch(&changes) {
                Ok(batch) => self.store.commit(batch).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(()) => {
                    let own = changes.put.iter().filter(|r| r.owner == self.node_id);
                    if let Some(seq) = own.map(|r| r.seq).max() {
                        self.stored_own.fetch_max(seq, Ordering::AcqRel);
                    }
                }
                Err(e) => tracing::warn!(error = %e, "bayes corpus change not stored"),
            }
            if let Some(done) = done {
                let _ = done.send(result);
            }
        }
    }
}

/// Leaves out of `delta` the records of `me`'s own log above `stored` (changed in memory,
/// their store write still pending): `me`'s section then claims only up to `stored`, as a
/// delta cut short by a bound does, and goes when nothing is left of it.
fn hold_back_unstored(delta: &mut BayesDelta, me: &str, stored: u64) {
    for section in delta.owners.iter_mut().filter(|s| s.node == me) {
        if section.to > stored {
            section.records.retain(|r| r.seq <= stored);
            section.to = stored;
        }
    }
    delta.owners.retain(|s| s.to > s.from);
}

/// The corpus as the classifier reads it.
struct Counts<'a>(&'a BayesCorpus);

impl crate::bayes::TokenCounts for Counts<'_> {
    fn learned(&self) -> (u64, u64) {
        let l = self.0.learned();
        (l.spam.into(), l.ham.into())
    }

    fn counts(&self, token: u64) -> (u32, u32) {
        let c = self.0.counts(token);
        (c.spam, c.ham)
    }
}

impl Replicated for Bayes {
    fn spec(&self) -> SyncSpec {
        SyncSpec {
            name: SYNC_NAME,
            kind: MessageKind::BAYES_SYNC,
            interval: BAYES_SYNC_INTERVAL,
            peers_max: BAYES_SYNC_PEERS_MAX,
            rounds_max: BAYES_SYNC_ROUNDS_MAX,
            digest_key: Some(keys::BAYES_DIGEST),
        }
    }

    fn digest(&self) -> Option<String> {
        Some(self.fingerprint())
    }
}

impl PullSync for Bayes {
    fn request(&self) -> anyhow::Result<Vec<u8>> {
        let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
        Ok(serde_json::to_vec(&corpus.version_vector())?)
    }

    fn serve(&self, _from: &Peer, request: &[u8]) -> Result<Vec<u8>, RemoteError> {
        let theirs = super::index::decode_version_vector(request)?;
        let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
        let mut delta = corpus.delta_since(&theirs, DELTA_RECORDS_MAX);
        let stored = self.0.stored_own.load(Ordering::Acquire);
        hold_back_unstored(&mut delta, &self.0.node_id, stored);
        serde_json::to_vec(&delta).map_err(|e| RemoteError::handler(format!("bayes sync: {e}")))
    }

    fn apply(&self, answer: &[u8]) -> anyhow::Result<bool> {
        let delta: BayesDelta = serde_json::from_slice(answer)?;
        let permit = self
            .0
            .persist
            .try_reserve()
            .map_err(|e| anyhow::anyhow!("bayes sync: store writer busy or stopped: {e}"))?;
        let mut corpus = self.0.corpus.write().unwrap_or_else(|e| e.into_inner());
        let report = corpus.apply(delta)?;
        let changed = report.changed();
        if changed {
            self.forget_fingerprint();
        }
        if !report.changes.is_empty() {
            permit.send(Persist {
                changes: report.changes,
                done: None,
            });
        }
        Ok(changed)
    }
}

#[cfg(test)]
#[path = "bayes_tests.rs"]
mod tests;
