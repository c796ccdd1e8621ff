//! The `when` part of a rule: a tree of `all` / `any` / `not` over field matches, its
//! canonical JSON, and the validating walk that builds it.

use serde_json::{Map, Value, json};

use super::error::{Problem, RuleError};
use super::field::{Field, Op};
use super::json::{self, Path};
use super::value::{MatchValue, parse_value};

/// Deepest nesting of conditions in one rule (the top condition is level 1).
pub const CONDITION_DEPTH_MAX: usize = 16;
/// Most conditions (combinators and matches together) in one rule.
pub const CONDITIONS_MAX: usize = 256;
/// Largest canonical JSON of one rule's condition, in bytes.
pub const CONDITION_JSON_BYTES_MAX: usize = 64 * 1024;

/// Keys a match object may hold.
const MATCH_KEYS: &[&str] = &["field", "op", "value", "not", "case"];
const MATCH_KEYS_TEXT: &str = "field, op, value, not, case";

/// A condition tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `{"all": [..]}`: every condition matches.
    All(Vec<Condition>),
    /// `{"any": [..]}`: at least one condition matches.
    Any(Vec<Condition>),
    /// `{"not": {..}}`: the condition does not match.
    Not(Box<Condition>),
    /// `{"field": .., "op": .., "value": ..}`: one comparison.
    Match(Match),
}

/// One comparison of a message field with a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// What is looked at.
    pub field: Field,
    /// How it is compared.
    pub op: Op,
    /// What it is compared with; its type fits `op` and `field`.
    pub value: MatchValue,
    /// JSON `"not": true`: inverts the result of this match.
    pub negate: bool,
    /// JSON `"case": true`: string comparison is case-sensitive (default: insensitive).
    pub case_sensitive: bool,
}

impl Condition {
    /// Parses and validates a condition; error paths start at `when`.
    pub fn from_json(value: &Value) -> Result<Condition, RuleError> {
        parse_condition(value, &Path::root("when"))
    }

    /// The canonical JSON: keys in a fixed order, flags only when set, no `value` for `exists`.
    pub fn to_json(&self) -> Value {
        match self {
            Condition::All(items) => {
                json!({ "all": items.iter().map(Condition::to_json).collect::<Vec<_>>() })
            }
            Condition::Any(items) => {
                json!({ "any": items.iter().map(Condition::to_json).collect::<Vec<_>>() })
            }
            Condition::Not(inner) => json!({ "not": inner.to_json() }),
            Condition::Match(leaf) => leaf.to_json(),
        }
    }

    /// Every match in this tree, depth first.
    pub fn matches(&self) -> Vec<&Match> {
        let mut found = Vec::new();
        self.collect_matches(&mut found);
        found
    }

    fn collect_matches<'a>(&'a self, found: &mut Vec<&'a Match>) {
        match self {
            Condition::All(items) | Condition::Any(items) => {
                items.iter().for_each(|item| item.collect_matches(found));
            }
            Condition::Not(inner) => inner.collect_matches(found),
            Condition::Match(leaf) => found.push(leaf),
        }
    }
}

impl Match {
    /// The canonical JSON of this match.
    pub fn to_json(&self) -> Value {
        let mut map = Map::new();
        map.insert("field".into(), Value::from(self.field.to_string()));
        map.insert("op".into(), Value::from(self.op.as_str()));
        if let Some(value) = self.value.to_json() {
            map.insert("value".into(), value);
        }
        if self.negate {
            map.insert("not".into(), Value::Bool(true));
        }
        if self.case_sensitive {
            map.insert("case".into(), Value::Bool(true));
        }
        Value::Object(map)
    }
}

/// Parses a condition rooted at `path`, checking the depth, count and size bounds.
pub(crate) fn parse_condition(value: &Value, path: &Path) -> Result<Condition, RuleError> {
    let mut walk = Walk { conditions: 0 };
    let condition = walk.condition(value, 1, path)?;
    let size = serde_json::to_string(&condition.to_json())
        .map(|text| text.len())
        .unwrap_or(usize::MAX);
    if size > CONDITION_JSON_BYTES_MAX {
        let max = CONDITION_JSON_BYTES_MAX;
        return Err(path.error(Problem::TooLarge { size, max }));
    }
    Ok(condition)
}

/// State of one walk over a condition tree: the number of conditions seen so far.
struct Walk {
    conditions: usize,
}

impl Walk {
    fn condition(
        &mut self,
        value: &Value,
        depth: usize,
        path: &Path,
    ) -> Result<Condition, RuleError> {
        self.conditions += 1;
        if self.conditions > CONDITIONS_MAX {
            return Err(path.error(Problem::TooManyConditions {
                max: CONDITIONS_MAX,
            }));
        }
        if depth > CONDITION_DEPTH_MAX {
            return Err(path.error(Problem::TooDeep {
                max: CONDITION_DEPTH_MAX,
            }));
        }
        let map = json::object(value, path)?;
        if map.contains_key("field") {
            return parse_match(map, path).map(Condition::Match);
        }
        let (key, inner) = combinator(map, path)?;
        let inner_path = path.key(key);
        match key {
            "all" => self.list(inner, depth, &inner_path).map(Condition::All),
            "any" => self.list(inner, depth, &inner_path).map(Condition::Any),
            _ => {
                let inner = self.condition(inner, depth + 1, &inner_path)?;
                Ok(Condition::Not(Box::new(inner)))
            }
        }
    }

    fn list(
        &mut self,
        value: &Value,
        depth: usize,
        path: &Path,
    ) -> Result<Vec<Condition>, RuleError> {
        let items = json::array(value, CONDITIONS_MAX, path)?;
        items
            .iter()
            .enumerate()
            .map(|(index, item)| self.condition(item, depth + 1, &path.index(index)))
            .collect()
    }
}

/// The single combinator key (`all`, `any`, `not`) of a non-match condition object.
fn combinator<'a>(
    map: &'a Map<String, Value>,
    path: &Path,
) -> Result<(&'static str, &'a Value), RuleError> {
    let found = ["all", "any", "not"]
        .into_iter()
        .find_map(|key| map.get(key).map(|inner| (key, inner)));
    let Some((key, inner)) = found else {
        if MATCH_KEYS.iter().any(|key| map.contains_key(*key)) {
            return Err(path.key("field").error(Problem::Missing));
        }
        return match map.keys().next() {
            Some(other) => Err(path.key(other).error(Problem::UnknownKey {
                expected: "all, any, not, field",
            })),
            None => Err(path.error(Problem::NotACondition)),
        };
    };
    match map.keys().find(|other| other.as_str() != key) {
        Some(other) => Err(path.key(other).error(Problem::ExtraKey { beside: key })),
        None => Ok((key, inner)),
    }
}

fn parse_match(map: &Map<String, Value>, path: &Path) -> Result<Match, RuleError> {
    json::refuse_unknown_keys(map, MATCH_KEYS, MATCH_KEYS_TEXT, path)?;
    let field = parse_field(map, path)?;
    let op = parse_op(map, &field, path)?;
    let negate = optional_flag(map, "not", path)?;
    let case_sensitive = optional_flag(map, "case", path)?;
    let value_path = path.key("value");
    let value = parse_value(
        field.kind(),
        op,
        map.get("value"),
        case_sensitive,
        &value_path,
    )?;
    if field == Field::Direction && matches!(op, Op::Equals | Op::In) {
        check_directions(&value, &value_path)?;
    }
    Ok(Match {
        field,
        op,
        value,
        negate,
        case_sensitive,
    })
}

fn parse_field(map: &Map<String, Value>, path: &Path) -> Result<Field, RuleError> {
    let path = path.key("field");
    let name = json::string(map.get("field").unwrap_or(&Value::Null), &path)?;
    Field::parse(name).map_err(|problem| path.error(problem))
}

fn parse_op(map: &Map<String, Value>, field: &Field, path: &Path) -> Result<Op, RuleError> {
    let path = path.key("op");
    let raw = map.get("op").ok_or_else(|| path.error(Problem::Missing))?;
    let op = Op::parse(json::string(raw, &path)?).map_err(|problem| path.error(problem))?;
    let kind = field.kind();
    if !kind.allowed_ops().contains(&op) {
        return Err(path.error(Problem::OpNotAllowed {
            op: op.to_string(),
            field: field.to_string(),
            allowed: kind.allowed_ops_text(),
        }));
    }
    Ok(op)
}

/// `direction` compares only with `inbound` or `outbound` (any case): another value
/// could never match.
fn check_directions(value: &MatchValue, path: &Path) -> Result<(), RuleError> {
    let known = |v: &String| {
        ["inbound", "outbound"]
            .iter()
            .any(|d| v.eq_ignore_ascii_case(d))
    };
    match value {
        MatchValue::Text(v) if !known(v) => Err(path.error(Problem::UnknownDirection(v.clone()))),
        MatchValue::List(list) => match list.iter().position(|v| !known(v)) {
            Some(i) => Err(path
                .index(i)
                .error(Problem::UnknownDirection(list[i].clone()))),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

fn optional_flag(map: &Map<String, Value>, key: &str, path: &Path) -> Result<bool, RuleError> {
    match map.get(key) {
        None => Ok(false),
        Some(raw) => json::boolean(raw, &path.key(key)),
    }
}
