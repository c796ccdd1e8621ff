//! The allow/deny list step of [`RuleSet::decide`]: after the rules, before the thresholds.

use mxmesh_crdt::lists::ListEntry;
use mxmesh_crdt::rule::Rule;
use serde_json::json;

use super::*;

fn entry(id: &str, kind: &str, sender: &str, scope: &str) -> ListEntry {
    let value = json!({"id": id, "kind": kind, "sender": sender, "scope": scope});
    ListEntry::from_json(&value).expect("valid entry")
}

/// A message whose virus finding alone scores past the reject threshold.
fn facts(from: &str, to: &str, virus: bool) -> MessageFacts {
    MessageFacts {
        from: from.into(),
        to: vec![to.into()],
        virus: virus.then(|| "Eicar-Signature".to_string()),
        ..MessageFacts::default()
    }
}

fn lists() -> Vec<ListEntry> {
    vec![
        entry("A1", "allow", "friend@x.example", "bob@corp.example"),
        entry("D1", "deny", "spam.example", "*"),
    ]
}

#[test]
fn allow_accepts_past_the_thresholds_but_never_a_virus() {
    let set = RuleSet::compile(&[]).with_lists(lists());
    let settings = SpamSettings::default();
    let mut allowed = facts("friend@x.example", "bob@corp.example", false);
    allowed.archive_bomb = true;
    let decision = set.decide(&allowed, &settings, 0);
    assert_eq!(decision.verdict.action, Action::Accept);
    assert_eq!(decision.verdict.reason, "allow list entry A1");
    let virus = facts("friend@x.example", "bob@corp.example", true);
    let decision = set.decide(&virus, &settings, 0);
    assert_eq!(decision.verdict.action, Action::Reject, "{decision:?}");
    let other = facts("friend@x.example", "eve@corp.example", true);
    assert_eq!(
        set.decide(&other, &settings, 0).verdict.action,
        Action::Reject
    );
}

#[test]
fn deny_quarantines_a_clean_message_and_rules_still_come_first() {
    let rule = Rule::from_json(&json!({
        "id": "r1", "name": "reject it", "action": "reject", "reason": "no",
        "when": {"field": "from", "op": "contains", "value": "friend@"}
    }))
    .expect("valid rule");
    let set = RuleSet::compile(&[rule]).with_lists(lists());
    let settings = SpamSettings::default();
    let denied = set.decide(&facts("a@spam.example", "z@y.example", false), &settings, 0);
    assert_eq!(denied.verdict.action, Action::Quarantine);
    assert_eq!(denied.verdict.reason, "deny list entry D1");
    let ruled = set.decide(
        &facts("friend@x.example", "bob@corp.example", false),
        &settings,
        0,
    );
    assert_eq!(ruled.verdict.action, Action::Reject);
    assert_eq!(ruled.verdict.rule_id.as_deref(), Some("r1"));
    let plain = set.decide(
        &facts("a@other.example", "z@y.example", false),
        &settings,
        0,
    );
    assert_eq!(plain.verdict, spam::verdict_for(&plain.score, &settings));
}
