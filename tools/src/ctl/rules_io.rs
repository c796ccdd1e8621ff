//! `mxctl rules export` and `mxctl rules import`: the rule book as a JSON file, for
//! configuration as code.
//!
//! Export writes every rule as a JSON array ordered by id, each rule in its canonical form
//! (the form `GET /api/v1/rules` answers), so two exports of equal rule books are equal
//! byte for byte. Import reads such an array, checks every rule with the same validation
//! the node applies (an error names the rule and the field), and creates or updates each
//! by id through the rules API; a rule already equal is left unchanged, so importing twice
//! changes nothing. Rules of the mesh that the file does not name are left alone.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use mxmesh_crdt::rule::Rule;
use serde_json::Value;

use super::client::{ApiClient, Body, Endpoint, Method};

/// Rules one import file holds at most.
pub const IMPORT_RULES_MAX: usize = 10_000;
/// Largest import file read, in bytes.
pub const IMPORT_FILE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// `mxctl rules export [--out FILE]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportPlan {
    /// Where to write the JSON; stdout when absent.
    pub out: Option<PathBuf>,
}

/// `mxctl rules import FILE [--dry-run]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportPlan {
    /// The JSON array of rules; `-` reads stdin.
    pub file: PathBuf,
    /// Show what would change, change nothing.
    pub dry_run: bool,
    /// Print the outcome as JSON rather than a table.
    pub json: bool,
}

/// What import did (or would do) to one rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The mesh had no rule with this id.
    Created,
    /// The mesh had a different rule with this id.
    Updated,
    /// The mesh had this rule already.
    Unchanged,
}

impl Outcome {
    /// Its name in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Runs an export.
pub fn export(client: &ApiClient, plan: &ExportPlan) -> anyhow::Result<ExitCode> {
    let rules = fetch_rules(client)?;
    let text = export_text(rules.values())?;
    match &plan.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("--out {}", path.display()))?;
            eprintln!("{} rules written to {}", rules.len(), path.display());
        }
        None => println!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// The export of `rules` (canonical, ordered by id) as pretty JSON.
pub fn export_text<'a>(rules: impl Iterator<Item = &'a Rule>) -> anyhow::Result<String> {
    let mut sorted: Vec<&Rule> = rules.collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    let array: Vec<Value> = sorted.iter().map(|r| r.to_json()).collect();
    Ok(serde_json::to_string_pretty(&array)?)
}

/// Runs an import.
pub fn import(client: &ApiClient, plan: &ImportPlan) -> anyhow::Result<ExitCode> {
    let text = read_file(&plan.file)?;
    let wanted = parse_import(&plan.file.display().to_string(), &text)?;
    let current = fetch_rules(client)?;
    let mut done = Vec::with_capacity(wanted.len());
    for rule in &wanted {
        let outcome = match current.get(&rule.id) {
            None => Outcome::Created,
            Some(have) if have.to_json() == rule.to_json() => Outcome::Unchanged,
            Some(_) => Outcome::Updated,
        };
        if !plan.dry_run {
            write_rule(client, rule, outcome)?;
        }
        done.push((rule, outcome));
    }
    print_outcome(&done, plan);
    Ok(ExitCode::SUCCESS)
}

/// Reads and checks an import file's text: a JSON array of rule objects, each with an id,
/// no id twice. Errors name `source`, the rule (position and id) and the field.
pub fn parse_import(source: &str, text: &str) -> anyhow::Result<Vec<Rule>> {
    let value: Value = serde_json::from_str(text).with_context(|| format!("{source}: not JSON"))?;
    let Value::Array(items) = value else {
        bail!("{source}: expected a JSON array of rules (as `mxctl rules export` writes)");
    };
    if items.len() > IMPORT_RULES_MAX {
        bail!("{source}: more than {IMPORT_RULES_MAX} rules");
    }
    let mut seen = BTreeSet::new();
    let mut rules = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let name = describe(i, item);
        if item.get("id").and_then(Value::as_str).is_none() {
            bail!("{source}: {name}: id: is required (import creates and updates rules by id)");
        }
        let rule = Rule::from_json(item).map_err(|e| anyhow!("{source}: {name}: {e}"))?;
        if !seen.insert(rule.id.clone()) {
            bail!("{source}: {name}: id {:?} appears twice", rule.id);
        }
        rules.push(rule);
    }
    Ok(rules)
}

/// "rule #3 (id r-1, name "…")" for error messages.
fn describe(i: usize, item: &Value) -> String {
    let id = item.get("id").and_then(Value::as_str);
    let name = item.get("name").and_then(Value::as_str);
    match (id, name) {
        (Some(id), Some(name)) => format!("rule #{} (id {id}, name {name:?})", i + 1),
        (Some(id), None) => format!("rule #{} (id {id})", i + 1),
        (None, Some(name)) => format!("rule #{} (name {name:?})", i + 1),
        (None, None) => format!("rule #{}", i + 1),
    }
}

fn read_file(path: &Path) -> anyhow::Result<String> {
    let mut text = String::new();
    let reader: Box<dyn std::io::Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("{}", path.display()))?)
    };
    reader
        .take(IMPORT_FILE_BYTES_MAX + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("{}", path.display()))?;
    if text.len() as u64 > IMPORT_FILE_BYTES_MAX {
        bail!(
            "{}: larger than {IMPORT_FILE_BYTES_MAX} bytes",
            path.display()
        );
    }
    Ok(text)
}

/// The mesh's rules by id.
fn fetch_rules(client: &ApiClient) -> anyhow::Result<BTreeMap<String, Rule>> {
    let endpoint = Endpoint::api(&["rules"]);
    let response = client.send(Method::Get, &endpoint, None)?;
    let body = answer_json(client, &endpoint, Method::Get, &response)?;
    let items = body["rules"].as_array().ok_or_else(|| {
        anyhow!(
            "GET {}: answer without a rules array",
            client.url(&endpoint)
        )
    })?;
    let mut rules = BTreeMap::new();
    for item in items {
        let rule = Rule::from_json(item)
            .map_err(|e| anyhow!("GET {}: a rule the node sent: {e}", client.url(&endpoint)))?;
        rules.insert(rule.id.clone(), rule);
    }
    Ok(rules)
}

/// Creates or updates one rule.
fn write_rule(client: &ApiClient, rule: &Rule, outcome: Outcome) -> anyhow::Result<()> {
    let (method, endpoint) = match outcome {
        Outcome::Unchanged => return Ok(()),
        Outcome::Created => (Method::Post, Endpoint::api(&["rules"])),
        Outcome::Updated => (Method::Put, Endpoint::api(&["rules", &rule.id])),
    };
    let body = Body::Json(rule.to_json());
    let response = client.send(method, &endpoint, Some(&body))?;
    answer_json(client, &endpoint, method, &response)
        .with_context(|| format!("rule {} ({:?})", rule.id, rule.name))?;
    Ok(())
}

/// The JSON of a 2xx answer; otherwise an error with the node's message.
fn answer_json(
    client: &ApiClient,
    endpoint: &Endpoint,
    method: Method,
    response: &super::client::ApiResponse,
) -> anyhow::Result<Value> {
    let body: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    if !response.status.is_success() {
        let message = body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&response.body).into_owned());
        bail!(
            "{method} {}: {}: {message}",
            client.url(endpoint),
            response.status
        );
    }
    Ok(body)
}

fn print_outcome(done: &[(&Rule, Outcome)], plan: &ImportPlan) {
    if plan.json {
        let rows: Vec<Value> = done
            .iter()
            .map(|(r, o)| serde_json::json!({"id": r.id, "name": r.name, "result": o.as_str()}))
            .collect();
        let out = serde_json::json!({"dry_run": plan.dry_run, "rules": rows});
        println!("{out}");
        return;
    }
    let id_w = done
        .iter()
        .map(|(r, _)| r.id.len())
        .max()
        .unwrap_or(2)
        .max(2);
    let name_w = done
        .iter()
        .map(|(r, _)| r.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let result = if plan.dry_run { "WOULD BE" } else { "RESULT" };
    println!("{:id_w$}  {:name_w$}  {result}", "ID", "NAME");
    for (r, o) in done {
        println!("{:id_w$}  {:name_w$}  {}", r.id, r.name, o.as_str());
    }
    let count = |x: Outcome| done.iter().filter(|(_, o)| *o == x).count();
    println!(
        "{} created, {} updated, {} unchanged{}",
        count(Outcome::Created),
        count(Outcome::Updated),
        count(Outcome::Unchanged),
        if plan.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULE: &str = r#"{"id":"r-1","name":"block x","enabled":true,"priority":10,
        "when":{"field":"subject","op":"contains","value":"x"},"action":"reject","reason":"no"}"#;

    #[test]
    fn an_import_file_is_an_array_of_rules_with_ids() {
        let rules = parse_import("f.json", &format!("[{RULE}]")).unwrap();
        assert_eq!(rules.len(), 1);
        assert_eq!(rules[0].id, "r-1");
        let err = parse_import("f.json", RULE).unwrap_err().to_string();
        assert!(err.contains("f.json: expected a JSON array"), "{err}");
    }

    #[test]
    fn errors_name_the_rule_and_the_field() {
        let bad = RULE.replace(r#""priority":10"#, r#""priority":"high""#);
        let err = format!(
            "{:#}",
            parse_import("f.json", &format!("[{bad}]")).unwrap_err()
        );
        assert!(err.contains("rule #1 (id r-1"), "{err}");
        assert!(err.contains("priority"), "{err}");
        let no_id = RULE.replace(r#""id":"r-1","#, "");
        let err = format!(
            "{:#}",
            parse_import("f.json", &format!("[{no_id}]")).unwrap_err()
        );
        assert!(
            err.contains("rule #1 (name \"block x\"): id: is required"),
            "{err}"
        );
        let err = parse_import("f.json", &format!("[{RULE},{RULE}]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rule #2") && err.contains("appears twice"),
            "{err}"
        );
    }

    #[test]
    fn export_is_ordered_by_id_and_parses_back() {
        let a = Rule::from_json(&serde_json::from_str(RULE).unwrap()).unwrap();
        let mut b = a.clone();
        b.id = "r-0".into();
        let text = export_text([&a, &b].into_iter()).unwrap();
        let back = parse_import("export", &text).unwrap();
        let ids: Vec<&str> = back.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["r-0", "r-1"]);
        assert_eq!(export_text(back.iter()).unwrap(), text);
    }
}
