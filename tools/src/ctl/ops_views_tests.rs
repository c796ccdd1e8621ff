//! The operations views against answers shaped as the admin API sends them.

use serde_json::json;

use super::*;

/// 2026-01-01 10:00 UTC.
const T0: u64 = 1_767_261_600_000;

#[test]
fn cluster_lists_each_member_with_health_version_and_last_seen() {
    let answer = json!({"self": "mx1", "members": [
        {"id": "mx1", "live": true, "health": "ok", "version": "0.1.0",
         "smtp_addr": "127.0.0.1:25", "admin_addr": "127.0.0.1:8025", "mesh_addr": "127.0.0.1:7946",
         "last_seen_ms": 0, "rules_digest": "abcdef0123456789", "quarantine_entries": 12},
        {"id": "mx2", "live": false, "health": "down", "version": "0.1.0",
         "smtp_addr": "127.0.0.2:25", "admin_addr": "", "mesh_addr": "",
         "last_seen_ms": 125_000, "rules_digest": "", "quarantine_entries": 3},
        {"id": "mx3", "live": true, "health": "ok", "version": "0.1.0",
         "smtp_addr": "127.0.0.3:25", "admin_addr": "", "mesh_addr": "",
         "last_seen_ms": 1_300, "rules_digest": "abcdef0123456789", "quarantine_entries": 0}
    ], "dns": {"published": ["127.0.0.1", "127.0.0.3"], "publisher": "mx1"}});
    assert_eq!(
        cluster(&answer).unwrap(),
        "NODE             LIVE  HEALTH  VERSION  SMTP          LAST SEEN  QUARANTINE  RULES DIGEST\n\
         mx1 (this node)  yes   ok      0.1.0    127.0.0.1:25  now                12  abcdef012345\n\
         mx2              no    down    0.1.0    127.0.0.2:25  2 min ago           3\n\
         mx3              yes   ok      0.1.0    127.0.0.3:25  1.3 s ago           0  abcdef012345\n\
         \n\
         dns: 127.0.0.1, 127.0.0.3 (published by mx1)\n"
    );
}

#[test]
fn rules_are_listed_in_order_with_their_condition_cut() {
    let long = "x".repeat(100);
    let answer = json!({"rules": [
        {"id": "r-1", "name": "win", "priority": 10, "enabled": true, "action": "quarantine",
         "when": {"field": "subject", "op": "contains", "value": "win"}},
        {"id": "r-2", "name": "long", "priority": 20, "enabled": false, "action": "reject",
         "when": {"field": "body", "op": "contains", "value": long}}
    ]});
    let text = rules(&answer).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "ID   NAME  PRIORITY  ENABLED  ACTION      WHEN");
    assert_eq!(
        lines[1],
        r#"r-1  win         10  yes      quarantine  {"field":"subject","op":"contains","value":"win"}"#
    );
    assert!(lines[2].starts_with("r-2  long        20  no       reject      {\"field\":\"body\""));
    assert!(lines[2].ends_with('…'), "{}", lines[2]);
    assert_eq!(rules(&json!({"rules": []})).unwrap(), "no rules\n");
}

#[test]
fn history_shows_who_changed_what_and_when() {
    let answer = json!({"history": [
        {"time": "x", "time_ms": T0, "node": "mx1", "admin": "ops", "op": "create",
         "rule_id": "r-1", "fields": ["when", "action"], "change": "c1"}
    ]});
    assert_eq!(
        history(&answer).unwrap(),
        "TIME (UTC)        NODE  ADMIN  OP      RULE  FIELDS\n\
         2026-01-01 10:00  mx1   ops    create  r-1   [\"when\",\"action\"]\n"
    );
}

#[test]
fn history_says_when_older_changes_were_left_out() {
    let answer = json!({"total": 12000, "truncated": true, "history": [
        {"time": "x", "time_ms": T0, "node": "mx1", "admin": "ops", "op": "delete",
         "rule_id": "r-1", "fields": [], "change": "c1"}
    ]});
    let text = history(&answer).unwrap();
    assert!(
        text.ends_with("(the newest 1 of 12000 changes)\n"),
        "{text}"
    );
}

#[test]
fn queue_reads_like_postqueue() {
    let answer = json!({"node": "mx2", "size": 1, "entries": [
        {"id": "01J", "sender": "a@x.example", "subject": "s", "size": 10240,
         "recipients": [{"addr": "b@y.example", "relay_to": "", "state": "pending"},
                        {"addr": "c@y.example", "relay_to": "", "state": "pending"}],
         "created_ms": T0, "attempts": 2, "next_attempt_ms": T0 + 120_000,
         "last_error": "451 4.3.0 try later", "origin": "inbound"}
    ]});
    assert_eq!(
        queue(&answer).unwrap(),
        "node mx2: 1 queued\n\
         \n\
         ID    SIZE  QUEUED (UTC)      SENDER       RECIPIENTS               TRIES  NEXT TRY          LAST ERROR\n\
         01J  10240  2026-01-01 10:00  a@x.example  b@y.example,c@y.example      2  2026-01-01 10:02  451 4.3.0 try later\n"
    );
    assert_eq!(
        queue(&json!({"node": "mx1", "size": 0, "entries": []})).unwrap(),
        "node mx1: 0 queued\n"
    );
}

#[test]
fn stats_has_a_row_per_node_and_a_total_row() {
    let answer = json!({
        "nodes": {"mx1": {"received": 5, "relayed": 4, "quarantined": 1, "zeta": 0},
                  "mx2": {"received": 2, "relayed": 2, "quarantined": 0, "zeta": 1}},
        "total": {"received": 7, "relayed": 6, "quarantined": 1, "zeta": 1}
    });
    assert_eq!(
        stats(&answer).unwrap(),
        "NODE   RECEIVED  QUARANTINED  RELAYED  ZETA\n\
         mx1           5            1        4     0\n\
         mx2           2            0        2     1\n\
         TOTAL         7            1        6     1\n"
    );
}

#[test]
fn trace_lists_events_and_names_nodes_that_did_not_answer() {
    let answer = json!({"events": [
        {"time_ms": T0, "node": "mx3", "message_id": "01K", "event": "quarantined",
         "sender": "s@x.example", "recipients": ["r@y.example"], "detail": "rule r-1"}
    ], "unreachable": ["mx2"]});
    assert_eq!(
        trace(&answer).unwrap(),
        "TIME (UTC)        NODE  EVENT        MESSAGE  SENDER       RECIPIENTS   DETAIL\n\
         2026-01-01 10:00  mx3   quarantined  01K      s@x.example  r@y.example  rule r-1\n\
         not answering (their events are missing): mx2\n"
    );
    assert_eq!(
        trace(&json!({"events": [], "unreachable": []})).unwrap(),
        "no events\n"
    );
}

#[test]
fn other_shapes_are_left_to_the_caller() {
    for view in [cluster, rules, history, queue, stats, trace] {
        assert_eq!(view(&json!([1])), None);
        assert_eq!(view(&json!({"error": "x"})), None);
    }
}
