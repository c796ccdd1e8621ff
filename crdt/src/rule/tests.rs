use serde_json::{Value, json};

use super::*;

fn example() -> Value {
    json!({
        "id": "r-01hx",
        "name": "block pharma",
        "enabled": true,
        "priority": 100,
        "when": { "all": [
            { "field": "subject", "op": "contains", "value": "viagra" },
            { "any": [
                { "field": "client_ip", "op": "in_cidr", "value": "203.0.113.0/24" },
                { "field": "attachment.ext", "op": "in", "value": ["exe", "js"] }
            ] }
        ] },
        "action": "quarantine",
        "reason": "pharma spam"
    })
}

/// A minimal valid rule with `when` replaced.
fn with_when(when: Value) -> Value {
    json!({ "name": "n", "when": when, "action": "reject" })
}

fn error_of(value: Value) -> String {
    match Rule::from_json(&value) {
        Ok(rule) => panic!("expected an error, got {rule:?}"),
        Err(error) => error.to_string(),
    }
}

fn when_error(when: Value) -> String {
    error_of(with_when(when))
}

fn set(mut value: Value, key: &str, new: Value) -> Value {
    value[key] = new;
    value
}

fn without(mut value: Value, key: &str) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.remove(key);
    }
    value
}

#[test]
fn parses_the_product_example() {
    let rule = Rule::from_json(&example()).expect("valid");
    assert_eq!(rule.id, "r-01hx");
    assert_eq!(rule.name, "block pharma");
    assert_eq!(rule.action, Action::Quarantine);
    assert_eq!(rule.reason, "pharma spam");
    let Condition::All(items) = &rule.when else {
        panic!("expected all, got {:?}", rule.when);
    };
    assert_eq!(items.len(), 2);
    let Condition::Match(first) = &items[0] else {
        panic!("expected a match");
    };
    assert_eq!(first.field, Field::Subject);
    assert_eq!(first.op, Op::Contains);
    assert_eq!(first.value, MatchValue::Text("viagra".into()));
    assert!(!first.negate && !first.case_sensitive);
}

#[test]
fn defaults_apply_when_keys_are_absent() {
    let rule = Rule::from_json(&with_when(json!({"field": "spf", "op": "exists"}))).expect("valid");
    assert_eq!(rule.id, "");
    assert!(rule.enabled);
    assert_eq!(rule.priority, PRIORITY_DEFAULT);
    assert_eq!(rule.reason, "");
    assert_eq!(rule.subject_prefix, None);
}

#[test]
fn round_trips_through_json() {
    let tagged = json!({
        "name": "tag it", "priority": -5, "enabled": false, "action": "tag",
        "subject_prefix": "[SPAM] ",
        "when": { "not": { "any": [
            { "field": "header:X-Spam", "op": "regex", "value": "^yes", "case": true },
            { "field": "size", "op": "gt", "value": 1000 },
            { "field": "archive.bomb", "op": "equals", "value": true },
            { "field": "client_ip", "op": "in", "value": ["10.0.0.1", "::1"] },
            { "field": "dnsbl:ZEN.spamhaus.org.", "op": "exists", "not": true }
        ] } }
    });
    for input in [example(), tagged] {
        let rule = Rule::from_json(&input).expect("valid");
        let again = Rule::from_json(&rule.to_json()).expect("canonical form is valid");
        assert_eq!(again, rule);
        assert_eq!(again.to_json(), rule.to_json());
    }
}

#[test]
fn canonical_json_normalises_flags_and_zones() {
    let rule = Rule::from_json(&with_when(json!({
        "field": "dnsbl:Zen.Spamhaus.Org.", "op": "exists", "not": false, "case": false
    })))
    .expect("valid");
    assert_eq!(
        rule.when.to_json(),
        json!({ "field": "dnsbl:zen.spamhaus.org", "op": "exists" })
    );
    assert_eq!(rule.dnsbl_zones(), vec!["zen.spamhaus.org"]);
}

#[test]
fn serde_goes_through_the_same_validation() {
    let rule: Rule = serde_json::from_value(example()).expect("valid");
    assert_eq!(
        serde_json::to_value(&rule).expect("serialises"),
        rule.to_json()
    );
    let bad = set(example(), "action", json!("drop"));
    let error = serde_json::from_value::<Rule>(bad).expect_err("invalid");
    assert!(
        error
            .to_string()
            .contains("action: unknown action \"drop\""),
        "{error}"
    );
}

#[test]
fn error_names_nested_unknown_op() {
    let mut input = example();
    input["when"]["all"][1]["any"][0]["op"] = json!("containz");
    assert_eq!(
        error_of(input),
        "when.all[1].any[0].op: unknown op \"containz\" \
         (expected one of contains, equals, regex, in, in_cidr, gt, lt, exists)"
    );
}

#[test]
fn error_names_invalid_regex() {
    let error =
        when_error(json!({ "all": [{ "field": "subject", "op": "regex", "value": "(unclosed" }] }));
    assert!(
        error.starts_with("when.all[0].value: invalid regex: "),
        "{error}"
    );
    assert!(!error.contains('\n'), "one line: {error}");
}

#[test]
fn regex_over_the_size_bound_is_refused() {
    let error = when_error(
        json!({ "field": "body", "op": "regex", "value": "\\w{1000}\\w{1000}\\w{1000}" }),
    );
    assert!(error.starts_with("when.value: invalid regex: "), "{error}");
}

#[test]
fn top_level_errors_name_the_key() {
    let cases = [
        (
            set(example(), "priority", json!("high")),
            "priority: expected an integer",
        ),
        (
            set(example(), "priority", json!(1.5)),
            "priority: expected an integer",
        ),
        (
            set(example(), "action", json!("drop")),
            "action: unknown action \"drop\" (expected one of accept, tag, quarantine, reject, tempfail)",
        ),
        (
            set(example(), "name", json!("  ")),
            "name: must not be empty",
        ),
        (set(example(), "name", json!(7)), "name: expected a string"),
        (
            set(example(), "enabled", json!("yes")),
            "enabled: expected true or false",
        ),
        (
            set(example(), "reason", json!("a\r\n250 ok")),
            "reason: must not contain control characters",
        ),
        (set(example(), "id", json!("")), "id: must not be empty"),
        (without(example(), "name"), "name: is required"),
        (without(example(), "when"), "when: is required"),
        (without(example(), "action"), "action: is required"),
        (json!([1, 2]), "rule: expected a JSON object"),
    ];
    for (input, expected) in cases {
        assert_eq!(error_of(input), expected);
    }
}

#[test]
fn unknown_top_level_key_is_named() {
    let error = error_of(set(example(), "colour", json!("red")));
    assert_eq!(
        error,
        "colour: unknown key (expected one of id, name, enabled, priority, when, action, reason, subject_prefix)"
    );
}

#[test]
fn rule_id_characters_and_length_are_checked() {
    let error = error_of(set(example(), "id", json!("r/../x")));
    assert!(error.starts_with("id: invalid character '/'"), "{error}");
    let error = error_of(set(example(), "id", json!("r".repeat(RULE_ID_LEN_MAX + 1))));
    assert_eq!(
        error,
        format!("id: longer than {RULE_ID_LEN_MAX} characters")
    );
}

#[test]
fn string_bounds_are_enforced() {
    let long_name = "n".repeat(RULE_NAME_LEN_MAX + 1);
    assert_eq!(
        error_of(set(example(), "name", json!(long_name))),
        format!("name: longer than {RULE_NAME_LEN_MAX} characters")
    );
    let long_value = "v".repeat(MATCH_VALUE_LEN_MAX + 1);
    assert_eq!(
        when_error(json!({ "field": "subject", "op": "contains", "value": long_value })),
        format!("when.value: longer than {MATCH_VALUE_LEN_MAX} characters")
    );
}

#[test]
fn subject_prefix_only_with_tag() {
    let input = set(example(), "subject_prefix", json!("[SPAM]"));
    assert_eq!(
        error_of(input),
        "subject_prefix: only allowed with action \"tag\""
    );
    let input = set(
        set(example(), "action", json!("tag")),
        "subject_prefix",
        json!("[SPAM]"),
    );
    let rule = Rule::from_json(&input).expect("valid");
    assert_eq!(rule.subject_prefix.as_deref(), Some("[SPAM]"));
    let input = set(
        set(example(), "action", json!("tag")),
        "subject_prefix",
        json!("x\ny"),
    );
    assert_eq!(
        error_of(input),
        "subject_prefix: must not contain control characters"
    );
}

#[test]
fn unknown_field_is_named() {
    let error = when_error(json!({ "field": "sender", "op": "equals", "value": "x" }));
    assert!(
        error.starts_with("when.field: unknown field \"sender\" (expected one of from, to,"),
        "{error}"
    );
}

#[test]
fn direction_compares_only_with_inbound_or_outbound() {
    assert_eq!(
        when_error(json!({ "field": "direction", "op": "equals", "value": "outgoing" })),
        "when.value: unknown direction \"outgoing\" (expected inbound or outbound)"
    );
    assert_eq!(
        when_error(json!({ "field": "direction", "op": "in", "value": ["inbound", "sideways"] })),
        "when.value[1]: unknown direction \"sideways\" (expected inbound or outbound)"
    );
    for value in [json!("Outbound"), json!("inbound")] {
        let rule = with_when(json!({ "field": "direction", "op": "equals", "value": value }));
        assert!(Rule::from_json(&rule).is_ok(), "{rule}");
    }
}

#[test]
fn field_arguments_are_checked() {
    assert_eq!(
        when_error(json!({ "field": "header:", "op": "exists" })),
        "when.field: must not be empty"
    );
    let error = when_error(json!({ "field": "header:X Spam", "op": "exists" }));
    assert!(
        error.starts_with("when.field: invalid character ' '"),
        "{error}"
    );
    let error = when_error(json!({ "field": "dnsbl:zen/spamhaus", "op": "exists" }));
    assert!(
        error.starts_with("when.field: invalid character '/'"),
        "{error}"
    );
}

#[test]
fn op_must_fit_the_field() {
    assert_eq!(
        when_error(json!({ "field": "subject", "op": "in_cidr", "value": "10.0.0.0/8" })),
        "when.op: op in_cidr cannot be used with field subject (allowed ops: contains, equals, regex, in, exists)"
    );
    assert_eq!(
        when_error(json!({ "field": "size", "op": "contains", "value": "1" })),
        "when.op: op contains cannot be used with field size (allowed ops: equals, gt, lt)"
    );
    assert_eq!(
        when_error(json!({ "field": "client_ip", "op": "regex", "value": "^10" })),
        "when.op: op regex cannot be used with field client_ip (allowed ops: equals, in, in_cidr)"
    );
    assert_eq!(
        when_error(json!({ "field": "archive.bomb", "op": "gt", "value": 1 })),
        "when.op: op gt cannot be used with field archive.bomb (allowed ops: equals, exists)"
    );
}

#[test]
fn value_types_are_checked() {
    let cases = [
        (
            json!({ "field": "size", "op": "gt", "value": "10" }),
            "when.value: expected an integer",
        ),
        (
            json!({ "field": "size", "op": "lt", "value": -1 }),
            "when.value: expected a non-negative integer",
        ),
        (
            json!({ "field": "to", "op": "in", "value": "a@b" }),
            "when.value: expected an array",
        ),
        (
            json!({ "field": "to", "op": "in", "value": [] }),
            "when.value: must not be empty",
        ),
        (
            json!({ "field": "to", "op": "in", "value": ["a", 3] }),
            "when.value[1]: expected a string",
        ),
        (
            json!({ "field": "subject", "op": "contains", "value": "" }),
            "when.value: must not be empty",
        ),
        (
            json!({ "field": "subject", "op": "contains" }),
            "when.value: is required",
        ),
        (
            json!({ "field": "spf", "op": "exists", "value": "pass" }),
            "when.value: op exists takes no value",
        ),
        (
            json!({ "field": "client_ip", "op": "in_cidr", "value": "10.0.0.0/33" }),
            "when.value: invalid CIDR \"10.0.0.0/33\"",
        ),
        (
            json!({ "field": "client_ip", "op": "in_cidr", "value": ["10.0.0.0/8", "x"] }),
            "when.value[1]: invalid CIDR \"x\"",
        ),
        (
            json!({ "field": "client_ip", "op": "in_cidr", "value": 10 }),
            "when.value: expected a string or an array of strings",
        ),
        (
            json!({ "field": "client_ip", "op": "equals", "value": "10.0.0" }),
            "when.value: invalid IP address \"10.0.0\"",
        ),
        (
            json!({ "field": "archive.bomb", "op": "equals", "value": "yes" }),
            "when.value: expected \"true\" or \"false\"",
        ),
        (
            json!({ "field": "subject", "op": "equals", "value": "x", "not": "yes" }),
            "when.not: expected true or false",
        ),
        (
            json!({ "field": "subject", "op": "equals", "value": "x", "case": 1 }),
            "when.case: expected true or false",
        ),
        (
            json!({ "field": 5, "op": "exists" }),
            "when.field: expected a string",
        ),
        (
            json!({ "field": "subject", "value": "x" }),
            "when.op: is required",
        ),
    ];
    for (when, expected) in cases {
        assert_eq!(when_error(when), expected);
    }
}

#[test]
fn list_bound_is_enforced() {
    let many: Vec<String> = (0..=MATCH_LIST_LEN_MAX).map(|i| format!("v{i}")).collect();
    assert_eq!(
        when_error(json!({ "field": "to", "op": "in", "value": many })),
        format!("when.value: more than {MATCH_LIST_LEN_MAX} items")
    );
}

#[test]
fn accepted_value_forms() {
    let accepted = [
        json!({ "field": "from", "op": "equals", "value": "" }),
        json!({ "field": "client_ip", "op": "in_cidr", "value": "2001:db8::/32" }),
        json!({ "field": "client_ip", "op": "in_cidr", "value": "192.0.2.7" }),
        json!({ "field": "client_ip", "op": "in_cidr", "value": ["192.0.2.0/24", "2001:db8::1"] }),
        json!({ "field": "size", "op": "equals", "value": 0 }),
        json!({ "field": "archive.bomb", "op": "equals", "value": "TRUE" }),
        json!({ "field": "archive.bomb", "op": "exists" }),
        json!({ "field": "virus", "op": "exists", "not": true }),
        json!({ "field": "dmarc", "op": "in", "value": ["fail", "none"] }),
    ];
    for when in accepted {
        let input = with_when(when.clone());
        assert!(Rule::from_json(&input).is_ok(), "refused {when}");
    }
}

#[test]
fn condition_shape_errors() {
    let cases = [
        (
            json!({}),
            "when: expected a condition: an object with one of all, any, not, or a match with field",
        ),
        (json!("subject"), "when: expected a JSON object"),
        (json!({ "all": [] }), "when.all: must not be empty"),
        (json!({ "all": {} }), "when.all: expected an array"),
        (json!({ "any": [1] }), "when.any[0]: expected a JSON object"),
        (json!({ "not": true }), "when.not: expected a JSON object"),
        (
            json!({ "all": [{ "field": "spf", "op": "exists" }], "any": [] }),
            "when.any: unexpected key beside all",
        ),
        (json!({ "op": "exists" }), "when.field: is required"),
        (
            json!({ "every": [] }),
            "when.every: unknown key (expected one of all, any, not, field)",
        ),
        (
            json!({ "field": "spf", "op": "exists", "negate": true }),
            "when.negate: unknown key (expected one of field, op, value, not, case)",
        ),
    ];
    for (when, expected) in cases {
        assert_eq!(when_error(when), expected);
    }
}

fn nested(depth: usize) -> Value {
    let mut condition = json!({ "field": "spf", "op": "exists" });
    for _ in 1..depth {
        condition = json!({ "not": condition });
    }
    condition
}

#[test]
fn depth_bound_is_enforced() {
    assert!(Rule::from_json(&with_when(nested(CONDITION_DEPTH_MAX))).is_ok());
    let error = when_error(nested(CONDITION_DEPTH_MAX + 1));
    let path = format!("when{}", ".not".repeat(CONDITION_DEPTH_MAX));
    assert_eq!(
        error,
        format!("{path}: conditions nested deeper than {CONDITION_DEPTH_MAX} levels")
    );
}

#[test]
fn condition_count_bound_is_enforced() {
    let leaf = json!({ "field": "spf", "op": "exists" });
    let fits = json!({ "any": vec![leaf.clone(); CONDITIONS_MAX - 1] });
    assert!(Rule::from_json(&with_when(fits)).is_ok());
    let too_many = json!({ "any": vec![leaf; CONDITIONS_MAX] });
    assert_eq!(
        when_error(too_many),
        format!(
            "when.any[{}]: more than {CONDITIONS_MAX} conditions in one rule",
            CONDITIONS_MAX - 1
        )
    );
}

#[test]
fn condition_json_size_bound_is_enforced() {
    let big = "x".repeat(MATCH_VALUE_LEN_MAX);
    let leaf = json!({ "field": "body", "op": "contains", "value": big });
    let when = json!({ "any": vec![leaf; 20] });
    let error = when_error(when);
    assert!(error.starts_with("when: condition is "), "{error}");
    assert!(
        error.ends_with(&format!("more than {CONDITION_JSON_BYTES_MAX}")),
        "{error}"
    );
}

#[test]
fn long_user_input_is_cut_in_errors() {
    let error = when_error(json!({ "field": "x".repeat(500), "op": "exists" }));
    assert!(error.len() < 400, "{error}");
    assert!(error.contains('…'), "{error}");
}

#[test]
fn validate_catches_rules_built_in_code() {
    let mut rule = Rule::from_json(&example()).expect("valid");
    assert!(rule.validate().is_ok());
    rule.name = String::new();
    assert_eq!(
        rule.validate().expect_err("invalid").to_string(),
        "name: must not be empty"
    );
}

#[test]
fn rule_id_at_is_deterministic_and_valid() {
    let a = rule_id_at(1_700_000_000_000, b"node-a");
    assert_eq!(a, rule_id_at(1_700_000_000_000, b"node-a"));
    assert_ne!(a, rule_id_at(1_700_000_000_000, b"node-b"));
    assert_ne!(a, rule_id_at(1_700_000_000_001, b"node-a"));
    assert!(a.starts_with("r-"));
    assert_eq!(a.len(), 28);
    assert_eq!(a, a.to_ascii_lowercase());
    assert!(validate_rule_id(&a).is_ok());
}

#[test]
fn field_and_op_names_round_trip() {
    let names = [
        "from",
        "to",
        "header:X-Spam",
        "subject",
        "body",
        "attachment.name",
        "attachment.ext",
        "attachment.type",
        "size",
        "client_ip",
        "helo",
        "dnsbl:zen.spamhaus.org",
        "spf",
        "dkim",
        "dmarc",
        "virus",
        "archive.bomb",
    ];
    for name in names {
        assert_eq!(Field::parse(name).expect("known").to_string(), name);
    }
    for op in [
        "contains", "equals", "regex", "in", "in_cidr", "gt", "lt", "exists",
    ] {
        assert_eq!(Op::parse(op).expect("known").as_str(), op);
    }
}

#[test]
fn everyday_regexes_fit_the_size_bound() {
    let patterns = [
        r"\b(viagra|cialis|levitra)\b",
        r"^[\w.+-]+@[\w-]+\.[\w.]+$",
        r"(?i)^(re|fwd?):\s*\[?urgent\]?",
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
        r"[\p{Cyrillic}]{5,}",
    ];
    for pattern in patterns {
        for case_sensitive in [false, true] {
            assert!(build_regex(pattern, case_sensitive).is_ok(), "{pattern}");
        }
    }
}

#[test]
fn spam_fields_take_numbers_and_symbol_names() {
    let rule = Rule::from_json(&with_when(json!({ "all": [
        { "field": "score", "op": "gt", "value": 7.5 },
        { "field": "score", "op": "lt", "value": -2 },
        { "field": "bayes", "op": "gt", "value": 0.99 },
        { "field": "bayes", "op": "exists" },
        { "field": "symbol", "op": "in", "value": ["date_in_past", "BAYES_99"] },
        { "field": "symbol", "op": "contains", "value": "DMARC" },
        { "field": "symbol", "op": "exists" },
    ] })))
    .unwrap();
    let values: Vec<&MatchValue> = rule.when.matches().iter().map(|m| &m.value).collect();
    assert_eq!(*values[0], MatchValue::Real(Real::new(7.5).unwrap()));
    assert_eq!(*values[1], MatchValue::Real(Real::new(-2.0).unwrap()));
    assert_eq!(*values[2], MatchValue::Real(Real::new(0.99).unwrap()));
    assert_eq!(
        *values[4],
        MatchValue::List(vec!["DATE_IN_PAST".into(), "BAYES_99".into()])
    );
    // The canonical JSON parses back to the same rule (floats round-trip).
    assert_eq!(Rule::from_json(&rule.to_json()).unwrap(), rule);
}

#[test]
fn spam_field_values_are_checked() {
    let cases = [
        (
            json!({ "field": "bayes", "op": "gt", "value": 1.5 }),
            "when.value: 1.5 is outside 0..=1",
        ),
        (
            json!({ "field": "bayes", "op": "lt", "value": "high" }),
            "when.value: expected a number",
        ),
        (
            json!({ "field": "score", "op": "gt", "value": 1e9 }),
            "when.value: 1000000000.0 is outside -1000000..=1000000",
        ),
        (
            json!({ "field": "score", "op": "contains", "value": "x" }),
            "when.op: op contains cannot be used with field score (allowed ops: equals, gt, lt)",
        ),
        (
            json!({ "field": "symbol", "op": "in", "value": ["OK", "BAD NAME"] }),
            "when.value[1]: invalid symbol name \"BAD NAME\" (expected A-Z, 0-9 and _)",
        ),
        (
            json!({ "field": "symbol", "op": "regex", "value": "X" }),
            "when.op: op regex cannot be used with field symbol (allowed ops: in, contains, exists)",
        ),
        (
            json!({ "field": "symbol", "op": "contains", "value": "" }),
            "when.value: must not be empty",
        ),
    ];
    for (when, expected) in cases {
        assert_eq!(when_error(when), expected);
    }
}
