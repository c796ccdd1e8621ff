//! How one rule sits in the document: root key `rule:<id>` → a map with one scalar per field.

use automerge::{ObjId, ReadDoc, ScalarValue, Value as DocValue};
use serde_json::{Map, Value};

use crate::rule::Rule;

/// Prefix of the root-level key of every rule entry.
pub(crate) const RULE_KEY_PREFIX: &str = "rule:";
/// Schema version written in each entry under `v`; entries of a newer version are skipped.
pub(crate) const SCHEMA_VERSION: i64 = 1;
/// Key of the schema version inside an entry.
const VERSION_KEY: &str = "v";
/// Keys of the rule fields inside an entry, in the order they are written.
const FIELD_KEYS: [&str; 7] = [
    "name",
    "enabled",
    "priority",
    "when",
    "action",
    "reason",
    "subject_prefix",
];

/// One write to an entry's map.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum FieldWrite {
    /// Set the key to the value.
    Put(&'static str, ScalarValue),
    /// Remove the key (`subject_prefix` back to none).
    Delete(&'static str),
}

impl FieldWrite {
    /// The key written.
    pub(crate) fn key(&self) -> &'static str {
        match self {
            FieldWrite::Put(key, _) | FieldWrite::Delete(key) => key,
        }
    }
}

/// The root key of rule `id`.
pub(crate) fn rule_key(id: &str) -> String {
    format!("{RULE_KEY_PREFIX}{id}")
}

/// The rule id of a root key, if it is a rule entry.
pub(crate) fn id_of_key(key: &str) -> Option<&str> {
    key.strip_prefix(RULE_KEY_PREFIX)
}

/// The document form of `rule`: the version and every field (`subject_prefix` only when set).
fn encode(rule: &Rule) -> Vec<(&'static str, ScalarValue)> {
    let mut fields = vec![
        (VERSION_KEY, ScalarValue::Int(SCHEMA_VERSION)),
        ("name", ScalarValue::from(rule.name.as_str())),
        ("enabled", ScalarValue::Boolean(rule.enabled)),
        ("priority", ScalarValue::Int(rule.priority)),
        ("when", ScalarValue::from(rule.when.to_json().to_string())),
        ("action", ScalarValue::from(rule.action.as_str())),
        ("reason", ScalarValue::from(rule.reason.as_str())),
    ];
    if let Some(prefix) = &rule.subject_prefix {
        fields.push(("subject_prefix", ScalarValue::from(prefix.as_str())));
    }
    fields
}

/// Every write that makes a fresh entry hold `rule`.
pub(crate) fn writes_for_new(rule: &Rule) -> Vec<FieldWrite> {
    encode(rule)
        .into_iter()
        .map(|(key, value)| FieldWrite::Put(key, value))
        .collect()
}

/// Only the writes that turn the entry at `obj` into `rule`: unchanged fields are not touched,
/// so a concurrent edit of another field on another replica survives the merge.
pub(crate) fn writes_for_update(doc: &impl ReadDoc, obj: &ObjId, rule: &Rule) -> Vec<FieldWrite> {
    let mut writes: Vec<FieldWrite> = encode(rule)
        .into_iter()
        .filter(|(key, value)| read_scalar(doc, obj, key).as_ref() != Some(value))
        .map(|(key, value)| FieldWrite::Put(key, value))
        .collect();
    if rule.subject_prefix.is_none() && read_scalar(doc, obj, "subject_prefix").is_some() {
        writes.push(FieldWrite::Delete("subject_prefix"));
    }
    writes
}

/// The names of the rule fields among `writes` (the schema version is not a rule field).
pub(crate) fn changed_fields(writes: &[FieldWrite]) -> Vec<String> {
    writes
        .iter()
        .map(FieldWrite::key)
        .filter(|key| *key != VERSION_KEY)
        .map(str::to_string)
        .collect()
}

/// Reads the entry at `obj` back into a rule, or `None` when it does not decode: a newer
/// schema version, a key this version does not know (a newer version's field: ignoring it
/// could apply the rule more widely than its author meant), a field of the wrong type, or
/// a value that does not validate (an unknown field, op or action inside `when`/`action`).
pub(crate) fn decode(doc: &impl ReadDoc, id: &str, obj: &ObjId) -> Option<Rule> {
    let version = read_scalar(doc, obj, VERSION_KEY)?.as_i64()?;
    if !(1..=SCHEMA_VERSION).contains(&version) {
        return None;
    }
    if doc
        .keys(obj)
        .any(|key| key != VERSION_KEY && !FIELD_KEYS.contains(&key.as_str()))
    {
        return None;
    }
    let mut json = Map::new();
    json.insert("id".into(), Value::from(id));
    for key in FIELD_KEYS {
        if let Some(value) = read_scalar(doc, obj, key) {
            json.insert(key.into(), field_to_json(key, &value)?);
        }
    }
    Rule::from_json(&Value::Object(json)).ok()
}

/// The JSON form of a stored field (`when` holds JSON text).
fn field_to_json(key: &str, value: &ScalarValue) -> Option<Value> {
    match value {
        ScalarValue::Str(text) if key == "when" => serde_json::from_str(text).ok(),
        ScalarValue::Str(text) => Some(Value::from(text.as_str())),
        ScalarValue::Int(number) => Some(Value::from(*number)),
        ScalarValue::Boolean(flag) => Some(Value::Bool(*flag)),
        _ => None,
    }
}

/// The scalar at `key` of map `obj`, if any (objects and errors read as absent).
fn read_scalar(doc: &impl ReadDoc, obj: &ObjId, key: &str) -> Option<ScalarValue> {
    match doc.get(obj, key) {
        Ok(Some((DocValue::Scalar(value), _))) => Some(value.into_owned()),
        _ => None,
    }
}
