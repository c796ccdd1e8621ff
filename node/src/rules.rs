//! The node's copy of the cluster rule book: the automerge document from the crdt crate,
//! persisted in the store after every change, and the compiled rule set the filter uses.
//!
//! Writers go through [`Rules`]; the SMTP path only reads the compiled set, swapped
//! atomically after each change, so evaluating mail never waits on the document lock.

use std::sync::{Arc, Mutex, RwLock};

use mxmesh_crdt::lists::ListEntry;
use mxmesh_crdt::rule::Rule;
use mxmesh_crdt::rulebook::{Author, HistoryEntry, RuleBook, RuleBookError, SyncSession};

use crate::cluster::custody::settings::{
    CustodyBook, DEPARTED_MAX, DEPARTED_PREFIX, Departure, QUARANTINE_SETTING, QuarantineSettings,
};
use crate::filter::RuleSet;
use crate::spam::{SettingsError, SpamSettings};
use crate::store::{Batch, Cf, Store, StoreError};

const BOOK_KEY: &[u8] = b"book";
/// The rule book setting that holds the cluster's spam settings (JSON).
const SPAM_SETTING: &str = "spam";

/// Why a rule operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The rule book refused the operation (invalid rule, unknown id…).
    #[error(transparent)]
    Book(#[from] RuleBookError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Spam settings that do not validate.
    #[error("invalid spam settings: {0}")]
    Settings(#[from] SettingsError),
    /// Quarantine settings or a departure that cannot be recorded.
    #[error("{0}")]
    Custody(String),
}

/// The rule book of this node.
pub struct Rules {
    book: Mutex<RuleBook>,
    /// Serialises changes (edit → persist → swap).
    writer: tokio::sync::Mutex<()>,
    compiled: RwLock<Arc<RuleSet>>,
    /// The spam settings of the book (defaults when unset or unreadable).
    settings: RwLock<Arc<SpamSettings>>,
    /// The quarantine settings and the departed nodes the book records.
    custody: RwLock<Arc<CustodyBook>>,
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
        let compiled = Arc::new(compiled_of(&book));
        let settings = Arc::new(spam_settings_of(&book));
        let custody = Arc::new(CustodyBook::of(&book));
        Ok(Rules {
            book: Mutex::new(book),
            writer: tokio::sync::Mutex::new(()),
            compiled: RwLock::new(compiled),
            settings: RwLock::new(settings),
            custody: RwLock::new(custody),
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

    /// The cluster's spam settings (thresholds, weights) as the filter uses them.
    pub fn spam_settings(&self) -> Arc<SpamSettings> {
        self.settings
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the cluster's spam settings (validated first); returns them as stored.
    pub async fn set_spam_settings(
        &self,
        settings: SpamSettings,
        admin: &str,
        now_ms: u64,
    ) -> Result<SpamSettings, RulesError> {
        settings.validate()?;
        let document = serde_json::to_string(&settings).map_err(|e| SettingsError {
            key: String::new(),
            message: e.to_string(),
        })?;
        self.change(
            |b, a| b.set_setting(SPAM_SETTING, &document, a, now_ms),
            admin,
        )
        .await?;
        Ok(settings)
    }

    /// The quarantine settings (`copies`) and the nodes that left the mesh.
    pub fn custody(&self) -> Arc<CustodyBook> {
        self.custody
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the cluster's quarantine settings (validated first); returns them as stored.
    pub async fn set_quarantine_settings(
        &self,
        settings: QuarantineSettings,
        admin: &str,
        now_ms: u64,
    ) -> Result<QuarantineSettings, RulesError> {
        settings.validate().map_err(RulesError::Custody)?;
        let document = serde_json::to_string(&settings).unwrap_or_default();
        self.change(
            |b, a| b.set_setting(QUARANTINE_SETTING, &document, a, now_ms),
            admin,
        )
        .await?;
        Ok(settings)
    }

    /// Records, mesh-wide and for good, that `node` left the mesh. A node recorded once
    /// stays recorded (a later record only replaces the details).
    pub async fn record_departure(
        &self,
        node: &str,
        departure: &Departure,
        admin: &str,
        now_ms: u64,
    ) -> Result<(), RulesError> {
        let known = self.custody();
        if !known.departed.contains_key(node) && known.departed.len() >= DEPARTED_MAX {
            return Err(RulesError::Custody(format!(
                "cannot record node {node} as departed: {DEPARTED_MAX} nodes are recorded already"
            )));
        }
        let document = serde_json::to_string(departure).unwrap_or_default();
        let name = format!("{DEPARTED_PREFIX}{node}");
        self.change(|b, a| b.set_setting(&name, &document, a, now_ms), admin)
            .await
    }

    /// The document of the cluster-wide setting `name` (JSON), `None` when never set.
    pub fn setting_document(&self, name: &str) -> Option<String> {
        self.lock().setting(name)
    }

    /// Every cluster-wide setting whose name starts with `prefix`, as `(name, document)`.
    pub fn setting_documents(&self, prefix: &str) -> Vec<(String, String)> {
        self.lock().settings_named(prefix)
    }

    /// Writes the document of the cluster-wide setting `name` (already validated by the
    /// caller) mesh-wide.
    pub async fn set_setting_document(
        &self,
        name: &str,
        document: &str,
        admin: &str,
        now_ms: u64,
    ) -> Result<(), RulesError> {
        self.change(|b, a| b.set_setting(name, document, a, now_ms), admin)
            .await?;
        Ok(())
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

    /// Every allow/deny list entry, sorted by id.
    pub fn list_entries(&self) -> Vec<ListEntry> {
        self.lock().list_entries()
    }

    /// Adds an allow/deny list entry (validated; id assigned when empty).
    pub async fn add_list_entry(
        &self,
        entry: ListEntry,
        admin: &str,
        now_ms: u64,
    ) -> Result<ListEntry, RulesError> {
        self.change(|b, a| b.add_list_entry(entry, a, now_ms), admin)
            .await
    }

    /// Deletes allow/deny list entry `id`.
    pub async fn delete_list_entry(
        &self,
        id: &str,
        admin: &str,
        now_ms: u64,
    ) -> Result<(), RulesError> {
        self.change(|b, a| b.delete_list_entry(id, a, now_ms), admin)
            .await
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
        self.swap(draft);
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
        self.swap(draft);
        Ok(true)
    }

    /// Makes `book` (now durable) the current one, with its compiled rules and settings.
    fn swap(&self, book: RuleBook) {
        let compiled = Arc::new(compiled_of(&book));
        let settings = Arc::new(spam_settings_of(&book));
        let custody = Arc::new(CustodyBook::of(&book));
        *self.lock() = book;
        *self.custody.write().unwrap_or_else(|p| p.into_inner()) = custody;
        *self.compiled.write().unwrap_or_else(|p| p.into_inner()) = compiled;
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) = settings;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RuleBook> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The compiled rules of `book`, with its allow/deny list entries.
fn compiled_of(book: &RuleBook) -> RuleSet {
    RuleSet::compile(&book.list()).with_lists(book.list_entries())
}

/// The spam settings `book` holds; the defaults when unset, and (logged) when they do not
/// read or validate (a newer node's format).
fn spam_settings_of(book: &RuleBook) -> SpamSettings {
    let Some(text) = book.setting(SPAM_SETTING) else {
        return SpamSettings::default();
    };
    let parsed: Result<SpamSettings, String> = serde_json::from_str::<SpamSettings>(&text)
        .map_err(|e| e.to_string())
        .and_then(|s| s.validate().map(|()| s).map_err(|e| e.to_string()));
    parsed.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "spam settings in the rule book unreadable; using defaults");
        SpamSettings::default()
    })
}
