//! Readable views of the operations answers: members (`cluster`), rules and their
//! history, a node's relay queue, the counters per node (`stats`) and trace events.
//! Pure: JSON in, text out; `None` for an answer of another shape (then the caller shows
//! the JSON). Fields a view does not lay out are not lost: they stay in `--json`.

use serde_json::{Map, Value};

use super::series::{METRICS, utc_minute};
use super::tables::{Table, cell};

/// The counters of `stats` shown first, in the order mail flows (the ones with a
/// history); others follow sorted.
const COUNTERS_FIRST: [&str; 9] = METRICS;
/// A rule's condition is shown as compact JSON cut to this many characters.
const WHEN_CHARS_MAX: usize = 60;
/// The rules digest is shown by its first characters, like a short commit hash.
const DIGEST_CHARS: usize = 12;
/// A trace or queue detail is cut to this many characters.
const DETAIL_CHARS_MAX: usize = 70;

/// `text` cut to `max` characters, with `…` when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Ms since the epoch as a UTC minute, `-` when absent or zero.
fn time_cell(value: Option<&Value>) -> String {
    match value.and_then(Value::as_u64) {
        Some(ms) if ms > 0 => utc_minute(ms),
        _ => "-".to_string(),
    }
}

fn field(object: &Value, key: &str) -> String {
    object.get(key).map(cell).unwrap_or_default()
}

/// A table whose columns are all left-aligned but for the numeric ones named.
fn table(header: &[&str], numeric: &[&str]) -> Table {
    Table::new(
        header.iter().map(|h| h.to_string()).collect(),
        header.iter().map(|h| numeric.contains(h)).collect(),
    )
}

/// How long ago a member's heartbeat last moved (`last_seen_ms` is that age in ms, as the
/// answering node sees it; 0 for itself).
fn age_cell(value: Option<&Value>, is_self: bool) -> String {
    match value.and_then(Value::as_u64) {
        _ if is_self => "now".to_string(),
        Some(ms) if ms < 60_000 => format!("{:.1} s ago", ms as f64 / 1000.0),
        Some(ms) if ms < 3_600_000 => format!("{} min ago", ms / 60_000),
        Some(ms) => format!("{} h ago", ms / 3_600_000),
        None => "-".to_string(),
    }
}

/// The DNS set the mesh publishes, and by whom; the raw JSON for another shape.
fn dns_line(dns: &Value) -> String {
    let published: Option<Vec<String>> = dns
        .get("published")
        .and_then(Value::as_array)
        .map(|ips| ips.iter().map(cell).collect());
    match published {
        Some(ips) => {
            let by = dns.get("publisher").filter(|v| !v.is_null()).map(cell);
            let by = by
                .map(|p| format!(" (published by {p})"))
                .unwrap_or_default();
            format!("dns: {}{by}", ips.join(", "))
        }
        None => format!("dns: {}", cell(dns)),
    }
}

/// `GET /api/v1/cluster`: one row per member, like `consul members`, then the DNS set.
pub fn cluster(answer: &Value) -> Option<String> {
    let members = answer.get("members")?.as_array()?;
    let me = answer.get("self").and_then(Value::as_str).unwrap_or("");
    let mut t = table(
        &[
            "NODE",
            "LIVE",
            "HEALTH",
            "VERSION",
            "SMTP",
            "LAST SEEN",
            "QUARANTINE",
            "RULES DIGEST",
        ],
        &["QUARANTINE"],
    );
    for m in members {
        let id = field(m, "id");
        let marker = if id == me { " (this node)" } else { "" };
        t.push(vec![
            format!("{id}{marker}"),
            field(m, "live"),
            field(m, "health"),
            field(m, "version"),
            field(m, "smtp_addr"),
            age_cell(m.get("last_seen_ms"), id == me),
            field(m, "quarantine_entries"),
            field(m, "rules_digest")
                .chars()
                .take(DIGEST_CHARS)
                .collect(),
        ]);
    }
    let mut text = t.render();
    if let Some(dns) = answer.get("dns") {
        text.push_str(&format!("\n{}\n", dns_line(dns)));
    }
    Some(text)
}

/// `GET /api/v1/rules`: one row per rule in evaluation order.
pub fn rules(answer: &Value) -> Option<String> {
    let rules = answer.get("rules")?.as_array()?;
    if rules.is_empty() {
        return Some("no rules\n".to_string());
    }
    let mut t = table(
        &["ID", "NAME", "PRIORITY", "ENABLED", "ACTION", "WHEN"],
        &["PRIORITY"],
    );
    for r in rules {
        let when = r.get("when").map(Value::to_string).unwrap_or_default();
        t.push(vec![
            field(r, "id"),
            field(r, "name"),
            field(r, "priority"),
            field(r, "enabled"),
            field(r, "action"),
            cut(&when, WHEN_CHARS_MAX),
        ]);
    }
    Some(t.render())
}

/// `GET /api/v1/rules/history`: one row per change, oldest first as the server sends.
pub fn history(answer: &Value) -> Option<String> {
    let entries = answer.get("history")?.as_array()?;
    if entries.is_empty() {
        return Some("no changes\n".to_string());
    }
    let mut t = table(
        &["TIME (UTC)", "NODE", "ADMIN", "OP", "RULE", "FIELDS"],
        &[],
    );
    for e in entries {
        t.push(vec![
            time_cell(e.get("time_ms")),
            field(e, "node"),
            field(e, "admin"),
            field(e, "op"),
            field(e, "rule_id"),
            e.get("fields").map(cell).unwrap_or_default(),
        ]);
    }
    let mut text = t.render();
    if answer.get("truncated").and_then(Value::as_bool) == Some(true) {
        let total = answer.get("total").and_then(Value::as_u64).unwrap_or(0);
        text.push_str(&format!(
            "(the newest {} of {total} changes)\n",
            entries.len()
        ));
    }
    Some(text)
}

/// `GET /api/v1/queue`: one row per queued message, like `postqueue -p`.
pub fn queue(answer: &Value) -> Option<String> {
    let entries = answer.get("entries")?.as_array()?;
    let node = field(answer, "node");
    let mut text = format!("node {node}: {} queued\n", entries.len());
    if entries.is_empty() {
        return Some(text);
    }
    let mut t = table(
        &[
            "ID",
            "SIZE",
            "QUEUED (UTC)",
            "SENDER",
            "RECIPIENTS",
            "TRIES",
            "NEXT TRY",
            "LAST ERROR",
        ],
        &["SIZE", "TRIES"],
    );
    for e in entries {
        let recipients: Vec<String> = e
            .get("recipients")
            .and_then(Value::as_array)
            .map(|list| list.iter().map(|r| field(r, "addr")).collect())
            .unwrap_or_default();
        let error = e.get("last_error").filter(|v| !v.is_null());
        t.push(vec![
            field(e, "id"),
            field(e, "size"),
            time_cell(e.get("created_ms")),
            field(e, "sender"),
            recipients.join(","),
            field(e, "attempts"),
            time_cell(e.get("next_attempt_ms")),
            cut(&error.map(cell).unwrap_or_default(), DETAIL_CHARS_MAX),
        ]);
    }
    text.push('\n');
    text.push_str(&t.render());
    Some(text)
}

/// The counter names of every node and the total, the mail-flow ones first.
fn counter_columns<'a>(nodes: &'a Map<String, Value>, total: &'a Value) -> Vec<&'a str> {
    let mut seen: Vec<&str> = nodes
        .values()
        .chain(std::iter::once(total))
        .filter_map(Value::as_object)
        .flat_map(|c| c.keys().map(String::as_str))
        .collect();
    seen.sort_unstable();
    seen.dedup();
    let mut columns: Vec<&str> = COUNTERS_FIRST
        .iter()
        .copied()
        .filter(|k| seen.contains(k))
        .collect();
    columns.extend(seen.into_iter().filter(|k| !COUNTERS_FIRST.contains(k)));
    columns
}

/// `GET /api/v1/stats`: one row per node and a TOTAL row, a column per counter.
pub fn stats(answer: &Value) -> Option<String> {
    let nodes = answer.get("nodes")?.as_object()?;
    let total = answer.get("total")?;
    let columns = counter_columns(nodes, total);
    let header: Vec<String> = std::iter::once("NODE".to_string())
        .chain(columns.iter().map(|c| c.to_uppercase()))
        .collect();
    let right = std::iter::once(false)
        .chain(columns.iter().map(|_| true))
        .collect();
    let mut t = Table::new(header, right);
    let row = |name: &str, counters: &Value| -> Vec<String> {
        std::iter::once(name.to_string())
            .chain(columns.iter().map(|c| field(counters, c)))
            .collect()
    };
    for (id, counters) in nodes {
        t.push(row(id, counters));
    }
    t.push(row("TOTAL", total));
    Some(t.render())
}

/// `GET /api/v1/trace`: one row per event, newest first, then the nodes not answering.
pub fn trace(answer: &Value) -> Option<String> {
    let events = answer.get("events")?.as_array()?;
    let mut text = if events.is_empty() {
        "no events\n".to_string()
    } else {
        let mut t = table(
            &[
                "TIME (UTC)",
                "NODE",
                "EVENT",
                "MESSAGE",
                "SENDER",
                "RECIPIENTS",
                "DETAIL",
            ],
            &[],
        );
        for e in events {
            let recipients: Vec<String> = e
                .get("recipients")
                .and_then(Value::as_array)
                .map(|list| list.iter().map(cell).collect())
                .unwrap_or_default();
            t.push(vec![
                time_cell(e.get("time_ms")),
                field(e, "node"),
                field(e, "event"),
                field(e, "message_id"),
                field(e, "sender"),
                recipients.join(","),
                cut(&field(e, "detail"), DETAIL_CHARS_MAX),
            ]);
        }
        t.render()
    };
    let unreachable: Vec<String> = answer
        .get("unreachable")
        .and_then(Value::as_array)
        .map(|list| list.iter().map(cell).collect())
        .unwrap_or_default();
    if !unreachable.is_empty() {
        text.push_str(&format!(
            "not answering (their events are missing): {}\n",
            unreachable.join(", ")
        ));
    }
    Some(text)
}

#[cfg(test)]
#[path = "ops_views_tests.rs"]
mod tests;
