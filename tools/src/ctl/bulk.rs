//! Bulk `mxctl quarantine release|delete`: several ids, or every quarantined entry a
//! search matches, one call each, with a progress line on stderr and a summary at the
//! end.
//!
//! The ids of a search are collected first (page by page, at most [`BULK_IDS_MAX`]),
//! then acted on: acting while paging would move entries out of the search under the
//! cursor. An entry that is no longer quarantined (released or deleted meanwhile, from
//! another node or another run) counts as "already", not as a failure. A failed id does
//! not stop the others; the exit status is 1 when any failed. Only a run that cannot
//! succeed stops early: a refused token, or no answer from the node
//! [`super::learn::TRANSPORT_FAILURES_IN_A_ROW_MAX`] times in a row. Deciding what an
//! answer means ([`outcome_of`]) and the summary are pure.

use std::process::ExitCode;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::args::{BulkFilter, OutputArgs, QuarantineCommand};
use super::client::{ApiClient, ApiResponse, ClientError, Endpoint, Method};
use super::commands::InputError;
use super::learn::TRANSPORT_FAILURES_IN_A_ROW_MAX;
use super::output::failure_message;
use super::progress::Progress;
use super::tables::Table;

/// Ids one bulk run acts on at most; a search matching more is refused before any
/// action (narrow it, e.g. with `--since`).
pub const BULK_IDS_MAX: usize = 100_000;
/// Entries asked for per search page while collecting ids (the server's maximum).
pub const BULK_PAGE_LIMIT: usize = 1000;
/// Failed ids named in the closing error line; the rest are counted.
pub const BULK_FAILURES_NAMED_MAX: usize = 10;

/// What a bulk run does to each entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkAction {
    /// `POST /api/v1/quarantine/ID/release`, optionally learning it as ham.
    Release {
        /// Also learn each message as ham (`?learn=ham`).
        learn_ham: bool,
    },
    /// `DELETE /api/v1/quarantine/ID`.
    Delete,
}

impl BulkAction {
    fn verb(self) -> &'static str {
        match self {
            BulkAction::Release { .. } => "release",
            BulkAction::Delete => "delete",
        }
    }

    fn done_word(self) -> &'static str {
        match self {
            BulkAction::Release { .. } => "released",
            BulkAction::Delete => "deleted",
        }
    }

    fn method(self) -> Method {
        match self {
            BulkAction::Release { .. } => Method::Post,
            BulkAction::Delete => Method::Delete,
        }
    }

    /// The endpoint acting on entry `id`.
    pub fn endpoint(self, id: &str) -> Endpoint {
        match self {
            BulkAction::Release { learn_ham } => Endpoint::api(&["quarantine", id, "release"])
                .with_query("learn", learn_ham.then_some("ham")),
            BulkAction::Delete => Endpoint::api(&["quarantine", id]),
        }
    }
}

/// Which entries a bulk run acts on.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// These ids, as given.
    Ids(Vec<String>),
    /// Every quarantined entry this search (`GET /api/v1/quarantine` with its filters)
    /// finds.
    Search(Endpoint),
}

/// A bulk `quarantine release|delete`.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPlan {
    /// What to do to each entry.
    pub action: BulkAction,
    /// Which entries.
    pub targets: Targets,
    /// Print the summary as compact JSON instead of a table.
    pub json: bool,
}

/// Splits off a bulk `quarantine release|delete`: several ids or a search become a
/// [`BulkPlan`] (`Ok(Ok)`); one id without a search, and every other quarantine command,
/// is handed back (`Ok(Err)`) to be one call. Ids together with a search, or neither,
/// are refused.
pub fn bulk_plan(
    command: QuarantineCommand,
) -> Result<Result<BulkPlan, QuarantineCommand>, InputError> {
    let (name, action, ids, matching, output) = match command {
        QuarantineCommand::Release {
            ids,
            matching,
            learn_ham,
            output,
        } => (
            "release",
            BulkAction::Release { learn_ham },
            ids,
            matching,
            output,
        ),
        QuarantineCommand::Delete {
            ids,
            matching,
            output,
        } => ("delete", BulkAction::Delete, ids, matching, output),
        other => return Ok(Err(other)),
    };
    let problem = |problem| InputError::BulkTargets {
        command: name,
        problem,
    };
    let targets = match (ids.len(), search_of(&matching)) {
        (0, None) => {
            return Err(problem(
                "give entry ids, or search filters (--sender, --rcpt, --subject, --node, --since) or --all",
            ));
        }
        (0, Some(search)) => Targets::Search(search),
        (_, Some(_)) => return Err(problem("give entry ids or search filters, not both")),
        (1, None) => return Ok(Err(single(action, ids, matching, output))),
        (_, None) => Targets::Ids(ids),
    };
    Ok(Ok(BulkPlan {
        action,
        targets,
        json: output.json,
    }))
}

/// The command of one id, handed back to be one call.
fn single(
    action: BulkAction,
    ids: Vec<String>,
    matching: BulkFilter,
    output: OutputArgs,
) -> QuarantineCommand {
    match action {
        BulkAction::Release { learn_ham } => QuarantineCommand::Release {
            ids,
            matching,
            learn_ham,
            output,
        },
        BulkAction::Delete => QuarantineCommand::Delete {
            ids,
            matching,
            output,
        },
    }
}

/// The search endpoint of `filter`, `None` when it names nothing (and not `--all`).
fn search_of(filter: &BulkFilter) -> Option<Endpoint> {
    (filter.search.any() || filter.all).then(|| filter.search.clone().endpoint())
}

/// What one entry's call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done now (a release: queued for relay).
    Done,
    /// Recorded for a node that is down; it carries it out when it returns (the answer
    /// says `deferred`).
    Deferred,
    /// The entry was no longer quarantined (409): counted, not a failure.
    Already,
    /// Not done; `error` says why and names the entry.
    Failed {
        /// The error, naming the entry.
        error: String,
        /// Set when the token was refused: every further call would be too.
        unauthorized: bool,
    },
}

/// Counts of a bulk run, and the first failed ids.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BulkTally {
    /// Entries acted on now.
    pub done: usize,
    /// Entries whose node was down: recorded for it.
    pub deferred: usize,
    /// Entries no longer quarantined.
    pub already: usize,
    /// Entries that failed.
    pub failed: usize,
    /// The first [`BULK_FAILURES_NAMED_MAX`] failure messages.
    pub failures_named: Vec<String>,
    /// Set when the run stopped early, with the reason.
    pub stopped: Option<String>,
}

impl BulkTally {
    fn record(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Done => self.done += 1,
            Outcome::Deferred => self.deferred += 1,
            Outcome::Already => self.already += 1,
            Outcome::Failed { error, .. } => {
                self.failed += 1;
                if self.failures_named.len() < BULK_FAILURES_NAMED_MAX {
                    self.failures_named.push(error.clone());
                }
            }
        }
    }

    /// Entries answered so far.
    pub fn total(&self) -> usize {
        self.done + self.deferred + self.already + self.failed
    }

    fn progress_text(&self, action: BulkAction, of: usize) -> String {
        format!(
            "{}: {} of {of} ({} {}, {} deferred, {} already, {} failed)",
            action.verb(),
            self.total(),
            self.done,
            action.done_word(),
            self.deferred,
            self.already,
            self.failed
        )
    }

    /// The summary table: one row per outcome.
    pub fn table(&self, action: BulkAction, of: usize) -> String {
        let mut table = Table::new(vec!["OUTCOME".into(), "ENTRIES".into()], vec![false, true]);
        for (name, count) in [
            (action.done_word(), self.done),
            ("deferred (node down)", self.deferred),
            ("already not quarantined", self.already),
            ("failed", self.failed),
            ("not attempted", of.saturating_sub(self.total())),
        ] {
            table.push(vec![name.to_string(), count.to_string()]);
        }
        table.render()
    }

    /// The summary as JSON.
    pub fn json(&self, action: BulkAction, of: usize) -> Value {
        json!({
            "action": action.verb(),
            "matched": of,
            "done": self.done,
            "deferred": self.deferred,
            "already": self.already,
            "failed": self.failed,
            "failures": self.failures_named,
            "stopped": self.stopped,
        })
    }
}

/// What the answer for entry `id` means.
pub fn outcome_of(id: &str, method: Method, url: &reqwest::Url, response: ApiResponse) -> Outcome {
    let deferred = || {
        serde_json::from_slice::<Value>(&response.body)
            .is_ok_and(|answer| answer.get("deferred").is_some())
    };
    match response.status {
        s if s.is_success() && deferred() => Outcome::Deferred,
        s if s.is_success() => Outcome::Done,
        StatusCode::CONFLICT => Outcome::Already,
        s => Outcome::Failed {
            error: format!("{id}: {}", failure_message(method, url, s, &response.body)),
            unauthorized: s == StatusCode::UNAUTHORIZED,
        },
    }
}

/// The ids of a search page (`{"items": [{"id": ...}], "next": ...}`) and its cursor.
pub fn page_ids(answer: &Value) -> Result<(Vec<String>, Option<String>), String> {
    let items = answer
        .get("items")
        .and_then(Value::as_array)
        .ok_or("the search answer has no \"items\" list")?;
    let ids = items
        .iter()
        .map(|item| item.get("id").and_then(Value::as_str).map(str::to_string))
        .collect::<Option<Vec<_>>>()
        .ok_or("a search item has no \"id\"")?;
    let next = answer
        .get("next")
        .and_then(Value::as_str)
        .map(str::to_string);
    Ok((ids, next))
}

/// Every quarantined entry `search` finds, page by page, at most [`BULK_IDS_MAX`].
fn collect_ids(client: &ApiClient, search: &Endpoint) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = search
            .clone()
            .with_query("status", Some("quarantined"))
            .with_query("limit", Some(BULK_PAGE_LIMIT))
            .with_query("cursor", cursor.take());
        let response = client.send(Method::Get, &page, None)?;
        if !response.status.is_success() {
            let url = client.url(&page);
            anyhow::bail!(
                "{}",
                failure_message(Method::Get, &url, response.status, &response.body)
            );
        }
        let answer: Value = serde_json::from_slice(&response.body)?;
        let (found, next) = page_ids(&answer).map_err(anyhow::Error::msg)?;
        ids.extend(found);
        if ids.len() > BULK_IDS_MAX {
            anyhow::bail!(
                "the search matches more than {BULK_IDS_MAX} quarantined entries; narrow it (e.g. --since)"
            );
        }
        match next {
            Some(next) => cursor = Some(next),
            None => return Ok(ids),
        }
    }
}

/// Runs a bulk release or delete and prints its summary.
pub fn run(client: &ApiClient, plan: &BulkPlan) -> anyhow::Result<ExitCode> {
    let ids = match &plan.targets {
        Targets::Ids(ids) => ids.clone(),
        Targets::Search(search) => collect_ids(client, search)?,
    };
    let tally = act_on_all(client, plan.action, &ids);
    match plan.json {
        true => println!("{}", tally.json(plan.action, ids.len())),
        false => print!("{}", tally.table(plan.action, ids.len())),
    }
    if tally.failed == 0 && tally.stopped.is_none() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut line = format!("{} of {} entries failed", tally.failed, ids.len());
    if !tally.failures_named.is_empty() {
        line.push_str(&format!(": {}", tally.failures_named.join("; ")));
    }
    if let Some(stopped) = &tally.stopped {
        line.push_str(&format!("; stopped early: {stopped}"));
    }
    eprintln!("mxctl: {line}");
    Ok(ExitCode::FAILURE)
}

/// One call per id, with progress; stops early only when no call can succeed.
fn act_on_all(client: &ApiClient, action: BulkAction, ids: &[String]) -> BulkTally {
    let mut tally = BulkTally::default();
    let mut progress = Progress::new();
    let mut unanswered = 0;
    for id in ids {
        let endpoint = action.endpoint(id);
        let url = client.url(&endpoint);
        let outcome = match client.send(action.method(), &endpoint, None) {
            Ok(response) => {
                unanswered = 0;
                outcome_of(id, action.method(), &url, response)
            }
            Err(e) => {
                unanswered = if matches!(e, ClientError::Transport { .. }) {
                    unanswered + 1
                } else {
                    0
                };
                Outcome::Failed {
                    error: format!("{id}: {e}"),
                    unauthorized: false,
                }
            }
        };
        tally.record(&outcome);
        progress.update(tally.total(), || tally.progress_text(action, ids.len()));
        let stop = match &outcome {
            Outcome::Failed {
                unauthorized: true, ..
            } => Some("the node refused the token".to_string()),
            _ if unanswered >= TRANSPORT_FAILURES_IN_A_ROW_MAX => Some(format!(
                "no answer from {} {unanswered} times in a row",
                client.url(&Endpoint::api(&[]))
            )),
            _ => None,
        };
        if let Some(stop) = stop {
            progress.message(&stop);
            tally.stopped = Some(stop);
            break;
        }
    }
    progress.clear();
    tally
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> ApiResponse {
        ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn url() -> reqwest::Url {
        "http://127.0.0.1:8025/api/v1/quarantine/q1/release"
            .parse()
            .unwrap()
    }

    #[test]
    fn answers_map_to_outcomes() {
        let of = |status, body| outcome_of("q1", Method::Post, &url(), response(status, body));
        assert_eq!(of(200, "{}"), Outcome::Done);
        assert_eq!(of(202, r#"{"status":"released"}"#), Outcome::Done);
        assert_eq!(
            of(202, r#"{"deferred":"node mx2 is not reachable"}"#),
            Outcome::Deferred
        );
        assert_eq!(
            of(409, r#"{"error":"message q1 was already released"}"#),
            Outcome::Already
        );
        match of(404, r#"{"error":"no such message q1"}"#) {
            Outcome::Failed {
                error,
                unauthorized,
            } => {
                assert!(error.starts_with("q1: "), "{error}");
                assert!(error.contains("404"), "{error}");
                assert!(!unauthorized);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            of(401, "{}"),
            Outcome::Failed {
                unauthorized: true,
                ..
            }
        ));
    }

    #[test]
    fn search_pages_give_ids_and_the_cursor() {
        let page = json!({"items": [{"id": "a"}, {"id": "b"}], "next": "c1"});
        assert_eq!(
            page_ids(&page),
            Ok((vec!["a".into(), "b".into()], Some("c1".into())))
        );
        let last = json!({"items": [], "next": null});
        assert_eq!(page_ids(&last), Ok((vec![], None)));
        assert!(page_ids(&json!({"items": [{"node": "mx1"}]})).is_err());
        assert!(page_ids(&json!({"error": "x"})).is_err());
    }

    #[test]
    fn the_summary_counts_every_outcome_and_what_was_not_attempted() {
        let mut tally = BulkTally::default();
        for outcome in [
            Outcome::Done,
            Outcome::Done,
            Outcome::Deferred,
            Outcome::Already,
            Outcome::Failed {
                error: "q9: HTTP 503".into(),
                unauthorized: false,
            },
        ] {
            tally.record(&outcome);
        }
        let action = BulkAction::Release { learn_ham: false };
        let json = tally.json(action, 7);
        assert_eq!(
            (
                json["done"].as_u64(),
                json["deferred"].as_u64(),
                json["already"].as_u64(),
                json["failed"].as_u64()
            ),
            (Some(2), Some(1), Some(1), Some(1))
        );
        assert_eq!(json["failures"], json!(["q9: HTTP 503"]));
        let table = tally.table(action, 7);
        assert!(table.contains("released"), "{table}");
        let not_attempted = table
            .lines()
            .find(|l| l.starts_with("not attempted"))
            .unwrap();
        assert!(not_attempted.ends_with(" 2"), "{table}");
        assert_eq!(
            tally.progress_text(action, 7),
            "release: 5 of 7 (2 released, 1 deferred, 1 already, 1 failed)"
        );
    }

    #[test]
    fn release_and_delete_call_their_routes() {
        let release = BulkAction::Release { learn_ham: true }.endpoint("q1");
        assert_eq!(release.segments.last().map(String::as_str), Some("release"));
        assert_eq!(release.query, vec![("learn", "ham".to_string())]);
        let delete = BulkAction::Delete.endpoint("q1");
        assert_eq!(delete.segments.last().map(String::as_str), Some("q1"));
        assert!(delete.query.is_empty());
    }
}
