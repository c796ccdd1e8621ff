//! The `mxctl` command line and its mapping to admin API calls.
//!
//! Mapping is pure: [`Command::into_plan`] turns parsed arguments into a [`Plan`]
//! without touching the network, so every route can be checked in unit tests.
//! Most commands are one [`Call`] (method, endpoint, body, how to print the
//! answer); `learn` and `forget` are runs of many calls (see `learn`). The inputs
//! it reads are a rule or settings file given with `--file` and the message given
//! to `classify`.
//!
//! `--json` means "machine-readable output" everywhere: compact JSON on one line
//! instead of pretty JSON or a table. The exceptions are `rules add`,
//! `rules update` and `settings spam set`, where it carries the JSON to send
//! (`--json '{…}'`); there the output switch is given before the group:
//! `mxctl --json rules add --json '{…}'`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::client::{ApiClient, ApiResponse, Body, ClientError, Endpoint, Method};
use super::mailbox::{self, MessageInputError};

pub use super::args::*;

/// How a successful response is shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// JSON to stdout; pretty unless `compact`.
    Json { compact: bool },
    /// The body bytes unchanged, to stdout or to a file.
    Raw { out: Option<PathBuf> },
    /// A readable view of the JSON answer; with `json`, that JSON compact instead.
    Table { view: View, json: bool },
}

/// The readable views of JSON answers (see `tables`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `GET /api/v1/bayes`: totals, readiness, one row per node.
    Bayes,
    /// `POST /api/v1/classify`: score, verdict, Bayes, one row per symbol.
    Classify,
    /// `GET /api/v1/quarantine`: one row per entry, with its spam score.
    QuarantineList,
    /// `GET /api/v1/quarantine/ID`: the entry's fields, then its symbols.
    QuarantineEntry,
    /// `POST /api/v1/nodes/ID/forget`: what became of the node's messages.
    Forget,
    /// `GET /api/v1/lists`: one row per allow/deny entry.
    Lists,
    /// `GET /api/v1/stats/series`: one row per step, one column per node and the total.
    Series,
    /// `GET /api/v1/cluster`: one row per member.
    Cluster,
    /// `GET /api/v1/rules`: one row per rule.
    Rules,
    /// `GET /api/v1/rules/history`: one row per change.
    RulesHistory,
    /// `GET /api/v1/queue`: one row per queued message.
    Queue,
    /// `GET /api/v1/stats`: one row per node and a total row.
    Stats,
    /// `GET /api/v1/trace`: one row per event.
    Trace,
}

/// One admin API call, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The HTTP method.
    pub method: Method,
    /// The path (and query) to call.
    pub endpoint: Endpoint,
    /// Request body: JSON for rules and settings, a raw message for classify.
    pub body: Option<Body>,
    /// How to print the answer.
    pub output: Output,
}

/// What one `mxctl` invocation does.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// One admin API call.
    Call(Call),
    /// Learn every message of some files (one call per message).
    Learn(LearnPlan),
    /// Forget learned messages (one call per digest).
    Forget(ForgetPlan),
    /// Export the rule book as JSON.
    RulesExport(super::rules_io::ExportPlan),
    /// Import a rule book file.
    RulesImport(super::rules_io::ImportPlan),
    /// Retire a node, polling its progress until it is done.
    Retire(RetirePlan),
    /// Release or delete several quarantined entries (one call each).
    Bulk(super::bulk::BulkPlan),
}

/// `mxctl node retire ID`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetirePlan {
    /// The node to retire.
    pub id: String,
    /// Print each progress report as compact JSON instead of a line of text.
    pub json: bool,
}

/// `mxctl learn CLASS FILE…`.
#[derive(Debug, Clone, PartialEq)]
pub struct LearnPlan {
    /// What every message is learned as.
    pub class: Class,
    /// The files, mboxes and maildirs, in the order given.
    pub files: Vec<PathBuf>,
    /// Also print one line per message.
    pub verbose: bool,
    /// Print compact JSON (one object per line) instead of text and a table.
    pub json: bool,
}

/// `mxctl forget DIGEST…`.
#[derive(Debug, Clone, PartialEq)]
pub struct ForgetPlan {
    /// The digests, in the order given.
    pub digests: Vec<String>,
    /// Print each answer as compact JSON instead of a line of text.
    pub json: bool,
}

impl Call {
    pub(crate) fn new(method: Method, endpoint: Endpoint, output: OutputArgs) -> Self {
        Call {
            method,
            endpoint,
            body: None,
            output: Output::Json {
                compact: output.json,
            },
        }
    }

    pub(crate) fn with_body(mut self, body: Body) -> Self {
        self.body = Some(body);
        self
    }

    pub(crate) fn table(
        method: Method,
        endpoint: Endpoint,
        view: View,
        output: OutputArgs,
    ) -> Self {
        Call {
            method,
            endpoint,
            body: None,
            output: Output::Table {
                view,
                json: output.json,
            },
        }
    }

    /// Sends the call with the verb it names.
    pub fn send(&self, client: &ApiClient) -> Result<ApiResponse, ClientError> {
        client.send(self.method, &self.endpoint, self.body.as_ref())
    }
}

/// Bad local input: a rule or settings that cannot be read or are not JSON, or a
/// message to classify that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// A file or stdin cannot be read.
    #[error("cannot read {what} from {source_name}: {error}")]
    Read {
        what: &'static str,
        source_name: String,
        error: std::io::Error,
    },
    /// The input is larger than the limit.
    #[error("{what} from {source_name} is larger than {max_bytes} bytes")]
    TooLarge {
        what: &'static str,
        source_name: String,
        max_bytes: u64,
    },
    /// The input is not valid JSON.
    #[error("{what} from {source_name} is not valid JSON: {error}")]
    NotJson {
        what: &'static str,
        source_name: String,
        error: serde_json::Error,
    },
    /// The message to classify cannot be read or split.
    #[error(transparent)]
    Message(#[from] MessageInputError),
    /// The file to classify holds no message.
    #[error("{file} holds no message")]
    NoMessage { file: String },
    /// The file to classify holds more than one message.
    #[error("{file} holds more than one message; classify takes one")]
    SeveralMessages { file: String },
    /// A bulk release or delete got both ids and filters, or neither.
    #[error("quarantine {command}: {problem}")]
    BulkTargets {
        command: &'static str,
        problem: &'static str,
    },
}

impl Cli {
    /// Maps the command line to its plan; a `--json` before the group makes the
    /// output machine-readable whatever the command.
    pub fn into_plan(self) -> Result<Plan, InputError> {
        let mut plan = self.command.into_plan()?;
        if self.json {
            match &mut plan {
                Plan::Call(call) => match &mut call.output {
                    Output::Json { compact } => *compact = true,
                    Output::Table { json, .. } => *json = true,
                    Output::Raw { .. } => {}
                },
                Plan::Learn(learn) => learn.json = true,
                Plan::Forget(forget) => forget.json = true,
                Plan::Retire(retire) => retire.json = true,
                Plan::RulesImport(import) => import.json = true,
                Plan::Bulk(bulk) => bulk.json = true,
                Plan::RulesExport(_) => {}
            }
        }
        Ok(plan)
    }
}

impl Command {
    /// Maps the command to what it does. Reads the JSON of `rules add`,
    /// `rules update` and `settings spam set` and checks that it is JSON, and the
    /// message of `classify`; everything else is pure.
    pub fn into_plan(self) -> Result<Plan, InputError> {
        let call = match self {
            Command::Learn(args) => {
                return Ok(Plan::Learn(LearnPlan {
                    class: args.class,
                    files: args.files,
                    verbose: args.verbose,
                    json: args.output.json,
                }));
            }
            Command::Forget(args) => {
                return Ok(Plan::Forget(ForgetPlan {
                    digests: args.digests,
                    json: args.output.json,
                }));
            }
            Command::Rules(RulesCommand::Export { out }) => {
                return Ok(Plan::RulesExport(super::rules_io::ExportPlan { out }));
            }
            Command::Rules(RulesCommand::Import {
                file,
                dry_run,
                output,
            }) => {
                return Ok(Plan::RulesImport(super::rules_io::ImportPlan {
                    file,
                    dry_run,
                    json: output.json,
                }));
            }
            Command::Node(NodeCommand::Retire { id, output }) => {
                return Ok(Plan::Retire(RetirePlan {
                    id,
                    json: output.json,
                }));
            }
            Command::Quarantine(q) => match super::bulk::bulk_plan(q)? {
                Ok(bulk) => return Ok(Plan::Bulk(bulk)),
                Err(one) => Command::Quarantine(one).into_call()?,
            },
            other => other.into_call()?,
        };
        Ok(Plan::Call(call))
    }

    /// The one call of a command that is one call.
    fn into_call(self) -> Result<Call, InputError> {
        use Method::{Delete, Get, Post, Put};
        let api = Endpoint::api;
        let call = match self {
            Command::Rules(command) => match command {
                RulesCommand::List(output) => {
                    Call::table(Get, api(&["rules"]), View::Rules, output)
                }
                RulesCommand::Get { id, output } => Call::new(Get, api(&["rules", &id]), output),
                RulesCommand::Add { rule } => {
                    Call::new(Post, api(&["rules"]), OutputArgs::default())
                        .with_body(Body::Json(rule.load()?))
                }
                RulesCommand::Update { id, rule } => {
                    Call::new(Put, api(&["rules", &id]), OutputArgs::default())
                        .with_body(Body::Json(rule.load()?))
                }
                RulesCommand::Delete { id, output } => {
                    Call::new(Delete, api(&["rules", &id]), output)
                }
                RulesCommand::History(output) => {
                    Call::table(Get, api(&["rules", "history"]), View::RulesHistory, output)
                }
                RulesCommand::Export { .. } | RulesCommand::Import { .. } => {
                    unreachable!("into_plan maps rules export and import to runs")
                }
            },
            Command::Quarantine(command) => match command {
                QuarantineCommand::List { filter, output } => {
                    Call::table(Get, filter.endpoint(), View::QuarantineList, output)
                }
                QuarantineCommand::Show { id, output } => Call::table(
                    Get,
                    api(&["quarantine", &id]),
                    View::QuarantineEntry,
                    output,
                ),
                QuarantineCommand::Raw { id, out } => Call {
                    method: Get,
                    endpoint: api(&["quarantine", &id, "raw"]),
                    body: None,
                    output: Output::Raw { out },
                },
                QuarantineCommand::Release {
                    ids,
                    learn_ham,
                    output,
                    ..
                } => {
                    let id = ids.into_iter().next().unwrap_or_default();
                    Call::new(
                        Post,
                        api(&["quarantine", &id, "release"])
                            .with_query("learn", learn_ham.then_some(Class::Ham.as_str())),
                        output,
                    )
                }
                QuarantineCommand::Learn { id, class, output } => Call::new(
                    Post,
                    api(&["quarantine", &id, "learn"]).with_query("class", Some(class.as_str())),
                    output,
                ),
                QuarantineCommand::Delete { ids, output, .. } => {
                    let id = ids.into_iter().next().unwrap_or_default();
                    Call::new(Delete, api(&["quarantine", &id]), output)
                }
            },
            Command::Cluster(output) => Call::table(Get, api(&["cluster"]), View::Cluster, output),
            Command::Stats(args) => args.into_call(),
            Command::Trace(args) => {
                let endpoint = api(&["trace"])
                    .with_query("sender", args.sender)
                    .with_query("rcpt", args.rcpt)
                    .with_query("since", args.since);
                Call::table(Get, endpoint, View::Trace, args.output)
            }
            Command::Queue(command) => match command {
                QueueCommand::List { node, output } => Call::table(
                    Get,
                    api(&["queue"]).with_query("node", node),
                    View::Queue,
                    output,
                ),
                QueueCommand::Flush { node, output } => Call::new(
                    Post,
                    api(&["queue", "flush"]).with_query("node", node),
                    output,
                ),
            },
            Command::Node(command) => match command {
                NodeCommand::Drain { id, output } => {
                    Call::new(Post, api(&["nodes", &id, "drain"]), output)
                }
                NodeCommand::Undrain { id, output } => {
                    Call::new(Post, api(&["nodes", &id, "undrain"]), output)
                }
                NodeCommand::Forget { id, output } => {
                    Call::table(Post, api(&["nodes", &id, "forget"]), View::Forget, output)
                }
                NodeCommand::Retire { .. } => unreachable!("into_plan maps retire to a run"),
            },
            Command::Health(output) => Call::new(Get, Endpoint::public(&["healthz"]), output),
            Command::Lists(command) => command.into_call(),
            Command::Bayes(output) => Call::table(Get, api(&["bayes"]), View::Bayes, output),
            Command::Classify(args) => args.into_call()?,
            Command::Settings(SettingsCommand::Spam(args)) => {
                settings_call("spam", args.action, args.output)?
            }
            Command::Settings(SettingsCommand::Quarantine(args)) => {
                settings_call("quarantine", args.action, args.output)?
            }
            Command::Settings(SettingsCommand::Digest(args)) => {
                settings_call("digest", args.action, args.output)?
            }
            Command::Digest(DigestCommand::Status(output)) => {
                Call::new(Get, api(&["digest"]), output)
            }
            Command::Digest(DigestCommand::Run(output)) => {
                Call::new(Post, api(&["digest", "run"]), output)
            }
            Command::Digest(DigestCommand::Rotate(output)) => {
                Call::new(Post, api(&["digest", "rotate"]), output)
            }
            Command::Learn(_) | Command::Forget(_) => {
                unreachable!("into_plan maps learn and forget to runs")
            }
        };
        Ok(call)
    }
}

/// `settings NAME [get]` or `settings NAME set …`: one call on `/api/v1/settings/NAME`.
fn settings_call(
    name: &str,
    action: Option<SpamSettingsAction>,
    output: OutputArgs,
) -> Result<Call, InputError> {
    let endpoint = Endpoint::api(&["settings", name]);
    Ok(match action {
        None => Call::new(Method::Get, endpoint, output),
        Some(SpamSettingsAction::Get(output)) => Call::new(Method::Get, endpoint, output),
        Some(SpamSettingsAction::Set { settings }) => {
            Call::new(Method::Put, endpoint, OutputArgs::default())
                .with_body(Body::Json(settings.load()?))
        }
    })
}

impl ClassifyArgs {
    /// Reads the one message and builds the call with the envelope as the query.
    fn into_call(self) -> Result<Call, InputError> {
        let endpoint = Endpoint::api(&["classify"])
            .with_query("from", self.from)
            .with_query("rcpt", self.rcpt)
            .with_query("ip", self.ip)
            .with_query("helo", self.helo)
            .with_query("hostname", self.hostname);
        let message = read_one_message(&self.file)?;
        Ok(
            Call::table(Method::Post, endpoint, View::Classify, self.output)
                .with_body(Body::Message(message)),
        )
    }
}

/// The single message in `path` (a message file, an mbox of one, or stdin).
fn read_one_message(path: &Path) -> Result<Vec<u8>, InputError> {
    let file = || {
        if path.as_os_str() == "-" {
            "stdin".to_string()
        } else {
            path.display().to_string()
        }
    };
    let mut items = mailbox::messages(path);
    let message = items
        .next()
        .ok_or_else(|| InputError::NoMessage { file: file() })??;
    if items.next().is_some() {
        return Err(InputError::SeveralMessages { file: file() });
    }
    Ok(message.bytes)
}

impl QuarantineFilter {
    fn endpoint(self) -> Endpoint {
        self.search
            .endpoint()
            .with_query("limit", self.limit)
            .with_query("cursor", self.cursor)
    }
}

impl SearchFilters {
    /// `GET /api/v1/quarantine` with the filters given.
    pub fn endpoint(self) -> Endpoint {
        Endpoint::api(&["quarantine"])
            .with_query("sender", self.sender)
            .with_query("rcpt", self.rcpt)
            .with_query("subject", self.subject)
            .with_query("node", self.node)
            .with_query("since", self.since)
    }

    /// Whether any filter is given.
    pub fn any(&self) -> bool {
        [
            &self.sender,
            &self.rcpt,
            &self.subject,
            &self.node,
            &self.since,
        ]
        .iter()
        .any(|f| f.is_some())
    }
}

impl RuleInput {
    /// Reads the rule and parses it, so a typo is reported against its file
    /// before anything is sent. The server still validates the rule itself.
    fn load(self) -> Result<Value, InputError> {
        load_json("rule", self.file, self.inline)
    }
}

impl SettingsInput {
    /// Reads the settings and parses them; the server validates their contents.
    fn load(self) -> Result<Value, InputError> {
        load_json("settings", self.file, self.inline)
    }
}

/// JSON from `--json TEXT` or `--file FILE` (`-`: stdin), parsed; `what` names
/// it in errors.
fn load_json(
    what: &'static str,
    file: Option<PathBuf>,
    inline: Option<String>,
) -> Result<Value, InputError> {
    let (source_name, text) = match (file, inline) {
        (_, Some(inline)) => ("--json".to_string(), inline),
        (Some(path), None) if path.as_os_str() == "-" => (
            "stdin".to_string(),
            read_bounded(what, "stdin", std::io::stdin())?,
        ),
        (Some(path), None) => {
            let name = path.display().to_string();
            let file = std::fs::File::open(&path).map_err(|error| InputError::Read {
                what,
                source_name: name.clone(),
                error,
            })?;
            (name.clone(), read_bounded(what, &name, file)?)
        }
        (None, None) => unreachable!("clap requires --file or --json"),
    };
    serde_json::from_str(&text).map_err(|error| InputError::NotJson {
        what,
        source_name,
        error,
    })
}

fn read_bounded(
    what: &'static str,
    source_name: &str,
    reader: impl std::io::Read,
) -> Result<String, InputError> {
    let mut text = String::new();
    reader
        .take(JSON_INPUT_MAX_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| InputError::Read {
            what,
            source_name: source_name.to_string(),
            error,
        })?;
    if text.len() as u64 > JSON_INPUT_MAX_BYTES {
        return Err(InputError::TooLarge {
            what,
            source_name: source_name.to_string(),
            max_bytes: JSON_INPUT_MAX_BYTES,
        });
    }
    Ok(text)
}

#[cfg(test)]
#[path = "commands_tests.rs"]
mod tests;
