//! Rules compiled once for evaluation: regexes built, addresses and networks parsed,
//! case-insensitive values lowercased.

use std::net::IpAddr;

use ipnet::IpNet;
use mxmesh_crdt::rule::{
    Condition, Field, FieldKind, Match, MatchValue, Op, build_regex, parse_cidr, parse_ip,
};
use regex::Regex;

use super::fields::canonical_ip;

/// Why a rule could not be compiled (rules are validated before they are stored, so this
/// means a rule written by another version or a bug; the rule is skipped, never applied).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A regex (or a `contains` value turned into one) that does not build.
    #[error("field {field}: regex {pattern:?} does not compile: {message}")]
    Regex {
        /// The field matched.
        field: String,
        /// The pattern.
        pattern: String,
        /// The regex crate's message.
        message: String,
    },
    /// An address or network that does not parse.
    #[error("field {field}: {value:?} is not a valid {expected}")]
    Address {
        /// The field matched.
        field: String,
        /// The value given.
        value: String,
        /// `IP address` or `CIDR network`.
        expected: &'static str,
    },
    /// A value whose type does not fit the op and field.
    #[error("field {field}: op {op} does not take this value")]
    Value {
        /// The field matched.
        field: String,
        /// The op.
        op: Op,
    },
}

/// A compiled condition tree.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Every child matches.
    All(Vec<Node>),
    /// At least one child matches.
    Any(Vec<Node>),
    /// The child does not match.
    Not(Box<Node>),
    /// One comparison.
    Leaf(Leaf),
}

/// One compiled comparison.
#[derive(Debug, Clone)]
pub(crate) struct Leaf {
    /// What the comparison reads from the facts.
    pub(crate) field: Field,
    /// How it compares.
    pub(crate) test: Test,
    /// Inverts the leaf's final result.
    pub(crate) negate: bool,
}

/// How a leaf compares.
#[derive(Debug, Clone)]
pub(crate) enum Test {
    /// The field is present.
    Exists,
    /// `contains` and `regex` on text: a search.
    Pattern(Regex),
    /// `equals` and `in` on text: equality with one of the values.
    OneOf(TextSet),
    /// `archive.bomb equals`.
    Flag(bool),
    /// `size equals`.
    SizeEquals(u64),
    /// `size gt`.
    SizeAbove(u64),
    /// `size lt`.
    SizeBelow(u64),
    /// `client_ip equals` / `in`.
    IpOneOf(Vec<IpAddr>),
    /// `client_ip in_cidr`.
    IpWithin(Vec<IpNet>),
    /// `score`/`bayes` `equals`.
    RealEquals(f64),
    /// `score`/`bayes` `gt`.
    RealAbove(f64),
    /// `score`/`bayes` `lt`.
    RealBelow(f64),
    /// `symbol in`: a symbol of one of these names fired (names uppercase).
    SymbolIn(Vec<String>),
    /// `symbol contains`: a symbol whose name contains this (uppercase) fired.
    SymbolContains(String),
}

/// Strings compared whole, lowercased when the comparison ignores case.
#[derive(Debug, Clone)]
pub(crate) struct TextSet {
    /// The values, lowercased unless `case_sensitive`.
    values: Vec<String>,
    /// JSON `"case": true`.
    case_sensitive: bool,
}

impl TextSet {
    fn new(values: &[String], case_sensitive: bool) -> Self {
        let fold = |value: &String| match case_sensitive {
            true => value.clone(),
            false => value.to_lowercase(),
        };
        TextSet {
            values: values.iter().map(fold).collect(),
            case_sensitive,
        }
    }

    /// Whether `text` equals one of the values.
    pub(crate) fn contains(&self, text: &str) -> bool {
        if self.case_sensitive {
            return self.values.iter().any(|value| value == text);
        }
        let folded = text.to_lowercase();
        self.values.contains(&folded)
    }
}

/// Compiles a condition tree.
pub(crate) fn compile(condition: &Condition) -> Result<Node, CompileError> {
    match condition {
        Condition::All(items) => compile_all(items).map(Node::All),
        Condition::Any(items) => compile_all(items).map(Node::Any),
        Condition::Not(inner) => compile(inner).map(|node| Node::Not(Box::new(node))),
        Condition::Match(leaf) => compile_leaf(leaf).map(Node::Leaf),
    }
}

fn compile_all(items: &[Condition]) -> Result<Vec<Node>, CompileError> {
    items.iter().map(compile).collect()
}

fn compile_leaf(leaf: &Match) -> Result<Leaf, CompileError> {
    Ok(Leaf {
        field: leaf.field.clone(),
        test: compile_test(leaf)?,
        negate: leaf.negate,
    })
}

fn compile_test(leaf: &Match) -> Result<Test, CompileError> {
    let case_sensitive = leaf.case_sensitive;
    let test = match (leaf.field.kind(), leaf.op) {
        (_, Op::Exists) => Test::Exists,
        (FieldKind::Text, Op::Contains) => {
            Test::Pattern(pattern(leaf, &regex::escape(one_string(leaf)?))?)
        }
        (FieldKind::Text, Op::Regex) => Test::Pattern(pattern(leaf, one_string(leaf)?)?),
        (FieldKind::Text, Op::Equals | Op::In) => {
            Test::OneOf(TextSet::new(strings(leaf)?, case_sensitive))
        }
        (FieldKind::Flag, Op::Equals) => Test::Flag(one_string(leaf)?.eq_ignore_ascii_case("true")),
        (FieldKind::Size, Op::Equals) => Test::SizeEquals(number(leaf)?),
        (FieldKind::Size, Op::Gt) => Test::SizeAbove(number(leaf)?),
        (FieldKind::Size, Op::Lt) => Test::SizeBelow(number(leaf)?),
        (FieldKind::ClientIp, Op::Equals | Op::In) => Test::IpOneOf(addresses(leaf)?),
        (FieldKind::ClientIp, Op::InCidr) => Test::IpWithin(networks(leaf)?),
        (FieldKind::Number | FieldKind::Probability, Op::Equals) => Test::RealEquals(real(leaf)?),
        (FieldKind::Number | FieldKind::Probability, Op::Gt) => Test::RealAbove(real(leaf)?),
        (FieldKind::Number | FieldKind::Probability, Op::Lt) => Test::RealBelow(real(leaf)?),
        (FieldKind::Names, Op::In) => Test::SymbolIn(symbol_names(leaf)?),
        (FieldKind::Names, Op::Contains) => {
            Test::SymbolContains(one_string(leaf)?.to_ascii_uppercase())
        }
        _ => return Err(value_error(leaf)),
    };
    Ok(test)
}

fn value_error(leaf: &Match) -> CompileError {
    CompileError::Value {
        field: leaf.field.to_string(),
        op: leaf.op,
    }
}

/// The value as exactly one string.
fn one_string(leaf: &Match) -> Result<&str, CompileError> {
    match &leaf.value {
        MatchValue::Text(text) => Ok(text),
        _ => Err(value_error(leaf)),
    }
}

/// The value as one or more strings.
fn strings(leaf: &Match) -> Result<&[String], CompileError> {
    match leaf.value.strings() {
        [] => Err(value_error(leaf)),
        strings => Ok(strings),
    }
}

fn number(leaf: &Match) -> Result<u64, CompileError> {
    match leaf.value {
        MatchValue::Number(number) => Ok(number),
        _ => Err(value_error(leaf)),
    }
}

fn real(leaf: &Match) -> Result<f64, CompileError> {
    match leaf.value {
        MatchValue::Real(real) => Ok(real.get()),
        // A whole number written without a fraction parses as a byte count elsewhere.
        MatchValue::Number(number) => Ok(number as f64),
        _ => Err(value_error(leaf)),
    }
}

fn symbol_names(leaf: &Match) -> Result<Vec<String>, CompileError> {
    Ok(strings(leaf)?
        .iter()
        .map(|s| s.to_ascii_uppercase())
        .collect())
}

fn pattern(leaf: &Match, source: &str) -> Result<Regex, CompileError> {
    build_regex(source, leaf.case_sensitive).map_err(|error| CompileError::Regex {
        field: leaf.field.to_string(),
        pattern: source.to_string(),
        message: error.to_string(),
    })
}

fn addresses(leaf: &Match) -> Result<Vec<IpAddr>, CompileError> {
    let parse = |text: &String| {
        parse_ip(text)
            .map(canonical_ip)
            .ok_or_else(|| CompileError::Address {
                field: leaf.field.to_string(),
                value: text.clone(),
                expected: "IP address",
            })
    };
    strings(leaf)?.iter().map(parse).collect()
}

fn networks(leaf: &Match) -> Result<Vec<IpNet>, CompileError> {
    let parse = |text: &String| {
        parse_cidr(text).ok_or_else(|| CompileError::Address {
            field: leaf.field.to_string(),
            value: text.clone(),
            expected: "CIDR network",
        })
    };
    strings(leaf)?.iter().map(parse).collect()
}
