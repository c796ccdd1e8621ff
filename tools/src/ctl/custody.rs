//! `mxctl node retire ID` (a run: the retire call repeated until the node reports `done`,
//! one progress line per change) and the table of `mxctl node forget ID`.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use serde_json::Value;

use super::client::{ApiClient, Endpoint, Method};
use super::commands::RetirePlan;
use super::output::failure_message;
use super::tables::{Table, cell};

/// Time between two progress polls of a retire.
pub const RETIRE_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// Polls of one retire at most (about an hour at [`RETIRE_POLL_INTERVAL`]).
pub const RETIRE_POLLS_MAX: usize = 7200;

/// Retires `plan.id`, printing its progress until it is done or failed.
pub fn retire(client: &ApiClient, plan: &RetirePlan) -> anyhow::Result<ExitCode> {
    let endpoint = Endpoint::api(&["nodes", &plan.id, "retire"]);
    let mut stdout = std::io::stdout().lock();
    let mut last = String::new();
    for _ in 0..RETIRE_POLLS_MAX {
        let response = client.send(Method::Post, &endpoint, None)?;
        if !response.status.is_success() {
            let url = client.url(&endpoint);
            let why = failure_message(Method::Post, &url, response.status, &response.body);
            anyhow::bail!(why);
        }
        let progress: Value = serde_json::from_slice(&response.body)?;
        let line = match plan.json {
            true => progress.to_string(),
            false => progress_line(&progress),
        };
        if line != last {
            writeln!(stdout, "{line}")?;
            stdout.flush()?;
            last = line;
        }
        match progress["state"].as_str() {
            Some("done") => return Ok(ExitCode::SUCCESS),
            Some("failed") => {
                eprintln!(
                    "mxctl: retire of {} failed: {}",
                    plan.id,
                    cell(&progress["error"])
                );
                return Ok(ExitCode::FAILURE);
            }
            _ => std::thread::sleep(RETIRE_POLL_INTERVAL),
        }
    }
    anyhow::bail!(
        "retire of {} still running after {RETIRE_POLLS_MAX} polls",
        plan.id
    )
}

/// One human line of retire progress, e.g. `mx2 running: 120/1000 moved (mx1 60, mx3 60)`.
pub fn progress_line(p: &Value) -> String {
    let node = p["node"].as_str().unwrap_or("?");
    let state = p["state"].as_str().unwrap_or("?");
    let (moved, total) = (cell(&p["moved"]), cell(&p["total"]));
    let to: Vec<String> = p["successors"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| format!("{k} {}", cell(v))).collect())
        .unwrap_or_default();
    let mut line = format!("{node} {state}: {moved}/{total} quarantined messages moved");
    if !to.is_empty() {
        line.push_str(&format!(" ({})", to.join(", ")));
    }
    if p["queue_total"].as_u64().is_some_and(|n| n > 0) {
        let (moved, total) = (cell(&p["queue_moved"]), cell(&p["queue_total"]));
        line.push_str(&format!(", {moved}/{total} queued messages moved"));
    }
    if p["failed"].as_u64().is_some_and(|n| n > 0) {
        line.push_str(&format!(", {} hand-overs to retry", cell(&p["failed"])));
    }
    line
}

/// The table of a forget answer: one row per outcome.
pub fn forget(answer: &Value) -> Option<String> {
    let node = answer.get("node")?.as_str()?;
    let mut table = Table::new(
        vec!["NODE".into(), "MESSAGES".into(), "STATE".into()],
        vec![false, true, false],
    );
    table.push(vec![
        node.into(),
        cell(&answer["taken_over"]),
        "taken over by a copy holder".into(),
    ]);
    table.push(vec![
        node.into(),
        cell(&answer["lost"]),
        "lost (no copy survives)".into(),
    ]);
    Some(format!("forgot {node}\n{}", table.render()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn progress_reads_as_one_line() {
        let p = json!({"node":"mx2","state":"running","total":10,"moved":4,"failed":1,
            "successors":{"mx1":3,"mx3":1}});
        assert_eq!(
            progress_line(&p),
            "mx2 running: 4/10 quarantined messages moved (mx1 3, mx3 1), 1 hand-overs to retry"
        );
    }

    #[test]
    fn forget_shows_what_became_of_the_messages() {
        let a = json!({"node":"mx2","forgotten":true,"quarantined":5,"taken_over":4,"lost":1});
        let text = forget(&a).unwrap();
        assert!(text.starts_with("forgot mx2\n"), "{text}");
        assert!(text.contains("lost (no copy survives)"), "{text}");
        assert!(forget(&json!({"error":"x"})).is_none());
    }
}
