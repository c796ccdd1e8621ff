//! The verdict: rules in ascending priority (ties by id), the first that matches decides;
//! with a score ([`RuleSet::decide`]), no match leaves it to the score's thresholds;
//! without one ([`RuleSet::evaluate`]), no match accepts.

use std::collections::BTreeSet;

use mxmesh_crdt::lists::{ListEntry, ListKind as EntryKind, list_decision};
use mxmesh_crdt::rule::{Action, Field, Rule};

use super::compile::{CompileError, Leaf, Node, Test, compile};
use super::facts::MessageFacts;
use super::fields;
use crate::spam::{self, Score, SpamSettings};

/// The rules ready for evaluation, compiled once per rule book change.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    /// Enabled, compiled rules in evaluation order.
    rules: Vec<CompiledRule>,
    /// Rules that failed to compile and are not applied.
    skipped: Vec<SkippedRule>,
    /// The allow/deny list entries, consulted when no rule matched.
    lists: Vec<ListEntry>,
}

/// A rule left out of a [`RuleSet`] because it failed to compile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRule {
    /// The rule's id.
    pub rule_id: String,
    /// Why it was left out.
    pub error: CompileError,
}

/// What the filter decided for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// What happens to the message.
    pub action: Action,
    /// The rule that decided, `None` when no rule matched.
    pub rule_id: Option<String>,
    /// That rule's name.
    pub rule_name: Option<String>,
    /// That rule's reason (`""` when no rule matched).
    pub reason: String,
    /// Subject prefix to add (only from a `tag` rule that sets one).
    pub subject_prefix: Option<String>,
}

/// The verdict with the score it was made with.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// What happens to the message (from a rule, or else from the thresholds).
    pub verdict: Verdict,
    /// The score and its symbols (computed whether or not a rule decided).
    pub score: Score,
}

/// What a rule's condition reads: the facts and the score.
#[derive(Clone, Copy)]
struct Input<'a> {
    facts: &'a MessageFacts,
    score: &'a Score,
}

/// One rule ready to evaluate: what the verdict reports, and the compiled condition.
#[derive(Debug, Clone)]
struct CompiledRule {
    /// Reported as [`Verdict::rule_id`].
    id: String,
    /// Reported as [`Verdict::rule_name`].
    name: String,
    /// The verdict's action when the condition matches.
    action: Action,
    /// Reported as [`Verdict::reason`].
    reason: String,
    /// Reported for `tag` verdicts.
    subject_prefix: Option<String>,
    /// The compiled condition.
    when: Node,
    /// DNSBL zones the condition reads.
    dnsbl_zones: Vec<String>,
}

impl Verdict {
    /// The verdict when no rule matches: accept.
    pub fn no_match() -> Verdict {
        Verdict {
            action: Action::Accept,
            rule_id: None,
            rule_name: None,
            reason: String::new(),
            subject_prefix: None,
        }
    }
}

impl RuleSet {
    /// Compiles `rules`: disabled ones are left out, ones that fail to compile are left out
    /// and listed in [`RuleSet::skipped`]; the rest are ordered by (priority, id).
    pub fn compile(rules: &[Rule]) -> RuleSet {
        let mut ordered: Vec<&Rule> = rules.iter().filter(|rule| rule.enabled).collect();
        ordered.sort_by(|a, b| (a.priority, &a.id).cmp(&(b.priority, &b.id)));
        let mut set = RuleSet::default();
        for rule in ordered {
            match compile_rule(rule) {
                Ok(compiled) => set.rules.push(compiled),
                Err(error) => set.skipped.push(SkippedRule {
                    rule_id: rule.id.clone(),
                    error,
                }),
            }
        }
        set
    }

    /// This set with the allow/deny list `entries`, which [`RuleSet::decide`] consults
    /// after the rules and before the thresholds.
    pub fn with_lists(mut self, entries: Vec<ListEntry>) -> RuleSet {
        self.lists = entries;
        self
    }

    /// The verdict for `facts` by the rules alone: the first matching rule decides; no
    /// match accepts. The `score` and `symbol` fields read an empty score (0, no symbols).
    pub fn evaluate(&self, facts: &MessageFacts) -> Verdict {
        self.evaluate_scored(facts, &Score::default())
    }

    /// The verdict for `facts` by the rules, whose `score` and `symbol` fields read `score`;
    /// no match accepts.
    pub fn evaluate_scored(&self, facts: &MessageFacts, score: &Score) -> Verdict {
        self.first_match(Input { facts, score })
            .unwrap_or_else(Verdict::no_match)
    }

    /// The full decision: scores `facts` (`now_ms` is the time of arrival), then the first
    /// matching rule decides; with no match, a deny list entry quarantines and an allow list
    /// entry accepts (unless a virus was found); otherwise the thresholds of `settings` decide.
    pub fn decide(&self, facts: &MessageFacts, settings: &SpamSettings, now_ms: u64) -> Decision {
        let score = spam::score(facts, settings, now_ms);
        let verdict = self
            .first_match(Input {
                facts,
                score: &score,
            })
            .or_else(|| self.list_verdict(facts))
            .unwrap_or_else(|| spam::verdict_for(&score, settings));
        Decision { verdict, score }
    }

    /// The verdict of the allow/deny lists (see [`list_decision`]): deny quarantines, allow
    /// accepts, except that an allow never passes a message with a virus.
    fn list_verdict(&self, facts: &MessageFacts) -> Option<Verdict> {
        let (kind, id) = list_decision(&self.lists, &facts.from, &facts.to)?;
        let action = match kind {
            EntryKind::Deny => Action::Quarantine,
            EntryKind::Allow if facts.virus.is_some() => return None,
            EntryKind::Allow => Action::Accept,
        };
        Some(Verdict {
            action,
            reason: format!("{} list entry {id}", kind.as_str()),
            ..Verdict::no_match()
        })
    }

    fn first_match(&self, input: Input<'_>) -> Option<Verdict> {
        self.rules
            .iter()
            .find(|rule| node_matches(&rule.when, input))
            .map(CompiledRule::verdict)
    }

    /// Rules that failed to compile (and are therefore never applied).
    pub fn skipped(&self) -> &[SkippedRule] {
        &self.skipped
    }

    /// The number of rules applied.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether no rule is applied (every message is accepted).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The DNSBL zones the applied rules read, for the fact prefetcher to query.
    pub fn dnsbl_zones(&self) -> BTreeSet<String> {
        let zones = self
            .rules
            .iter()
            .flat_map(|rule| rule.dnsbl_zones.iter().cloned());
        zones.collect()
    }
}

impl CompiledRule {
    fn verdict(&self) -> Verdict {
        Verdict {
            action: self.action,
            rule_id: Some(self.id.clone()),
            rule_name: Some(self.name.clone()),
            reason: self.reason.clone(),
            subject_prefix: self
                .subject_prefix
                .clone()
                .filter(|_| self.action == Action::Tag),
        }
    }
}

fn compile_rule(rule: &Rule) -> Result<CompiledRule, CompileError> {
    let dnsbl_zones = rule.dnsbl_zones().into_iter().map(str::to_string).collect();
    Ok(CompiledRule {
        id: rule.id.clone(),
        name: rule.name.clone(),
        action: rule.action,
        reason: rule.reason.clone(),
        subject_prefix: rule.subject_prefix.clone(),
        when: compile(&rule.when)?,
        dnsbl_zones,
    })
}

fn node_matches(node: &Node, input: Input<'_>) -> bool {
    match node {
        Node::All(items) => items.iter().all(|item| node_matches(item, input)),
        Node::Any(items) => items.iter().any(|item| node_matches(item, input)),
        Node::Not(inner) => !node_matches(inner, input),
        Node::Leaf(leaf) => leaf_matches(leaf, input),
    }
}

/// One comparison; `negate` inverts the final result (after "any value matches").
fn leaf_matches(leaf: &Leaf, input: Input<'_>) -> bool {
    test_holds(&leaf.field, &leaf.test, input) != leaf.negate
}

/// The number a `score` or `bayes` comparison reads (`None`: Bayes did not vote).
fn real_value(field: &Field, input: Input<'_>) -> Option<f64> {
    match field {
        Field::Score => Some(input.score.total),
        Field::Bayes => input.facts.bayes,
        _ => None,
    }
}

fn test_holds(field: &Field, test: &Test, input: Input<'_>) -> bool {
    let Input { facts, score } = input;
    let any_text =
        |holds: &dyn Fn(&str) -> bool| fields::text_values(field, facts).into_iter().any(holds);
    let real = |holds: &dyn Fn(f64) -> bool| real_value(field, input).is_some_and(holds);
    match test {
        Test::Exists if *field == Field::Symbol => !score.symbols.is_empty(),
        Test::Exists => fields::exists(field, facts),
        Test::Pattern(regex) => any_text(&|text| regex.is_match(text)),
        Test::OneOf(values) => any_text(&|text| values.contains(text)),
        Test::Flag(expected) => facts.archive_bomb == *expected,
        Test::SizeEquals(size) => facts.size == *size,
        Test::SizeAbove(size) => facts.size > *size,
        Test::SizeBelow(size) => facts.size < *size,
        Test::IpOneOf(addresses) => addresses.contains(&fields::client_ip(facts)),
        Test::IpWithin(networks) => {
            let (raw, ip) = (facts.client_ip, fields::client_ip(facts));
            networks
                .iter()
                .any(|net| net.contains(&ip) || net.contains(&raw))
        }
        Test::RealEquals(value) => real(&|x| x == *value),
        Test::RealAbove(value) => real(&|x| x > *value),
        Test::RealBelow(value) => real(&|x| x < *value),
        Test::SymbolIn(names) => score
            .symbols
            .iter()
            .any(|s| names.iter().any(|n| n == s.name)),
        Test::SymbolContains(part) => score.symbols.iter().any(|s| s.name.contains(part.as_str())),
    }
}

#[cfg(test)]
mod list_tests;
#[cfg(test)]
mod tests;
