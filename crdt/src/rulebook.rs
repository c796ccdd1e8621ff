//! The rule book: every node's copy of the filter rules, an automerge document that
//! replicas merge without a master.
//!
//! # Document layout
//!
//! Each rule is a root-level key `rule:<id>` holding a map with one scalar per field:
//! `name` (str), `enabled` (bool), `priority` (int), `when` (str, the condition's canonical
//! JSON), `action` (str), `reason` (str), `subject_prefix` (str, absent when none) and `v`
//! (int, the schema version). There is deliberately no shared parent map: two replicas that
//! each created a root-level `rules` map would conflict, and one replica's rules would vanish.
//!
//! An entry that does not decode (newer schema version, wrong type, value that no longer
//! validates) is skipped by [`RuleBook::list`] and [`RuleBook::get`], never a panic.
//!
//! # Concurrency semantics (each one is tested below)
//!
//! - **Different rules**, or **different fields of one rule**, edited on two replicas: both
//!   edits survive the merge, because [`RuleBook::update`] writes only the fields whose
//!   value changed.
//! - **The same field** written on two replicas: automerge keeps one value (the write with the
//!   greater operation id) and every replica picks the same one. Which one is not
//!   meaningful to admins; what matters is that all nodes agree.
//! - **Delete concurrent with an edit** of the same rule: the delete wins. The delete removes
//!   the root key; the edit writes inside the map object that key pointed to, which no key
//!   reaches any more. Every replica ends without the rule, and the edit stays in the history.
//! - **Create concurrent with a create of the same id** (ids normally differ, being ULIDs):
//!   one of the two maps wins the root key, the same on every replica.
//! - **Resurrection**: a replica that starts from an empty book, or from an old copy that
//!   still has the rule, receives the delete with the rest of the change log when it syncs,
//!   so a deleted rule never comes back.
//!
//! # History
//!
//! Every change is committed with a compact JSON message (`node`, `admin`, `op`, `rule_id`,
//! `fields`) and the commit time set to the caller's `now_ms` (automerge calls the field a
//! timestamp in seconds; it is advisory and here holds milliseconds). [`RuleBook::history`]
//! reads the change log, so it covers every replica's changes once merged.
//!
//! The book never reads the clock: time is always a parameter.

mod entry;
mod history;
mod sync;

use automerge::transaction::{CommitOptions, Transactable, Transaction};
use automerge::{
    ActorId, Automerge, AutomergeError, ObjId, ObjType, ROOT, ReadDoc, Value as DocValue,
};
use sha2::{Digest, Sha256};

use crate::lists::{LIST_ENTRIES_MAX, LIST_KEY_PREFIX, ListEntry, ListError};
use crate::rule::{Problem, Rule, RuleError, rule_id_at, validate_rule_id};
use entry::FieldWrite;

pub use history::{Author, ChangeOp, HistoryEntry};
pub use sync::{SYNC_MESSAGE_BYTES_MAX, SyncSession};

/// Why a rule book operation failed.
#[derive(Debug, thiserror::Error)]
pub enum RuleBookError {
    /// The rule does not validate.
    #[error("invalid rule: {0}")]
    InvalidRule(#[from] RuleError),
    /// The id given is not a valid rule id.
    #[error("invalid rule id {id:?}: {problem}")]
    InvalidId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        problem: Problem,
    },
    /// The id in the rule body differs from the id of the rule being updated.
    #[error("rule body has id {body:?} but rule {id:?} is being updated")]
    IdMismatch {
        /// The id being updated.
        id: String,
        /// The id found in the body.
        body: String,
    },
    /// `create` with an id already present.
    #[error("rule {0:?} already exists")]
    AlreadyExists(String),
    /// No (readable) rule with this id.
    #[error("rule {0:?} not found")]
    NotFound(String),
    /// The saved bytes do not load as a document.
    #[error("cannot load rule book: {0}")]
    Load(#[source] Box<AutomergeError>),
    /// Merging another replica failed.
    #[error("cannot merge rule book: {0}")]
    Merge(#[source] Box<AutomergeError>),
    /// A write to the document failed.
    #[error("cannot write rule {rule_id:?}: {source}")]
    Write {
        /// The rule being written.
        rule_id: String,
        /// The document error.
        #[source]
        source: Box<AutomergeError>,
    },
    /// A list entry that does not validate.
    #[error("invalid list entry: {0}")]
    InvalidListEntry(#[from] ListError),
    /// Adding a list entry beyond the bound.
    #[error("the lists already hold the most entries allowed ({max})")]
    TooManyListEntries {
        /// The bound.
        max: usize,
    },
    /// A sync message larger than [`SYNC_MESSAGE_BYTES_MAX`].
    #[error("sync message of {size} bytes exceeds the bound of {max} bytes")]
    SyncMessageTooLarge {
        /// Its size, in bytes.
        size: usize,
        /// The bound, in bytes.
        max: usize,
    },
    /// A sync message that does not decode.
    #[error("malformed sync message: {0}")]
    SyncDecode(#[source] Box<automerge::sync::ReadMessageError>),
    /// A sync message that decodes but cannot be applied.
    #[error("cannot apply sync message: {0}")]
    SyncApply(#[source] Box<AutomergeError>),
}

/// The replicated rule book. See the module documentation for layout and semantics.
#[derive(Debug)]
pub struct RuleBook {
    doc: Automerge,
}

impl Default for RuleBook {
    fn default() -> Self {
        RuleBook::new()
    }
}

impl RuleBook {
    /// An empty rule book with a random automerge actor.
    pub fn new() -> Self {
        RuleBook {
            doc: Automerge::new(),
        }
    }

    /// Loads a book saved by [`RuleBook::save`]; writes from here on use a fresh random actor.
    pub fn load(bytes: &[u8]) -> Result<Self, RuleBookError> {
        let doc = Automerge::load(bytes).map_err(|error| RuleBookError::Load(Box::new(error)))?;
        Ok(RuleBook { doc })
    }

    /// Sets the automerge actor id, for deterministic runs (the simulator).
    ///
    /// The actor must be unique to this writer for its whole life: two documents writing
    /// under one actor id corrupt each other's history. Derive it from the node id and a
    /// per-start value, never from the node id alone.
    pub fn with_actor(mut self, actor: &[u8]) -> Self {
        self.doc.set_actor(ActorId::from(actor));
        self
    }

    /// The whole document, compressed, for the store.
    pub fn save(&self) -> Vec<u8> {
        self.doc.save()
    }

    /// A copy of this book that writes under a new random actor (a separate replica).
    pub fn fork(&self) -> RuleBook {
        RuleBook {
            doc: self.doc.fork(),
        }
    }

    /// Every readable rule, sorted by (priority, id): the evaluation order.
    pub fn list(&self) -> Vec<Rule> {
        let mut rules: Vec<Rule> = self
            .doc
            .keys(ROOT)
            .filter_map(|key| {
                let id = entry::id_of_key(&key)?;
                entry::decode(&self.doc, id, &self.entry_obj(id)?)
            })
            .collect();
        rules.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
        rules
    }

    /// The rule `id`, if present and readable.
    pub fn get(&self, id: &str) -> Option<Rule> {
        entry::decode(&self.doc, id, &self.entry_obj(id)?)
    }

    /// Stores a new rule and returns it as stored.
    ///
    /// An empty `rule.id` is assigned [`rule_id_at`] from `now_ms` and a seed of the
    /// author, the current heads and the rule, so it is deterministic and unique per change.
    pub fn create(
        &mut self,
        rule: Rule,
        author: &Author,
        now_ms: u64,
    ) -> Result<Rule, RuleBookError> {
        let mut rule = checked(rule)?;
        if rule.id.is_empty() {
            rule.id = self.assign_id(&rule, author, now_ms);
        }
        if self.entry_obj(&rule.id).is_some() {
            return Err(RuleBookError::AlreadyExists(rule.id));
        }
        let writes = entry::writes_for_new(&rule);
        let fields = entry::changed_fields(&writes);
        let message = history::commit_message(author, ChangeOp::Create, &rule.id, &fields);
        let key = entry::rule_key(&rule.id);
        self.commit(&rule.id, message, now_ms, |tx| {
            let obj = tx.put_object(ROOT, key, ObjType::Map)?;
            apply_writes(tx, &obj, &writes)
        })?;
        Ok(rule)
    }

    /// Replaces rule `id` with `rule`, writing only the fields whose value changed.
    ///
    /// `rule.id` may be empty or equal to `id`. No change at all commits nothing.
    pub fn update(
        &mut self,
        id: &str,
        rule: Rule,
        author: &Author,
        now_ms: u64,
    ) -> Result<Rule, RuleBookError> {
        check_id(id)?;
        if !rule.id.is_empty() && rule.id != id {
            let (id, body) = (id.to_string(), rule.id);
            return Err(RuleBookError::IdMismatch { id, body });
        }
        let mut rule = checked(rule)?;
        rule.id = id.to_string();
        let obj = self.entry_obj(id).filter(|_| self.get(id).is_some());
        let obj = obj.ok_or_else(|| RuleBookError::NotFound(id.to_string()))?;
        let writes = entry::writes_for_update(&self.doc, &obj, &rule);
        if writes.is_empty() {
            return Ok(rule);
        }
        let fields = entry::changed_fields(&writes);
        let message = history::commit_message(author, ChangeOp::Update, id, &fields);
        self.commit(id, message, now_ms, |tx| apply_writes(tx, &obj, &writes))?;
        Ok(rule)
    }

    /// Deletes rule `id` (also an entry that no longer decodes).
    pub fn delete(&mut self, id: &str, author: &Author, now_ms: u64) -> Result<(), RuleBookError> {
        check_id(id)?;
        if self.entry_obj(id).is_none() {
            return Err(RuleBookError::NotFound(id.to_string()));
        }
        let message = history::commit_message(author, ChangeOp::Delete, id, &[]);
        let key = entry::rule_key(id);
        self.commit(id, message, now_ms, |tx| tx.delete(ROOT, key))
    }

    /// The audit trail of every change known to this replica, sorted by (time, change hash).
    pub fn history(&self) -> Vec<HistoryEntry> {
        let metas = self.doc.get_changes_meta(&[]);
        let mut entries: Vec<HistoryEntry> = metas.iter().filter_map(history::entry_of).collect();
        history::sort(&mut entries);
        entries
    }

    /// Hex SHA-256 over the sorted heads: equal documents give equal digests.
    pub fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for head in self.doc.get_heads() {
            hasher.update(head.0);
        }
        hex::encode(hasher.finalize())
    }

    /// The document of setting `name` (e.g. `spam`) as written by [`RuleBook::set_setting`],
    /// `None` if never set. Stored at root key `settings:<name>` as one string: concurrent
    /// writes keep one value, the same on every replica.
    pub fn setting(&self, name: &str) -> Option<String> {
        match self.doc.get(ROOT, setting_key(name)) {
            Ok(Some((DocValue::Scalar(value), _))) => match value.as_ref() {
                automerge::ScalarValue::Str(text) => Some(text.to_string()),
                _ => None,
            },
            _ => None,
        }
    }

    /// Every setting whose name starts with `prefix`, as `(name, document)` in name order.
    /// Settings under distinct names never overwrite each other, so a family of them (one
    /// per node, say) is a grow-only map under concurrent writes.
    pub fn settings_named(&self, prefix: &str) -> Vec<(String, String)> {
        let key_prefix = setting_key(prefix);
        self.doc
            .keys(ROOT)
            .filter(|key| key.starts_with(&key_prefix))
            .filter_map(|key| {
                let name = key.strip_prefix("settings:")?.to_string();
                let document = self.setting(&name)?;
                Some((name, document))
            })
            .collect()
    }

    /// Replaces setting `name` with `document` (the caller validates it); recorded in the
    /// history with `rule_id` `settings:<name>`. The same document again commits nothing.
    pub fn set_setting(
        &mut self,
        name: &str,
        document: &str,
        author: &Author,
        now_ms: u64,
    ) -> Result<(), RuleBookError> {
        if self.setting(name).as_deref() == Some(document) {
            return Ok(());
        }
        let key = setting_key(name);
        let message = history::commit_message(author, ChangeOp::Update, &key, &[name.into()]);
        let doc = document.to_string();
        self.commit(&key, message, now_ms, |tx| tx.put(ROOT, &key, doc))
    }

    /// Every readable allow/deny list entry, sorted by id (unreadable ones are skipped).
    pub fn list_entries(&self) -> Vec<ListEntry> {
        let mut entries: Vec<ListEntry> = self
            .doc
            .keys(ROOT)
            .filter(|key| key.starts_with(LIST_KEY_PREFIX))
            .filter_map(|key| self.list_entry_at(&key))
            .collect();
        entries.sort_by(|a, b| a.id.cmp(&b.id));
        entries
    }

    /// Stores a new list entry (validated again; an empty id is assigned from `now_ms`);
    /// refused beyond [`LIST_ENTRIES_MAX`] entries. Returns it as stored.
    pub fn add_list_entry(
        &mut self,
        entry: ListEntry,
        author: &Author,
        now_ms: u64,
    ) -> Result<ListEntry, RuleBookError> {
        let mut entry = ListEntry::from_json(&entry.to_json_without_empty_id())?;
        if self.list_entries().len() >= LIST_ENTRIES_MAX {
            return Err(RuleBookError::TooManyListEntries {
                max: LIST_ENTRIES_MAX,
            });
        }
        if entry.id.is_empty() {
            let seed = format!(
                "{}\n{}\n{}\n{}",
                author.node,
                author.admin,
                self.digest(),
                entry.to_json()
            );
            entry.id = rule_id_at(now_ms, seed.as_bytes());
        }
        let key = format!("{LIST_KEY_PREFIX}{}", entry.id);
        if self.list_entry_at(&key).is_some() {
            return Err(RuleBookError::AlreadyExists(key));
        }
        let fields = vec!["kind".into(), "sender".into(), "scope".into()];
        let message = history::commit_message(author, ChangeOp::Create, &key, &fields);
        let text = entry.to_json().to_string();
        self.commit(&key, message, now_ms, |tx| tx.put(ROOT, &key, text))?;
        Ok(entry)
    }

    /// Deletes list entry `id`.
    pub fn delete_list_entry(
        &mut self,
        id: &str,
        author: &Author,
        now_ms: u64,
    ) -> Result<(), RuleBookError> {
        check_id(id)?;
        let key = format!("{LIST_KEY_PREFIX}{id}");
        if self.doc.get(ROOT, &key).ok().flatten().is_none() {
            return Err(RuleBookError::NotFound(key));
        }
        let message = history::commit_message(author, ChangeOp::Delete, &key, &[]);
        self.commit(&key, message, now_ms, |tx| tx.delete(ROOT, &key))
    }

    /// The list entry at root key `key`, if it reads and validates.
    fn list_entry_at(&self, key: &str) -> Option<ListEntry> {
        let text = match self.doc.get(ROOT, key) {
            Ok(Some((DocValue::Scalar(value), _))) => match value.as_ref() {
                automerge::ScalarValue::Str(text) => text.to_string(),
                _ => return None,
            },
            _ => return None,
        };
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        let entry = ListEntry::from_json(&value).ok()?;
        (key.strip_prefix(LIST_KEY_PREFIX) == Some(entry.id.as_str())).then_some(entry)
    }

    /// Merges every change of `other` into this book.
    pub fn merge(&mut self, other: &mut RuleBook) -> Result<(), RuleBookError> {
        self.doc
            .merge(&mut other.doc)
            .map_err(|error| RuleBookError::Merge(Box::new(error)))?;
        Ok(())
    }

    /// The map object of rule `id`, if the root key exists.
    fn entry_obj(&self, id: &str) -> Option<ObjId> {
        match self.doc.get(ROOT, entry::rule_key(id)) {
            Ok(Some((DocValue::Object(ObjType::Map), obj))) => Some(obj),
            _ => None,
        }
    }

    fn assign_id(&self, rule: &Rule, author: &Author, now_ms: u64) -> String {
        let seed = format!(
            "{}\n{}\n{}\n{}",
            author.node,
            author.admin,
            self.digest(),
            rule.to_json()
        );
        rule_id_at(now_ms, seed.as_bytes())
    }

    /// Runs `write` in one transaction committed with `message` at `now_ms`.
    fn commit<F>(
        &mut self,
        rule_id: &str,
        message: String,
        now_ms: u64,
        write: F,
    ) -> Result<(), RuleBookError>
    where
        F: FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
    {
        let time = i64::try_from(now_ms).unwrap_or(i64::MAX);
        let options = CommitOptions::default()
            .with_message(message)
            .with_time(time);
        self.doc
            .transact_with(|_| options, write)
            .map(|_| ())
            .map_err(|failure| RuleBookError::Write {
                rule_id: rule_id.to_string(),
                source: Box::new(failure.error),
            })
    }
}

/// The root key of setting `name`.
fn setting_key(name: &str) -> String {
    format!("settings:{name}")
}

/// Validates a rule built in code the same way as JSON input, and returns its canonical form
/// (e.g. DNSBL zones lowercased) so that what is returned equals what is read back.
fn checked(rule: Rule) -> Result<Rule, RuleBookError> {
    Ok(Rule::from_json(&rule.to_json())?)
}

fn check_id(id: &str) -> Result<(), RuleBookError> {
    validate_rule_id(id).map_err(|problem| RuleBookError::InvalidId {
        id: id.to_string(),
        problem,
    })
}

fn apply_writes(
    tx: &mut Transaction<'_>,
    obj: &ObjId,
    writes: &[FieldWrite],
) -> Result<(), AutomergeError> {
    for write in writes {
        match write {
            FieldWrite::Put(key, value) => tx.put(obj, *key, value.clone())?,
            FieldWrite::Delete(key) => tx.delete(obj, *key)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
