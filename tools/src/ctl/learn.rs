//! Runs of many calls: `mxctl learn` (one `POST /api/v1/learn/CLASS` per message
//! of the files given) and `mxctl forget` (one `DELETE /api/v1/learn/DIGEST` per
//! digest).
//!
//! A message or digest that fails is reported on stderr as it happens and does
//! not stop the others; at the end the exit status is 1 and stderr names what
//! failed. Only a run that cannot succeed stops early: a refused token, or a node
//! that gave no answer [`TRANSPORT_FAILURES_IN_A_ROW_MAX`] times in a row.
//! Deciding what an answer means ([`outcome_of`]) and the summary are pure; the
//! loops around them do the I/O.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::client::{ApiClient, ApiResponse, Body, ClientError, Endpoint, Method};
use super::commands::{Class, ForgetPlan, LearnPlan};
use super::mailbox::{self, Origin};
use super::output::{failure_message, format_json};
use super::progress::Progress;
use super::tables::Table;

/// Failed messages named in the closing error line; the rest are counted.
pub const FAILURES_NAMED_MAX: usize = 10;
/// Calls in a row that got no HTTP answer before the run stops: the node is down
/// or unreachable, and every further message would fail the same way.
pub const TRANSPORT_FAILURES_IN_A_ROW_MAX: usize = 3;

/// What one message's call came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Learned now.
    Learned { digest: String },
    /// Already learned as this class (somewhere in the mesh): counted once.
    AlreadyLearned { digest: String, reason: String },
    /// Not learned; `error` says why and names the message.
    Failed { error: String, stop: Option<Stop> },
}

/// Why a run stops before its last message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The server refused the token: every message would be refused.
    Unauthorized,
    /// No answer from the node for several calls in a row.
    Unreachable,
}

/// Counts of a learn run, and the first failed messages.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    /// Messages learned by this run.
    pub learned: usize,
    /// Messages the mesh had already learned as this class.
    pub already_learned: usize,
    /// Messages that could not be read or were refused.
    pub failed: usize,
    /// Where the first [`FAILURES_NAMED_MAX`] failed messages came from.
    pub failures_named: Vec<String>,
    /// Set when the run stopped early, with the reason.
    pub stopped: Option<String>,
}

impl Tally {
    fn record(&mut self, origin: &Origin, outcome: &Outcome) {
        match outcome {
            Outcome::Learned { .. } => self.learned += 1,
            Outcome::AlreadyLearned { .. } => self.already_learned += 1,
            Outcome::Failed { .. } => {
                self.failed += 1;
                if self.failures_named.len() < FAILURES_NAMED_MAX {
                    self.failures_named.push(origin.to_string());
                }
            }
        }
    }

    /// Messages tried so far.
    pub fn total(&self) -> usize {
        self.learned + self.already_learned + self.failed
    }

    /// The summary as a table (text mode).
    pub fn table(&self, class: Class) -> String {
        let header = ["CLASS", "LEARNED", "ALREADY_LEARNED", "FAILED"]
            .map(String::from)
            .to_vec();
        let mut table = Table::new(header, vec![false, true, true, true]);
        table.push(vec![
            class.as_str().to_string(),
            self.learned.to_string(),
            self.already_learned.to_string(),
            self.failed.to_string(),
        ]);
        table.render()
    }

    /// The summary as one JSON object (`--json`).
    pub fn json(&self, class: Class) -> Value {
        json!({
            "class": class.as_str(),
            "learned": self.learned,
            "already_learned": self.already_learned,
            "failed": self.failed,
            "failures": self.failures_named,
            "stopped": self.stopped,
        })
    }

    /// The closing error line when anything failed, naming the messages.
    pub fn failure_line(&self) -> Option<String> {
        if self.failed == 0 && self.stopped.is_none() {
            return None;
        }
        let mut line = format!("{} of {} messages failed", self.failed, self.total());
        if !self.failures_named.is_empty() {
            line.push_str(": ");
            line.push_str(&self.failures_named.join(", "));
            let unnamed = self.failed - self.failures_named.len();
            if unnamed > 0 {
                line.push_str(&format!(" and {unnamed} more"));
            }
        }
        if let Some(stopped) = &self.stopped {
            line.push_str(&format!("; stopped early: {stopped}"));
        }
        Some(line)
    }

    fn progress_text(&self, class: Class) -> String {
        format!(
            "learning {}: {} messages ({} learned, {} already learned, {} failed)",
            class.as_str(),
            self.total(),
            self.learned,
            self.already_learned,
            self.failed
        )
    }
}

/// What the answer to learning the message from `origin` means.
pub fn outcome_of(origin: &Origin, url: &reqwest::Url, response: ApiResponse) -> Outcome {
    if !response.status.is_success() {
        let stop = (response.status == StatusCode::UNAUTHORIZED).then_some(Stop::Unauthorized);
        return Outcome::Failed {
            error: format!(
                "{origin}: {}",
                failure_message(Method::Post, url, response.status, &response.body)
            ),
            stop,
        };
    }
    let answer = serde_json::from_slice::<Value>(&response.body).unwrap_or(Value::Null);
    let digest = answer
        .get("digest")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match answer.get("learned").and_then(Value::as_bool) {
        Some(true) => Outcome::Learned { digest },
        Some(false) => Outcome::AlreadyLearned {
            digest,
            reason: answer
                .get("reason")
                .and_then(Value::as_str)
                .unwrap_or("already learned")
                .to_string(),
        },
        None => Outcome::Failed {
            error: format!(
                "{origin}: POST {url}: HTTP {} but the answer has no \"learned\": {}",
                response.status.as_u16(),
                String::from_utf8_lossy(&response.body).trim()
            ),
            stop: None,
        },
    }
}

/// One line per message for `--verbose`: JSON with `json`, else text.
fn verbose_line(origin: &Origin, outcome: &Outcome, json: bool) -> String {
    let (what, digest, note) = match outcome {
        Outcome::Learned { digest } => ("learned", digest.as_str(), ""),
        Outcome::AlreadyLearned { digest, reason } => ("already", digest.as_str(), reason.as_str()),
        Outcome::Failed { error, .. } => ("failed", "", error.as_str()),
    };
    if json {
        let mut line = json!({"message": origin.to_string(), "outcome": what});
        if !digest.is_empty() {
            line["digest"] = json!(digest);
        }
        if !note.is_empty() {
            line["detail"] = json!(note);
        }
        return line.to_string();
    }
    let digest = if digest.is_empty() { "-" } else { digest };
    match outcome {
        Outcome::AlreadyLearned { .. } => format!("{what:<8} {digest}  {origin}  ({note})"),
        _ => format!("{what:<8} {digest}  {origin}"),
    }
}

/// Counts the calls in a row that got no answer.
#[derive(Default)]
struct Unanswered(usize);

impl Unanswered {
    fn failed(&mut self, error: &ClientError) -> Option<Stop> {
        self.0 = if matches!(error, ClientError::Transport { .. }) {
            self.0 + 1
        } else {
            0
        };
        (self.0 >= TRANSPORT_FAILURES_IN_A_ROW_MAX).then_some(Stop::Unreachable)
    }
}

/// `mxctl learn`: every message of every file, one call each, then the summary.
pub fn learn(client: &ApiClient, plan: &LearnPlan) -> anyhow::Result<ExitCode> {
    let endpoint = Endpoint::api(&["learn", plan.class.as_str()]);
    let url = client.url(&endpoint);
    let mut tally = Tally::default();
    let mut progress = Progress::new();
    let mut unanswered = Unanswered::default();
    let mut stdout = std::io::stdout().lock();
    'files: for file in &plan.files {
        let mut found = 0_usize;
        for item in mailbox::messages(file) {
            found += 1;
            let (origin, outcome) = match item {
                Err(error) => {
                    let outcome = Outcome::Failed {
                        error: error.to_string(),
                        stop: None,
                    };
                    (error.origin().clone(), outcome)
                }
                Ok(message) => {
                    let body = Body::Message(message.bytes);
                    let outcome = match client.send(Method::Post, &endpoint, Some(&body)) {
                        Ok(response) => {
                            unanswered.0 = 0;
                            outcome_of(&message.origin, &url, response)
                        }
                        Err(error) => Outcome::Failed {
                            stop: unanswered.failed(&error),
                            error: format!("{}: {error}", message.origin),
                        },
                    };
                    (message.origin, outcome)
                }
            };
            tally.record(&origin, &outcome);
            if plan.verbose {
                progress.clear();
                writeln!(stdout, "{}", verbose_line(&origin, &outcome, plan.json))?;
            }
            if let Outcome::Failed { error, stop } = &outcome {
                progress.message(error);
                if let Some(stop) = stop {
                    tally.stopped = Some(stop_reason(*stop, &url));
                    break 'files;
                }
            }
            progress.update(tally.total(), || tally.progress_text(plan.class));
        }
        if found == 0 {
            progress.message(&format!("{}: no messages", shown_name(file)));
        }
    }
    progress.clear();
    if plan.json {
        writeln!(stdout, "{}", tally.json(plan.class))?;
    } else {
        write!(stdout, "{}", tally.table(plan.class))?;
    }
    stdout.flush()?;
    Ok(match tally.failure_line() {
        Some(line) => {
            eprintln!("mxctl: {line}");
            ExitCode::FAILURE
        }
        None => ExitCode::SUCCESS,
    })
}

fn stop_reason(stop: Stop, url: &reqwest::Url) -> String {
    match stop {
        Stop::Unauthorized => {
            "the server refused the admin token; the other messages were not sent".to_string()
        }
        Stop::Unreachable => format!(
            "{TRANSPORT_FAILURES_IN_A_ROW_MAX} calls in a row got no answer from {url}; \
             the other messages were not sent"
        ),
    }
}

fn shown_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "stdin".to_string()
    } else {
        path.display().to_string()
    }
}

/// `mxctl forget`: one call per digest; each answer on its own line.
pub fn forget(client: &ApiClient, plan: &ForgetPlan) -> anyhow::Result<ExitCode> {
    let mut not_forgotten = Vec::new();
    let mut stdout = std::io::stdout().lock();
    for digest in &plan.digests {
        let endpoint = Endpoint::api(&["learn", digest]);
        let shown = match client.send(Method::Delete, &endpoint, None) {
            Ok(response) if response.status.is_success() => {
                Ok(forgotten_line(digest, &response.body, plan.json))
            }
            Ok(response) => Err(failure_message(
                Method::Delete,
                &client.url(&endpoint),
                response.status,
                &response.body,
            )),
            Err(error) => Err(error.to_string()),
        };
        match shown {
            Ok(line) => writeln!(stdout, "{line}")?,
            Err(error) => {
                eprintln!("mxctl: {error}");
                not_forgotten.push(digest.as_str());
            }
        }
    }
    stdout.flush()?;
    if not_forgotten.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!(
        "mxctl: {} of {} digests not forgotten: {}",
        not_forgotten.len(),
        plan.digests.len(),
        not_forgotten.join(", ")
    );
    Ok(ExitCode::FAILURE)
}

/// The line for a forgotten digest: the server's answer as compact JSON (or a
/// minimal object when it sent none) with `json`, else `forgot DIGEST`.
fn forgotten_line(digest: &str, body: &[u8], json: bool) -> String {
    if !json {
        return format!("forgot {digest}");
    }
    let answer = format_json(body, true);
    if answer.is_empty() {
        return json!({"digest": digest, "forgotten": true}).to_string();
    }
    String::from_utf8_lossy(&answer).trim_end().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ctl::mailbox::MboxPlace;

    fn origin() -> Origin {
        Origin {
            file: "spam.mbox".to_string(),
            in_mbox: Some(MboxPlace { index: 3, line: 40 }),
        }
    }

    fn url() -> reqwest::Url {
        reqwest::Url::parse("http://127.0.0.1:8025/api/v1/learn/spam").unwrap()
    }

    fn answer(status: u16, body: &str) -> Outcome {
        let response = ApiResponse {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.as_bytes().to_vec(),
        };
        outcome_of(&origin(), &url(), response)
    }

    #[test]
    fn answers_become_outcomes() {
        assert_eq!(
            answer(200, r#"{"digest":"d1","learned":true}"#),
            Outcome::Learned {
                digest: "d1".to_string()
            }
        );
        assert_eq!(
            answer(
                200,
                r#"{"digest":"d1","learned":false,"reason":"already learned as spam"}"#
            ),
            Outcome::AlreadyLearned {
                digest: "d1".to_string(),
                reason: "already learned as spam".to_string()
            }
        );
        assert_eq!(
            answer(400, r#"{"error":"not a message"}"#),
            Outcome::Failed {
                error:
                    "spam.mbox message 3 (line 40): POST http://127.0.0.1:8025/api/v1/learn/spam: \
                        HTTP 400 Bad Request: not a message"
                        .to_string(),
                stop: None
            }
        );
        let Outcome::Failed { stop, .. } = answer(401, r#"{"error":"bad token"}"#) else {
            panic!("401 must fail");
        };
        assert_eq!(stop, Some(Stop::Unauthorized));
        let Outcome::Failed { error, stop } = answer(200, "ok") else {
            panic!("an answer without learned must fail");
        };
        assert!(error.contains("has no \"learned\": ok"), "{error}");
        assert_eq!(stop, None);
    }

    #[test]
    fn tally_counts_and_names_the_first_failures() {
        let mut tally = Tally::default();
        let failed = Outcome::Failed {
            error: String::new(),
            stop: None,
        };
        tally.record(&origin(), &Outcome::Learned { digest: "a".into() });
        tally.record(
            &origin(),
            &Outcome::AlreadyLearned {
                digest: "a".into(),
                reason: String::new(),
            },
        );
        assert_eq!(tally.failure_line(), None);
        for _ in 0..FAILURES_NAMED_MAX + 2 {
            tally.record(&origin(), &failed);
        }
        assert_eq!(tally.total(), FAILURES_NAMED_MAX + 4);
        let line = tally.failure_line().unwrap();
        assert!(
            line.starts_with(&format!(
                "{} of {} messages failed: spam.mbox message 3 (line 40), ",
                FAILURES_NAMED_MAX + 2,
                FAILURES_NAMED_MAX + 4
            )),
            "{line}"
        );
        assert!(line.ends_with(" and 2 more"), "{line}");
        assert_eq!(
            tally.table(Class::Spam),
            format!(
                "CLASS  LEARNED  ALREADY_LEARNED  FAILED\n\
                 spam         1                1      {}\n",
                FAILURES_NAMED_MAX + 2
            )
        );
    }

    #[test]
    fn a_stopped_run_says_so_even_without_failures_named() {
        let tally = Tally {
            stopped: Some("the server refused the admin token".into()),
            ..Tally::default()
        };
        assert_eq!(
            tally.failure_line().unwrap(),
            "0 of 0 messages failed; stopped early: the server refused the admin token"
        );
    }

    #[test]
    fn only_unanswered_calls_in_a_row_stop_the_run() {
        let transport = ClientError::Transport {
            method: Method::Post,
            url: url(),
            detail: "connection refused".into(),
        };
        let mut unanswered = Unanswered::default();
        for _ in 1..TRANSPORT_FAILURES_IN_A_ROW_MAX {
            assert_eq!(unanswered.failed(&transport), None);
        }
        assert_eq!(unanswered.failed(&transport), Some(Stop::Unreachable));
        let mut unanswered = Unanswered::default();
        unanswered.failed(&transport);
        let too_large = ClientError::BodyTooLarge {
            method: Method::Post,
            url: url(),
            max_bytes: 1,
        };
        assert_eq!(unanswered.failed(&too_large), None);
        assert_eq!(unanswered.0, 0);
    }

    #[test]
    fn verbose_lines_name_digest_and_origin() {
        let learned = Outcome::Learned {
            digest: "d1".into(),
        };
        assert_eq!(
            verbose_line(&origin(), &learned, false),
            "learned  d1  spam.mbox message 3 (line 40)"
        );
        let already = Outcome::AlreadyLearned {
            digest: "d2".into(),
            reason: "already learned as spam".into(),
        };
        assert_eq!(
            verbose_line(&origin(), &already, true),
            r#"{"detail":"already learned as spam","digest":"d2","message":"spam.mbox message 3 (line 40)","outcome":"already"}"#
        );
    }

    #[test]
    fn forgotten_lines() {
        assert_eq!(forgotten_line("d1", b"", false), "forgot d1");
        assert_eq!(
            forgotten_line("d1", b"", true),
            r#"{"digest":"d1","forgotten":true}"#
        );
        assert_eq!(
            forgotten_line("d1", b"{ \"digest\": \"d1\" }\n", true),
            r#"{"digest":"d1"}"#
        );
    }
}
