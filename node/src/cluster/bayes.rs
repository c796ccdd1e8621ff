//! The learned Bayes corpus of this node ([`mxmesh_crdt::bayes::BayesCorpus`]) as a
//! pull-style replicated type, and the [`Bayes`] handle the admin API and the mail path
//! use: learn, forget, classify, status.
//!
//! Every change is written to the store before it is acknowledged: a learn or forget is
//! planned on the corpus, its record written and synced, and only then applied (so a write
//! that fails leaves nothing applied, and no peer can fetch a record the store lacks); own
//! operations run one at a time, so a plan stays valid until it is applied. A delta
//! applied from a peer is queued to the same writer, in the order the corpus changed, so
//! two writes of one key never land out of order. The corpus is restored from the store
//! at start.
//!
//! # The own log after a restart
//!
//! A node with a mesh takes own operations only once its own log is settled: it first
//! catches up with one peer (a pull whose answer changes nothing; while waiting it
//! publishes a digest no peer has, so the mesh syncs with it), or gives up waiting after
//! [`RESTORE_WAIT`]. If its store held nothing of its own log (a wiped or new data
//! directory), or the peer held records of its log that the store lacked (an old store),
//! it then calls [`BayesCorpus::restore_own`]: its records, as the peers had them, are
//! re-issued above every seq of its past life, so the mesh-wide counts stay as they were
//! and new learns never reuse a seq peers hold. Learns and forgets wait until then.
//!
//! Sync: the asker sends its version vector, the answerer the records it lacks (at most
//! [`mxmesh_crdt::bayes::DELTA_RECORDS_MAX`] records and
//! [`mxmesh_crdt::bayes::DELTA_TOKENS_MAX`] tokens per answer), until an answer changes
//! nothing. Each node publishes its corpus fingerprint; peers with the same one are
//! skipped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use mxmesh_crdt::bayes::{
    BayesCorpus, BayesDelta, BayesError, Changes, Class, Contribution, DELTA_RECORDS_MAX, Digest,
    LearnOutcome,
};
use tokio::sync::{mpsc, oneshot, watch};

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
/// How long a node with a mesh waits after start to catch up with a peer before it settles
/// its own log alone (own learns and forgets wait this long at most).
pub const RESTORE_WAIT: Duration = Duration::from_secs(10);
/// Prefix of the digest published while the own log is not settled (no peer publishes it,
/// so every peer is synced with).
const UNSETTLED_DIGEST_PREFIX: &str = "settling:";

/// Whether peers may hold records of this node's own log (so it must catch up before it
/// writes any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peers {
    /// No `[mesh]`: nobody else holds the log; own operations run at once.
    None,
    /// A mesh: settle the own log first (see the module documentation).
    Mesh,
}

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

/// What settling the own log must know: set at open on a node with a mesh, taken when it
/// settles.
#[derive(Debug, Clone, Copy)]
struct Unsettled {
    /// The store held no record and no floor of this node's own log.
    nothing_stored: bool,
    /// The version of the own log the store held.
    stored_version: u64,
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
    /// Per node that learned or forgot (holds a record): its winning learns and records
    /// held.
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
    /// Held by the own operation in progress (plan, write, apply), one at a time.
    own: tokio::sync::Mutex<()>,
    /// `Some` until the own log is settled.
    unsettled: Mutex<Option<Unsettled>>,
    /// True once the own log is settled: own operations wait for it.
    settled: watch::Sender<bool>,
}

impl Bayes {
    /// Restores the corpus from `store` and starts its writer (on the current runtime; it
    /// ends when the last handle is dropped). With [`Peers::Mesh`] the own log is settled
    /// later (module documentation), at the latest after [`RESTORE_WAIT`].
    pub fn open(
        store: Store,
        node_id: String,
        clock: Clock,
        peers: Peers,
    ) -> anyhow::Result<Bayes> {
        Bayes::open_waiting(store, node_id, clock, peers, RESTORE_WAIT)
    }

    /// [`Bayes::open`], settling alone after `wait` (tests shorten it).
    fn open_waiting(
        store: Store,
        node_id: String,
        clock: Clock,
        peers: Peers,
        wait: Duration,
    ) -> anyhow::Result<Bayes> {
        let stored = crate::store::bayes::load(&store)?;
        let nothing_stored = !stored.records.iter().any(|r| r.owner == node_id)
            && !stored.floors.iter().any(|(owner, _)| *owner == node_id);
        let corpus = BayesCorpus::restore(stored.floors, stored.records)
            .map_err(|e| anyhow::anyhow!("restoring the bayes corpus: {e}"))?;
        let unsettled = (peers == Peers::Mesh).then(|| Unsettled {
            nothing_stored,
            stored_version: corpus.version(&node_id),
        });
        let (tx, rx) = mpsc::channel(PERSIST_QUEUE_MAX);
        tokio::spawn(write_loop(store, rx));
        let bayes = Bayes(Arc::new(Inner {
            node_id,
            clock,
            corpus: RwLock::new(corpus),
            fingerprint: Mutex::new(None),
            persist: tx,
            own: tokio::sync::Mutex::new(()),
            settled: watch::Sender::new(unsettled.is_none()),
            unsettled: Mutex::new(unsettled),
        }));
        if unsettled.is_some() {
            tokio::spawn(settle_after(Arc::downgrade(&bayes.0), wait));
        }
        Ok(bayes)
    }

    /// Whether own operations run (the own log is settled).
    pub fn is_settled(&self) -> bool {
        *self.0.settled.borrow()
    }

    /// Settles the own log now (module documentation): restores it when the store lacked
    /// it, then lets own operations run. Does nothing once settled.
    async fn settle(&self, why: &str) {
        let Ok(permit) = self.0.persist.reserve().await else {
            return;
        };
        let mut unsettled = self.0.unsettled.lock().unwrap_or_else(|e| e.into_inner());
        let Some(was) = unsettled.take() else {
            return;
        };
        let me = &self.0.node_id;
        let mut corpus = self.0.corpus.write().unwrap_or_else(|e| e.into_inner());
        let behind = corpus.version(me) > was.stored_version;
        if was.nothing_stored || behind {
            match corpus.restore_own(me, &BayesCorpus::new(), self.0.clock.now_ms()) {
                Ok(report) => {
                    tracing::info!(
                        reissued = report.reissued,
                        mark = report.mark,
                        why,
                        "bayes: own log restored"
                    );
                    permit.send(Persist {
                        changes: report.changes,
                        done: None,
                    });
                }
                Err(e) => tracing::error!(error = %e, "bayes: own log not restored"),
            }
        } else {
            tracing::debug!(why, "bayes: own log settled, nothing to restore");
        }
        self.forget_fingerprint();
        self.0.settled.send_replace(true);
    }

    /// Waits until the own log is settled.
    async fn wait_settled(&self) -> Result<(), BayesOpError> {
        let mut settled = self.0.settled.subscribe();
        settled
            .wait_for(|s| *s)
            .await
            .map(|_| ())
            .map_err(|_| BayesOpError::Stopped)
    }

    /// Learns `raw` as `class`; answers once the record is stored and applied (nothing is
    /// written when the message is already learned as `class`).
    pub async fn learn(&self, raw: &[u8], class: Class) -> Result<Learned, BayesOpError> {
        let digest = Digest(crate::bayes::digest(raw));
        let tokens = crate::bayes::tokenize(raw);
        let node = &self.0.node_id;
        let outcome = self
            .change(|corpus, now| {
                let report = corpus.plan_learn(node, digest, class, &tokens, now)?;
                Ok((report.outcome, report.changes))
            })
            .await?;
        Ok(Learned { digest, outcome })
    }

    /// Forgets message `digest` everywhere; answers once the tombstone is stored and
    /// applied. Returns the class it was learned as here, `None` if it was not.
    pub async fn forget(&self, digest: Digest) -> Result<Option<Class>, BayesOpError> {
        let node = &self.0.node_id;
        self.change(|corpus, now| {
            let report = corpus.plan_forget(node, digest, now)?;
            Ok((report.was, report.changes))
        })
        .await
    }

    /// One own operation: once the own log is settled and no other own operation runs,
    /// plans it on the corpus (`plan` gets the corpus and the time), writes its changes
    /// through the ordered writer and waits until they are synced, then applies them. A
    /// write that fails leaves the corpus as it was.
    async fn change<T>(
        &self,
        plan: impl FnOnce(&BayesCorpus, u64) -> Result<(T, Changes), BayesError>,
    ) -> Result<T, BayesOpError> {
        self.wait_settled().await?;
        let _own = self.0.own.lock().await;
        let permit = self
            .0
            .persist
            .reserve()
            .await
            .map_err(|_| BayesOpError::Stopped)?;
        let (value, changes) = {
            let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
            plan(&corpus, self.0.clock.now_ms())?
        };
        if changes.is_empty() {
            return Ok(value);
        }
        let (tx, rx) = oneshot::channel();
        permit.send(Persist {
            changes: changes.clone(),
            done: Some(tx),
        });
        rx.await.map_err(|_| BayesOpError::Stopped)??;
        let mut corpus = self.0.corpus.write().unwrap_or_else(|e| e.into_inner());
        corpus
            .commit_own(&self.0.node_id, &changes)
            .inspect_err(|e| {
                tracing::error!(error = %e, "bayes: a stored own record could not be applied");
            })?;
        self.forget_fingerprint();
        Ok(value)
    }

    /// The probability that `raw` is spam, `None` while either class has fewer than
    /// [`crate::bayes::MIN_LEARNED_PER_CLASS`] messages learned.
    pub fn probability(&self, raw: &[u8]) -> Option<f64> {
        self.probability_parsed(raw, crate::bayes::parse(raw).as_ref())
    }

    /// [`Self::probability`] of `raw` already parsed by [`crate::bayes::parse`] (`parsed`
    /// is its result, so the mail path parses each message once). A message is tokenized
    /// only when the classifier is ready: while it is silent, tokens would be thrown away.
    pub fn probability_parsed(
        &self,
        raw: &[u8],
        parsed: Option<&mail_parser::Message<'_>>,
    ) -> Option<f64> {
        if !self.is_ready() {
            return None;
        }
        let tokens = crate::bayes::tokenize_parsed(raw, parsed);
        let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
        crate::bayes::classify(&Counts(&corpus), &tokens)
    }

    /// [`Self::probability_parsed`] and the message's unfamiliarity to the learned ham
    /// ([`crate::bayes::Verdict`]), from one lookup of each token.
    pub fn verdict_parsed(
        &self,
        raw: &[u8],
        parsed: Option<&mail_parser::Message<'_>>,
    ) -> Option<crate::bayes::Verdict> {
        if !self.is_ready() {
            return None;
        }
        let tokens = crate::bayes::tokenize_with_words(raw, parsed);
        let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
        crate::bayes::verdict(&Counts(&corpus), &tokens)
    }

    /// Whether both classes have [`crate::bayes::MIN_LEARNED_PER_CLASS`] messages learned
    /// (the classifier gives a probability).
    fn is_ready(&self) -> bool {
        let corpus = self.0.corpus.read().unwrap_or_else(|e| e.into_inner());
        let learned = corpus.learned();
        let min = crate::bayes::MIN_LEARNED_PER_CLASS;
        u64::from(learned.spam) >= min && u64::from(learned.ham) >= min
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
            nodes: corpus
                .contributions()
                .into_iter()
                .filter(|(_, c)| c.records > 0)
                .collect(),
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

/// Settles the own log of `bayes` after `wait`, unless a peer let it settle before.
async fn settle_after(bayes: Weak<Inner>, wait: Duration) {
    tokio::time::sleep(wait).await;
    if let Some(inner) = bayes.upgrade() {
        Bayes(inner).settle("no peer caught up with in time").await;
    }
}

/// Writes queued changes in order, one synced batch each, until every sender is gone.
async fn write_loop(store: Store, mut rx: mpsc::Receiver<Persist>) {
    while let Some(Persist { changes, done }) = rx.recv().await {
        let result = match crate::store::bayes::batch(&changes) {
            Ok(batch) => store.commit(batch).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            tracing::warn!(error = %e, "bayes corpus change not stored");
        }
        if let Some(done) = done {
            let _ = done.send(result);
        }
    }
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
        match self.is_settled() {
            true => Some(self.fingerprint()),
            false => Some(format!("{UNSETTLED_DIGEST_PREFIX}{}", self.0.node_id)),
        }
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
        let delta = corpus.delta_since(&theirs, DELTA_RECORDS_MAX);
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
        drop(corpus);
        if !changed && !self.is_settled() {
            // Caught up with a peer: settle the own log (it needs the writer, so not here).
            let bayes = self.clone();
            tokio::spawn(async move { bayes.settle("caught up with a peer").await });
        }
        Ok(changed)
    }
}

#[cfg(test)]
#[path = "bayes_tests.rs"]
mod tests;
