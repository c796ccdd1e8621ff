//! Small helpers for the hand-written walk over `serde_json::Value`: a JSON path that
//! errors quote, and typed accessors whose errors name that path.

use serde_json::{Map, Value};

use super::error::{Problem, RuleError};

/// A JSON path such as `when.all[1].any[0].op`, built while walking the input.
#[derive(Debug, Clone, Default)]
pub(crate) struct Path(String);

impl Path {
    /// A path starting at `name` (e.g. `when` when parsing a condition alone).
    pub(crate) fn root(name: &str) -> Self {
        Path(name.to_string())
    }

    /// The path of object key `key` below this one.
    pub(crate) fn key(&self, key: &str) -> Self {
        if self.0.is_empty() {
            return Path(key.to_string());
        }
        Path(format!("{}.{key}", self.0))
    }

    /// The path of array element `index` below this one.
    pub(crate) fn index(&self, index: usize) -> Self {
        Path(format!("{}[{index}]", self.0))
    }

    /// An error at this path.
    pub(crate) fn error(&self, problem: Problem) -> RuleError {
        RuleError::at(&self.0, problem)
    }
}

/// The value as an object, or an error naming `path`.
pub(crate) fn object<'a>(
    value: &'a Value,
    path: &Path,
) -> Result<&'a Map<String, Value>, RuleError> {
    value
        .as_object()
        .ok_or_else(|| path.error(Problem::ExpectedObject))
}

/// Refuses any key of `map` outside `allowed`; the error names the first unknown key.
pub(crate) fn refuse_unknown_keys(
    map: &Map<String, Value>,
    allowed: &[&str],
    expected: &'static str,
    path: &Path,
) -> Result<(), RuleError> {
    match map.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(path.key(key).error(Problem::UnknownKey { expected })),
        None => Ok(()),
    }
}

/// The value as a string, or an error naming `path`.
pub(crate) fn string<'a>(value: &'a Value, path: &Path) -> Result<&'a str, RuleError> {
    value
        .as_str()
        .ok_or_else(|| path.error(Problem::ExpectedString))
}

/// The value as a bool, or an error naming `path`.
pub(crate) fn boolean(value: &Value, path: &Path) -> Result<bool, RuleError> {
    value
        .as_bool()
        .ok_or_else(|| path.error(Problem::ExpectedBool))
}

/// The value as an `i64`, or an error naming `path` (floats such as `1.5` are refused).
pub(crate) fn integer(value: &Value, path: &Path) -> Result<i64, RuleError> {
    value
        .as_i64()
        .ok_or_else(|| path.error(Problem::ExpectedInteger))
}

/// The value as a `u64`, or an error naming `path`.
pub(crate) fn unsigned(value: &Value, path: &Path) -> Result<u64, RuleError> {
    if value.is_i64() && !value.is_u64() {
        return Err(path.error(Problem::ExpectedUnsigned));
    }
    value
        .as_u64()
        .ok_or_else(|| path.error(Problem::ExpectedInteger))
}

/// The value as an array of at most `max` items, or an error naming `path`.
pub(crate) fn array<'a>(
    value: &'a Value,
    max: usize,
    path: &Path,
) -> Result<&'a [Value], RuleError> {
    let items = value
        .as_array()
        .ok_or_else(|| path.error(Problem::ExpectedArray))?;
    if items.is_empty() {
        return Err(path.error(Problem::Empty));
    }
    if items.len() > max {
        return Err(path.error(Problem::TooManyItems { max }));
    }
    Ok(items)
}

/// Checks that `text` has at most `max` characters.
pub(crate) fn check_length(text: &str, max: usize, path: &Path) -> Result<(), RuleError> {
    if text.chars().count() > max {
        return Err(path.error(Problem::TooLong { max }));
    }
    Ok(())
}

/// Checks that `text` holds no control character (it may reach a header or an SMTP reply).
pub(crate) fn check_no_control(text: &str, path: &Path) -> Result<(), RuleError> {
    if text.chars().any(char::is_control) {
        return Err(path.error(Problem::ControlCharacter));
    }
    Ok(())
}

/// A one-line human text (name, reason, prefix): bounded, no control characters.
pub(crate) fn line_text<'a>(
    value: &'a Value,
    max: usize,
    path: &Path,
) -> Result<&'a str, RuleError> {
    let text = string(value, path)?;
    check_length(text, max, path)?;
    check_no_control(text, path)?;
    Ok(text)
}
