//! Validation errors for rules: every error names the JSON path of the bad part.

use std::fmt;

/// Longest excerpt of user input quoted back in an error message, in characters.
const EXCERPT_CHARS_MAX: usize = 64;

/// A rule (or condition) that failed validation.
///
/// Displays as `PATH: PROBLEM`, e.g.
/// `when.all[1].any[0].op: unknown op "containz" (expected one of …)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {problem}")]
pub struct RuleError {
    /// JSON path of the bad part, e.g. `when.all[0].value`; `rule` for the whole document.
    pub path: String,
    /// What is wrong there.
    pub problem: Problem,
}

/// What is wrong at the path named by a [`RuleError`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The value must be a JSON object.
    #[error("expected a JSON object")]
    ExpectedObject,
    /// The value must be a string.
    #[error("expected a string")]
    ExpectedString,
    /// The value must be `true` or `false`.
    #[error("expected true or false")]
    ExpectedBool,
    /// The value must be an integer.
    #[error("expected an integer")]
    ExpectedInteger,
    /// The value must be a non-negative integer.
    #[error("expected a non-negative integer")]
    ExpectedUnsigned,
    /// The value must be an array.
    #[error("expected an array")]
    ExpectedArray,
    /// The value must be a string or an array of strings.
    #[error("expected a string or an array of strings")]
    ExpectedStringOrArray,
    /// A required key is absent.
    #[error("is required")]
    Missing,
    /// The string or array is empty.
    #[error("must not be empty")]
    Empty,
    /// The string is longer than the named bound.
    #[error("longer than {max} characters")]
    TooLong {
        /// The bound, in characters.
        max: usize,
    },
    /// The array has more items than the named bound.
    #[error("more than {max} items")]
    TooManyItems {
        /// The bound, in items.
        max: usize,
    },
    /// A control character (CR, LF, NUL, …) where text goes into mail headers or replies.
    #[error("must not contain control characters")]
    ControlCharacter,
    /// A character outside the allowed set.
    #[error("invalid character {found:?} (allowed: {allowed})")]
    InvalidCharacter {
        /// The offending character.
        found: char,
        /// Human description of the allowed set.
        allowed: &'static str,
    },
    /// A key that this object does not know.
    #[error("unknown key (expected one of {expected})")]
    UnknownKey {
        /// The keys that are allowed here.
        expected: &'static str,
    },
    /// An action name that does not exist.
    #[error("unknown action {} (expected one of accept, tag, quarantine, reject, tempfail)", Quoted(.0))]
    UnknownAction(String),
    /// An op name that does not exist.
    #[error("unknown op {} (expected one of contains, equals, regex, in, in_cidr, gt, lt, exists)", Quoted(.0))]
    UnknownOp(String),
    /// A field name that does not exist.
    #[error(
        "unknown field {} (expected one of from, to, header:NAME, subject, body, attachment.name, \
         attachment.ext, attachment.type, size, client_ip, helo, dnsbl:ZONE, spf, dkim, dmarc, \
         virus, archive.bomb, score, symbol, bayes)",
        Quoted(.0)
    )]
    UnknownField(String),
    /// The op does not apply to the field.
    #[error("op {op} cannot be used with field {field} (allowed ops: {allowed})")]
    OpNotAllowed {
        /// The op given.
        op: String,
        /// The field given.
        field: String,
        /// The ops that apply to this field.
        allowed: &'static str,
    },
    /// `exists` was given a value.
    #[error("op exists takes no value")]
    UnexpectedValue,
    /// The regex does not compile (or exceeds the size bound).
    #[error("invalid regex: {0}")]
    InvalidRegex(String),
    /// Not a CIDR network or IP address.
    #[error("invalid CIDR {}", Quoted(.0))]
    InvalidCidr(String),
    /// Not an IP address.
    #[error("invalid IP address {}", Quoted(.0))]
    InvalidIp(String),
    /// The value must be a finite JSON number.
    #[error("expected a number")]
    ExpectedNumber,
    /// A number outside the field's range.
    #[error("{value} is outside {range}")]
    OutOfRange {
        /// The number given, as written in the JSON.
        value: String,
        /// The allowed range, e.g. `0..=1`.
        range: &'static str,
    },
    /// A symbol name with a character outside `A-Z`, `0-9`, `_`.
    #[error("invalid symbol name {} (expected A-Z, 0-9 and _)", Quoted(.0))]
    InvalidSymbol(String),
    /// `direction` compares only with `inbound` or `outbound`.
    #[error("unknown direction {} (expected inbound or outbound)", Quoted(.0))]
    UnknownDirection(String),
    /// `archive.bomb` compares only with `"true"` or `"false"`.
    #[error("expected \"true\" or \"false\"")]
    ExpectedBoolText,
    /// A condition object that is neither a combinator nor a match.
    #[error("expected a condition: an object with one of all, any, not, or a match with field")]
    NotACondition,
    /// A combinator object with a second key beside it.
    #[error("unexpected key beside {beside}")]
    ExtraKey {
        /// The combinator key already present.
        beside: &'static str,
    },
    /// Conditions nested deeper than the bound.
    #[error("conditions nested deeper than {max} levels")]
    TooDeep {
        /// The bound, in levels.
        max: usize,
    },
    /// More conditions than the bound in one rule.
    #[error("more than {max} conditions in one rule")]
    TooManyConditions {
        /// The bound, in conditions.
        max: usize,
    },
    /// The condition's canonical JSON exceeds the size bound.
    #[error("condition is {size} bytes of JSON, more than {max}")]
    TooLarge {
        /// The canonical size, in bytes.
        size: usize,
        /// The bound, in bytes.
        max: usize,
    },
    /// `subject_prefix` given with an action other than `tag`.
    #[error("only allowed with action \"tag\"")]
    SubjectPrefixWithoutTag,
}

impl RuleError {
    /// Builds an error at `path` (rendered as `rule` when empty).
    pub(crate) fn at(path: &str, problem: Problem) -> Self {
        let path = if path.is_empty() { "rule" } else { path };
        RuleError {
            path: path.to_string(),
            problem,
        }
    }
}

/// Quotes user input in an error, cut to [`EXCERPT_CHARS_MAX`] characters.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.chars().count() <= EXCERPT_CHARS_MAX {
            return write!(f, "{:?}", self.0);
        }
        let cut: String = self.0.chars().take(EXCERPT_CHARS_MAX).collect();
        write!(f, "{cut:?}…")
    }
}
