//! Plain-text views of the quarantine answers: the listing as a table with each entry's
//! spam score, one entry as its fields followed by the symbols of its score. Pure: JSON
//! in, text out; an answer of another shape is left to the caller (shown as JSON).

use serde_json::{Map, Value};

use super::tables::{Table, cell, other_fields};

/// Characters of a subject shown in the listing (the rest is cut, marked with `…`).
pub const SUBJECT_SHOWN_MAX_CHARS: usize = 60;

/// Fields of an entry the entry view lays out itself.
const ENTRY_FIELDS: [&str; 17] = [
    "id",
    "node",
    "received_at",
    "received_ms",
    "status",
    "pending",
    "sender",
    "recipients",
    "subject",
    "size",
    "reason",
    "rule_id",
    "score",
    "symbols",
    "recipients_held",
    "recipients_released",
    "recipients_deleted",
];

/// A score or weight as `X-Spam-Score` writes it (two decimals); `-` when absent.
fn number(value: Option<&Value>) -> String {
    match value.and_then(Value::as_f64) {
        Some(n) => format!("{n:.2}"),
        None => "-".to_string(),
    }
}

/// The status, with a waiting release or delete named and, for a message decided for some
/// of its recipients, how many it is still held for.
fn status(entry: &Map<String, Value>) -> String {
    let mut status = entry.get("status").map(cell).unwrap_or_default();
    let decided = ["recipients_released", "recipients_deleted"]
        .iter()
        .any(|k| entry.get(*k).is_some());
    let count = |key: &str| entry.get(key).and_then(Value::as_array).map_or(0, Vec::len);
    if decided && status == "quarantined" {
        let (held, all) = (count("recipients_held"), count("recipients"));
        status.push_str(&format!(" (for {held} of {all})"));
    }
    match entry.get("pending").and_then(|p| p.get("action")) {
        Some(action) => format!("{status} ({} pending)", cell(action)),
        None => status,
    }
}

/// A list of addresses, comma-separated.
fn addresses(value: Option<&Value>) -> String {
    match value {
        Some(Value::Array(list)) => list.iter().map(cell).collect::<Vec<_>>().join(", "),
        other => other.map(cell).unwrap_or_default(),
    }
}

fn shortened(text: String, max: usize) -> String {
    if text.chars().count() <= max {
        return text;
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `GET /api/v1/quarantine`: one row per entry, newest first as the server sent them,
/// then the cursor of the next page. `None` when the answer does not have that shape.
pub fn list(answer: &Value) -> Option<String> {
    let items = answer.get("items")?.as_array()?;
    let header = [
        "ID", "NODE", "RECEIVED", "STATUS", "SCORE", "SENDER", "SUBJECT",
    ];
    let right = [false, false, false, false, true, false, false];
    let mut table = Table::new(header.map(String::from).to_vec(), right.to_vec());
    for item in items {
        let entry = item.as_object()?;
        let field = |key: &str| entry.get(key).map(cell).unwrap_or_default();
        let subject = shortened(field("subject"), SUBJECT_SHOWN_MAX_CHARS);
        table.push(vec![
            field("id"),
            field("node"),
            field("received_at"),
            status(entry),
            number(entry.get("score")),
            field("sender"),
            subject,
        ]);
    }
    let mut text = if items.is_empty() {
        "no quarantined messages match\n".to_string()
    } else {
        table.render()
    };
    if let Some(next) = answer.get("next").and_then(Value::as_str) {
        text.push_str(&format!("\nmore: mxctl quarantine list --cursor {next}\n"));
    }
    Some(text)
}

/// `GET /api/v1/quarantine/ID`: the entry's fields one per line, then its symbols,
/// heaviest first. `None` when the answer does not have that shape.
pub fn entry(answer: &Value) -> Option<String> {
    let entry = answer.as_object()?;
    entry.get("id")?.as_str()?;
    let field = |key: &str| entry.get(key).map(cell).unwrap_or_default();
    let recipients = addresses(entry.get("recipients"));
    let mut text = String::new();
    let mut line = |label: &str, value: String| text.push_str(&format!("{label:<12}{value}\n"));
    line("id:", field("id"));
    line("node:", field("node"));
    line("received:", field("received_at"));
    line("status:", status(entry));
    line("sender:", field("sender"));
    line("recipients:", recipients);
    for (label, key) in [
        ("released:", "recipients_released"),
        ("deleted:", "recipients_deleted"),
    ] {
        let decided = entry.get(key).and_then(Value::as_array);
        if decided.is_some_and(|list| !list.is_empty()) {
            line(label, addresses(entry.get(key)));
        }
    }
    line("subject:", field("subject"));
    line("size:", field("size"));
    line("reason:", field("reason"));
    if let Some(rule) = entry.get("rule_id").filter(|v| !v.is_null()) {
        line("rule:", cell(rule));
    }
    line("score:", number(entry.get("score")));
    if let Some(pending) = entry.get("pending").and_then(Value::as_object) {
        let part = |key: &str| pending.get(key).map(cell).unwrap_or_default();
        line(
            "pending:",
            format!(
                "{} requested by {}@{} at {} (request {})",
                part("action"),
                part("admin"),
                part("requested_by"),
                part("requested_at"),
                part("request_id")
            ),
        );
    }
    text.push_str(&other_fields(entry, &ENTRY_FIELDS));
    text.push('\n');
    text.push_str(&symbols(entry.get("symbols")));
    Some(text)
}

/// The symbols table, heaviest first (the server sends them so), or why there is none.
fn symbols(value: Option<&Value>) -> String {
    let list = value.and_then(Value::as_array).map(Vec::as_slice);
    let Some(list @ [_, ..]) = list else {
        return "no symbols recorded\n".to_string();
    };
    let header = ["SYMBOL", "WEIGHT"].map(String::from).to_vec();
    let mut table = Table::new(header, vec![false, true]);
    for symbol in list {
        let name = symbol.get("name").map(cell).unwrap_or_default();
        table.push(vec![name, number(symbol.get("weight"))]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(id: &str, score: Value, subject: &str) -> Value {
        json!({
            "id": id, "node": "mx2", "received_at": "2026-01-01T10:00:00Z",
            "received_ms": 1_767_261_600_000_u64, "sender": "alert@phish.test",
            "recipients": ["user@example.com"], "subject": subject, "size": 512,
            "reason": "spam score 12.5 reached the quarantine threshold 10", "rule_id": null,
            "score": score, "symbols": [], "status": "quarantined"
        })
    }

    #[test]
    fn the_listing_shows_each_entry_with_its_score() {
        let answer = json!({
            "items": [
                listed("01B", json!(12.5), "ACCOUNT LOCKED"),
                listed("01A", Value::Null, &"x".repeat(100)),
            ],
            "next": "1767261600000:01A"
        });
        let text = list(&answer).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "ID   NODE  RECEIVED              STATUS       SCORE  SENDER            SUBJECT"
        );
        assert!(
            lines[1].starts_with("01B  mx2   2026-01-01T10:00:00Z  quarantined  12.50  alert@phish.test  ACCOUNT LOCKED"),
            "{text}"
        );
        assert!(lines[2].contains("quarantined      -  alert"), "{text}");
        assert!(
            lines[2].ends_with(&format!("{}…", "x".repeat(59))),
            "{text}"
        );
        assert!(
            text.ends_with("\nmore: mxctl quarantine list --cursor 1767261600000:01A\n"),
            "{text}"
        );
    }

    #[test]
    fn an_empty_listing_says_so() {
        let text = list(&json!({"items": [], "next": null})).unwrap();
        assert_eq!(text, "no quarantined messages match\n");
    }

    #[test]
    fn an_entry_shows_its_fields_then_its_symbols() {
        let mut answer = listed("01B", json!(12.5), "ACCOUNT LOCKED");
        answer["symbols"] = json!([
            {"name": "HTML_LINK_TEXT_MISMATCH", "weight": 2.5},
            {"name": "SPF_PASS", "weight": -0.2}
        ]);
        answer["pending"] = json!({"action": "release", "requested_by": "mx1", "admin": "ops",
            "requested_at": "2026-01-01T11:00:00Z", "request_id": "01R"});
        answer["shard"] = json!(3);
        let text = entry(&answer).unwrap();
        assert_eq!(
            text,
            "id:         01B\n\
             node:       mx2\n\
             received:   2026-01-01T10:00:00Z\n\
             status:     quarantined (release pending)\n\
             sender:     alert@phish.test\n\
             recipients: user@example.com\n\
             subject:    ACCOUNT LOCKED\n\
             size:       512\n\
             reason:     spam score 12.5 reached the quarantine threshold 10\n\
             score:      12.50\n\
             pending:    release requested by ops@mx1 at 2026-01-01T11:00:00Z (request 01R)\n\
             shard: 3\n\
             \n\
             SYMBOL                   WEIGHT\n\
             HTML_LINK_TEXT_MISMATCH    2.50\n\
             SPF_PASS                  -0.20\n"
        );
    }

    #[test]
    fn a_message_decided_for_some_recipients_says_for_whom() {
        let mut answer = listed("01C", json!(11.0), "Offers");
        answer["recipients"] = json!(["alice@example.com", "bob@example.com"]);
        answer["recipients_held"] = json!(["bob@example.com"]);
        answer["recipients_released"] = json!(["alice@example.com"]);
        answer["recipients_deleted"] = json!([]);
        let text = entry(&answer).unwrap();
        assert!(
            text.contains("status:     quarantined (for 1 of 2)\n"),
            "{text}"
        );
        assert!(text.contains("released:   alice@example.com\n"), "{text}");
        assert!(!text.contains("deleted:"), "nobody was deleted: {text}");
        assert!(!text.contains("recipients_held"), "{text}");
        let listing = list(&json!({"items": [answer]})).unwrap();
        assert!(listing.contains("quarantined (for 1 of 2)"), "{listing}");
    }

    #[test]
    fn an_entry_from_before_scores_says_none_were_recorded() {
        let text = entry(&listed("01A", Value::Null, "old")).unwrap();
        assert!(text.contains("score:      -\n"), "{text}");
        assert!(text.ends_with("\nno symbols recorded\n"), "{text}");
    }

    #[test]
    fn other_shapes_are_left_to_the_caller() {
        assert_eq!(list(&json!({"error": "x"})), None);
        assert_eq!(entry(&json!([1])), None);
        assert_eq!(entry(&json!({"items": []})), None);
    }
}
