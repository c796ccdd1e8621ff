//! The audit trail: each change carries a compact JSON commit message naming the node,
//! the admin, the operation, the rule and the fields; the history is read back from the
//! document's change log, so it is mesh-wide once replicas have merged.

use automerge::ChangeMetadata;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Who made a change: the node that took the request and the admin identity behind it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Node id that committed the change.
    pub node: String,
    /// Admin identity (token name, user) that asked for it.
    pub admin: String,
}

/// What a change did to a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeOp {
    /// The rule was created.
    Create,
    /// Some fields of the rule were changed.
    Update,
    /// The rule was deleted.
    Delete,
}

/// One entry of the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Commit time as given by the committing node, in ms since the Unix epoch.
    pub time_ms: u64,
    /// Node that committed the change.
    pub node: String,
    /// Admin identity behind it.
    pub admin: String,
    /// What the change did.
    pub op: ChangeOp,
    /// The rule concerned.
    pub rule_id: String,
    /// Names of the rule fields written (all of them for a create, none for a delete).
    pub fields: Vec<String>,
    /// Hex hash of the automerge change: unique, and the tie-breaker of the order.
    pub change_hash: String,
}

/// The commit message of a change, as stored.
#[derive(Debug, Deserialize)]
struct CommitNote {
    node: String,
    admin: String,
    op: ChangeOp,
    rule_id: String,
    #[serde(default)]
    fields: Vec<String>,
}

/// The compact JSON commit message for a change.
pub(crate) fn commit_message(
    author: &Author,
    op: ChangeOp,
    rule_id: &str,
    fields: &[String],
) -> String {
    let note = json!({
        "node": author.node,
        "admin": author.admin,
        "op": op,
        "rule_id": rule_id,
        "fields": fields,
    });
    note.to_string()
}

/// The history entry of one change, or `None` for changes without a readable note
/// (e.g. written by other software or a future schema).
pub(crate) fn entry_of(meta: &ChangeMetadata<'_>) -> Option<HistoryEntry> {
    let note: CommitNote = serde_json::from_str(meta.message.as_deref()?).ok()?;
    Some(HistoryEntry {
        time_ms: u64::try_from(meta.timestamp).unwrap_or(0),
        node: note.node,
        admin: note.admin,
        op: note.op,
        rule_id: note.rule_id,
        fields: note.fields,
        change_hash: meta.hash.to_string(),
    })
}

/// Sorts entries by (time, change hash): the same order on every replica.
pub(crate) fn sort(entries: &mut [HistoryEntry]) {
    entries.sort_by(|a, b| (a.time_ms, &a.change_hash).cmp(&(b.time_ms, &b.change_hash)));
}
