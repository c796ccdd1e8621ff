//! The node's copy of the cluster rule book: the automerge document from the crdt crate,
//! persisted in the store after every change, and the compiled rule set the filter uses.
//!
//! Writers go through [`Rules`]; the SMTP path only reads the compiled set, swapped
//! atomically after each change, so evaluating mail never waits on the document lock.

use std::sync::{Arc, Mutex, RwLock};

use mxmesh_crdt::rule::Rule;
use mxmesh_crdt::rulebook::{Author, HistoryEntry, RuleBook, RuleBookError, SyncSession};

use crate::filter::RuleSet;
use crate::store::{Batch, Cf, Store, StoreError};

const BOOK_KEY: &[u8] = b"book";

/// Why a rule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error(transparent)]
    Book(#[from] RuleBookError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The rule book of this node.
pub struct Rules {
    book: Mutex<RuleBook>,
    /// Serialises changes (edit → persist → swap).
    writer: tokio::sync::Mutex<()>,
    compiled: RwLock<Arc<RuleSet>>,
    store: Store,
    node: String,
}

impl Rules {
    /// Loads the persisted document (an empty book when there is none).
    pub fn load(store: Store, node: String) -> Result<Rules, RulesError> {
        let book = match store.get(Cf::Rules, BOOK_KEY)? {
            Some(bytes) => RuleBook::load(&bytes)?,
            None => RuleBook::new(),
        };
        let compiled = Arc::new(RuleSet::compile(&book.list()));
        Ok(Rules {
            book: Mutex::new(book),
            writer: tokio::sync::Mutex::new(()),
            compiled: RwLock::new(compiled),
            store,
            node,
        })
    }

    /// The compiled rules the filter evaluates.
    pub fn current(&self) -> Arc<RuleSet> {
        self.compiled
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn list(&self) -> Vec<Rule> {
        self.lock().list()
    }

    pub fn get(&self, id: &str) -> Option<Rule> {
        self.lock().get(id)
    }

    pub fn history(&self) -> Vec<HistoryEntry> {
        self.lock().history()
    }

    pub fn digest(&self) -> String {
        self.lock().digest()
    }

    pub async fn create(&self, rule: Rule, admin: &str, now_ms: u64) -> Result<Rule, RulesError> {
        self.change(|b, a| b.create(rule, a, now_ms), admin).await
    }

    pub async fn update(
        &self,
        id: &str,
        rule: Rule,
        admin: &str,
        now_ms: u64,
    ) -> Result<Rule, RulesError> {
        self.change(|b, a| b.update(id, rule, a, now_ms), admin)
            .await
    }

    pub async fn delete(&self, id: &str, admin: &str, now_ms: u64) -> Result<(), RulesError> {
        self.change(|b, a| b.delete(id, a, now_ms), admin).await
    }

    /// Applies a change, persists the document (synced) and recompiles.
    async fn change<T>(
        &self,
        f: impl FnOnce(&mut RuleBook, &Author) -> Result<T, RuleBookError>,
        admin: &str,
    ) -> Result<T, RulesError> {
        let author = Author {
            node: self.node.clone(),
            admin: admin.to_string(),
        };
        // One writer at a time, working on a copy: the book in memory changes only after
        // the new document is durable, so memory and disk never disagree.
        let _writer = self.writer.lock().await;
        let mut draft = self.lock().fork();
        let out = f(&mut draft, &author)?;
        let mut batch = Batch::new();
        batch.put(Cf::Rules, BOOK_KEY, draft.save());
        self.store.commit(batch).await?;
        let compiled = Arc::new(RuleSet::compile(&draft.list()));
        *self.lock() = draft;
        *self.compiled.write().unwrap_or_else(|p| p.into_inner()) = compiled;
        Ok(out)
    }

    /// The next sync message for a peer (`None`: nothing to say).
    pub fn sync_generate(&self, session: &mut SyncSession) -> Option<Vec<u8>> {
        session.generate(&self.lock())
    }

    /// Applies a peer's sync message; when it brought changes, persists the document and
    /// swaps the compiled rules. Returns whether anything changed. On error the caller
    /// resets the session.
    pub async fn sync_receive(
        &self,
        session: &mut SyncSession,
        message: &[u8],
    ) -> Result<bool, RulesError> {
        let _writer = self.writer.lock().await;
        let mut draft = self.lock().fork();
        let before = draft.digest();
        session.receive(&mut draft, message)?;
        if draft.digest() == before {
            return Ok(false);
        }
        let mut batch = Batch::new();
        batch.put(Cf::Rules, BOOK_KEY, draft.save());
        self.store.commit(batch).await?;
        let compiled = Arc::new(RuleSet::compile(&draft.list()));
        *self.lock() = draft;
        *self.compiled.write().unwrap_or_else(|p| p.into_inner()) = compiled;
        Ok(true)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RuleBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}
