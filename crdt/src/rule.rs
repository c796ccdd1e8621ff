//! The rule model: a named condition over message facts and the action it decides.
//!
//! Rules arrive as JSON (README, "Rules"). [`Rule::from_json`] walks the JSON by hand so that
//! every refusal names the JSON path and the problem, e.g.
//! `when.all[1].any[0].op: unknown op "containz" (expected one of …)`; [`Rule::to_json`]
//! writes the canonical form back, and `from_json(to_json(r)) == r`.
//!
//! Layout: [`field`] (what a match looks at and how), [`value`] (the checked value side),
//! [`condition`] (the `all`/`any`/`not` tree), [`error`] (errors with paths).

pub mod condition;
pub mod error;
pub mod field;
mod json;
pub mod value;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

pub use condition::{
    CONDITION_DEPTH_MAX, CONDITION_JSON_BYTES_MAX, CONDITIONS_MAX, Condition, Match,
};
pub use error::{Problem, RuleError};
pub use field::{FIELD_ARG_LEN_MAX, Field, FieldKind, Op};
pub use value::{
    MATCH_LIST_LEN_MAX, MATCH_VALUE_LEN_MAX, MatchValue, REGEX_SIZE_BYTES_MAX, Real,
    SCORE_VALUE_MAX, SYMBOL_NAME_LEN_MAX, build_regex, parse_cidr, parse_ip,
};

use json::Path;

/// Longest rule id, in characters.
pub const RULE_ID_LEN_MAX: usize = 64;
/// Longest rule name, in characters.
pub const RULE_NAME_LEN_MAX: usize = 200;
/// Longest reason, in characters (it may end up in an SMTP reply).
pub const RULE_REASON_LEN_MAX: usize = 500;
/// Longest subject prefix, in characters.
pub const SUBJECT_PREFIX_LEN_MAX: usize = 100;
/// Priority when the JSON gives none.
pub const PRIORITY_DEFAULT: i64 = 100;

const RULE_KEYS: &[&str] = &[
    "id",
    "name",
    "enabled",
    "priority",
    "when",
    "action",
    "reason",
    "subject_prefix",
];
const RULE_KEYS_TEXT: &str = "id, name, enabled, priority, when, action, reason, subject_prefix";

/// A filter rule: when `when` matches a message, `action` decides its fate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// Stable id, `r-<ulid>` when assigned by a node; `""` means "not assigned yet".
    pub id: String,
    /// Human name shown to admins.
    pub name: String,
    /// Disabled rules are kept but never evaluated.
    pub enabled: bool,
    /// Evaluation order: ascending, ties broken by id.
    pub priority: i64,
    /// The condition that must match.
    pub when: Condition,
    /// What happens to a matching message.
    pub action: Action,
    /// Why, for logs, quarantine entries and reject replies.
    pub reason: String,
    /// Prefix added to the subject; only with [`Action::Tag`].
    pub subject_prefix: Option<String>,
}

/// The verdict a rule gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Relay on.
    Accept,
    /// Add the verdict header (and subject prefix), then relay on.
    Tag,
    /// Keep in this node's quarantine.
    Quarantine,
    /// 5xx at end of DATA.
    Reject,
    /// 4xx at end of DATA.
    Tempfail,
}

impl Action {
    /// Parses an action name.
    pub fn parse(name: &str) -> Result<Action, Problem> {
        let action = match name {
            "accept" => Action::Accept,
            "tag" => Action::Tag,
            "quarantine" => Action::Quarantine,
            "reject" => Action::Reject,
            "tempfail" => Action::Tempfail,
            _ => return Err(Problem::UnknownAction(name.to_string())),
        };
        Ok(action)
    }

    /// The action's JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Tag => "tag",
            Action::Quarantine => "quarantine",
            Action::Reject => "reject",
            Action::Tempfail => "tempfail",
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule id `r-<ulid, lowercase>`, deterministic in its inputs: the ULID's time is
/// `now_ms` and its random part the first 80 bits of SHA-256 over `seed` (e.g. node id,
/// admin, document heads and the rule's JSON).
pub fn rule_id_at(now_ms: u64, seed: &[u8]) -> String {
    let hash = Sha256::digest(seed);
    let mut random = [0u8; 16];
    random[6..].copy_from_slice(&hash[..10]);
    format_rule_id(ulid::Ulid::from_parts(now_ms, u128::from_be_bytes(random)))
}

fn format_rule_id(ulid: ulid::Ulid) -> String {
    format!("r-{}", ulid.to_string().to_ascii_lowercase())
}

/// Checks a rule id: 1 to [`RULE_ID_LEN_MAX`] of ASCII letters, digits, `-`, `_`, `.`.
pub fn validate_rule_id(id: &str) -> Result<(), Problem> {
    if id.is_empty() {
        return Err(Problem::Empty);
    }
    if id.len() > RULE_ID_LEN_MAX {
        return Err(Problem::TooLong {
            max: RULE_ID_LEN_MAX,
        });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    match id.chars().find(|c| !allowed(*c)) {
        Some(found) => Err(Problem::InvalidCharacter {
            found,
            allowed: "ASCII letters, digits, '-', '_' and '.' in a rule id",
        }),
        None => Ok(()),
    }
}

impl Rule {
    /// Parses and validates a rule; the error names the JSON path of the bad part.
    ///
    /// Defaults: `id` absent → `""` (assigned when stored), `enabled` true,
    /// `priority` [`PRIORITY_DEFAULT`], `reason` `""`.
    pub fn from_json(value: &Value) -> Result<Rule, RuleError> {
        let root = Path::default();
        let map = json::object(value, &root)?;
        json::refuse_unknown_keys(map, RULE_KEYS, RULE_KEYS_TEXT, &root)?;
        // Checked in document order, so the first error is the first bad key.
        let id = parse_id(map)?;
        let name = parse_name(map)?;
        let enabled = parse_with_default(map, "enabled", json::boolean, true)?;
        let priority = parse_with_default(map, "priority", json::integer, PRIORITY_DEFAULT)?;
        let when = parse_when(map)?;
        let action = parse_action(map)?;
        let reason = parse_with_default(map, "reason", reason_text, String::new())?;
        let subject_prefix = parse_subject_prefix(map, action)?;
        Ok(Rule {
            id,
            name,
            enabled,
            priority,
            when,
            action,
            reason,
            subject_prefix,
        })
    }

    /// The canonical JSON of this rule (`id` omitted while unassigned).
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        if !self.id.is_empty() {
            map.insert("id".into(), Value::from(self.id.as_str()));
        }
        map.insert("name".into(), Value::from(self.name.as_str()));
        map.insert("enabled".into(), Value::Bool(self.enabled));
        map.insert("priority".into(), Value::from(self.priority));
        map.insert("when".into(), self.when.to_json());
        map.insert("action".into(), Value::from(self.action.as_str()));
        map.insert("reason".into(), Value::from(self.reason.as_str()));
        if let Some(prefix) = &self.subject_prefix {
            map.insert("subject_prefix".into(), Value::from(prefix.as_str()));
        }
        Value::Object(map)
    }

    /// Re-checks a rule built in code (not parsed) against the same rules as [`Rule::from_json`].
    pub fn validate(&self) -> Result<(), RuleError> {
        Rule::from_json(&self.to_json()).map(|_| ())
    }

    /// The DNSBL zones this rule's condition looks at, so facts can be gathered beforehand.
    pub fn dnsbl_zones(&self) -> Vec<&str> {
        let zones = self
            .when
            .matches()
            .into_iter()
            .filter_map(|leaf| match &leaf.field {
                Field::Dnsbl(zone) => Some(zone.as_str()),
                _ => None,
            });
        zones.collect()
    }
}

fn parse_id(map: &Map<String, Value>) -> Result<String, RuleError> {
    let path = Path::root("id");
    let Some(raw) = map.get("id") else {
        return Ok(String::new());
    };
    let id = json::string(raw, &path)?;
    validate_rule_id(id).map_err(|problem| path.error(problem))?;
    Ok(id.to_string())
}

fn parse_name(map: &Map<String, Value>) -> Result<String, RuleError> {
    let path = Path::root("name");
    let raw = map
        .get("name")
        .ok_or_else(|| path.error(Problem::Missing))?;
    let name = json::line_text(raw, RULE_NAME_LEN_MAX, &path)?;
    if name.trim().is_empty() {
        return Err(path.error(Problem::Empty));
    }
    Ok(name.to_string())
}

fn parse_when(map: &Map<String, Value>) -> Result<Condition, RuleError> {
    let path = Path::root("when");
    let raw = map
        .get("when")
        .ok_or_else(|| path.error(Problem::Missing))?;
    condition::parse_condition(raw, &path)
}

fn parse_action(map: &Map<String, Value>) -> Result<Action, RuleError> {
    let path = Path::root("action");
    let raw = map
        .get("action")
        .ok_or_else(|| path.error(Problem::Missing))?;
    Action::parse(json::string(raw, &path)?).map_err(|problem| path.error(problem))
}

fn parse_subject_prefix(
    map: &Map<String, Value>,
    action: Action,
) -> Result<Option<String>, RuleError> {
    let path = Path::root("subject_prefix");
    let Some(raw) = map.get("subject_prefix").filter(|raw| !raw.is_null()) else {
        return Ok(None);
    };
    let prefix = json::line_text(raw, SUBJECT_PREFIX_LEN_MAX, &path)?;
    if action != Action::Tag {
        return Err(path.error(Problem::SubjectPrefixWithoutTag));
    }
    Ok(Some(prefix.to_string()))
}

fn reason_text(raw: &Value, path: &Path) -> Result<String, RuleError> {
    json::line_text(raw, RULE_REASON_LEN_MAX, path).map(str::to_string)
}

/// Parses optional key `key` with `parse`, or gives `default` when absent.
fn parse_with_default<T>(
    map: &Map<String, Value>,
    key: &str,
    parse: impl Fn(&Value, &Path) -> Result<T, RuleError>,
    default: T,
) -> Result<T, RuleError> {
    match map.get(key) {
        Some(raw) => parse(raw, &Path::root(key)),
        None => Ok(default),
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Rule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Rule::from_json(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests;
