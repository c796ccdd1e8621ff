//! The value side of a match: its type per op and field, and the checks on it
//! (regexes compile, CIDRs and addresses parse, bounds hold).

use std::net::IpAddr;

use ipnet::IpNet;
use regex::{Regex, RegexBuilder};
use serde_json::Value;

use super::error::{Problem, RuleError};
use super::field::{FieldKind, Op};
use super::json::{self, Path};

/// Longest string value of a match, in characters.
pub const MATCH_VALUE_LEN_MAX: usize = 4096;
/// Most strings in the list value of `in` or `in_cidr`.
pub const MATCH_LIST_LEN_MAX: usize = 1024;
/// Bound on a compiled regex, in bytes (passed to the regex crate's size limit).
pub const REGEX_SIZE_BYTES_MAX: usize = 1 << 20;
/// Largest magnitude of a `score` value (scores are sums of small weights).
pub const SCORE_VALUE_MAX: f64 = 1_000_000.0;
/// Longest spam symbol name in a `symbol` value, in characters.
pub const SYMBOL_NAME_LEN_MAX: usize = 64;

/// A finite real number (never NaN or infinite), so that it compares as `Eq`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Real(f64);

impl Eq for Real {}

impl Real {
    /// `value` when it is finite; `-0.0` becomes `0.0`.
    pub fn new(value: f64) -> Option<Real> {
        value.is_finite().then_some(Real(value + 0.0))
    }

    /// The number.
    pub fn get(self) -> f64 {
        self.0
    }
}

/// The value a match compares with. Which variant is valid depends on the op and field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MatchValue {
    /// No value (`exists`).
    None,
    /// One string: substring, regex, exact value, IP address, CIDR, or `"true"`/`"false"`.
    Text(String),
    /// Several strings (`in`, and `in_cidr` given an array).
    List(Vec<String>),
    /// A byte count (`size` with `equals`, `gt`, `lt`).
    Number(u64),
    /// A real number (`score`, `bayes` with `equals`, `gt`, `lt`).
    Real(Real),
}

impl MatchValue {
    /// The string values: one for `Text`, all for `List`, none otherwise.
    pub fn strings(&self) -> &[String] {
        match self {
            MatchValue::Text(text) => std::slice::from_ref(text),
            MatchValue::List(list) => list,
            MatchValue::None | MatchValue::Number(_) | MatchValue::Real(_) => &[],
        }
    }

    /// The JSON form, or `None` for [`MatchValue::None`] (the key is then omitted).
    pub fn to_json(&self) -> Option<Value> {
        match self {
            MatchValue::None => None,
            MatchValue::Text(text) => Some(Value::from(text.as_str())),
            MatchValue::List(list) => Some(Value::from(list.clone())),
            MatchValue::Number(number) => Some(Value::from(*number)),
            MatchValue::Real(real) => Some(Value::from(real.get())),
        }
    }
}

/// Compiles a rule regex the one way both validation and the filter use: bounded size,
/// case-insensitive unless `case_sensitive`.
pub fn build_regex(pattern: &str, case_sensitive: bool) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(REGEX_SIZE_BYTES_MAX)
        .build()
}

/// Parses a CIDR network; a bare address counts as a host network (`/32` or `/128`).
pub fn parse_cidr(text: &str) -> Option<IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Some(net);
    }
    text.parse::<IpAddr>().ok().map(IpNet::from)
}

/// Parses an IP address.
pub fn parse_ip(text: &str) -> Option<IpAddr> {
    text.trim().parse().ok()
}

/// Checks and converts the JSON `value` of a match with `op` on a field of `kind`.
///
/// `op` must already be allowed for `kind`. `raw` is `None` when the key is absent.
pub(crate) fn parse_value(
    kind: FieldKind,
    op: Op,
    raw: Option<&Value>,
    case_sensitive: bool,
    path: &Path,
) -> Result<MatchValue, RuleError> {
    let Some(raw) = raw else {
        if op == Op::Exists {
            return Ok(MatchValue::None);
        }
        return Err(path.error(Problem::Missing));
    };
    match op {
        Op::Exists => Err(path.error(Problem::UnexpectedValue)),
        Op::Contains if kind == FieldKind::Names => symbol_text(raw, path).map(MatchValue::Text),
        Op::Contains => non_empty_text(raw, path).map(MatchValue::Text),
        Op::Regex => regex_text(raw, case_sensitive, path).map(MatchValue::Text),
        Op::Gt | Op::Lt => number_value(kind, raw, path),
        Op::Equals => equals_value(kind, raw, path),
        Op::In => in_value(kind, raw, path),
        Op::InCidr => cidr_value(raw, path),
    }
}

fn equals_value(kind: FieldKind, raw: &Value, path: &Path) -> Result<MatchValue, RuleError> {
    match kind {
        FieldKind::Text => text(raw, path).map(MatchValue::Text),
        FieldKind::Size => json::unsigned(raw, path).map(MatchValue::Number),
        FieldKind::ClientIp => ip_text(raw, path).map(MatchValue::Text),
        FieldKind::Flag => flag_text(raw, path).map(MatchValue::Text),
        FieldKind::Number | FieldKind::Probability => number_value(kind, raw, path),
        FieldKind::Names => symbol_text(raw, path).map(MatchValue::Text),
    }
}

/// `gt`/`lt`/`equals` on a numeric field: a byte count for `size`, a real number within
/// ±[`SCORE_VALUE_MAX`] for `score`, a probability in `0..=1` for `bayes`.
fn number_value(kind: FieldKind, raw: &Value, path: &Path) -> Result<MatchValue, RuleError> {
    let range = match kind {
        FieldKind::Number => (-SCORE_VALUE_MAX, SCORE_VALUE_MAX, "-1000000..=1000000"),
        FieldKind::Probability => (0.0, 1.0, "0..=1"),
        _ => return json::unsigned(raw, path).map(MatchValue::Number),
    };
    let real = raw
        .as_f64()
        .and_then(Real::new)
        .ok_or_else(|| path.error(Problem::ExpectedNumber))?;
    if !(range.0..=range.1).contains(&real.get()) {
        return Err(path.error(Problem::OutOfRange {
            value: raw.to_string(),
            range: range.2,
        }));
    }
    Ok(MatchValue::Real(real))
}

/// A spam symbol name (or part of one, for `contains`): `A-Z`, `0-9`, `_`, not empty.
/// Lowercase letters are accepted and stored uppercase.
fn symbol_text(raw: &Value, path: &Path) -> Result<String, RuleError> {
    let text = non_empty_text(raw, path)?;
    json::check_length(&text, SYMBOL_NAME_LEN_MAX, path)?;
    let name = text.to_ascii_uppercase();
    if !name
        .chars()
        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(path.error(Problem::InvalidSymbol(text)));
    }
    Ok(name)
}

fn in_value(kind: FieldKind, raw: &Value, path: &Path) -> Result<MatchValue, RuleError> {
    let items = json::array(raw, MATCH_LIST_LEN_MAX, path)?;
    let item = |(index, item): (usize, &Value)| {
        let item_path = path.index(index);
        match kind {
            FieldKind::ClientIp => ip_text(item, &item_path),
            FieldKind::Names => symbol_text(item, &item_path),
            _ => text(item, &item_path),
        }
    };
    let list = items
        .iter()
        .enumerate()
        .map(item)
        .collect::<Result<_, _>>()?;
    Ok(MatchValue::List(list))
}

fn cidr_value(raw: &Value, path: &Path) -> Result<MatchValue, RuleError> {
    match raw {
        Value::String(_) => cidr_text(raw, path).map(MatchValue::Text),
        Value::Array(_) => {
            let items = json::array(raw, MATCH_LIST_LEN_MAX, path)?;
            let list = items
                .iter()
                .enumerate()
                .map(|(index, item)| cidr_text(item, &path.index(index)))
                .collect::<Result<_, _>>()?;
            Ok(MatchValue::List(list))
        }
        _ => Err(path.error(Problem::ExpectedStringOrArray)),
    }
}

/// Any string within the length bound (may be empty: `from equals ""` is the null sender).
fn text(raw: &Value, path: &Path) -> Result<String, RuleError> {
    let text = json::string(raw, path)?;
    json::check_length(text, MATCH_VALUE_LEN_MAX, path)?;
    Ok(text.to_string())
}

fn non_empty_text(raw: &Value, path: &Path) -> Result<String, RuleError> {
    let text = text(raw, path)?;
    if text.is_empty() {
        return Err(path.error(Problem::Empty));
    }
    Ok(text)
}

fn regex_text(raw: &Value, case_sensitive: bool, path: &Path) -> Result<String, RuleError> {
    let pattern = non_empty_text(raw, path)?;
    build_regex(&pattern, case_sensitive)
        .map_err(|error| path.error(Problem::InvalidRegex(one_line(&error.to_string()))))?;
    Ok(pattern)
}

fn ip_text(raw: &Value, path: &Path) -> Result<String, RuleError> {
    let text = json::string(raw, path)?;
    match parse_ip(text) {
        Some(_) => Ok(text.to_string()),
        None => Err(path.error(Problem::InvalidIp(text.to_string()))),
    }
}

fn cidr_text(raw: &Value, path: &Path) -> Result<String, RuleError> {
    let text = json::string(raw, path)?;
    match parse_cidr(text) {
        Some(_) => Ok(text.to_string()),
        None => Err(path.error(Problem::InvalidCidr(text.to_string()))),
    }
}

/// `archive.bomb equals`: `"true"`/`"false"` in any case, or a JSON bool; stored as lowercase text.
fn flag_text(raw: &Value, path: &Path) -> Result<String, RuleError> {
    if let Some(flag) = raw.as_bool() {
        return Ok(flag.to_string());
    }
    let text = json::string(raw, path)?.to_ascii_lowercase();
    match text.as_str() {
        "true" | "false" => Ok(text),
        _ => Err(path.error(Problem::ExpectedBoolText)),
    }
}

/// The regex crate's errors span several lines with a caret diagram; keep them on one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
