//! The fields that read the score (score, symbol, bayes), thresholds against rules, and
//! the outbound fields (direction, auth_user).

use serde_json::{Value, json};

use super::*;

/// A score of `total` made of symbols `names` (weights do not matter to the rules).
fn score_of(total: f64, names: &[&'static str]) -> Score {
    Score {
        total,
        symbols: names
            .iter()
            .map(|name| crate::spam::Symbol {
                name,
                weight: 1.0,
                detail: String::new(),
            })
            .collect(),
    }
}

fn matches_scored(when: Value, facts: &MessageFacts, score: &Score) -> bool {
    let set = RuleSet::compile(&[rule("r-t", 1, when, "reject")]);
    assert!(set.skipped().is_empty(), "{:?}", set.skipped());
    set.evaluate_scored(facts, score).rule_id.is_some()
}

#[test]
fn score_symbol_and_bayes_fields() {
    let facts = MessageFacts {
        bayes: Some(0.97),
        ..sample()
    };
    let score = score_of(7.5, &["DATE_IN_PAST", "BAYES_95"]);
    let table = [
        (json!({"field": "score", "op": "gt", "value": 7}), true),
        (json!({"field": "score", "op": "gt", "value": 7.5}), false),
        (json!({"field": "score", "op": "lt", "value": 7.6}), true),
        (
            json!({"field": "score", "op": "equals", "value": 7.5}),
            true,
        ),
        (json!({"field": "bayes", "op": "gt", "value": 0.95}), true),
        (json!({"field": "bayes", "op": "lt", "value": 0.5}), false),
        (json!({"field": "bayes", "op": "exists"}), true),
        (
            json!({"field": "symbol", "op": "in", "value": ["bayes_95", "X"]}),
            true,
        ),
        (
            json!({"field": "symbol", "op": "in", "value": ["BAYES_99"]}),
            false,
        ),
        (
            json!({"field": "symbol", "op": "contains", "value": "date"}),
            true,
        ),
        (
            json!({"field": "symbol", "op": "contains", "value": "DMARC"}),
            false,
        ),
        (json!({"field": "symbol", "op": "exists"}), true),
        (
            json!({"field": "symbol", "op": "contains", "value": "DMARC", "not": true}),
            true,
        ),
    ];
    for (when, expected) in table {
        assert_eq!(
            matches_scored(when.clone(), &facts, &score),
            expected,
            "{when}"
        );
    }
    // No vote: no bayes comparison holds, and bayes does not exist.
    let unvoted = sample();
    assert!(!matches_scored(
        json!({"field": "bayes", "op": "lt", "value": 1}),
        &unvoted,
        &score
    ));
    assert!(!matches_scored(
        json!({"field": "bayes", "op": "exists"}),
        &unvoted,
        &score
    ));
    assert!(!matches_scored(
        json!({"field": "symbol", "op": "exists"}),
        &unvoted,
        &Score::default()
    ));
}

#[test]
fn rules_win_over_thresholds_and_thresholds_decide_otherwise() {
    use crate::spam::SpamSettings;
    // A message the checks score high: no Message-ID, Date or From, shouting subject…
    let facts = crate::message::facts(
        b"Subject: FREE MONEY WAITING FOR YOU!!!\r\nContent-Type: text/html\r\n\r\n\
          <a href=\"http://192.0.2.9/\">https://bank.example/</a>\r\n",
        &crate::message::EnvelopeFacts {
            from: "x@spam.test",
            to: &[],
            helo: "h",
            client_ip: ip("192.0.2.1"),
            reverse_name: None,
        },
        &crate::message::archive::ArchiveLimits::default(),
    );
    let settings = SpamSettings::default();
    let now = 1_704_888_000_000;
    let none = RuleSet::default().decide(&facts, &settings, now);
    assert!(none.score.total >= 10.0, "{:?}", none.score);
    assert!(none.verdict.rule_id.is_none());
    assert_ne!(none.verdict.action, Action::Accept);
    // An accept rule that reads the score decides before the thresholds.
    let allow = rule(
        "r-allow",
        1,
        json!({"all": [{"field": "from", "op": "equals", "value": "x@spam.test"},
                       {"field": "score", "op": "gt", "value": 1}]}),
        "accept",
    );
    let decided = RuleSet::compile(&[allow]).decide(&facts, &settings, now);
    assert_eq!(decided.verdict.action, Action::Accept);
    assert_eq!(decided.verdict.rule_id.as_deref(), Some("r-allow"));
    assert_eq!(
        decided.score, none.score,
        "the score is reported either way"
    );
}

#[test]
fn direction_and_auth_user_fields() {
    let inbound = sample();
    check(
        &inbound,
        &[
            (leaf("direction", "equals", json!("inbound")), true),
            (leaf("direction", "equals", json!("outbound")), false),
            (exists("auth_user"), false),
            (leaf("auth_user", "equals", json!("alice")), false),
        ],
    );
    let submitted = MessageFacts {
        direction: crate::filter::Direction::Outbound,
        auth_user: Some("alice".into()),
        ..sample()
    };
    check(
        &submitted,
        &[
            (leaf("direction", "equals", json!("OUTBOUND")), true),
            (leaf("direction", "in", json!(["outbound"])), true),
            (exists("auth_user"), true),
            (leaf("auth_user", "equals", json!("alice")), true),
            (leaf("auth_user", "regex", json!("^bob$")), false),
        ],
    );
}
