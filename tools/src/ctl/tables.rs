//! Plain-text views of the admin API's JSON answers, for a person at a terminal
//! (`--json` prints the JSON itself instead). Pure: JSON in, text out.
//!
//! Columns are aligned with two spaces between them, like `consul members`;
//! numbers are right-aligned. A field the view does not know is still shown
//! (as `key: value` or an extra column), so a newer server loses nothing.

use serde_json::{Map, Value};

/// Column separator.
const GAP: &str = "  ";
/// Fields of a node's contribution shown first, in this order, when present.
const BAYES_NODE_FIELDS_FIRST: [&str; 3] = ["spam_learned", "ham_learned", "tokens"];
/// Fields of the classify answer the view lays out itself.
const CLASSIFY_FIELDS: [&str; 5] = ["score", "verdict", "bayes", "rule_id", "symbols"];

/// A table: a header and rows of cells, each column left- or right-aligned.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    right_aligned: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column names; `right_aligned` per column (numbers).
    pub fn new(header: Vec<String>, right_aligned: Vec<bool>) -> Self {
        debug_assert_eq!(header.len(), right_aligned.len());
        Table {
            header,
            right_aligned,
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn push(&mut self, mut row: Vec<String>) {
        row.resize(self.header.len(), String::new());
        self.rows.push(row);
    }

    /// The table as lines, each ending in a newline, without trailing spaces.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|column| {
                std::iter::once(&self.header)
                    .chain(&self.rows)
                    .map(|row| row[column].chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut text = String::new();
        for row in std::iter::once(&self.header).chain(&self.rows) {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .zip(&self.right_aligned)
                .map(|((cell, &width), &right)| {
                    if right {
                        format!("{cell:>width$}")
                    } else {
                        format!("{cell:<width$}")
                    }
                })
                .collect();
            text.push_str(cells.join(GAP).trim_end());
            text.push('\n');
        }
        text
    }
}

/// A JSON value as one cell: strings bare, `true`/`false` as yes/no, null as `-`,
/// arrays and objects as compact JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Bool(true) => "yes".to_string(),
        Value::Bool(false) => "no".to_string(),
        Value::Null => "-".to_string(),
        Value::Number(number) => number.to_string(),
        other => other.to_string(),
    }
}

/// `key: value` lines for the fields of `object` not in `known`, in key order.
pub fn other_fields(object: &Map<String, Value>, known: &[&str]) -> String {
    object
        .iter()
        .filter(|(key, _)| !known.contains(&key.as_str()))
        .map(|(key, value)| format!("{key}: {}\n", cell(value)))
        .collect()
}

/// A node's contribution as the server sends it (`{"winning": {"spam", "ham"}, "records"}`)
/// with the winning counts as the `spam_learned`/`ham_learned` columns of the totals.
fn flat_contributions(nodes: &serde_json::Map<String, Value>) -> serde_json::Map<String, Value> {
    let flatten = |node: &Value| -> Value {
        let Some(fields) = node.as_object() else {
            return node.clone();
        };
        let mut out = serde_json::Map::new();
        for (key, value) in fields {
            match (key.as_str(), value.as_object()) {
                ("winning", Some(winning)) => {
                    for (class, count) in winning {
                        out.insert(format!("{class}_learned"), count.clone());
                    }
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
        Value::Object(out)
    };
    nodes
        .iter()
        .map(|(id, node)| (id.clone(), flatten(node)))
        .collect()
}

/// `GET /api/v1/bayes`: one row per node and a TOTAL row, then whether the
/// classifier votes. `None` when the answer does not have that shape.
pub fn bayes(answer: &Value) -> Option<String> {
    let object = answer.as_object()?;
    let nodes = &flat_contributions(object.get("nodes")?.as_object()?);
    let mut columns: Vec<&str> = BAYES_NODE_FIELDS_FIRST
        .iter()
        .copied()
        .filter(|key| {
            object.contains_key(*key)
                || nodes
                    .values()
                    .any(|node| node.as_object().is_some_and(|n| n.contains_key(*key)))
        })
        .collect();
    let mut more: Vec<&str> = nodes
        .values()
        .filter_map(Value::as_object)
        .flat_map(|node| node.keys().map(String::as_str))
        .filter(|key| !BAYES_NODE_FIELDS_FIRST.contains(key))
        .collect();
    more.sort_unstable();
    more.dedup();
    columns.extend(more);

    let header = std::iter::once("NODE".to_string())
        .chain(columns.iter().map(|key| key.to_uppercase()))
        .collect();
    let numeric = |key: &str| {
        nodes
            .values()
            .filter_map(|node| node.get(key))
            .chain(object.get(key))
            .all(Value::is_number)
    };
    let right_aligned = std::iter::once(false)
        .chain(columns.iter().map(|key| numeric(key)))
        .collect();
    let mut table = Table::new(header, right_aligned);
    for (id, node) in nodes {
        let row = std::iter::once(id.clone())
            .chain(
                columns
                    .iter()
                    .map(|key| node.get(key).map(cell).unwrap_or_default()),
            )
            .collect();
        table.push(row);
    }
    let total = std::iter::once("TOTAL".to_string())
        .chain(
            columns
                .iter()
                .map(|key| object.get(*key).map(cell).unwrap_or_default()),
        )
        .collect();
    table.push(total);

    let mut text = table.render();
    text.push('\n');
    match object.get("ready") {
        Some(Value::Bool(true)) => text.push_str("ready: yes, the classifier votes\n"),
        Some(Value::Bool(false)) => text.push_str(
            "ready: no, the classifier does not vote until enough spam and ham are learned\n",
        ),
        Some(other) => text.push_str(&format!("ready: {}\n", cell(other))),
        None => {}
    }
    let mut known: Vec<&str> = vec!["nodes", "ready"];
    known.extend(&columns);
    text.push_str(&other_fields(object, &known));
    Some(text)
}

/// `POST /api/v1/classify`: score, verdict, Bayes probability and the rule that
/// decided, then one row per symbol, heaviest first. `None` when the answer does
/// not have that shape.
pub fn classify(answer: &Value) -> Option<String> {
    let object = answer.as_object()?;
    let symbols = object.get("symbols")?.as_array()?;
    let mut text = String::new();
    let mut line = |label: &str, value: String| text.push_str(&format!("{label:<9}{value}\n"));
    line("score:", object.get("score").map(cell).unwrap_or_default());
    line(
        "verdict:",
        object.get("verdict").map(cell).unwrap_or_default(),
    );
    line(
        "bayes:",
        match object.get("bayes") {
            None | Some(Value::Null) => "- (the classifier did not vote)".to_string(),
            Some(value) => cell(value),
        },
    );
    if let Some(rule) = object.get("rule_id").filter(|v| !v.is_null()) {
        line("rule:", cell(rule));
    }
    text.push_str(&other_fields(object, &CLASSIFY_FIELDS));

    let weight = |symbol: &Value| symbol.get("weight").and_then(Value::as_f64).unwrap_or(0.0);
    let name = |symbol: &Value| symbol.get("name").map(cell).unwrap_or_default();
    let mut sorted: Vec<&Value> = symbols.iter().collect();
    sorted.sort_by(|a, b| {
        weight(b)
            .total_cmp(&weight(a))
            .then_with(|| name(a).cmp(&name(b)))
    });
    text.push('\n');
    if sorted.is_empty() {
        text.push_str("no symbols\n");
        return Some(text);
    }
    let header = ["SYMBOL", "WEIGHT", "DETAIL"].map(String::from).to_vec();
    let mut table = Table::new(header, vec![false, true, false]);
    for symbol in sorted {
        let detail = symbol
            .get("detail")
            .filter(|v| !v.is_null())
            .map(cell)
            .unwrap_or_default();
        let weight = symbol.get("weight").map(cell).unwrap_or_default();
        table.push(vec![name(symbol), weight, detail]);
    }
    text.push_str(&table.render());
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_and_numbers_sit_right() {
        let mut table = Table::new(
            vec!["NAME".into(), "N".into(), "NOTE".into()],
            vec![false, true, false],
        );
        table.push(vec!["a".into(), "1000".into(), "x".into()]);
        table.push(vec!["longer".into(), "7".into()]);
        assert_eq!(
            table.render(),
            "NAME       N  NOTE\n\
             a       1000  x\n\
             longer     7\n"
        );
    }

    #[test]
    fn bayes_lists_each_node_then_the_totals_and_readiness() {
        let answer = json!({
            "spam_learned": 150, "ham_learned": 310, "tokens": 6000, "ready": true,
            "nodes": {
                "mx1": {"spam_learned": 120, "ham_learned": 300, "tokens": 5012},
                "mx2": {"spam_learned": 30, "ham_learned": 10, "tokens": 988, "updated_at": "2024-05-01"}
            }
        });
        assert_eq!(
            bayes(&answer).unwrap(),
            "NODE   SPAM_LEARNED  HAM_LEARNED  TOKENS  UPDATED_AT\n\
             mx1             120          300    5012\n\
             mx2              30           10     988  2024-05-01\n\
             TOTAL           150          310    6000\n\
             \n\
             ready: yes, the classifier votes\n"
        );
    }

    #[test]
    fn bayes_not_ready_says_why_and_keeps_unknown_fields() {
        let answer = json!({
            "spam_learned": 1, "ham_learned": 0, "tokens": 12, "ready": false,
            "min_learned": 200, "nodes": {}
        });
        let text = bayes(&answer).unwrap();
        assert!(
            text.contains("ready: no, the classifier does not vote"),
            "{text}"
        );
        assert!(text.ends_with("min_learned: 200\n"), "{text}");
        assert!(text.starts_with("NODE   SPAM_LEARNED  HAM_LEARNED  TOKENS\nTOTAL             1            0      12\n"), "{text}");
    }

    #[test]
    fn classify_shows_the_verdict_and_symbols_heaviest_first() {
        let answer = json!({
            "score": 12.5, "verdict": "quarantine", "bayes": 0.998, "rule_id": null,
            "symbols": [
                {"name": "DMARC_NA", "weight": 0.5, "detail": null},
                {"name": "BAYES_SPAM_99", "weight": 8.0, "detail": "p=0.998"},
                {"name": "DKIM_ALLOW", "weight": -1, "detail": "d=example.com"},
                {"name": "SUBJ_ALL_CAPS", "weight": 5.0, "detail": "BUY NOW"}
            ]
        });
        assert_eq!(
            classify(&answer).unwrap(),
            "score:   12.5\n\
             verdict: quarantine\n\
             bayes:   0.998\n\
             \n\
             SYMBOL         WEIGHT  DETAIL\n\
             BAYES_SPAM_99     8.0  p=0.998\n\
             SUBJ_ALL_CAPS     5.0  BUY NOW\n\
             DMARC_NA          0.5\n\
             DKIM_ALLOW         -1  d=example.com\n"
        );
    }

    #[test]
    fn classify_by_rule_without_bayes_or_symbols() {
        let answer = json!({
            "score": 0, "verdict": "reject", "bayes": null, "rule_id": "r-7", "symbols": []
        });
        assert_eq!(
            classify(&answer).unwrap(),
            "score:   0\n\
             verdict: reject\n\
             bayes:   - (the classifier did not vote)\n\
             rule:    r-7\n\
             \n\
             no symbols\n"
        );
    }

    #[test]
    fn unexpected_shapes_are_left_to_the_caller() {
        assert_eq!(bayes(&json!([1, 2])), None);
        assert_eq!(bayes(&json!({"ready": true})), None);
        assert_eq!(classify(&json!({"score": 1})), None);
    }
    #[test]
    fn bayes_table_shows_the_server_s_winning_counts_per_node() {
        let answer = serde_json::json!({
            "spam_learned": 250, "ham_learned": 250, "tokens": 9000, "ready": true,
            "nodes": {"mx1": {"winning": {"spam": 250, "ham": 249}, "records": 500},
                      "mx2": {"winning": {"spam": 0, "ham": 1}, "records": 1}}
        });
        let text = bayes(&answer).expect("a table");
        let mx1 = text
            .lines()
            .find(|l| l.starts_with("mx1"))
            .expect("mx1 row");
        let cells: Vec<&str> = mx1.split_whitespace().collect();
        assert_eq!(
            cells,
            ["mx1", "250", "249", "", "500"]
                .iter()
                .filter(|c| !c.is_empty())
                .copied()
                .collect::<Vec<_>>(),
            "{text}"
        );
        assert!(
            text.lines().next().unwrap().contains("SPAM_LEARNED"),
            "{text}"
        );
        assert!(!text.contains("winning"), "{text}");
    }
}
